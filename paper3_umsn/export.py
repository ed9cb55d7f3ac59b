"""Export a trained UMSN (SN + UMSN, blurry -> deblurred) to `.keras` and a SavedModel.

    python -m paper3_umsn.export --workdir=/tmp/umsn --export_dir=/tmp/umsn_export

Load with `common.inference.load_keras(path)` (safe_mode=True; import paper3_umsn.models first)
or serve `export_dir/saved_model` (input float32 [B,H,W,3] in [0,1], H, W multiples of 4).
"""
from absl import app, flags

from common import inference, train_utils


def define_flags(fv=flags.FLAGS):
    flags.DEFINE_string("workdir", None, "umsn-stage workdir.", flag_values=fv)
    flags.DEFINE_string("export_dir", None, "Output folder.", flag_values=fv)


def export(workdir, export_dir):
    from paper3_umsn import evaluate
    _, model = evaluate.load_model(workdir)
    return inference.export_model(model, export_dir, name="umsn")


def main(argv):
    del argv
    fv = flags.FLAGS
    if not fv.workdir or not fv.export_dir:
        raise app.UsageError("--workdir and --export_dir are required")
    print(export(fv.workdir, fv.export_dir))


if __name__ == "__main__":
    define_flags(flags.FLAGS)
    train_utils.run_app(main)
