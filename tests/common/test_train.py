"""Tests for common.cli and common.train: flags, checkpoints, the loop, precision and strategies."""
import glob
import os
import subprocess
import sys
import textwrap

from absl import flags
import keras
import numpy as np
import pytest
import tensorflow as tf

from common import cli, hardware, paths
from common.train import (checkpoints, distribute, flags as train_flags, loop, summaries,
                          trainer as training)


def _define_extra(fv):
    flags.DEFINE_float("lr", 1e-3, "learning rate", flag_values=fv)
    flags.DEFINE_string("variant", "paper", "variant", flag_values=fv)


def test_define_common_flags_is_idempotent():
    fv = flags.FlagValues()
    train_flags.define_common_flags(fv)
    train_flags.define_common_flags(fv)
    fv(["prog"])
    assert fv.strategy == "default" and fv.mixed_precision == "none"


def test_parse_flags_nested_flagfiles_relative_paths_and_overrides(tmp_path):
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "paper.flags").write_text("# paper hyper-parameters\n--lr=0.0002\n--num_steps=100000\n"
                                         "--variant=paper\n\n--batch_size=16\n")
    # smoke.flags includes paper.flags by a path relative to its own folder.
    (configs / "smoke.flags").write_text("--flagfile=paper.flags\n# tiny\n--num_steps=2\n"
                                         "--variant=tiny\n")
    fv = cli.parse_flags([train_flags.define_common_flags, _define_extra],
                        ["prog", f"--flagfile={configs / 'smoke.flags'}", "--batch_size=2"])
    assert fv.lr == pytest.approx(2e-4)          # from paper.flags
    assert fv.num_steps == 2 and fv.variant == "tiny"   # smoke overrides paper
    assert fv.batch_size == 2                     # command line overrides both


def test_flagfile_relative_to_repo_root(tmp_path, monkeypatch):
    repo_flags = os.path.join(paths.REPO_ROOT, "tests", "common", "_tmp_repo_relative.flags")
    with open(repo_flags, "w") as f:
        f.write("--num_steps=7\n")
    try:
        monkeypatch.chdir(tmp_path)  # not the repo root
        fv = cli.parse_flags([train_flags.define_common_flags],
                            ["prog", "--flagfile=tests/common/_tmp_repo_relative.flags"])
        assert fv.num_steps == 7
    finally:
        os.remove(repo_flags)


def test_missing_flagfile_names_the_path():
    with pytest.raises(FileNotFoundError, match="no_such.flags"):
        cli.parse_flags([train_flags.define_common_flags], ["prog", "--flagfile=no_such.flags"])


def test_save_and_load_flags_round_trip(tmp_path):
    fv = cli.parse_flags([train_flags.define_common_flags, _define_extra],
                        ["prog", "--lr=0.5", "--variant=tiny", f"--workdir={tmp_path}",
                         "--mixed_precision=mixed_bfloat16"])
    path = cli.save_flags(fv, str(tmp_path))
    assert os.path.basename(path) == "flags.txt"
    text = open(path).read()
    assert "--variant=tiny" in text and "verbosity" not in text  # absl's own flags left out
    loaded = cli.load_flags([train_flags.define_common_flags, _define_extra], str(tmp_path))
    assert loaded.lr == 0.5 and loaded.variant == "tiny"
    assert loaded.mixed_precision == "mixed_bfloat16" and loaded.workdir == str(tmp_path)
    with pytest.raises(FileNotFoundError, match="flags.txt"):
        cli.load_flags([train_flags.define_common_flags], str(tmp_path / "missing"))


def test_save_flags_leaves_out_other_libraries_flags(tmp_path):
    fv = flags.FlagValues()
    train_flags.define_common_flags(fv)
    _define_extra(fv)
    # A flag some library defines on import, as TensorFlow does with --delta_threshold.
    flags.DEFINE_integer("library_flag", 3, "not ours", flag_values=fv, module_name="somelib.module")
    flags.DEFINE_integer("site_flag", 3, "not ours", flag_values=fv,
                         module_name="/usr/lib/python3/site-packages/somelib/flags.py")
    # Under `python -m paper.train`, absl files __main__'s flags under the script's path.
    flags.DEFINE_integer("main_flag", 3, "ours", flag_values=fv,
                         module_name=os.path.join(paths.REPO_ROOT, "paper3_umsn", "train.py"))
    fv(["prog", "--library_flag=4", "--site_flag=5", "--main_flag=6", "--variant=tiny"])
    text = open(cli.save_flags(fv, str(tmp_path))).read()
    assert "library_flag" not in text and "site_flag" not in text
    assert "--variant=tiny" in text and "--main_flag=6" in text
    define_main = lambda fv: flags.DEFINE_integer("main_flag", 3, "ours", flag_values=fv)
    loaded = cli.load_flags([train_flags.define_common_flags, _define_extra, define_main], str(tmp_path))
    assert loaded.variant == "tiny" and loaded.main_flag == 6


_RUN_MAIN_SCRIPT = """
import sys
from absl import flags
from common import cli
def define_extra(fv):
    flags.DEFINE_string("variant", "paper", "", flag_values=fv)
    flags.DEFINE_float("lr", 1e-3, "", flag_values=fv)
def train_and_evaluate(workdir, config):
    print("CALLED", workdir, config.variant, config.num_steps, config.lr)
cli.run_main(train_and_evaluate, define_extra)
"""


