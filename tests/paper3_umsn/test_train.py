"""One training step per stage from smoke.flags on the embedded sample, checkpoints with both
optimizers, resume, and the flag errors."""
import glob
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from common import cli
from common.train import checkpoints, flags as train_flags
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


def test_flags_txt_says_which_paper_and_stage_trained_the_workdir(stages):
    """Issue 33 item 4: `# paper:` / `# stage:` lines, read before any flag-name guessing, and a
    flags.txt that still parses as a flagfile."""
    from common.evaluation import methods
    from common.train import workdirs
    for stage, workdir in stages.items():
        lines = open(os.path.join(workdir, "flags.txt")).read().splitlines()
        assert lines[1:3] == ["# paper: paper3", f"# stage: {stage}"], lines[:3]
        assert cli.read_run_header(workdir) == {"paper": "paper3", "stage": stage}
        assert workdirs.workdir_kind(workdir) == ("paper3", stage)
        assert methods.detect_paper(workdir) == "paper3"
        fv = cli.parse_flags([train_flags.define_common_flags, train.define_flags],
                             ["prog", f"--flagfile={workdir}/flags.txt"])
        assert fv.stage == stage and fv.num_steps == 1


def test_umsn_checkpoint_holds_both_optimizers_and_restores_them(stages, umsn_run):
    workdir = stages["umsn"]
    ckpt = os.path.join(workdir, "checkpoints")
    names = [n for n, _ in tf.train.list_variables(ckpt)]
    assert any(n.startswith("optimizer/") for n in names), names[:20]
    assert any(n.startswith("cn_optimizer/") for n in names), names[:20]
    assert any(n.startswith("cn/") for n in names) and any(n.startswith("sn/") for n in names)
    # UMSN's variables are reachable (first through the optimizer): restoring them by name works
    # (umsn_run = evaluate.load_model: restore_for_eval asserts every object matched)
    assert umsn_run[1].umsn.count_params() > 0
    # resume: a fresh umsn Stage restores step 1 and both optimizers (iterations and moments)
    config = _config(workdir, "--stage=umsn", "--num_steps=2", f"--init_sn={stages['sn_blurry']}",
                     f"--init_fnets={stages['fnet']}")
    stage = train.make_stage(config, tf.distribute.get_strategy())
    assert int(stage.optimizer.iterations) == 0 and int(stage.cn_optimizer.iterations) == 0
    checkpointer = checkpoints.Checkpointer(workdir, 3, **stage.trackables())
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
    # every weight of SN, UMSN (incl. F-Net streams) and CN is back from the checkpoint (the fresh
    # Stage's random init would differ): regression for layers kept only in Python lists, which
    # tf.train.Checkpoint never saw (UMSN's variables are filed under the optimizer's path)
    saved = {}
    for n in names:
        if n.endswith("/.ATTRIBUTES/VARIABLE_VALUE") and "/_variables/" not in n:
            v = reader.get_tensor(n)
            saved.setdefault(np.shape(v), []).append(v)
    for key in ("sn", "umsn", "cn"):
        for w in stage.trackables()[key].weights:
            assert any(np.array_equal(v, w.numpy()) for v in saved.get(tuple(w.shape), [])), \
                f"{key}: {w.path} not restored"
    assert len(stage.umsn.fnets) == 4 and len(stage.umsn.mid) >= 1


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


