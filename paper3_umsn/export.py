"""Export a trained UMSN (SN + UMSN, blurry -> deblurred) to `.keras` and a SavedModel.

    python -m paper3_umsn.export --workdir=/tmp/umsn --export_dir=/tmp/umsn_export

Load with `common.inference.load_keras(path)` (safe_mode=True; import paper3_umsn.models first)
or serve `export_dir/saved_model` (input float32 [B,H,W,3] in [0,1], H, W multiples of 4).
"""
from absl import flags, logging
import numpy as np

from common import cli, inference


def define_flags(fv=flags.FLAGS):
    inference.define_export_flags(fv, workdir_help="umsn-stage workdir.")


def load_deblurrer(workdir, checkpoint=None):
    """(`models.UMSNDeblurrer` of SN + UMSN rebuilt from workdir/flags.txt with the newest
    checkpoint restored, or `checkpoint`: "best", or a prefix;
    `common.train.checkpoints.checkpoint_path`; its flags): the one restore of a workdir, used by
    deblur, export and evaluate."""
    # pylint: disable=import-outside-toplevel
    from common.train import checkpoints, workdirs  # here: importing this CLI loads no training
    from paper3_umsn import models, train
    workdirs.check_workdir_kind(workdir, "paper3", ("umsn",))
    config = cli.load_flags([train.define_flags], workdir)
    sn = models.build_sn(config.variant)
    umsn = train.build_umsn(config)
    c = config.crop_size
    sn(np.zeros((1, c, c, 3), np.float32))
    umsn([np.zeros((1, c, c, 3), np.float32), np.full((1, c, c, 4), 0.25, np.float32)])
    path = checkpoints.restore_for_eval(checkpoints.checkpoint_path(workdir, checkpoint),
                                        sn=sn, umsn=umsn)
    logging.info("restored %s", path)
    model = models.UMSNDeblurrer(sn, umsn)
    model(np.zeros((1, c, c, 3), np.float32))  # build (needed by export)
    return model, config


def export(workdir, export_dir, checkpoint=None, weights_dtype="float32"):
    """Writes export_dir/umsn.keras and export_dir/saved_model; returns their paths."""
    model, _ = load_deblurrer(workdir, checkpoint)
    return inference.export_model(model, export_dir, name="umsn", weights_dtype=weights_dtype)


def main(argv):
    inference.export_main(argv, export, flags.FLAGS)


if __name__ == "__main__":
    define_flags(flags.FLAGS)
    cli.run_app(main)
