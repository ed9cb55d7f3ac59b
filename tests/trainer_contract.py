"""Helpers for the trainer-contract tests (issue 33, item 5): every paper's trainer hands
`common.train.trainer.train` a dataset that reseeds at a resume, and an eval_fn with the common
scalars."""
import numpy as np
import tensorflow as tf

from common import workdir_lock
from common.train import trainer as training


def capture_train(monkeypatch, train_and_evaluate, workdir, config):
    """Runs `train_and_evaluate(workdir, config)` with `common.train.trainer.train` replaced by a
    stub (the trainers call it as `training.train`); returns what the trainer passed it:
    {"dataset": ..., "eval_fn": ..., ...}."""
    seen = {}

    def fake_train(wd, cfg, trainer, dataset, **kwargs):
        seen.update(kwargs, dataset=dataset, trainer=trainer)
        workdir_lock.release(wd)  # taken by start_run; the real train releases it at its end
        return 0
    monkeypatch.setattr(training, "train", fake_train)
    train_and_evaluate(workdir, config)
    return seen


def first_batch(dataset, start):
    """The first global batch of `dataset(start)` as {key: np.ndarray}."""
    batch = next(iter(dataset(start)))
    return {k: np.asarray(tf.convert_to_tensor(v)) for k, v in batch.items()}


def assert_resume_draws_new_batches(dataset):
    """dataset(0) twice gives one batch (seeded); dataset(start > 0) a different one."""
    a, again, resumed = first_batch(dataset, 0), first_batch(dataset, 0), first_batch(dataset, 5)
    assert sorted(a) == sorted(resumed)
    for k in a:
        np.testing.assert_array_equal(a[k], again[k])
    assert any(not np.array_equal(a[k], resumed[k]) for k in a), \
        "a resumed run replays the batches of its first run"