def test_run_main_requires_workdir_then_calls_train_and_evaluate(tmp_path):
    """In a subprocess: absl.app.run may run once per process and exits it."""
    flagfile = tmp_path / "run.flags"
    flagfile.write_text("--variant=tiny\n--num_steps=3\n")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=paths.REPO_ROOT)

    def run(*args):
        return subprocess.run([sys.executable, "-c", _RUN_MAIN_SCRIPT, *args], env=env,
                              capture_output=True, text=True, timeout=300, check=False)
    done = run(f"--flagfile={flagfile}", f"--workdir={tmp_path}", "--lr=0.25")
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"CALLED {tmp_path} tiny 3 0.25" in done.stdout.splitlines()
    done = run("--variant=tiny")
    assert done.returncode == 1, done.stderr[-2000:]
    fatal = [line for line in done.stderr.splitlines() if line.startswith("FATAL")]
    assert fatal == ["FATAL Flags parsing error: flag --workdir=None: Flag --workdir must have a "
                     "value other than None."]
    assert "CALLED" not in done.stdout


def test_start_run_saves_flags_and_loop_intervals_come_from_flags(tmp_path):
    fv = cli.parse_flags([train_flags.define_common_flags, _define_extra],
                        ["prog", "--variant=tiny", "--num_steps=7", "--log_every=2", "--eval_every=3",
                         "--checkpoint_every=5", "--image_every=0", "--max_train_minutes=1.5",
                         "--seed=4"])
    strategy, policy = training.start_run(fv, str(tmp_path / "w"))
    assert policy == "float32" and isinstance(strategy, tf.distribute.Strategy)
    loaded = cli.load_flags([train_flags.define_common_flags, _define_extra], str(tmp_path / "w"))
    assert loaded.variant == "tiny" and loaded.num_steps == 7 and loaded.seed == 4
    a = np.random.rand()
    training.start_run(fv, str(tmp_path / "w"))  # seeded again: same draw
    assert np.random.rand() == a
    assert (loaded.log_every, loaded.eval_every, loaded.checkpoint_every, loaded.image_every,
            loaded.max_train_minutes) == (2, 3, 5, 0, 1.5)


class _ToyTrainer(training.Trainer):
    """y = Dense(x) regressed to 2x: the smallest `Trainer`."""

    def __init__(self, config):
        super().__init__(config)
        self.model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(3)])
        self.optimizer = distribute.make_optimizer(0.01)
        self.optimizer.build(self.model.trainable_variables)

    def trackables(self):
        return {"model": self.model, "optimizer": self.optimizer}

    def replica_step(self, batch):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(self.model(batch["x"]) - 2.0 * batch["x"]))
            scaled = distribute.replica_loss(loss)
        grads = tape.gradient(scaled, self.model.trainable_variables)
        self.optimizer.apply(grads, self.model.trainable_variables)
        return {"loss": loss}

    def samples(self, batch):
        return {"x | y": training.side_by_side(tf.reshape(batch["x"], (-1, 1, 3, 1)),
                                         tf.reshape(self.model(batch["x"]), (-1, 1, 3, 1)))}


