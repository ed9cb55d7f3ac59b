"""Deblur face photos with a trained HG + G_bl (test-time path of Fig. 2, right), any size,
inputs never overwritten; the same CLI as the other papers' ``deblur``.

    python -m paper2_identity_cgan.deblur photo.jpg --output_dir=/tmp/out   # the shipped weights
    python -m paper2_identity_cgan.deblur --checkpoint=/tmp/p2/cgan INPUT... \
        --output_dir=/tmp/p2/deblurred [--face_detector=mtcnn] [--face_size=256] [--tile=256]

--checkpoint: a cGAN workdir (HG + G_bl rebuilt from its flags.txt, newest checkpoint restored) or
an exported .keras file (`python -m paper2_identity_cgan.export`); without it, the shipped model
`paper2_identity_cgan/weights/cgan_small.keras` (model card beside it).
Images are reflect-padded to a multiple of 128 (Table 3's seven stride-2 layers) by
``common.inference``. By default faces are detected, deblurred at the trained face scale and
pasted back (``common.photo``); --whole_image deblurs the whole image, tiled by --max_memory.
Inputs: image files, folders, quoted globs ("shoot/*.jpg") and video clips (clip.mp4 -> an MP4
with faces tracked across frames: ``common.video``); --compare adds a side-by-side image. (Paper 2's
network needs static sizes per trace, so its model is not cached.)
"""
from __future__ import annotations

import os

from absl import flags

from common import cli, inference
from paper2_identity_cgan import models

SHIPPED = inference.shipped_weights(os.path.dirname(os.path.abspath(__file__)), "cgan_small")


def define_flags(fv=flags.FLAGS):
    inference.define_deblur_flags(fv, checkpoint_help="cGAN workdir (flags.txt + checkpoints/) or "
                                  "an exported .keras file (default: the shipped "
                                  "paper2_identity_cgan/weights/cgan_small.keras).",
                                  suffix="_cgan", stride=models.GEN_DIVISOR)
    flags.adopt_module_key_flags(inference, flag_values=fv)  # listed by --helpshort


def load_model(checkpoint=None):
    """HG + G_bl of a cGAN workdir, an exported .keras file or (None) the shipped model, as a
    [0,1] -> [0,1] function."""
    checkpoint = inference.checkpoint_or_shipped(checkpoint, SHIPPED)
    if checkpoint.endswith(".keras"):
        return inference.static_shape_fn(inference.load_keras(checkpoint))
    from paper2_identity_cgan import export  # pylint: disable=import-outside-toplevel
    return inference.static_shape_fn(export.load_deblurrer(checkpoint)[0])


def run(checkpoint, input_paths, output_dir, suffix="_cgan", **options):
    """Deblurs input_paths into output_dir; options: tile, face_detector, face_size, overwrite
    (``common.inference.run_deblur``). Returns the written paths."""
    return inference.run_deblur(load_model, checkpoint, input_paths, output_dir,
                                stride=models.GEN_DIVISOR, suffix=suffix, model_path=SHIPPED,
                                **options)


def main(argv):
    inference.deblur_main(argv, inference.with_model_cache(run), flags.FLAGS)


if __name__ == "__main__":
    define_flags(flags.FLAGS)
    cli.run_app(main)
