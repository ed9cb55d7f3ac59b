"""Issue 16 probes on `common`: nothing lost, nothing silently wrong.

Non-finite updates never reach a checkpoint; a lower learning rate resumes from the last finite
one; unreadable or unindexed checkpoints; SIGTERM/SIGINT save and exit 128+signum (a real
subprocess, tests/common/toy_trainer.py); flags checked before anything is written; init restores
that name the flag and what the workdir holds; deblur keeps going past a bad input; outputs get
the umask's mode and temporary files never follow a planted symlink. One Dense layer throughout.
"""
import glob
import os
import signal
import subprocess
import sys
import threading

from absl import flags
import keras
import numpy as np
import pytest
import tensorflow as tf

from common import cli, image_io, inference
from common.train import checkpoints, flags as train_flags, loop, summaries, trainer as training, workdirs
from common.paths import REPO_ROOT


def _dense(lr=1e-2):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    optimizer = keras.optimizers.Adam(lr)
    optimizer.build(model.trainable_variables)
    return model, optimizer


def _step(model, optimizer, explode_at=None):
    """A train step whose loss is computed before its update (as in every trainer); at call
    `explode_at` the gradients are infinite, so that update makes the weights NaN while the
    loss it returns is finite."""
    calls = []

    def step(batch):
        calls.append(1)
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((model(batch) - 1.0) ** 2)
        grads = tape.gradient(loss, model.trainable_variables)
        if len(calls) == explode_at:
            grads = [tf.fill(tf.shape(g), np.inf) for g in grads]
        optimizer.apply(grads, model.trainable_variables)
        return {"loss": loss}
    return step


def _batches():
    while True:
        yield np.ones((4, 2), np.float32)


def _ckpt_names(workdir):
    return sorted(os.path.basename(p)[:-len(".index")]
                  for p in glob.glob(os.path.join(workdir, "checkpoints", "ckpt-*.index")))


def _all_finite(prefix):
    reader = tf.train.load_checkpoint(prefix)
    return all(np.all(np.isfinite(reader.get_tensor(n)))
               for n, d in reader.get_variable_to_dtype_map().items() if d.is_floating)


# --------------------------------------------------------------------------- non-finite guard


def test_non_finite_update_never_reaches_a_checkpoint_and_a_lower_rate_resumes(tmp_path):
    workdir = str(tmp_path)
    model, optimizer = _dense(1e-2)
    ckpt = checkpoints.Checkpointer(workdir, 10, model=model, optimizer=optimizer)
    writers = summaries.SummaryWriters(workdir)
    with pytest.raises(loop.NonFiniteLossError,
                       match=r"non-finite after step 3 .*last finite checkpoint is \S*ckpt-2"):
        loop.run_train_loop(train_step=_step(model, optimizer, explode_at=3), iterator=_batches(),
                          checkpointer=ckpt, writers=writers, num_steps=10, checkpoint_every=1)
    assert _ckpt_names(workdir) == ["ckpt-1", "ckpt-2"]  # step 3's NaN weights were not saved
    assert _all_finite(os.path.join(workdir, "checkpoints", "ckpt-2"))
    # restart with a lower learning rate: resumes at step 2 with the new rate and finishes
    model, optimizer = _dense(1e-3)
    ckpt = checkpoints.Checkpointer(workdir, 10, model=model, optimizer=optimizer)
    assert ckpt.restore_latest() == 2
    assert float(np.asarray(optimizer.learning_rate)) == pytest.approx(1e-3)  # not the saved 1e-2
    assert loop.run_train_loop(train_step=_step(model, optimizer), iterator=_batches(),
                             checkpointer=ckpt, writers=writers, num_steps=5,
                             checkpoint_every=1) == 5
    assert _ckpt_names(workdir)[-1] == "ckpt-5" and _all_finite(ckpt.latest)
    writers.close()


# --------------------------------------------------------------------------- checkpoint files


def _two_checkpoints(workdir):
    model, optimizer = _dense()
    ckpt = checkpoints.Checkpointer(workdir, 5, model=model, optimizer=optimizer)
    step = _step(model, optimizer)
    step(np.ones((4, 2), np.float32))
    ckpt.save(1)
    at_1 = [w.copy() for w in model.get_weights()]
    step(np.ones((4, 2), np.float32))
    ckpt.save(2)
    return at_1