def _events(folder):
    out = {}
    for path in glob.glob(os.path.join(folder, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for v in event.summary.value:
                out.setdefault(v.tag, []).append((event.step, v))
    return out


def test_train_runs_a_trainer_with_hparams_rates_eval_images_profile_and_eta(tmp_path, caplog):
    workdir = str(tmp_path / "w")
    fv = cli.parse_flags([train_flags.define_common_flags, _define_extra],
                        ["prog", "--variant=tiny", "--num_steps=4", "--log_every=2",
                         "--eval_every=2", "--image_every=2", "--checkpoint_every=0",
                         "--profile_steps=2,3", "--batch_size=2"])
    training.start_run(fv, workdir)
    trainer = _ToyTrainer(fv)
    data = tf.data.Dataset.from_tensor_slices({"x": np.random.rand(64, 3).astype("float32")})
    batch = next(iter(data.batch(2)))
    caplog.set_level("INFO")
    caplog.set_level("INFO", logger="absl")  # another test may have left absl's logger at WARNING
    final = training.train(workdir, fv, trainer, lambda start: data.repeat().batch(2),
                     sample_batch=batch, eval_batch=batch, eval_fn=lambda step: {"psnr": 1.0})
    assert final == 4
    train_events = _events(os.path.join(workdir, "train"))
    eval_events = _events(os.path.join(workdir, "eval"))
    rates = [float(tf.make_ndarray(v.tensor)) for _, v in train_events["learning_rate/optimizer"]]
    assert rates == pytest.approx([0.01, 0.01])
    assert "_hparams_/session_start_info" in train_events   # the resolved flags as hparams
    assert [s for s, _ in train_events["x | y"]] == [2, 4]  # train grids every --image_every
    assert [s for s, _ in eval_events["x | y"]] == [2, 4]   # eval grids beside eval scalars
    assert [s for s, _ in eval_events["psnr"]] == [2, 4]
    assert glob.glob(os.path.join(workdir, "train", "plugins", "profile", "*", "*.xplane.pb"))
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("step ")]
    assert lines[0].startswith("step 2/4 (50%)") and "ETA" in lines[0] and "loss=" in lines[0]
    assert checkpoints.Checkpointer(workdir, 1, **_ToyTrainer(fv).trackables()).restore_latest() == 4


def test_profile_steps_are_checked():
    assert train_flags.parse_profile_steps("") is None and train_flags.parse_profile_steps("3,5") == (3, 5)
    for bad in ("5,3", "0,2", "x", "1,2,3"):
        with pytest.raises(ValueError, match="--profile_steps"):
            train_flags.parse_profile_steps(bad)


def test_set_precision_and_optimizer(monkeypatch):
    monkeypatch.setattr(hardware, "cpu_bfloat16_support", lambda: True)  # whatever this CPU is
    try:
        assert distribute.set_precision("auto") == "mixed_bfloat16"  # no GPU here
        assert keras.mixed_precision.global_policy().compute_dtype == "bfloat16"
        assert distribute.set_precision("mixed_float16") == "mixed_float16"
        assert isinstance(distribute.make_optimizer(1e-3), keras.optimizers.LossScaleOptimizer)
        assert distribute.set_precision("none") == "float32"
        opt = distribute.make_optimizer(1e-3, beta_1=0.5)
        assert not isinstance(opt, keras.optimizers.LossScaleOptimizer)
        assert float(opt.beta_1) == 0.5
        with pytest.raises(ValueError, match="mixed_precision"):
            distribute.set_precision("fp8")
    finally:
        keras.mixed_precision.set_global_policy("float32")


def _tiny_setup(lr=0.1):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    critic = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    opt_g, opt_d = keras.optimizers.Adam(lr), keras.optimizers.Adam(lr)
    opt_g.build(model.trainable_variables)
    opt_d.build(critic.trainable_variables)
    return model, critic, opt_g, opt_d


def _make_step(model, critic, opt_g, opt_d, nan_at=None, calls=None):
    counter = tf.Variable(0, dtype=tf.int64)

    def step(batch):
        x, y = batch
        counter.assign_add(1)
        if calls is not None:
            calls.append(1)
        with tf.GradientTape(persistent=True) as tape:
            pred = model(x)
            loss_g = tf.reduce_mean(tf.square(pred - y))
            loss_d = tf.reduce_mean(tf.square(critic(pred)))
        opt_g.apply(tape.gradient(loss_g, model.trainable_variables), model.trainable_variables)
        opt_d.apply(tape.gradient(loss_d, critic.trainable_variables), critic.trainable_variables)
        if nan_at is not None and int(counter.numpy()) == nan_at:
            loss_g = loss_g * np.nan
        return {"g_total": loss_g, "d_total": loss_d}

    return step


def _batches():
    rng = np.random.default_rng(0)
    while True:
        x = rng.normal(size=(4, 3)).astype("float32")
        yield x, (x[:, :2] * 2.0).astype("float32")


def test_checkpoint_round_trip_restores_models_and_both_optimizers(tmp_path):
    model, critic, opt_g, opt_d = _tiny_setup()
    ckpt = checkpoints.Checkpointer(str(tmp_path), model=model, critic=critic, opt_g=opt_g, opt_d=opt_d)
    step = _make_step(model, critic, opt_g, opt_d)
    it = _batches()
    for _ in range(3):
        step(next(it))
    ckpt.save(3)
    saved = [v.numpy().copy() for v in model.weights + critic.weights + opt_g.variables + opt_d.variables]

    model2, critic2, opt_g2, opt_d2 = _tiny_setup()
    ckpt2 = checkpoints.Checkpointer(str(tmp_path), model=model2, critic=critic2, opt_g=opt_g2, opt_d=opt_d2)
    assert ckpt2.restore_latest() == 3
    restored = [v.numpy() for v in model2.weights + critic2.weights + opt_g2.variables + opt_d2.variables]
    assert len(saved) == len(restored)
    for a, b in zip(saved, restored):
        np.testing.assert_array_equal(a, b)
    assert int(opt_g2.iterations.numpy()) == 3 and int(opt_d2.iterations.numpy()) == 3


def test_train_loop_writes_checkpoints_events_and_resumes(tmp_path):
    workdir = str(tmp_path)
    model, critic, opt_g, opt_d = _tiny_setup()
    calls = []
    ckpt = checkpoints.Checkpointer(workdir, model=model, critic=critic, opt_g=opt_g, opt_d=opt_d)
    writers = summaries.SummaryWriters(workdir)
    evals = []
    final = loop.run_train_loop(train_step=_make_step(model, critic, opt_g, opt_d, calls=calls),
                              iterator=_batches(), checkpointer=ckpt, writers=writers, num_steps=5,
                              log_every=2, checkpoint_every=2,
                              image_fn=lambda s: {"grid": tf.zeros((1, 8, 8, 3))}, image_every=2,
                              eval_fn=lambda s: evals.append(s) or {"psnr": 1.0}, eval_every=4)
    assert final == 5 and len(calls) == 5
    assert evals == [4, 5]  # at eval_every and at the end
    assert glob.glob(os.path.join(workdir, "train", "events.out.tfevents.*"))
    assert glob.glob(os.path.join(workdir, "eval", "events.out.tfevents.*"))
    assert tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints")).endswith("ckpt-5")

    # A new process resumes: only the remaining steps run.
    model, critic, opt_g, opt_d = _tiny_setup()
    calls = []
    ckpt = checkpoints.Checkpointer(workdir, model=model, critic=critic, opt_g=opt_g, opt_d=opt_d)
    assert ckpt.restore_latest() == 5
    final = loop.run_train_loop(train_step=_make_step(model, critic, opt_g, opt_d, calls=calls),
                              iterator=_batches(), checkpointer=ckpt, writers=writers,
                              num_steps=8, log_every=10, checkpoint_every=100)
    assert final == 8 and len(calls) == 3
    assert int(opt_g.iterations.numpy()) == 8
    assert tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints")).endswith("ckpt-8")
    # Logged scalars are real: read the event file back and find the loss and the speed.
    tags = set()
    for path in glob.glob(os.path.join(workdir, "train", "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                tags.add(value.tag)
    assert {"g_total", "d_total", "steps_per_sec", "data_wait_fraction", "grid"} <= tags


def test_data_wait_meter_fraction_with_a_fake_clock():
    now = [0.0]

    def slow_batches():
        for i in range(3):
            now[0] += 2.0          # 2 s waiting for each batch
            yield i

    meter = loop.DataWaitMeter(clock=lambda: now[0])
    it = slow_batches()
    assert meter.next(it) == 0
    now[0] += 6.0                  # a 6 s step
    assert meter.next(it) == 1
    now[0] += 6.0
    assert meter.waited == 4.0 and meter.fraction() == 4.0 / 16.0
    meter.reset()
    assert meter.fraction() == 0.0
    assert meter.next(it) == 2 and meter.fraction() == 1.0   # only waiting since the reset
    with pytest.raises(StopIteration):
        meter.next(it)


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    workdir = str(tmp_path)
    model, critic, opt_g, opt_d = _tiny_setup()
    ckpt = checkpoints.Checkpointer(workdir, model=model, critic=critic, opt_g=opt_g, opt_d=opt_d)
    with pytest.raises(loop.NonFiniteLossError, match=r"g_total at step 5.*ckpt-4"):
        loop.run_train_loop(train_step=_make_step(model, critic, opt_g, opt_d, nan_at=5),
                          iterator=_batches(), checkpointer=ckpt, writers=summaries.SummaryWriters(workdir),
                          num_steps=10, log_every=1, checkpoint_every=2)
    assert tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints")).endswith("ckpt-4")


def test_time_budget_stops_and_saves(tmp_path):
    workdir = str(tmp_path)
    model, critic, opt_g, opt_d = _tiny_setup()
    ckpt = checkpoints.Checkpointer(workdir, model=model, critic=critic, opt_g=opt_g, opt_d=opt_d)
    final = loop.run_train_loop(train_step=_make_step(model, critic, opt_g, opt_d), iterator=_batches(),
                              checkpointer=ckpt, writers=summaries.SummaryWriters(workdir), num_steps=1000,
                              log_every=100, checkpoint_every=1000, max_train_minutes=1e-9)
    assert final == 1
    assert tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints")).endswith("ckpt-1")


def test_restore_for_eval_errors_name_the_path(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        checkpoints.restore_for_eval(str(tmp_path), model=model)
    with pytest.raises(FileNotFoundError, match="ckpt-9"):
        checkpoints.restore_for_eval(str(tmp_path / "ckpt-9"), model=model)


_MIRRORED_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    from common.train import distribute
    strategy = distribute.get_strategy("mirrored", cpu_devices=2)
    import keras, tensorflow as tf

    def run(strategy):
        keras.utils.set_random_seed(0)
        with strategy.scope():
            model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
            opt = keras.optimizers.Adam(0.1)
            opt.build(model.trainable_variables)

        def replica_step(batch):
            x, y = batch
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.square(model(x) - y))
                scaled = distribute.replica_loss(loss)  # inside the tape, or there is no gradient
            grads = tape.gradient(scaled, model.trainable_variables)
            opt.apply(grads, model.trainable_variables)
            return {"loss": loss}

        step = distribute.make_distributed_step(strategy, replica_step)
        rng = np.random.default_rng(1)
        x = rng.normal(size=(8, 3)).astype("float32")
        y = rng.normal(size=(8, 2)).astype("float32")
        ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8).repeat()
        it = iter(strategy.experimental_distribute_dataset(ds))
        losses = [float(step(next(it))["loss"]) for _ in range(3)]
        return strategy.num_replicas_in_sync, losses, [w.numpy().tolist() for w in model.weights]

    n2, losses2, w2 = run(strategy)
    n1, losses1, w1 = run(tf.distribute.get_strategy())
    print(json.dumps({"n2": n2, "n1": n1, "w2": w2, "w1": w1, "l2": losses2, "l1": losses1}))
""")


def test_mirrored_strategy_on_two_logical_cpus_matches_one_device():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    out = subprocess.run([sys.executable, "-c", _MIRRORED_SCRIPT], cwd=paths.REPO_ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    import json
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["n2"] == 2 and result["n1"] == 1
    # Same data, same init: three mirrored steps land on the same weights as one device.
    for a, b in zip(result["w2"], result["w1"]):
        np.testing.assert_allclose(np.array(a), np.array(b), atol=1e-5)
    np.testing.assert_allclose(result["l2"], result["l1"], rtol=1e-5)


class _ListHeld(keras.layers.Layer):
    """Sublayers in a Python list: Keras 3 hides them from tf.train.Checkpoint."""

    def __init__(self):
        super().__init__()
        self.blocks = [keras.layers.Dense(4), keras.layers.BatchNormalization()]

    def call(self, x):
        for block in self.blocks:
            x = block(x)
        return x


class _AttributeHeld(_ListHeld):
    def __init__(self):
        super().__init__()
        for i, block in enumerate(self.blocks):
            setattr(self, f"block_{i}", block)


def test_checkpointer_refuses_models_whose_variables_it_cannot_reach(tmp_path):
    bad = _ListHeld()
    bad(np.zeros((2, 3), "float32"))
    with pytest.raises(ValueError, match="not reachable.*attribute"):
        checkpoints.Checkpointer(str(tmp_path / "a"), model=bad).save(1)
    with pytest.raises(ValueError, match="not reachable"):
        checkpoints.Checkpointer(str(tmp_path / "a"), model=bad).restore_latest()

    good = _AttributeHeld()
    good(np.ones((2, 3), "float32"), training=True)  # moves the batch-norm statistics
    checkpoints.Checkpointer(str(tmp_path / "b"), model=good).save(1)
    fresh = _AttributeHeld()
    fresh(np.zeros((2, 3), "float32"))
    checkpoints.restore_for_eval(str(tmp_path / "b"), model=fresh)
    for a, b in zip(good.variables, fresh.variables):  # BN moving statistics included
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    with pytest.raises(ValueError, match="not reachable"):
        checkpoints.restore_for_eval(str(tmp_path / "b"), model=bad)


def test_auto_precision_warns_without_gpu(caplog, monkeypatch):
    try:
        monkeypatch.setattr(hardware, "cpu_bfloat16_support", lambda: True)
        with caplog.at_level("WARNING"):
            assert distribute.set_precision("auto") == "mixed_bfloat16"
        assert "--mixed_precision=auto found no GPU" in caplog.text
        assert ".[gpu]" in caplog.text  # this machine has tensorflow-cpu
        caplog.clear()
        with caplog.at_level("WARNING"):
            distribute.set_precision("mixed_bfloat16")  # asked for explicitly, native: no warning
        assert not caplog.text
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_auto_precision_is_float32_on_a_cpu_without_bfloat16(caplog, monkeypatch):
    """Without AMX/AVX512-BF16 TensorFlow emulates bfloat16 (several times slower than float32):
    `auto` trains in float32 there, and an explicit mixed_bfloat16 is kept but warned about."""
    monkeypatch.setattr(hardware, "cpu_bfloat16_support", lambda: False)
    try:
        with caplog.at_level("WARNING"):
            assert distribute.set_precision("auto") == "float32"
        assert "without bfloat16 instructions" in caplog.text and "float32" in caplog.text
        assert keras.mixed_precision.global_policy().name == "float32"
        caplog.clear()
        with caplog.at_level("WARNING"):
            assert distribute.set_precision("mixed_bfloat16") == "mixed_bfloat16"
        assert "emulates" in caplog.text and "--mixed_precision=auto" in caplog.text
        caplog.clear()
        with caplog.at_level("WARNING"):
            distribute.set_precision("none")
        assert not caplog.text
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_cpu_bfloat16_support_reads_the_cpu_flags():
    amx = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f amx_bf16 amx_tile\n"
    avx512 = "flags\t\t: fpu avx2 avx512f avx512_bf16\n"
    epyc = "processor\t: 0\nflags\t\t: fpu sse avx avx2 fma vaes\nbogomips\t: 4890\n"
    arm = "processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n"
    assert hardware.cpu_bfloat16_support(amx) is True
    assert hardware.cpu_bfloat16_support(avx512) is True
    assert hardware.cpu_bfloat16_support(arm) is True
    assert hardware.cpu_bfloat16_support(epyc) is False
    assert hardware.cpu_bfloat16_support("model name\t: something\n") is None  # no flags line
    assert hardware.cpu_bfloat16_support() in (True, False, None)  # this machine's /proc/cpuinfo


def test_float16_overflow_is_skipped_by_the_loss_scale_not_an_error(tmp_path):
    """Under mixed_float16 a batch whose loss overflows (an input beyond float16's 65504 becomes
    inf) is skipped by the LossScaleOptimizer: weights untouched, scale halved, the loop goes on
    and counts only real updates. Twenty skips in a row are a divergence and stop the run."""
    try:
        distribute.set_precision("mixed_float16")
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2),
                                  keras.layers.Dense(1, dtype="float32")])
        opt = distribute.make_optimizer(1e-2)
        opt.build(model.trainable_variables)
        assert isinstance(opt, keras.optimizers.LossScaleOptimizer)

        @tf.function
        def step(batch):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.square(tf.cast(model(batch["x"]), tf.float32) - 1.0))
                scaled = opt.scale_loss(loss)
            opt.apply(tape.gradient(scaled, model.trainable_variables), model.trainable_variables)
            return {"loss": loss}

        good = {"x": tf.ones([4, 3])}
        bad = {"x": tf.fill([4, 3], 1e5)}
        weights = [v.numpy().copy() for v in model.trainable_variables]
        scale = float(opt.dynamic_scale.numpy())
        assert not np.isfinite(float(step(bad)["loss"]))
        assert all(np.array_equal(w, v.numpy()) for w, v in zip(weights, model.trainable_variables))
        assert float(opt.dynamic_scale.numpy()) == scale / 2

        ckpt = checkpoints.Checkpointer(str(tmp_path / "a"), model=model, opt=opt)
        final = loop.run_train_loop(train_step=step, iterator=iter([good, bad, bad, good, good]),
                                  checkpointer=ckpt, writers=summaries.SummaryWriters(str(tmp_path / "a")),
                                  num_steps=3, log_every=1, checkpoint_every=100)
        assert final == 3  # the two skipped batches do not count as steps
        assert not all(np.array_equal(w, v.numpy())
                       for w, v in zip(weights, model.trainable_variables))

        ckpt = checkpoints.Checkpointer(str(tmp_path / "b"), model=model, opt=opt)
        with pytest.raises(loop.NonFiniteLossError, match="loss at step 1"):
            loop.run_train_loop(train_step=step, iterator=iter([bad] * (loop.MAX_FLOAT16_SKIPS + 1)),
                              checkpointer=ckpt, writers=summaries.SummaryWriters(str(tmp_path / "b")),
                              num_steps=3, log_every=1, checkpoint_every=100)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_flagfile_paths_resolve_from_any_working_directory(tmp_path, monkeypatch):
    """Relative data paths inside a shipped flagfile resolve against the repository when the
    working directory is elsewhere; bare words, absent paths and command-line values stay."""
    monkeypatch.chdir(tmp_path)
    argv = cli.expand_flagfiles(["prog", "--flagfile=paper3_umsn/configs/smoke.flags",
                                "--mask_dir=data/sample/masks"])
    assert f"--train_data={os.path.join(paths.REPO_ROOT, 'data', 'sample', 'faces')}" in argv
    assert f"--eval_data={os.path.join(paths.REPO_ROOT, 'data', 'sample', 'test_faces')}" in argv
    assert "--variant=tiny" in argv and "--blur_kernels=camera_shake" not in argv[1:2]
    assert argv[-1] == "--mask_dir=data/sample/masks"   # the command line is the user's
    (tmp_path / "data" / "sample" / "faces").mkdir(parents=True)  # exists here: kept relative
    argv = cli.expand_flagfiles(["prog", "--flagfile=paper3_umsn/configs/smoke.flags"])
    assert "--train_data=data/sample/faces" in argv
    flagfile = tmp_path / "own.flags"
    flagfile.write_text("--train_data=records/nothing-*.tfrecord\n--kernel_sizes=5:9\n")
    assert cli.expand_flagfiles([f"--flagfile={flagfile}"]) == [
        "--train_data=records/nothing-*.tfrecord", "--kernel_sizes=5:9"]


def _run_with_evals(workdir, values, best_metric, num_steps, start_model=None):
    """Trains the toy setup `num_steps` with an evaluation every step returning values[step]."""
    model, critic, opt_g, opt_d = start_model or _tiny_setup()
    ckpt = checkpoints.Checkpointer(workdir, 5, best_metric=best_metric, model=model, critic=critic,
                           opt_g=opt_g, opt_d=opt_d)
    ckpt.restore_latest()
    weights_at = {}

    def eval_fn(step):
        weights_at[step] = [w.numpy().copy() for w in model.weights]
        return {"psnr": values[step], "loss": -values[step]}

    loop.run_train_loop(train_step=_make_step(model, critic, opt_g, opt_d), iterator=_batches(),
                      checkpointer=ckpt, writers=summaries.SummaryWriters(workdir), num_steps=num_steps,
                      log_every=10, checkpoint_every=100, eval_fn=eval_fn, eval_every=1)
    return weights_at


@pytest.mark.parametrize("metric", ["psnr", "-loss"])
def test_best_metric_keeps_the_best_evaluated_checkpoint_across_a_resume(tmp_path, metric):
    workdir = str(tmp_path)
    values = {1: 20.0, 2: 23.0, 3: 21.0, 4: 22.5, 5: 24.0, 6: 19.0}
    weights_at = _run_with_evals(workdir, values, metric, 4)
    best = checkpoints.read_best(workdir)
    assert best["step"] == 2 and best["metric"] == metric
    assert best["value"] == (23.0 if metric == "psnr" else -23.0)
    # the best checkpoint holds the weights evaluated at step 2, not the last ones
    model, critic, opt_g, opt_d = _tiny_setup()
    checkpoints.restore_for_eval(checkpoints.checkpoint_path(workdir, "best"), model=model)
    for a, b in zip(weights_at[2], model.weights):
        np.testing.assert_array_equal(a, b.numpy())
    assert not np.array_equal(weights_at[4][0], weights_at[2][0])
    # a resumed run compares with the saved best: step 5 beats it, step 6 does not
    _run_with_evals(workdir, values, metric, 6)
    assert checkpoints.read_best(workdir)["step"] == 5
    assert len(glob.glob(os.path.join(workdir, "best", "*.index"))) == 1  # one best, not a pile
    # the newest checkpoint is still the last step
    assert checkpoints.checkpoint_path(workdir, "latest") == workdir
    assert tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints")).endswith("ckpt-6")


def test_best_metric_errors_name_the_flag(tmp_path):
    workdir = str(tmp_path / "a")
    with pytest.raises(FileNotFoundError, match="--best_metric"):
        checkpoints.checkpoint_path(workdir, "best")
    with pytest.raises(ValueError, match="'ssim'.*it has loss, psnr"):
        _run_with_evals(workdir, {1: 1.0}, "ssim", 1)
    # the step that ran before the error is saved, not lost
    assert tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints")).endswith("ckpt-1")
    with pytest.raises(ValueError, match="--best_metric"):
        checkpoints.parse_best_metric("-")


class _NormTrainer(_ToyTrainer):
    """_ToyTrainer plus a network with an instance norm (for --fused_norm)."""

    def __init__(self, config):
        super().__init__(config)
        from common.keras_utils import instance_norm  # pylint: disable=import-outside-toplevel
        self.norm_net = keras.Sequential([keras.Input((4, 4, 2)), instance_norm()])

    def trackables(self):
        return {**super().trackables(), "norm_net": self.norm_net}


@pytest.mark.parametrize("fused", [True, False])
def test_train_fuses_instance_norms_unless_told_not_to(tmp_path, fused):
    from common import keras_utils  # pylint: disable=import-outside-toplevel
    workdir = str(tmp_path / "w")
    fv = cli.parse_flags([train_flags.define_common_flags, _define_extra],
                        ["prog", "--variant=tiny", "--num_steps=1", "--batch_size=2",
                         "--fused_norm" if fused else "--nofused_norm"])
    training.start_run(fv, workdir)
    trainer = _NormTrainer(fv)
    data = tf.data.Dataset.from_tensor_slices({"x": np.random.rand(8, 3).astype("float32")})
    assert training.train(workdir, fv, trainer, data.repeat().batch(2)) == 1
    norm = trainer.norm_net.layers[0]
    patched = getattr(norm.call, "__func__", None) is keras_utils._fused_instance_norm
    assert patched == fused


def test_best_metric_without_an_evaluation_is_refused(tmp_path):
    workdir = str(tmp_path / "w")
    fv = cli.parse_flags([train_flags.define_common_flags, _define_extra],
                        ["prog", "--variant=tiny", "--num_steps=1", "--batch_size=2",
                         "--best_metric=psnr"])
    training.start_run(fv, workdir)
    data = tf.data.Dataset.from_tensor_slices({"x": np.random.rand(8, 3).astype("float32")})
    with pytest.raises(ValueError, match="--best_metric=psnr needs an evaluation"):
        training.train(workdir, fv, _ToyTrainer(fv), data.repeat().batch(2))


def test_lr_factor_warmup_then_cosine_against_the_formula():
    f = lambda s: train_flags.lr_factor(s, "cosine", warmup_steps=4, total_steps=14, min_factor=0.1)
    assert [f(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    for s in range(4, 20):
        p = min((s - 4) / 10, 1.0)
        assert f(s) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * p)))
    assert f(9) == pytest.approx(0.55) and f(14) == f(30) == pytest.approx(0.1)
    assert train_flags.lr_factor(7, "constant") == 1.0
    with pytest.raises(ValueError, match="schedule"):
        train_flags.lr_factor(1, "linear")


def test_cosine_schedule_is_applied_each_step_and_follows_the_restored_step(tmp_path):
    # Every update uses the flag's rate times the factor of its step, and a resumed run (the
    # checkpoint holds the last scheduled rate; the flag's rate replaces it) stays on schedule.
    workdir = str(tmp_path)
    fn = lambda s: train_flags.lr_factor(s, "cosine", warmup_steps=2, total_steps=6, min_factor=0.0)
    used = []

    def run(num_steps):
        model, critic, opt_g, opt_d = _tiny_setup(lr=0.1)
        ckpt = checkpoints.Checkpointer(workdir, model=model, critic=critic, opt_g=opt_g, opt_d=opt_d)
        ckpt.restore_latest()
        inner = _make_step(model, critic, opt_g, opt_d)

        def step(batch):
            used.append((float(np.asarray(opt_g.learning_rate)),
                         float(np.asarray(opt_d.learning_rate))))
            return inner(batch)
        return loop.run_train_loop(train_step=step, iterator=_batches(), checkpointer=ckpt,
                                 writers=summaries.SummaryWriters(workdir), num_steps=num_steps,
                                 log_every=1, checkpoint_every=1,
                                 optimizers={"opt_g": opt_g, "opt_d": opt_d}, lr_factor_fn=fn)
    assert run(3) == 3
    assert run(7) == 7
    want = [0.1 * fn(s) for s in range(7)]
    np.testing.assert_allclose([g for g, _ in used], want, rtol=1e-6)
    np.testing.assert_allclose([d for _, d in used], want, rtol=1e-6)
    assert want[2] == pytest.approx(0.1) and want[5] == pytest.approx(0.05 * (1 - 0.5 ** 0.5))


def test_pipeline_seed_moves_on_at_a_resume_and_differs_per_pipeline():
    assert distribute.pipeline_seed(7, 0) == 7 and distribute.pipeline_seed(7, 100) == 107
    # two pipelines, CycleGAN-style two seeds each: (seed + start) * n + 2 * id
    assert [distribute.pipeline_seed(1, 2, i, 2, seeds_per_pipeline=2) for i in (0, 1)] == [6, 8]
    assert len({distribute.pipeline_seed(0, 0, i, 4) for i in range(4)}) == 4


def test_start_step_continues_a_schedule_on_an_empty_workdir_and_is_ignored_at_a_resume(tmp_path):
    # A committed run whose workdir is gone: --start_step=6 counts 6..8, and the cosine rates are
    # those of steps 6..7 (not a new warm-up from step 0); a later resume ignores the flag.
    workdir = str(tmp_path / "w")
    argv = ["prog", "--variant=tiny", "--num_steps=8", "--log_every=1", "--checkpoint_every=1",
            "--batch_size=2", "--lr_schedule=cosine", "--lr_warmup_steps=2",
            "--lr_min_factor=0.0", "--start_step=6", "--eval_every=0", "--image_every=0"]
    fv = cli.parse_flags([train_flags.define_common_flags, _define_extra], argv)
    training.start_run(fv, workdir)
    data = tf.data.Dataset.from_tensor_slices({"x": np.random.rand(64, 3).astype("float32")})
    assert training.train(workdir, fv, _ToyTrainer(fv), lambda start: data.repeat().batch(2)) == 8
    rates = [(s, float(tf.make_ndarray(v.tensor)))
             for s, v in _events(os.path.join(workdir, "train"))["learning_rate/optimizer"]]
    fn = lambda s: 0.01 * train_flags.lr_factor(s, "cosine", warmup_steps=2, total_steps=8,
                                                min_factor=0.0)
    assert [s for s, _ in rates] == [7, 8]
    np.testing.assert_allclose([r for _, r in rates], [fn(6), fn(7)], rtol=1e-5)
    assert fn(6) < 0.5 * 0.01  # far past the warm-up's peak: the flag really moved the schedule
    fv2 = cli.parse_flags([train_flags.define_common_flags, _define_extra],
                          argv[:2] + ["--num_steps=9"] + argv[3:])
    assert training.train(workdir, fv2, _ToyTrainer(fv2), lambda start: data.repeat().batch(2)) == 9


def test_start_step_must_not_be_negative():
    fv = cli.parse_flags([train_flags.define_common_flags, _define_extra],
                         ["prog", "--variant=tiny", "--start_step=-1"])
    with pytest.raises(ValueError, match="start_step"):
        train_flags.validate_common_flags(fv)


_THREADS_SCRIPT = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    from common import cli
    from common.train import flags as train_flags, trainer as training
    fv = cli.parse_flags([train_flags.define_common_flags], ["prog", *sys.argv[1:]])
    training.start_run(fv, fv.workdir)
    threading = tf.config.threading
    tf.constant(1.0) + 1.0  # the runtime has started: the pools are fixed from here on
    print(json.dumps([threading.get_intra_op_parallelism_threads(),
                      threading.get_inter_op_parallelism_threads()]))
""")


def test_thread_flags_size_tensorflows_pools_before_the_runtime_starts(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    import json

    def pools(*args):
        out = subprocess.run([sys.executable, "-c", _THREADS_SCRIPT, f"--workdir={tmp_path}",
                              *args], cwd=paths.REPO_ROOT, env=env, capture_output=True,
                             text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-3000:]
        return json.loads(out.stdout.strip().splitlines()[-1])
    assert pools("--intra_op_threads=1", "--inter_op_threads=3") == [1, 3]
    assert pools() == [0, 0]  # TensorFlow's own choice


def test_thread_flags_in_a_running_process_warn_and_keep_the_pools(caplog):
    tf.constant(1.0) + 1.0  # this test process's runtime is up
    before = (tf.config.threading.get_intra_op_parallelism_threads(),
              tf.config.threading.get_inter_op_parallelism_threads())
    want = before[0] + 1
    with caplog.at_level("WARNING"):
        assert distribute.set_cpu_threads(want, 0) == before
    assert f"--intra_op_threads={want} ignored" in caplog.text
    assert distribute.set_cpu_threads(0, 0) == before  # 0: nothing asked, nothing said
    with pytest.raises(ValueError, match="--inter_op_threads=-1"):
        distribute.set_cpu_threads(0, -1)
    fv = cli.parse_flags([train_flags.define_common_flags], ["prog", "--intra_op_threads=-2"])
    with pytest.raises(ValueError, match="--intra_op_threads=-2: must be >= 0"):
        train_flags.validate_common_flags(fv)
