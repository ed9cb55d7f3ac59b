"""Export a trained cGAN (HG + G_bl, blurry -> deblurred) to `.keras` and a SavedModel.

    python -m paper2_identity_cgan.export --workdir=/tmp/p2/cgan --export_dir=/tmp/p2/export

Load with `common.inference.load_keras(path)` (safe_mode=True; import paper2_identity_cgan.models
first; any H, W multiple of 128) or serve `export_dir/saved_model` (input float32
[B, S, S, 3] in [0,1], S = --serve_size: the HG's bilinear upsampling needs static sizes in a
SavedModel signature).
"""
import os

from absl import flags, logging
import numpy as np

from common import cli, inference


def define_flags(fv=flags.FLAGS):
    inference.define_export_flags(fv, workdir_help="cGAN-stage workdir.", serve_size=256,
                                  stride=128)


def load_train_flags(workdir):
    """The trainer's flags, rebuilt from ``workdir/flags.txt`` (``common.cli.load_flags``)."""
    from paper2_identity_cgan import train  # pylint: disable=import-outside-toplevel
    if not os.path.isfile(os.path.join(workdir, cli.FLAGS_FILENAME)):
        raise FileNotFoundError(f"{workdir}/{cli.FLAGS_FILENAME} not found: --workdirs / "
                                "--checkpoint must name a cGAN training workdir (flags.txt + "
                                "checkpoints/)")
    return cli.load_flags([train.define_flags], workdir)


def load_deblurrer(workdir, checkpoint=None):
    """(``models.CGANDeblurrer`` with the newest checkpoint of a cGAN workdir restored, or
    `checkpoint` ("best" or a prefix, `common.train.checkpoints.checkpoint_path`); flags): the one
    restore of a workdir, used by deblur, export and evaluate."""
    # pylint: disable=import-outside-toplevel
    from common.train import checkpoints, workdirs  # here: importing this CLI loads no training
    from paper2_identity_cgan import models
    workdirs.check_workdir_kind(workdir, "paper2", ("cgan",))
    cfg = load_train_flags(workdir)
    model = models.CGANDeblurrer(cfg.variant, use_hg=cfg.use_hg,
                                 global_residual=cfg.global_residual,
                                 hg_zero_init=cfg.hg_zero_init,
                                 unet_skips=cfg.unet_skips)
    d = models.GEN_DIVISOR
    model(np.zeros((1, d, d, 3), np.float32))  # build (export needs it)
    trackables = {"g_bl": model.g_bl}
    if model.hg is not None:
        trackables["hg"] = model.hg
    path = checkpoints.restore_for_eval(checkpoints.checkpoint_path(workdir, checkpoint),
                                        **trackables)
    logging.info("restored %s", path)
    return model, cfg


def export(workdir, export_dir, serve_size=256, checkpoint=None, weights_dtype="float32"):
    """Writes export_dir/cgan.keras and export_dir/saved_model; returns their paths."""
    from paper2_identity_cgan import models  # pylint: disable=import-outside-toplevel
    if serve_size % models.GEN_DIVISOR:
        raise ValueError(f"--serve_size={serve_size} must be a multiple of {models.GEN_DIVISOR}")
    model, _ = load_deblurrer(workdir, checkpoint)
    return inference.export_model(model, export_dir, name="cgan", input_size=serve_size,
                                  weights_dtype=weights_dtype)


def main(argv):
    inference.export_main(argv, export, flags.FLAGS)


if __name__ == "__main__":
    define_flags(flags.FLAGS)
    cli.run_app(main)