def test_truncated_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, caplog):
    workdir = str(tmp_path)
    at_1 = _two_checkpoints(workdir)
    for data in glob.glob(os.path.join(workdir, "checkpoints", "ckpt-2.data-*")):
        with open(data, "r+b") as f:
            f.truncate(os.path.getsize(data) // 2)
    model, optimizer = _dense()
    ckpt = checkpoints.Checkpointer(workdir, 5, model=model, optimizer=optimizer)
    assert ckpt.restore_latest() == 1
    for a, b in zip(at_1, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert "ckpt-2" in caplog.text and "cannot be read" in caplog.text
    # both unreadable: one error naming both files, not a 37-line IndexError
    for data in glob.glob(os.path.join(workdir, "checkpoints", "ckpt-1.data-*")):
        with open(data, "r+b") as f:
            f.truncate(os.path.getsize(data) // 2)
    with pytest.raises(checkpoints.CheckpointError, match=r"ckpt-2 .*ckpt-1 "):
        checkpoints.Checkpointer(workdir, 5, model=model, optimizer=optimizer).restore_latest()


def test_missing_index_beside_checkpoints_is_an_error_not_a_restart(tmp_path):
    workdir = str(tmp_path)
    _two_checkpoints(workdir)
    os.remove(os.path.join(workdir, "checkpoints", "checkpoint"))
    model, optimizer = _dense()
    with pytest.raises(checkpoints.CheckpointError, match=r"index file\) is missing .*newest ckpt-2"):
        checkpoints.Checkpointer(workdir, 5, model=model, optimizer=optimizer).restore_latest()
    # the error's advice (one model_checkpoint_path line, no timestamps) resumes from ckpt-2
    with open(os.path.join(workdir, "checkpoints", "checkpoint"), "w") as f:
        f.write('model_checkpoint_path: "ckpt-2"\n')
    assert checkpoints.Checkpointer(workdir, 5, model=model, optimizer=optimizer).restore_latest() == 2


# --------------------------------------------------------------------------- signals, bad flags


def _trainer(workdir, *extra):
    return subprocess.Popen(
        [sys.executable, "-m", "tests.common.toy_trainer", f"--workdir={workdir}",
         "--batch_size=4", "--log_every=1", "--checkpoint_every=100000", "--num_steps=100000",
         *extra], cwd=REPO_ROOT, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": REPO_ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"})


def _signal_after(proc, sig, needle):
    """Sends `sig` once stderr shows `needle`; returns (return code, stderr)."""
    watchdog = threading.Timer(240, proc.kill)
    watchdog.start()
    lines = []
    try:
        for line in proc.stderr:
            lines.append(line)
            if needle in line:
                proc.send_signal(sig)
                break
        lines.extend(proc.stderr)
        return proc.wait(), "".join(lines)
    finally:
        watchdog.cancel()


def test_sigterm_then_sigint_save_a_checkpoint_and_resume(tmp_path):
    workdir = str(tmp_path / "w")
    rc, err = _signal_after(_trainer(workdir), signal.SIGTERM, "step 3/")
    assert rc == 128 + signal.SIGTERM, err[-2000:]
    assert "SIGTERM at step" in err and "Traceback" not in err
    first = int(_ckpt_names(workdir)[-1].split("-")[1])
    assert first >= 3  # no step lost: checkpoint_every is 100000
    rc, err = _signal_after(_trainer(workdir), signal.SIGINT, f"step {first + 2}/")
    assert rc == 128 + signal.SIGINT, err[-2000:]
    assert f"(step {first})" in err  # resumed from the SIGTERM checkpoint
    assert int(_ckpt_names(workdir)[-1].split("-")[1]) >= first + 2


def test_bad_flag_values_fail_before_anything_is_written(tmp_path):
    workdir = str(tmp_path / "w")
    for bad in ("--num_steps=-5", "--batch_size=-2", "--num_steps=0", "--checkpoint_every=-1"):
        fv = cli.parse_flags([train_flags.define_common_flags], ["prog", bad])
        with pytest.raises(ValueError, match="^" + bad.replace("-", r"\-") + ": must be >="):
            training.start_run(fv, workdir)
        assert not os.path.exists(workdir)
    # the CLI: one line, exit status 1 (it exited 0 for --num_steps=-5), no workdir
    done = subprocess.run([sys.executable, "-m", "tests.common.toy_trainer",
                           f"--workdir={workdir}", "--num_steps=-5"], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=240,
                          env={**os.environ, "PYTHONPATH": REPO_ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert done.returncode == 1 and "error: --num_steps=-5: must be >= 1" in done.stderr
    assert "Traceback" not in done.stderr and not os.path.exists(workdir)


# --------------------------------------------------------------------------- workdir kinds


def _fake_workdir(path, *flag_lines):
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "flags.txt"), "w") as f:
        f.write("# Resolved flags\n" + "\n".join(flag_lines) + "\n")
    return str(path)


def test_workdir_kind_and_the_wrong_kind_error(tmp_path):
    srn = _fake_workdir(tmp_path / "srn", "--recurrent=lstm", "--scale_weights=1,1,1")
    cyc = _fake_workdir(tmp_path / "cyc", "--lambda_cycle=10.0")
    hg = _fake_workdir(tmp_path / "hg", "--lambda_ci=100.0", "--stage=hg")
    sn = _fake_workdir(tmp_path / "sn", "--ablation=umsn", "--stage=sn_clean")
    assert [workdirs.workdir_kind(p) for p in (srn, cyc, hg, sn)] == [
        ("paper1", "srn"), ("paper1", "cyclegan"), ("paper2", "hg"), ("paper3", "sn_clean")]
    assert workdirs.workdir_kind(os.path.join(srn, "checkpoints", "ckpt-7")) == ("paper1", "srn")
    with pytest.raises(ValueError, match=r"^--checkpoint=\S+ is a paper-1 SRN workdir, not a "
                                         r"paper-3 umsn one"):
        workdirs.check_workdir_kind(srn, "paper3", ("umsn",), "--checkpoint")
    workdirs.check_workdir_kind(sn, "paper3", ("sn_clean", "sn_blurry"))  # the right kind passes
    workdirs.check_workdir_kind(str(tmp_path / "bare"), "paper3", ("umsn",))  # no flags.txt: passes


def test_restore_init_asserts_every_object_matched_and_names_the_flag(tmp_path):
    workdir = str(tmp_path / "a")
    model, optimizer = _dense()
    checkpoints.Checkpointer(workdir, 3, model=model, optimizer=optimizer).save(1)
    # the right object name: restored
    other, _ = _dense()
    checkpoints.restore_init(workdir, "--init_x", paper="paper3", stages=("fnet",), model=other)
    for a, b in zip(model.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(a, b)
    # objects the checkpoint does not hold: an error (expect_partial alone restored 0 of them)
    with pytest.raises(ValueError, match=r"^--init_x=\S+: \S+ckpt-1 does not hold fnet1 \("):
        checkpoints.restore_init(workdir, "--init_x", paper="paper3", stages=("fnet",), fnet1=_dense()[0])
    with pytest.raises(FileNotFoundError, match=r"^--init_x=\S+missing: "):
        checkpoints.restore_init(str(tmp_path / "missing"), "--init_x", paper="paper3", stages=("fnet",),
                        model=other)
    with pytest.raises(ValueError, match="--init_x is required"):
        checkpoints.restore_init(None, "--init_x", paper="paper3", stages=("fnet",), model=other)


# --------------------------------------------------------------------------- deblur


def test_deblur_processes_every_good_input_and_reports_each_bad_one(tmp_path, capsys):
    src = tmp_path / "in"
    img = (np.random.default_rng(0).random((8, 8, 3)) * 255).astype(np.uint8)
    image_io.write_image(str(src / "a.png"), img)
    (src / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    image_io.write_image(str(src / "c.png"), img)
    out = str(tmp_path / "out")
    invert = lambda x: 1.0 - x  # noqa: E731
    with pytest.raises(inference.InputErrors) as e:
        inference.deblur_files(invert, [str(src)], out)
    assert [os.path.basename(p) for p in e.value.written] == ["a.png", "c.png"]  # c after bad b
    assert len(e.value.failures) == 1 and e.value.failures[0].startswith(str(src / "b.png") + ": ")
    assert "\n" not in e.value.failures[0]
    # the CLI: prints the written paths, one line per bad input, exits 1 at the end
    fv = flags.FlagValues()
    inference.define_deblur_flags(fv, checkpoint_help="w", suffix="_x", stride=1)
    fv(["prog", "--checkpoint=w", f"--output_dir={tmp_path / 'cli'}"])

    def run(checkpoint, inputs, output_dir, **options):
        return inference.run_deblur(lambda c: invert, checkpoint, inputs, output_dir, stride=1,
                                    **options)
    with pytest.raises(SystemExit) as exit_:
        inference.deblur_main(["prog", str(src)], run, fv)
    assert exit_.value.code == 1
    captured = capsys.readouterr()
    assert len(captured.out.split()) == 2 and all(os.path.exists(p) for p in captured.out.split())
    errors = [l for l in captured.err.splitlines() if l.startswith("error: ")]
    assert len(errors) == 1 and "b.png" in errors[0] and "Traceback" not in captured.err


# --------------------------------------------------------------------------- files


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_outputs_get_the_umask_mode_and_temp_files_never_follow_a_link(tmp_path, umask_022):
    path = image_io.write_image(str(tmp_path / "x.png"), np.zeros((4, 4, 3), np.uint8))
    assert os.stat(path).st_mode & 0o777 == 0o644  # was 0600 (mkstemp's mode)
    # flags.txt: a planted flags.txt.tmp symlink is neither followed nor needed
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    workdir = tmp_path / "w"
    workdir.mkdir()
    os.symlink(victim, workdir / "flags.txt.tmp")
    fv = cli.parse_flags([train_flags.define_common_flags], ["prog", "--num_steps=3"])
    flags_path = cli.save_flags(fv, str(workdir))
    assert victim.read_text() == "keep me"
    assert not os.path.islink(flags_path) and "--num_steps=3" in open(flags_path).read()
    assert os.stat(flags_path).st_mode & 0o777 == 0o644
    # a symlink at the final name is replaced, its target left alone
    os.symlink(victim, tmp_path / "link.json")
    image_io.atomic_write(str(tmp_path / "link.json"), "{}")
    assert victim.read_text() == "keep me" and not os.path.islink(tmp_path / "link.json")
    assert not glob.glob(str(tmp_path / ".*.tmp")) and not glob.glob(str(workdir / ".*.tmp"))
