"""Deblur real photos with a trained UMSN (SN + UMSN), any size, inputs never overwritten.

    python -m paper3_umsn.deblur photo.jpg --output_dir=/tmp/out     # the shipped weights
    python -m paper3_umsn.deblur --checkpoint=/tmp/umsn INPUT... --output_dir=/tmp/out \
        [--whole_image] [--max_memory=2] [--quality=95]

--checkpoint: a umsn-stage workdir (rebuilt from its flags.txt) or an exported `.keras` file;
without it, the shipped model `paper3_umsn/weights/umsn_small.keras` (model card beside it).
By default faces are detected (MTCNN), deblurred at the trained face scale and pasted back
(`common.photo`); --whole_image deblurs the whole image at its resolution, tiled by --max_memory.
Inputs: image files, folders, quoted globs ("shoot/*.jpg") and video clips (clip.mp4 -> an MP4
with faces tracked across frames: `common.video`); --compare adds a side-by-side image. The
traced model is cached (--model_cache, default ~/.cache/facedeblur): later runs start in ~2 s.
"""
import os

from absl import flags

from common import cli, inference
from paper3_umsn import models

SHIPPED = inference.shipped_weights(os.path.dirname(os.path.abspath(__file__)), "umsn_small")


def define_flags(fv=flags.FLAGS):
    inference.define_deblur_flags(fv, checkpoint_help="umsn-stage workdir or exported .keras "
                                  "file (default: the shipped paper3_umsn/weights/umsn_small.keras).",
                                  suffix="_umsn", stride=models.UMSN_STRIDE)
    flags.adopt_module_key_flags(inference, flag_values=fv)  # listed by --helpshort


def load_model(checkpoint=None, policy=None):
    """A umsn workdir, an exported .keras file, or (None) the shipped model; a .keras file is
    built under the dtype `policy` (`common.inference.load_keras`)."""
    checkpoint = inference.checkpoint_or_shipped(checkpoint, SHIPPED)
    if checkpoint.endswith(".keras"):
        return inference.load_keras(checkpoint, policy=policy)
    from paper3_umsn import export  # pylint: disable=import-outside-toplevel
    return export.load_deblurrer(checkpoint)[0]


def run(checkpoint, inputs, output_dir, suffix="_umsn", **options):
    """Deblurs inputs into output_dir; options: tile, face_detector, face_size, overwrite
    (`common.inference.run_deblur`). Returns the written paths."""
    return inference.run_deblur(load_model, checkpoint, inputs, output_dir,
                                stride=models.UMSN_STRIDE, suffix=suffix, model_path=SHIPPED,
                                **options)


def main(argv):
    inference.deblur_main(argv, inference.with_model_cache(run), flags.FLAGS)


if __name__ == "__main__":
    define_flags(flags.FLAGS)
    cli.run_app(main)
