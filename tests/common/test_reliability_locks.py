"""Issue 34 probes: one writer per workdir, bad model files named, a full disk in one line.

A second trainer (a real subprocess, tests/common/toy_trainer.py) or `data.build` on a folder
whose lock a live process (this test) holds is refused in one line naming its pid and host; a
dead process's lock is taken over; a lock written by another host is refused naming it. A file
that is not a Keras archive, a truncated one, a zip without a model and another paper's model
are each named in one line by every loader (deblur without its --help text, benchmark --method,
--init_model, export). A checkpoint save that fails like a full disk names the path, the free
space and the last good checkpoint and leaves no `ckpt-N_temp/`; the rerun resumes.
"""
import errno
import glob
import json
import os
import re
import socket
import subprocess
import sys
import types

import numpy as np
import pytest
import tensorflow as tf

from common import cli, inference, tfrecord, workdir_lock
from common.train import checkpoints, flags as train_flags, loop, summaries, trainer as training
from common.evaluation import methods
from common.paths import REPO_ROOT
from data import build
from tests.common.test_reliability import _batches, _ckpt_names, _dense, _step
from tests.data import fixtures

ENV = {**os.environ, "PYTHONPATH": REPO_ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"}
UMSN = os.path.join(REPO_ROOT, "paper3_umsn", "weights", "umsn_small.keras")
CGAN = os.path.join(REPO_ROOT, "paper2_identity_cgan", "weights", "cgan_small.keras")


def _toy(workdir, *extra):
    return subprocess.run(
        [sys.executable, "-m", "tests.common.toy_trainer", f"--workdir={workdir}",
         "--batch_size=4", "--log_every=1", "--checkpoint_every=2", "--num_steps=2", *extra],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=240, env=ENV)


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# --------------------------------------------------------------------------- one writer


def test_second_trainer_on_a_held_workdir_is_refused_naming_the_holder(tmp_path):
    workdir = str(tmp_path / "w")
    workdir_lock.acquire(workdir)  # this live process plays the first launch
    try:
        done = _toy(workdir)
    finally:
        workdir_lock.release(workdir)
    err = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 1, done.stderr[-2000:]
    assert len(err) == 1 and f"pid {os.getpid()} on host {socket.gethostname()}" in err[0]
    assert "Traceback" not in done.stderr
    # the refused run wrote nothing: no flags.txt over the holder's, no checkpoint, no events
    assert sorted(os.listdir(workdir)) == []
    # once the holder is gone, the same command trains and leaves no lock behind
    done = _toy(workdir)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _ckpt_names(workdir) == ["ckpt-2"] and not os.path.exists(os.path.join(workdir, ".lock"))


def test_a_dead_process_lock_is_taken_over_and_another_host_lock_is_refused(tmp_path):
    workdir = str(tmp_path / "w")
    os.makedirs(workdir)
    lock = os.path.join(workdir, ".lock")
    dead = _dead_pid()
    with open(lock, "w") as f:  # what a SIGKILLed run leaves: its record, no flock
        json.dump({"pid": dead, "host": socket.gethostname(), "command": "train"}, f)
    assert workdir_lock.describe(workdir) is None  # nobody holds it
    workdir_lock.acquire(workdir)
    assert json.load(open(lock))["pid"] == os.getpid()
    workdir_lock.acquire(workdir)  # this process again (the next stage): a no-op
    workdir_lock.release(workdir)
    assert not os.path.exists(lock)
    with open(lock, "w") as f:
        json.dump({"pid": 7, "host": "gpu-node-9", "command": "train"}, f)
    with pytest.raises(workdir_lock.WorkdirLocked, match=r"pid 7 on host gpu-node-9.*remove"):
        workdir_lock.acquire(workdir)
    assert json.load(open(lock))["host"] == "gpu-node-9"  # left for its owner


def test_a_full_disk_at_the_lock_is_one_line(tmp_path, monkeypatch):
    def full(*args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(os, "pwrite", full)
    with pytest.raises(workdir_lock.LockError, match=r"cannot write the lock file .*/w/\.lock "
                       r"\(No space left on device; [\d,]+ [KM]iB free there\)"):
        workdir_lock.acquire(str(tmp_path / "w"))
    monkeypatch.undo()
    assert str(tmp_path / "w" / ".lock") not in workdir_lock.held()
    assert workdir_lock.describe(str(tmp_path / "w")) is None


def test_a_non_chief_worker_takes_no_lock(tmp_path, monkeypatch):
    workdir = str(tmp_path / "w")
    workdir_lock.acquire(workdir)  # the chief's
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1", "b:2"]},
                                                "task": {"type": "worker", "index": 1}}))
    try:
        model, optimizer = _dense()

        class Toy(training.Trainer):
            def trackables(self):
                return {"model": model, "optimizer": optimizer}

            def replica_step(self, batch):
                return _step(model, optimizer)(batch)

        fv = cli.parse_flags([train_flags.define_common_flags], ["prog", f"--workdir={workdir}",
                                                       "--num_steps=1", "--batch_size=4"])
        # worker 1 neither takes nor releases the chief's lock
        training.train(workdir, fv, Toy(fv), tf.data.Dataset.from_tensors(np.ones((4, 2),
                                                                        np.float32)).repeat())
        assert os.path.join(workdir, ".lock") in workdir_lock.held()
    finally:
        workdir_lock.release(workdir)


