"""Deblur real photos with the trained SRN (paper Fig. 4 / Fig. 7), any size, inputs never overwritten.

    python -m paper1_cyclegan_srn.deblur --checkpoint=runs/p1_srn INPUT... --output_dir=/tmp/out \
        [--face_detector=mtcnn] [--face_size=128] [--tile=256]

--checkpoint: an SRN workdir (the network is rebuilt from its flags.txt, the newest checkpoint
restored). --face_detector: deblur an enlarged crop around each detected face and paste it back
(`common.inference.deblur_faces`); without it the whole image is restored.
"""
from absl import app, flags

from common import inference, train_utils
from paper1_cyclegan_srn import evaluate


def define_flags(fv=flags.FLAGS):
    inference.define_deblur_flags(fv, checkpoint_help="SRN workdir (flags.txt + checkpoints/).",
                                  suffix="_srn", stride=16)
    flags.adopt_module_key_flags(inference, flag_values=fv)  # listed by --helpshort


def load_model(checkpoint):
    """The SRN of an SRN workdir as a [0,1] -> [0,1] function."""
    if not checkpoint:
        raise app.UsageError("--checkpoint is required (an SRN training workdir)")
    return evaluate.load_model(checkpoint)[1]


def run(checkpoint, input_paths, output_dir, suffix="_srn", **options):
    """Deblurs input_paths into output_dir; options: tile, face_detector, face_size, overwrite
    (`common.inference.run_deblur`). Returns the written paths."""
    # SRN pads internally to its stride (16 for 3 scales); stride 16 here keeps tiles aligned.
    return inference.run_deblur(load_model, checkpoint, input_paths, output_dir, stride=16,
                                suffix=suffix, **options)


def main(argv):
    inference.deblur_main(argv, run, flags.FLAGS)


if __name__ == "__main__":
    define_flags(flags.FLAGS)
    train_utils.run_app(main)
