"""Shared fixture: the four smoke stages trained once (1 step each) for the train/CLI tests.

Kept cheap for CI (2 cores): tiny variant, 32 px crops, one step per stage, SN/F-Net steps run
eagerly, the umsn step traced (see the comment in `stages`); L_p (random VGG) only in the umsn
stage, where it is part of Eq. 6.
"""
import glob
import os

import pytest

from common import cli
from common.train import flags as train_flags
from paper3_umsn import train

SMOKE = "--flagfile=paper3_umsn/configs/smoke.flags"
ONE_STEP = ("--num_steps=1", "--checkpoint_every=1", "--eval_every=1", "--image_every=1")


def _config(workdir, *extra):
    return cli.parse_flags([train_flags.define_common_flags, train.define_flags],
                                   ["prog", SMOKE, *ONE_STEP, f"--workdir={workdir}", *extra])


def _events(workdir):
    return glob.glob(os.path.join(workdir, "train", "events.out.tfevents.*"))


@pytest.fixture(scope="session")
def stages(tmp_path_factory):
    """Runs the four stages in order (1 step each) and returns their workdirs."""
    import tensorflow as tf
    root = tmp_path_factory.mktemp("umsn")
    dirs = {s: str(root / s) for s in train.STAGES}
    # One step per stage. SN and F-Net steps run eagerly (cheaper on the 2-core CI; the traced SN
    # step is exercised by test_training_resumes_from_the_latest_checkpoint); the umsn step (two
    # optimizers, CN, L_p) is traced as in real runs, so graph-only failures show up here.
    tf.config.run_functions_eagerly(True)
    try:
        assert train.train_and_evaluate(dirs["sn_clean"], _config(dirs["sn_clean"], "--stage=sn_clean")) == 1
        assert train.train_and_evaluate(dirs["sn_blurry"], _config(
            dirs["sn_blurry"], "--stage=sn_blurry", f"--init_sn={dirs['sn_clean']}")) == 1
        assert train.train_and_evaluate(dirs["fnet"], _config(
            dirs["fnet"], "--stage=fnet", "--lambda_1=0", f"--init_sn={dirs['sn_blurry']}")) == 1
    finally:
        tf.config.run_functions_eagerly(False)
    assert train.train_and_evaluate(dirs["umsn"], _config(
        dirs["umsn"], "--stage=umsn", f"--init_sn={dirs['sn_blurry']}",
        f"--init_fnets={dirs['fnet']}")) == 1
    return dirs


@pytest.fixture(scope="session")
def umsn_run(stages):
    """(config, UMSNDeblurrer) restored once from the umsn stage (evaluate.load_model), shared by
    the evaluate / deblur / export / face-table tests."""
    from paper3_umsn import evaluate
    return evaluate.load_model(stages["umsn"])


@pytest.fixture
def shared_load_run(umsn_run, stages, monkeypatch):
    """Makes export.load_deblurrer(stages["umsn"]) return the shared run instead of rebuilding it
    (deblur.load_model, export.export and evaluate.load_model call it); any other path still
    fails loudly."""
    from paper3_umsn import export
    calls = []

    def load_run(workdir, checkpoint=None):
        assert workdir == stages["umsn"] and checkpoint in (None, "latest"), (workdir, checkpoint)
        calls.append(workdir)
        return umsn_run[1], umsn_run[0]
    monkeypatch.setattr(export, "load_deblurrer", load_run)
    return calls
