"""Export a trained UMSN (SN + UMSN, blurry -> deblurred) to `.keras` and a SavedModel.

    python -m paper3_umsn.export --workdir=/tmp/umsn --export_dir=/tmp/umsn_export

Load with `common.inference.load_keras(path)` (safe_mode=True; import paper3_umsn.models first)
or serve `export_dir/saved_model` (input float32 [B,H,W,3] in [0,1], H, W multiples of 4).
"""
from absl import flags

from common import cli, inference


def define_flags(fv=flags.FLAGS):
    inference.define_export_flags(fv, workdir_help="umsn-stage workdir.")


def export(workdir, export_dir, checkpoint=None):
    from paper3_umsn import evaluate
    _, model = evaluate.load_model(workdir, checkpoint)
    return inference.export_model(model, export_dir, name="umsn")


def main(argv):
    inference.export_main(argv, export, flags.FLAGS)


if __name__ == "__main__":
    define_flags(flags.FLAGS)
    cli.run_app(main)
