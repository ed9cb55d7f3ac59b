"""MultiWorkerMirroredStrategy on CPU: two local worker processes (TF_CONFIG, localhost ports)
train two steps of paper 1's SRN stage through its real trainer. Checks: identical weights on
both workers, only the chief writes checkpoints / events / flags.txt, and each worker reads its
own shard of the records (distribute_datasets_from_function, per-worker seeds).
~30-40 s wall on the 2 shared cores (two TensorFlow processes)."""
import glob
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from common import tfrecord
from common.train import distribute

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _records(folder):
    """Two shards of 4 pairs each: shard 0 holds dark faces (40), shard 1 bright ones (200)."""
    rng = np.random.default_rng(0)
    for index, level in enumerate((40, 200)):
        examples = []
        for _ in range(4):
            sharp = np.clip(level + rng.integers(-10, 10, (40, 40, 3)), 0, 255).astype(np.uint8)
            examples.append(tfrecord.make_example(sharp=sharp, blurred=sharp))
        tfrecord.write_shard(os.path.join(folder, tfrecord.shard_name("train", index, 2)), examples)
    return os.path.join(folder, "train-*.tfrecord")


def test_is_chief_reads_tf_config():
    worker = lambda t, i, chief=False: json.dumps(  # noqa: E731
        {"cluster": {"worker": ["a:1", "b:2"], **({"chief": ["c:3"]} if chief else {})},
         "task": {"type": t, "index": i}})
    assert distribute.is_chief("") and distribute.is_chief(json.dumps({"cluster": {}, "task": {}}))
    assert distribute.is_chief(worker("worker", 0)) and not distribute.is_chief(worker("worker", 1))
    assert not distribute.is_chief(worker("worker", 0, chief=True)) and distribute.is_chief(worker("chief", 0, True))
    with pytest.raises(ValueError, match="TF_CONFIG is not JSON"):
        distribute.is_chief("{worker")


def test_two_workers_train_in_sync_and_only_the_chief_writes(tmp_path):
    pattern = _records(str(tmp_path))
    workdir = str(tmp_path / "srn")
    ports = _free_ports(2)
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    procs = []
    for index in range(2):
        env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="",
                   TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker",
                                                                      "index": index}}))
        cmd = [sys.executable, os.path.join(REPO, "tests", "common", "multi_worker_harness.py"),
               str(tmp_path / f"worker{index}.npz"),
               "--flagfile=paper1_cyclegan_srn/configs/smoke_srn.flags",
               f"--workdir={workdir}", f"--train_data={pattern}", "--eval_data=",
               "--blur_kernels=", "--resize=", "--crop_size=32", "--batch_size=4", "--num_steps=2",
               "--strategy=multi_worker", "--image_every=0", "--eval_every=0",
               "--checkpoint_every=1", "--log_every=1"]
        procs.append(subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    outputs = []
    for p in procs:
        try:
            out, _ = p.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
        outputs.append(out)
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out[-3000:]
    r0, r1 = (np.load(tmp_path / f"worker{i}.npz") for i in range(2))
    assert int(r0["step"]) == int(r1["step"]) == 2
    assert bool(r0["chief"]) and not bool(r1["chief"])
    # one replica per worker: the global batch of 4 is 2 per worker
    assert int(r0["per_replica_batch"]) == int(r1["per_replica_batch"]) == 2
    # different shards (dark vs bright records) and different seeds
    assert (int(r0["num_shards"]), int(r0["shard_index"])) == (2, 0)
    assert (int(r1["num_shards"]), int(r1["shard_index"])) == (2, 1)
    assert float(r0["first_batch_mean"]) < 0.25 < 0.7 < float(r1["first_batch_mean"])
    assert int(r0["seed"]) != int(r1["seed"])
    # identical weights after two synchronous steps
    names = sorted(k for k in r0.files if k.startswith("w"))
    assert names and names == sorted(k for k in r1.files if k.startswith("w"))
    for k in names:
        np.testing.assert_array_equal(r0[k], r1[k])
    # only the chief wrote: one events file per writer, named with the chief's process id
    for split in ("train", "eval"):
        events = glob.glob(os.path.join(workdir, split, "events.out.tfevents.*"))
        assert len(events) == 1 and f".{int(r0['pid'])}." in os.path.basename(events[0])
    assert sorted(os.listdir(workdir)) == ["checkpoints", "eval", "flags.txt", "train"]
    index_files = sorted(os.path.basename(p)
                         for p in glob.glob(os.path.join(workdir, "checkpoints", "*.index")))
    assert index_files == ["ckpt-1.index", "ckpt-2.index"]
