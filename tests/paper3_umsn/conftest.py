"""Shared fixture: the four smoke stages trained once (2 steps each) for the train/CLI tests."""
import glob
import os

import pytest

from common import train_utils
from paper3_umsn import train

SMOKE = "--flagfile=paper3_umsn/configs/smoke.flags"


def _config(workdir, *extra):
    return train_utils.parse_flags([train_utils.define_common_flags, train.define_flags],
                                   ["prog", SMOKE, f"--workdir={workdir}", *extra])


def _events(workdir):
    return glob.glob(os.path.join(workdir, "train", "events.out.tfevents.*"))


@pytest.fixture(scope="session")
def stages(tmp_path_factory):
    """Runs the four stages in order (each 2 steps) and returns their workdirs."""
    root = tmp_path_factory.mktemp("umsn")
    dirs = {s: str(root / s) for s in train.STAGES}
    assert train.train_and_evaluate(dirs["sn_clean"], _config(dirs["sn_clean"], "--stage=sn_clean")) == 2
    assert train.train_and_evaluate(dirs["sn_blurry"], _config(
        dirs["sn_blurry"], "--stage=sn_blurry", f"--init_sn={dirs['sn_clean']}")) == 2
    assert train.train_and_evaluate(dirs["fnet"], _config(
        dirs["fnet"], "--stage=fnet", f"--init_sn={dirs['sn_blurry']}")) == 2
    assert train.train_and_evaluate(dirs["umsn"], _config(
        dirs["umsn"], "--stage=umsn", f"--init_sn={dirs['sn_blurry']}",
        f"--init_fnets={dirs['fnet']}")) == 2
    return dirs