def test_half_scale_weight_changes_the_shared_trunk(tmp_path):
    """--half_scale_weight (authors' code) reaches the trunk shared with x_hat: one umsn step from
    the same weights and batch moves the trunk differently with weight 1 than with 0.

    Both residual heads start at zero (x_hat = y at initialisation), so at the very first step no
    gradient reaches the trunk through either head; they are set to the same random values here,
    as after a few steps of training. The half-scale term is the same code for every ablation;
    bn_sem_nrl (no F-Nets, no CN) keeps the test cheap."""
    rng = np.random.default_rng(0)
    batch = {"sharp": tf.constant(rng.random((2, 16, 16, 3)), tf.float32),
             "blurred": tf.constant(rng.random((2, 16, 16, 3)), tf.float32)}
    from paper3_umsn import models
    sn = models.build_sn("tiny")
    sn(np.zeros((1, 32, 32, 3), np.float32))
    sn_ckpt = tf.train.Checkpoint(sn=sn).save(str(tmp_path / "sn" / "ckpt"))
    runs, start_umsn = {}, None
    for w in (0.0, 1.0):
        config = _config(str(tmp_path / str(w)), "--stage=umsn", "--ablation=bn_sem_nrl",
                         "--lambda_1=0", f"--init_sn={sn_ckpt}", f"--half_scale_weight={w}")
        stage = train.make_stage(config, tf.distribute.get_strategy())
        if runs:  # same starting point as the first run
            stage.umsn.set_weights(start_umsn)
        else:
            for head in (stage.umsn.head, stage.umsn.half_head):
                head.kernel.assign(rng.normal(0, 0.05, head.kernel.shape).astype(np.float32))
            start_umsn = stage.umsn.get_weights()
            start_half = stage.umsn.half_head.kernel.numpy().copy()
        trunk_before = [v.numpy().copy() for v in stage.umsn.first.trainable_variables]
        out = stage.replica_step(batch)
        runs[w] = (stage, out, trunk_before)
    (s0, out0, before0), (s1, out1, before1) = runs[0.0], runs[1.0]
    for a, b in zip(before0, before1):
        np.testing.assert_array_equal(a, b)
    assert "l_half" not in out0 and float(out1["l_half"]) > 0
    np.testing.assert_allclose(float(out1["loss"]), float(out1["l_c"]) + float(out1["l_half"]), rtol=1e-5)
    np.testing.assert_allclose(float(out0["loss"]), float(out0["l_c"]), rtol=1e-6)
    after0 = [v.numpy() for v in s0.umsn.first.trainable_variables]
    after1 = [v.numpy() for v in s1.umsn.first.trainable_variables]
    assert any(np.any(a != b) for a, b in zip(before0, after0))   # trained in both runs ...
    assert any(np.any(a != b) for a, b in zip(after0, after1))    # ... differently
    # the half-scale head itself only learns when its loss is on
    np.testing.assert_array_equal(s0.umsn.half_head.kernel.numpy(), start_half)
    assert np.any(s1.umsn.half_head.kernel.numpy() != s0.umsn.half_head.kernel.numpy())


def test_resume_reseeds_the_training_data(tmp_path, monkeypatch):
    """Issue 33 item 5: a resumed run draws new batches
    (common.train.distribute.reseeded_dataset)."""
    from tests import trainer_contract
    wd = str(tmp_path)
    seen = trainer_contract.capture_train(monkeypatch, train.train_and_evaluate, wd,
                                          _config(wd, "--stage=sn_clean"))
    trainer_contract.assert_resume_draws_new_batches(seen["dataset"])


def test_umsn_eval_logs_the_common_scalars_for_best_metric(stages, tmp_path, monkeypatch):
    """The umsn stage's held-out evaluation logs psnr/ssim/blurred_psnr like paper 1's, so
    --best_metric=psnr works here too."""
    from tests import trainer_contract
    wd = str(tmp_path)
    cfg = _config(wd, "--stage=umsn", f"--init_sn={stages['sn_blurry']}",
                  f"--init_fnets={stages['fnet']}", "--best_metric=psnr")
    seen = trainer_contract.capture_train(monkeypatch, train.train_and_evaluate, wd, cfg)
    res = seen["eval_fn"](0)
    assert {"psnr", "ssim", "blurred_psnr", "blurred_ssim"} <= set(res)
    assert checkpoints.parse_best_metric(cfg.best_metric)[0] in res
    assert np.isfinite(res["psnr"]) and np.isfinite(res["blurred_psnr"])
