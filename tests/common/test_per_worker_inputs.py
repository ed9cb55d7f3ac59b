"""Every trainer builds one input pipeline per worker
(`common.train.distribute.distribute_per_worker`): worker i of n reads shard (n, i) with its own
seed; one worker reads everything with --seed.
The sharding itself is tested in tests/common/test_multi_worker.py (two real workers, SRN) and
the pipeline tests; here the wiring of the other trainers, from their smoke flagfiles."""
import pytest

from common import cli, pipeline
from common.train import distribute


class _Captured(Exception):
  pass


def _capture(monkeypatch):
  """Stops train_and_evaluate at its distribute_per_worker call and returns the dataset fn."""
  box = {}

  def fake(strategy, global_batch, make_dataset):
    box.update(fn=make_dataset, batch=global_batch)
    raise _Captured()
  # reseeded_dataset looks it up in its own module
  monkeypatch.setattr(distribute, "distribute_per_worker", fake)
  calls = []
  real = pipeline.make_dataset

  def recording(*args, **kwargs):
    calls.append({"batch": args[1] if len(args) > 1 else kwargs.get("batch_size"),
                  "seed": kwargs.get("seed"), "shard": kwargs.get("shard")})
    return real(*args, **kwargs)
  monkeypatch.setattr(pipeline, "make_dataset", recording)
  return box, calls


def _paper2_hg(workdir):
  from paper2_identity_cgan import train
  cfg = cli.parse_flags([train.define_flags], [
      "prog", "--flagfile=paper2_identity_cgan/configs/smoke.flags", "--stage=hg",
      f"--workdir={workdir}", "--seed=5"])
  return train.train_and_evaluate, cfg


def _paper3_sn_clean(workdir):
  from paper3_umsn import train
  cfg = cli.parse_flags([train.define_flags], [
      "prog", "--flagfile=paper3_umsn/configs/smoke.flags", "--stage=sn_clean",
      f"--workdir={workdir}", "--seed=5"])
  return train.train_and_evaluate, cfg


def _paper1_cyclegan(workdir):
  from paper1_cyclegan_srn import train_cyclegan
  cfg = cli.parse_flags([train_cyclegan.define_flags], [
      "prog", "--flagfile=paper1_cyclegan_srn/configs/smoke_cyclegan.flags",
      f"--workdir={workdir}", "--seed=5"])
  return train_cyclegan.train_and_evaluate, cfg


@pytest.mark.parametrize("make", [_paper2_hg, _paper3_sn_clean, _paper1_cyclegan],
                         ids=["paper2_hg", "paper3_sn", "paper1_cyclegan"])
def test_trainer_builds_one_sharded_seeded_pipeline_per_worker(make, tmp_path, monkeypatch):
  box, calls = _capture(monkeypatch)
  train_and_evaluate, cfg = make(str(tmp_path / "w"))
  with pytest.raises(_Captured):
    train_and_evaluate(str(tmp_path / "w"), cfg)
  assert box["batch"] == cfg.batch_size
  per_pipeline = {}
  for pid, n in ((0, 1), (0, 2), (1, 2)):
    del calls[:]
    box["fn"](1, pid, n)
    assert calls, "the worker's dataset fn did not call make_dataset"
    assert all(c["batch"] == 1 for c in calls)    # the per-replica batch it was given
    per_pipeline[(pid, n)] = calls[:]
  # one worker: the whole data with --seed (as a single-machine run); cyclegan's second domain
  # keeps its usual seed + 1
  assert all(c["shard"] is None for c in per_pipeline[(0, 1)])
  assert per_pipeline[(0, 1)][0]["seed"] == 5
  # two workers: shard i of 2, and seeds that differ between the workers
  for pid in (0, 1):
    assert all(c["shard"] == (2, pid) for c in per_pipeline[(pid, 2)])
  seeds0 = {c["seed"] for c in per_pipeline[(0, 2)]}
  seeds1 = {c["seed"] for c in per_pipeline[(1, 2)]}
  assert not seeds0 & seeds1
