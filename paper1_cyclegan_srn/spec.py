"""Paper 1 (Nahli et al., CycleGAN + SRN) in the paper registry (`common.papers`).

Imports nothing of the package itself: the loaders import `deblur` / `evaluate` when called.
"""
from common import papers

NAME = "paper1"
STAGES = ("cyclegan", "srn")  # stage 1 (train_cyclegan), stage 3 (train_srn); see README
STRIDE = 16  # the SRN's 3 scales, each of stride 4 (srn.SRNDeblurrer pads to it itself)


def load_model(workdir_or_file, **kwargs):
    """An SRN workdir or exported `.keras` file as a [0,1] -> [0,1] function (`deblur.load_model`)."""
    from paper1_cyclegan_srn import deblur  # pylint: disable=import-outside-toplevel
    return deblur.load_model(workdir_or_file, **kwargs)


def load_method(workdir):
    """An SRN (or CycleGAN: its F) workdir as a Method (`evaluate.load_method`)."""
    from paper1_cyclegan_srn import evaluate  # pylint: disable=import-outside-toplevel
    return evaluate.load_method(workdir)


SPEC = papers.PaperSpec(name=NAME, package="paper1_cyclegan_srn", stages=STAGES, stride=STRIDE,
                        keras_modules=("paper1_cyclegan_srn.srn", "paper1_cyclegan_srn.cyclegan"),
                        load_model=load_model, load_method=load_method)