def test_second_build_into_one_output_is_refused_and_a_vanished_tmp_file_is_named(tmp_path):
    src, out = str(tmp_path / "src"), str(tmp_path / "rec")
    for i in range(2):
        fixtures.save(os.path.join(src, f"{i}.png"), np.full((40, 40, 3), 128, np.uint8))
    args = ["--source=folder", f"--manual_dir={src}", f"--output_dir={out}", "--name=t",
            "--num_shards=1", "--blur_kernels=gaussian", "--kernel_sizes=3"]
    workdir_lock.acquire(out, ".t.lock")
    try:
        done = subprocess.run([sys.executable, "-m", "data.build", *args], cwd=REPO_ROOT,
                              capture_output=True, text=True, timeout=240, env=ENV)
    finally:
        workdir_lock.release(out, ".t.lock")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert f"--output_dir={out} is in use by pid {os.getpid()}" in done.stderr
    assert not glob.glob(os.path.join(out, "t-*"))  # nothing written
    # another --name into the same folder is another writer's: not refused
    workdir_lock.acquire(out, ".t.lock")
    try:
        from absl import flags
        fv = flags.FlagValues()
        build.define_flags(fv)
        fv(["build", *args[:3], "--name=u", *args[4:]])
        assert build.build(build.config_from_flags(fv))["records"] == 2
    finally:
        workdir_lock.release(out, ".t.lock")
    # two writers of one shard (what paper 3's records build did unlocked): the loser's tmp
    # file is gone at rename time, and the error says so instead of a bare NotFoundError
    with pytest.raises(FileNotFoundError, match="another process is writing the same records"):
        with tfrecord.ShardedWriter(str(tmp_path / "d"), "masked", 1) as w:
            w.write(tfrecord.make_example(sharp=np.zeros((4, 4, 3), np.uint8)))
            w._close_writers()
            os.replace(w.paths[0] + ".tmp", w.paths[0])  # the other process finished first


# --------------------------------------------------------------------------- model files


