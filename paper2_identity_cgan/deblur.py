"""Deblur face images with a trained HG + G_bl (test-time path of Fig. 2, right).

    python -m paper2_identity_cgan.deblur --checkpoint=/tmp/p2/cgan \
        --input=data/sample/real_blurry --output_dir=/tmp/p2/deblurred [--tile=256] [--faces]

Images of any size are reflect-padded to a multiple of 128 (Table 3's encoder stride) by
``common.inference``; ``--tile`` processes big images in overlapping tiles; ``--faces`` detects
faces (``common.face``), deblurs each crop at ``--face_size`` and pastes it back.  Inputs are never
overwritten.
"""
from __future__ import annotations

from absl import app, flags

from common import inference, train_utils
from paper2_identity_cgan import evaluate, models


def define_flags(fv):
    d = dict(flag_values=fv)
    flags.DEFINE_string("checkpoint", None, "Workdir of a trained cGAN (its flags.txt rebuilds "
                        "the network).", **d)
    flags.DEFINE_list("input", [], "Image files, folders or globs.", **d)
    flags.DEFINE_string("output_dir", None, "Where deblurred PNGs go.", **d)
    flags.DEFINE_integer("tile", 0, "Tile size for large images (multiple of 128; 0: whole).",
                         **d)
    flags.DEFINE_bool("faces", False, "Detect faces and deblur only the face crops.", **d)
    flags.DEFINE_string("detector", "mtcnn", "common.face detector for --faces.", **d)
    flags.DEFINE_integer("face_size", 256, "Network size of each face crop with --faces.", **d)
    flags.DEFINE_bool("overwrite", False, "Overwrite existing outputs.", **d)


def main(argv):
    del argv
    fv = flags.FLAGS
    if not fv.checkpoint or not fv.output_dir or not fv.input:
        raise app.UsageError("--checkpoint, --input and --output_dir are required")
    paths = inference.run_deblur(lambda workdir: evaluate.load_model(workdir)[0], fv.checkpoint,
                                 inference.expand_inputs(fv.input), fv.output_dir,
                                 stride=models.GEN_DIVISOR, tile=fv.tile,
                                 face_detector=fv.detector if fv.faces else None,
                                 face_size=fv.face_size if fv.faces else 0, overwrite=fv.overwrite)
    for p in paths:
        print(p)


if __name__ == "__main__":
    define_flags(flags.FLAGS)
    app.run(main, flags_parser=train_utils.flags_parser)
