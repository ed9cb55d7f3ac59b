"""A seconds-long trainer on `common.train_utils` (one Dense layer), run as a subprocess by
tests/common/test_reliability.py to check what a real process does on SIGTERM/SIGINT and on bad
flags: `python -m tests.common.toy_trainer --workdir=W [common flags]`. Each step sleeps 20 ms so
a signal lands between steps while the test watches the log."""
import time

import keras
import numpy as np
import tensorflow as tf

from common import train_utils as tu


def train_and_evaluate(workdir, config):
    tu.start_run(config, workdir)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    optimizer = tu.make_optimizer(1e-2)
    optimizer.build(model.trainable_variables)
    checkpointer = tu.Checkpointer(workdir, config.keep_checkpoints, model=model,
                                   optimizer=optimizer)
    checkpointer.restore_latest()

    def step(batch):
        time.sleep(0.02)
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((model(batch) - 1.0) ** 2)
        optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
        return {"loss": loss}

    def batches():
        while True:
            yield np.ones((config.batch_size, 2), np.float32)

    writers = tu.SummaryWriters(workdir)
    final = tu.run_train_loop(train_step=step, iterator=batches(), checkpointer=checkpointer,
                              writers=writers, **tu.loop_intervals(config))
    writers.close()
    return final


if __name__ == "__main__":
    tu.run_main(train_and_evaluate, tu.define_common_flags)
