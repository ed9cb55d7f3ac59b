"""One worker of tests/common/test_multi_worker.py (run as a subprocess with TF_CONFIG set).

    python tests/common/multi_worker_harness.py RESULT.npz --flagfile=... --workdir=...

Trains paper 1's SRN stage through its real `train_and_evaluate` with --strategy=multi_worker,
recording what this worker's input pipeline was built with and the mean of its first batch, then
writes the final weights and those records to RESULT.npz.
"""
import os
import sys

import numpy as np

from common import cli
from common.train import distribute
from paper1_cyclegan_srn import train_srn


def main(result_path, argv):
    seen = []
    original = train_srn.make_train_dataset

    def recording(config, seed=None, batch_size=None, shard=None):
        ds = original(config, seed=seed, batch_size=batch_size, shard=shard)
        first = next(iter(ds))
        seen.append((shard, seed, batch_size, float(np.mean(first["sharp"].numpy()))))
        return ds

    train_srn.make_train_dataset = recording
    trainer_holder = {}
    original_trainer = train_srn.SRNTrainer

    class Recorded(original_trainer):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            trainer_holder["t"] = self

    train_srn.SRNTrainer = Recorded
    config = cli.parse_flags([train_srn.define_flags], ["prog", *argv])
    step = train_srn.train_and_evaluate(config.workdir, config)
    model = trainer_holder["t"].model
    weights = {f"w{i}": np.asarray(v.numpy()) for i, v in enumerate(model.weights)}
    (shard, seed, batch, mean), = seen
    np.savez(result_path, step=step, chief=distribute.is_chief(), pid=os.getpid(),
             num_shards=shard[0],
             shard_index=shard[1], seed=seed, per_replica_batch=batch, first_batch_mean=mean,
             **weights)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
