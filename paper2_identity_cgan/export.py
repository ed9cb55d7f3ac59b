"""Export a trained cGAN (HG + G_bl, blurry -> deblurred) to `.keras` and a SavedModel.

    python -m paper2_identity_cgan.export --workdir=/tmp/p2/cgan --export_dir=/tmp/p2/export

Load with `common.inference.load_keras(path)` (safe_mode=True; import paper2_identity_cgan.models
first; any H, W multiple of 128) or serve `export_dir/saved_model` (input float32
[B, S, S, 3] in [0,1], S = --serve_size: the HG's bilinear upsampling needs static sizes in a
SavedModel signature).
"""
from absl import flags

from common import cli, inference


def define_flags(fv=flags.FLAGS):
    inference.define_export_flags(fv, workdir_help="cGAN-stage workdir.", serve_size=256,
                                  stride=128)


def export(workdir, export_dir, serve_size=256, checkpoint=None):
    """Writes export_dir/cgan.keras and export_dir/saved_model; returns their paths."""
    from paper2_identity_cgan import evaluate, models  # pylint: disable=import-outside-toplevel
    if serve_size % models.GEN_DIVISOR:
        raise ValueError(f"--serve_size={serve_size} must be a multiple of {models.GEN_DIVISOR}")
    model, _ = evaluate.load_deblurrer(workdir, checkpoint)
    return inference.export_model(model, export_dir, name="cgan", input_size=serve_size)


def main(argv):
    inference.export_main(argv, export, flags.FLAGS)


if __name__ == "__main__":
    define_flags(flags.FLAGS)
    cli.run_app(main)
