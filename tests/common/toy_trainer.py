"""A seconds-long trainer on `common.train` (one Dense layer), run as a subprocess by
tests/common/test_reliability.py to check what a real process does on SIGTERM/SIGINT and on bad
flags: `python -m tests.common.toy_trainer --workdir=W [common flags]`. Each step sleeps 20 ms so
a signal lands between steps while the test watches the log."""
import time

import keras
import numpy as np
import tensorflow as tf

from common import cli
from common.train import distribute, flags as train_flags, trainer as training


class ToyTrainer(training.Trainer):
    def __init__(self, config, strategy=None):
        super().__init__(config, strategy)
        self.model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        self.optimizer = distribute.make_optimizer(1e-2)
        self.optimizer.build(self.model.trainable_variables)

    def trackables(self):
        return {"model": self.model, "optimizer": self.optimizer}

    def replica_step(self, batch):
        tf.py_function(lambda: time.sleep(0.02), [], [])
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((self.model(batch) - 1.0) ** 2)
        grads = tape.gradient(loss, self.model.trainable_variables)
        self.optimizer.apply(grads, self.model.trainable_variables)
        return {"loss": loss}


def train_and_evaluate(workdir, config):
    strategy, _ = training.start_run(config, workdir)
    data = tf.data.Dataset.from_tensors(np.ones((config.batch_size, 2), np.float32)).repeat()
    return training.train(workdir, config, ToyTrainer(config, strategy), data)


if __name__ == "__main__":
    cli.run_main(train_and_evaluate, train_flags.define_common_flags)
