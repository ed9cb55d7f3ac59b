"""Paper 3 (UMSN, uncertainty-guided multi-stream semantic network) in the paper registry
(`common.papers`).

Imports nothing of the package itself: the loaders import `deblur` / `evaluate` when called.
"""
from common import papers

NAME = "paper3"
STAGES = ("sn_clean", "sn_blurry", "fnet", "umsn")  # train.STAGES (Sec. IV-A)
STRIDE = 4  # models.UMSN_STRIDE


def load_model(workdir_or_file, **kwargs):
    """A umsn workdir or exported `.keras` file as a [0,1] -> [0,1] function (`deblur.load_model`)."""
    from paper3_umsn import deblur  # pylint: disable=import-outside-toplevel
    return deblur.load_model(workdir_or_file, **kwargs)


def load_method(workdir):
    """A umsn workdir as a Method (`evaluate.load_method`)."""
    from paper3_umsn import evaluate  # pylint: disable=import-outside-toplevel
    return evaluate.load_method(workdir)


SPEC = papers.PaperSpec(name=NAME, package="paper3_umsn", stages=STAGES, stride=STRIDE,
                        keras_modules=("paper3_umsn.models",),
                        load_model=load_model, load_method=load_method)
