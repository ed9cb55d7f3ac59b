"""Export a trained SRN (stage 3) to `.keras` and a SavedModel: blurred -> restored, finest scale.

    python -m paper1_cyclegan_srn.export --workdir=runs/p1_srn --export_dir=/tmp/p1_export

Load with `common.inference.load_keras(path)` (safe_mode=True; import paper1_cyclegan_srn.srn
first; any H, W: the SRN pads to its stride itself) or serve `export_dir/saved_model` (input
float32 [B, S, S, 3] in [0, 1], S = --serve_size: the SRN's multi-scale resizes need static sizes
in a SavedModel signature).
"""
import numpy as np
from absl import flags

from common import cli, inference


def define_flags(fv=flags.FLAGS):
    inference.define_export_flags(fv, workdir_help="SRN-stage workdir (flags.txt + checkpoints/).",
                                  serve_size=256, stride=16)


def load_deblurrer(workdir, checkpoint=None):
    """(srn.SRNDeblurrer with the newest checkpoint of an SRN workdir, or `checkpoint` ("best"
    or a prefix, `common.train.checkpoints.checkpoint_path`), its flags): the one restore of a
    workdir, used by deblur, export and evaluate."""
    # pylint: disable=import-outside-toplevel
    from common.train import checkpoints, workdirs  # here: importing this CLI loads no training
    from paper1_cyclegan_srn import srn, train_srn
    workdirs.check_workdir_kind(workdir, "paper1", ("srn",))
    config = cli.load_flags([train_srn.define_flags], workdir)
    model = srn.SRNDeblurrer(config.variant, config.recurrent,
                             bool(getattr(config, "global_residual", False)), name="srn_deblurrer")
    model(np.zeros((1, 16, 16, 3), np.float32))
    checkpoints.restore_for_eval(checkpoints.checkpoint_path(workdir, checkpoint),
                                 srn=model.srn)  # the trained SRN, restored in place
    return model, config


def export(workdir, export_dir, serve_size=256, checkpoint=None, weights_dtype="float32"):
    """Writes export_dir/srn.keras and export_dir/saved_model; returns their paths."""
    if serve_size % 16:
        raise ValueError(f"--serve_size={serve_size} must be a multiple of 16")
    model, _ = load_deblurrer(workdir, checkpoint)
    return inference.export_model(model, export_dir, name="srn", input_size=serve_size,
                                  weights_dtype=weights_dtype)


def main(argv):
    inference.export_main(argv, export, flags.FLAGS)


if __name__ == "__main__":
    define_flags(flags.FLAGS)
    cli.run_app(main)
