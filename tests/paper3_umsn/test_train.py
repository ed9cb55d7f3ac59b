"""One training step per stage from smoke.flags on the embedded sample, checkpoints with both
optimizers, resume, and the flag errors."""
import glob
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from common import train_utils
from paper3_umsn import train

from tests.paper3_umsn.conftest import _config, _events

SMOKE = "--flagfile=paper3_umsn/configs/smoke.flags"


def test_every_stage_writes_checkpoint_events_and_flags(stages):
    for stage, workdir in stages.items():
        assert tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints")).endswith("ckpt-1"), stage
        assert _events(workdir), stage
        assert os.path.exists(os.path.join(workdir, "flags.txt"))
    # the SN stage on a folder + mask_dir converted the sample once to a record file
    assert glob.glob(os.path.join(stages["sn_clean"], "data", "*.tfrecord"))


def test_umsn_checkpoint_holds_both_optimizers_and_restores_them(stages):
    workdir = stages["umsn"]
    ckpt = os.path.join(workdir, "checkpoints")
    names = [n for n, _ in tf.train.list_variables(ckpt)]
    assert any(n.startswith("optimizer/") for n in names), names[:20]
    assert any(n.startswith("cn_optimizer/") for n in names), names[:20]
    assert any(n.startswith("cn/") for n in names) and any(n.startswith("sn/") for n in names)
    # UMSN's variables are reachable (first through the optimizer): restoring them by name works
    from paper3_umsn import evaluate
    _, model = evaluate.load_run(workdir)   # restore_for_eval asserts every object matched
    assert model.umsn.count_params() > 0
    # resume: a fresh umsn Stage restores step 1 and both optimizers (iterations and moments)
    config = _config(workdir, "--stage=umsn", "--num_steps=2", f"--init_sn={stages['sn_blurry']}",
                     f"--init_fnets={stages['fnet']}")
    stage = train.Stage(config, tf.distribute.get_strategy())
    assert int(stage.optimizer.iterations) == 0 and int(stage.cn_optimizer.iterations) == 0
    checkpointer = train_utils.Checkpointer(workdir, 3, **stage.trackables)
    assert checkpointer.restore_latest() == 1
    assert int(stage.optimizer.iterations) == 1 and int(stage.cn_optimizer.iterations) == 1
    reader = tf.train.load_checkpoint(ckpt)
    for opt, prefix in ((stage.optimizer, "optimizer/"), (stage.cn_optimizer, "cn_optimizer/")):
        # the optimizer's own slots (not `_trainable_variables`, which are the model's weights)
        saved = [n for n in names if n.startswith(prefix + "_variables/")]
        values = [reader.get_tensor(n) for n in saved]
        saved, values = zip(*[(n, v) for n, v in zip(saved, values) if np.ndim(v) > 0])
        # the saved Adam moments (non-zero after one step) are back in the fresh optimizer
        restored = [np.asarray(v) for v in opt.variables]
        assert any(np.any(v != 0) for v in values), prefix
        for n, value in zip(saved, values):
            assert any(r.shape == value.shape and np.array_equal(r, value) for r in restored), n
    cn_w = stage.cn.trainable_variables[0]
    saved_cn = [reader.get_tensor(n) for n in names if n.startswith("cn/")]
    assert any(v.shape == cn_w.shape and np.array_equal(v, cn_w.numpy()) for v in saved_cn)


def test_training_resumes_from_the_latest_checkpoint(stages, tmp_path):
    """A second run on the same workdir continues from step 1 to 2 (cheap SN stage)."""
    workdir = str(tmp_path / "sn_clean")
    shutil.copytree(stages["sn_clean"], workdir)
    assert train.train_and_evaluate(workdir, _config(workdir, "--stage=sn_clean", "--num_steps=2")) == 2
    ckpt = os.path.join(workdir, "checkpoints")
    assert tf.train.latest_checkpoint(ckpt).endswith("ckpt-2")
    reader = tf.train.load_checkpoint(ckpt)
    its = [reader.get_tensor(n) for n, _ in tf.train.list_variables(ckpt)
           if n.startswith("optimizer/") and "iteration" in n]
    assert its and int(its[0]) == 2
    # already at --num_steps: nothing is trained and the step stays
    assert train.train_and_evaluate(workdir, _config(workdir, "--stage=sn_clean", "--num_steps=2")) == 2


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