@pytest.fixture(scope="module")
def bad_models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    paths = {"random": str(d / "random.keras"), "zip": str(d / "zip.keras"),
             "truncated": str(d / "truncated.keras")}
    with open(paths["random"], "wb") as f:
        f.write(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    import zipfile
    with zipfile.ZipFile(paths["zip"], "w") as z:
        z.writestr("notes.txt", "not a model")
    with open(UMSN, "rb") as f, open(paths["truncated"], "wb") as g:
        g.write(f.read(20000))
    return paths


WHAT = {"random": "is not a Keras archive", "zip": "is a zip archive but not a Keras model",
        "truncated": "is truncated"}


def test_each_bad_model_file_is_named_by_the_loaders(bad_models, tmp_path):
    import paper3_umsn.models  # noqa: F401  (paper 3's classes only, as in its deblur)
    for kind, path in bad_models.items():
        with pytest.raises(inference.ModelFileError, match=f"{path} {WHAT[kind]}"):
            inference.load_keras(path)
        # benchmark --method: the same line, with the --method it came from
        with pytest.raises(inference.ModelFileError, match=f"--method x=.*{path} {WHAT[kind]}"):
            methods.resolve_method(f"x={path}")
    if "paper2_identity_cgan.models" not in sys.modules:  # another paper's model
        with pytest.raises(inference.ModelFileError, match=r"holds a paper-2 model "
                           r"\(paper2_identity_cgan>\w+\)"):
            inference.load_keras(CGAN)
    # --init_model (paper 3): the same error, which run_main prints as one line
    from paper3_umsn import train as p3train
    with pytest.raises(ValueError, match=f"{bad_models['zip']} {WHAT['zip']}"):
        p3train._load_init_model(types.SimpleNamespace(init_model=bad_models["zip"]))
    # a SavedModel folder that is none
    os.makedirs(tmp_path / "sm")
    (tmp_path / "sm" / "saved_model.pb").write_bytes(b"garbage")
    with pytest.raises(inference.ModelFileError, match=f"--method y=.*SavedModel {tmp_path}/sm"):
        methods.resolve_method(f"y={tmp_path}/sm")


def test_deblur_with_a_bad_model_file_is_one_line_without_the_help_text(bad_models, tmp_path):
    image = str(tmp_path / "in.png")
    fixtures.save(image, np.full((32, 32, 3), 100, np.uint8))
    done = subprocess.run(
        [sys.executable, "-m", "paper3_umsn.deblur", f"--checkpoint={bad_models['zip']}", image,
         f"--output_dir={tmp_path / 'out'}"], cwd=REPO_ROOT, capture_output=True, text=True,
        timeout=240, env=ENV)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 1, done.stderr[-2000:]
    assert lines[-1] == f"error: model file {bad_models['zip']} {WHAT['zip']} (no config.json; " \
                        "it holds notes.txt)"
    assert "--checkpoint" not in done.stderr.replace(f"--checkpoint={bad_models['zip']}", "")
    assert "Traceback" not in done.stderr and not os.path.exists(tmp_path / "out")


def test_export_of_a_bad_workdir_is_one_line(tmp_path, capsys):
    from absl import flags
    fv = flags.FlagValues()
    inference.define_export_flags(fv, workdir_help="a workdir")
    fv(["export", f"--workdir={tmp_path / 'none'}", f"--export_dir={tmp_path / 'e'}"])

    def export(workdir, export_dir, checkpoint=None, weights_dtype="float32"):
        raise tf.errors.DataLossError(None, None, f"{workdir}/checkpoints/ckpt-3.index: "
                                      "truncated record\nmore C++ context")
    with pytest.raises(SystemExit) as e:
        inference.export_main(["export"], export, fv)
    assert e.value.code == 1
    assert capsys.readouterr().err == (f"error: export of --workdir={fv.workdir} --checkpoint="
                                       f"latest failed: {fv.workdir}/checkpoints/ckpt-3.index: "
                                       "truncated record\n")


# --------------------------------------------------------------------------- full disk


@pytest.mark.parametrize("how", ["tensorflow", "python"])
def test_disk_full_at_a_save_is_one_line_and_leaves_no_temp_folder(tmp_path, monkeypatch, how):
    workdir = str(tmp_path)
    model, optimizer = _dense()
    ckpt = checkpoints.Checkpointer(workdir, 10, model=model, optimizer=optimizer)
    real_write = tf.train.Checkpoint._write

    def full_disk(self, prefix, options=None):
        if not prefix.endswith("ckpt-4"):
            return real_write(self, prefix, options=options)
        # what TensorFlow's sharded save leaves when the disk fills: a temp shard folder
        os.makedirs(prefix + "_temp")
        open(os.path.join(prefix + "_temp", "part-00000-of-00001.data-00000-of-00001."
                          "tempstate1"), "wb").close()
        if how == "tensorflow":
            raise tf.errors.ResourceExhaustedError(  # the real message's shape
                None, None, "{{function_node __wrapped__SaveV2_dtypes_11_device_/job:localhost/"
                f"replica:0/task:0/device:CPU:0}}}} {prefix}_temp/part-00000-of-00001.data-00000-of-00001.tempstate1; "
                "No space left on device\n\t[[{{node SaveV2}}]]")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), prefix + "_temp")

    monkeypatch.setattr(tf.train.Checkpoint, "_write", full_disk)
    with pytest.raises(checkpoints.CheckpointError) as e:
        loop.run_train_loop(train_step=_step(model, optimizer), iterator=_batches(),
                          checkpointer=ckpt, writers=summaries.SummaryWriters(workdir), num_steps=6,
                          checkpoint_every=2)
    message = str(e.value)
    assert "\n" not in message and "No space left on device" in message
    assert f"saving checkpoint {workdir}/checkpoints/ckpt-4 failed" in message
    assert re.search(r"failed \(\w+Error: No space left on device; [\d,]+ [KM]iB free there\)",
                     message) and message.count("ckpt-2") == 1
    assert f"last good checkpoint is {workdir}/checkpoints/ckpt-2." in message
    assert not glob.glob(os.path.join(workdir, "checkpoints", "*_temp*"))
    assert _ckpt_names(workdir) == ["ckpt-2"]
    monkeypatch.undo()  # space freed: the rerun resumes from ckpt-2
    model, optimizer = _dense()
    ckpt = checkpoints.Checkpointer(workdir, 10, model=model, optimizer=optimizer)
    assert ckpt.restore_latest() == 2
    assert loop.run_train_loop(train_step=_step(model, optimizer), iterator=_batches(),
                             checkpointer=ckpt, writers=summaries.SummaryWriters(workdir), num_steps=6,
                             checkpoint_every=2) == 6
    assert _ckpt_names(workdir) == ["ckpt-2", "ckpt-4", "ckpt-6"]
