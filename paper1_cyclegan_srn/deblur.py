"""Deblur real photos with the trained SRN (paper Fig. 4 / Fig. 7), any size, inputs never overwritten.

    python -m paper1_cyclegan_srn.deblur photo.jpg --output_dir=/tmp/out     # the shipped weights
    python -m paper1_cyclegan_srn.deblur --checkpoint=runs/p1_srn INPUT... --output_dir=/tmp/out \
        [--whole_image] [--max_memory=2] [--quality=95]

--checkpoint: an SRN workdir (the network is rebuilt from its flags.txt, the newest checkpoint
restored) or an exported .keras file (`python -m paper1_cyclegan_srn.export`); without it, the
shipped model `paper1_cyclegan_srn/weights/srn_small.keras` (model card beside it).
By default faces are detected (MTCNN), deblurred at the trained face scale and pasted back
(`common.photo`); --whole_image restores the whole image, tiled by --max_memory.
Inputs: image files, folders, quoted globs ("shoot/*.jpg") and video clips (clip.mp4 -> an MP4
with faces tracked across frames: `common.video`); --compare adds a side-by-side image. (The SRN
needs static sizes per trace, so its model is built at every run, not cached.)
"""
import os

from absl import flags

from common import cli, inference
from paper1_cyclegan_srn import srn

SHIPPED = inference.shipped_weights(os.path.dirname(os.path.abspath(__file__)), "srn_small")


def define_flags(fv=flags.FLAGS):
    inference.define_deblur_flags(fv, checkpoint_help="SRN workdir (flags.txt + checkpoints/) or "
                                  "an exported .keras file (default: the shipped "
                                  "paper1_cyclegan_srn/weights/srn_small.keras).",
                                  suffix="_srn", stride=16)
    flags.adopt_module_key_flags(inference, flag_values=fv)  # listed by --helpshort


def load_model(checkpoint=None, policy=None):
    """The SRN of an SRN workdir, an exported .keras file or (None) the shipped model, as a
    [0,1] -> [0,1] function; a .keras file is built under the dtype `policy`
    (`common.inference.load_keras`)."""
    checkpoint = inference.checkpoint_or_shipped(checkpoint, SHIPPED)
    if checkpoint.endswith(".keras"):
        try:
            model = inference.load_keras(checkpoint, policy=policy)
        except TypeError as e:  # another package's model: Keras cannot locate its classes
            model = e
        if not isinstance(model, srn.SRNDeblurrer):
            raise ValueError(f"--checkpoint={checkpoint} is not a paper 1 SRN (export one with "
                             f"python -m paper1_cyclegan_srn.export): {model}"[:400])
        return model
    # a workdir: rebuilt from its flags.txt (export imports the training flags only when called)
    from paper1_cyclegan_srn import export  # pylint: disable=import-outside-toplevel
    return export.load_deblurrer(checkpoint)[0]


def run(checkpoint, input_paths, output_dir, suffix="_srn", **options):
    """Deblurs input_paths into output_dir; options: tile, face_detector, face_size, overwrite
    (`common.inference.run_deblur`). Returns the written paths."""
    # SRN pads internally to its stride (16 for 3 scales); stride 16 here keeps tiles aligned.
    return inference.run_deblur(load_model, checkpoint, input_paths, output_dir, stride=16,
                                suffix=suffix, model_path=SHIPPED, **options)


def main(argv):
    inference.deblur_main(argv, inference.with_model_cache(run), flags.FLAGS)


if __name__ == "__main__":
    define_flags(flags.FLAGS)
    cli.run_app(main)
