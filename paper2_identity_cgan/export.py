"""Export a trained cGAN (HG + G_bl, blurry -> deblurred) to `.keras` and a SavedModel.

    python -m paper2_identity_cgan.export --workdir=/tmp/p2/cgan --export_dir=/tmp/p2/export

Load with `common.inference.load_keras(path)` (safe_mode=True; import paper2_identity_cgan.models
first; any H, W multiple of 128) or serve `export_dir/saved_model` (input float32
[B, S, S, 3] in [0,1], S = --serve_size: the HG's bilinear upsampling needs static sizes in a
SavedModel signature).
"""
from absl import app, flags

from common import inference, train_utils


def define_flags(fv=flags.FLAGS):
    flags.DEFINE_string("workdir", None, "cGAN-stage workdir.", flag_values=fv)
    flags.DEFINE_string("export_dir", None, "Output folder.", flag_values=fv)
    flags.DEFINE_integer("serve_size", 256, "The SavedModel's input size (a multiple of 128).",
                         flag_values=fv)


def export(workdir, export_dir, serve_size=256):
    """Writes export_dir/cgan.keras and export_dir/saved_model; returns their paths."""
    from paper2_identity_cgan import evaluate, models  # pylint: disable=import-outside-toplevel
    if serve_size % models.GEN_DIVISOR:
        raise ValueError(f"--serve_size={serve_size} must be a multiple of {models.GEN_DIVISOR}")
    model, _ = evaluate.load_deblurrer(workdir)
    return inference.export_model(model, export_dir, name="cgan", input_size=serve_size)


def main(argv):
    del argv
    fv = flags.FLAGS
    if not fv.workdir or not fv.export_dir:
        raise app.UsageError("--workdir and --export_dir are required")
    print(export(fv.workdir, fv.export_dir, fv.serve_size))


if __name__ == "__main__":
    define_flags(flags.FLAGS)
    app.run(main, flags_parser=train_utils.flags_parser)
