"""Nahli, Cao & Xu, *Face Image Deblurring: A Data-Driven Strategy*: CycleGAN-labelled pairs + SRN.

Stage 0 `prepare_unpaired`  unpaired clear / blurred faces (stand-in for the paper's phone photos)
Stage 1 `train_cyclegan`    CycleGAN G: clear -> blurred, F: blurred -> clear (`cyclegan.py`)
Stage 2 `generate_pairs`    G labels clear faces: (input G(clear), target clear), 80/20 split
Stage 3 `train_srn`         scale-recurrent network on those pairs (`srn.py`, Eq. 3)
`evaluate` (Tables 1 and 2), `deblur` (real photos). See README.md.
"""
