"""Paper 2 (identity-preserving cGAN: HG + G_bl) in the paper registry (`common.papers`).

Imports nothing of the package itself: the loaders import `deblur` / `evaluate` when called.
"""
from common import papers

NAME = "paper2"
STAGES = ("hg", "cgan")  # train.py --stage
STRIDE = 128  # models.GEN_DIVISOR: Table 3's seven stride-2 layers


def load_model(workdir_or_file, **kwargs):
    """A cGAN workdir or exported `.keras` file as a [0,1] -> [0,1] function (`deblur.load_model`)."""
    from paper2_identity_cgan import deblur  # pylint: disable=import-outside-toplevel
    return deblur.load_model(workdir_or_file, **kwargs)


def load_method(workdir):
    """A cGAN workdir as a Method (`evaluate.load_method`)."""
    from paper2_identity_cgan import evaluate  # pylint: disable=import-outside-toplevel
    return evaluate.load_method(workdir)


SPEC = papers.PaperSpec(name=NAME, package="paper2_identity_cgan", stages=STAGES, stride=STRIDE,
                        keras_modules=("paper2_identity_cgan.models",),
                        load_model=load_model, load_method=load_method)
