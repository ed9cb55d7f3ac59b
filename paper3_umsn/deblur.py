"""Deblur real photos with a trained UMSN (SN + UMSN), any size, inputs never overwritten.

    python -m paper3_umsn.deblur --checkpoint=/tmp/umsn INPUT... --output_dir=/tmp/out \
        [--face_detector=mtcnn] [--face_size=128] [--tile=256]

--checkpoint: a umsn-stage workdir (rebuilt from its flags.txt) or an exported `.keras` file.
--face_detector: detect faces (common.face backends), deblur an enlarged crop of each, paste back.
"""
from absl import app, flags

from common import inference, train_utils
from paper3_umsn import models


def define_flags(fv=flags.FLAGS):
    inference.define_deblur_flags(fv, checkpoint_help="umsn-stage workdir or exported .keras file.",
                                  suffix="_umsn", stride=models.UMSN_STRIDE)
    flags.adopt_module_key_flags(inference, flag_values=fv)  # listed by --helpshort


def load_model(checkpoint):
    if checkpoint is None:
        raise app.UsageError("--checkpoint is required (a umsn workdir or a .keras file)")
    if checkpoint.endswith(".keras"):
        return inference.load_keras(checkpoint)
    from paper3_umsn import evaluate
    return evaluate.load_run(checkpoint)[1]


def run(checkpoint, inputs, output_dir, suffix="_umsn", **options):
    """Deblurs inputs into output_dir; options: tile, face_detector, face_size, overwrite
    (`common.inference.run_deblur`). Returns the written paths."""
    return inference.run_deblur(load_model, checkpoint, inputs, output_dir,
                                stride=models.UMSN_STRIDE, suffix=suffix, **options)


def main(argv):
    inference.deblur_main(argv, run, flags.FLAGS)


if __name__ == "__main__":
    define_flags(flags.FLAGS)
    app.run(main, flags_parser=train_utils.flags_parser)
