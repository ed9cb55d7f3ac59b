"""One training step per stage from smoke.flags on the embedded sample, checkpoints with both
optimizers, resume, and the flag errors."""
import glob
import os

import numpy as np
import pytest
import tensorflow as tf

from common import train_utils
from paper3_umsn import train

from tests.paper3_umsn.conftest import _config, _events

SMOKE = "--flagfile=paper3_umsn/configs/smoke.flags"


def test_every_stage_writes_checkpoint_events_and_flags(stages):
    for stage, workdir in stages.items():
        assert tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints")).endswith("ckpt-2"), stage
        assert _events(workdir), stage
        assert os.path.exists(os.path.join(workdir, "flags.txt"))
    # the SN stage on a folder + mask_dir converted the sample once to a record file
    assert glob.glob(os.path.join(stages["sn_clean"], "data", "*.tfrecord"))


def test_umsn_checkpoint_holds_both_optimizers_and_resumes(stages):
    workdir = stages["umsn"]
    names = [n for n, _ in tf.train.list_variables(os.path.join(workdir, "checkpoints"))]
    assert any(n.startswith("optimizer/") for n in names), names[:20]
    assert any(n.startswith("cn_optimizer/") for n in names), names[:20]
    assert any(n.startswith("cn/") for n in names) and any(n.startswith("sn/") for n in names)
    # UMSN's variables are reachable (first through the optimizer): restoring them by name works
    from paper3_umsn import evaluate
    _, model = evaluate.load_run(workdir)   # restore_for_eval asserts every object matched
    assert model.umsn.count_params() > 0
    # resume: a new run to 3 steps starts from step 2 and restores the optimizer iterations
    config = _config(workdir, "--stage=umsn", "--num_steps=3", f"--init_sn={stages['sn_blurry']}",
                     f"--init_fnets={stages['fnet']}")
    assert train.train_and_evaluate(workdir, config) == 3
    reader = tf.train.load_checkpoint(os.path.join(workdir, "checkpoints"))
    its = [reader.get_tensor(n) for n, _ in tf.train.list_variables(os.path.join(workdir, "checkpoints"))
           if n.startswith("optimizer/") and "iteration" in n]
    assert its and int(its[0]) == 3


def test_later_stage_without_sn_names_the_flag(tmp_path):
    config = _config(str(tmp_path), "--stage=fnet")
    with pytest.raises(ValueError, match="--init_sn"):
        train.train_and_evaluate(str(tmp_path), config)


def test_perceptual_without_weights_names_the_flag(tmp_path, stages):
    config = _config(str(tmp_path), "--stage=fnet", "--allow_random_vgg=false",
                     f"--init_sn={stages['sn_clean']}")
    with pytest.raises(ValueError, match="--vgg16_weights"):
        train.train_and_evaluate(str(tmp_path), config)


def test_sn_folder_without_masks_is_a_clear_error(tmp_path):
    config = _config(str(tmp_path), "--stage=sn_clean", "--mask_dir=")
    with pytest.raises(ValueError, match="--mask_dir"):
        train.train_and_evaluate(str(tmp_path), config)
