"""The trainer interface every paper stage implements and the run that drives it.

* `Trainer` (trackables / replica_step / samples / optimizers): one paper stage.
* `start_run(config, workdir, paper=, stage=)`: seed, thread pools, precision policy, strategy and
  flags.txt (with its `# paper:` / `# stage:` lines) from the common flags, after taking the
  workdir's single-writer lock (`common.workdir_lock`; `train` releases it).
* `train(workdir, config, trainer, dataset)`: restore, hparams, then `run_train_loop` under the
  common flags; `side_by_side` (TensorBoard grid rows), `fuse_trainer_instance_norms`
  (`--fused_norm`).
"""
from __future__ import annotations

import os
from typing import Callable, Mapping

from absl import flags, logging
import keras
import tensorflow as tf

from common import keras_utils, workdir_lock
from common.cli import FLAGS_FILENAME, save_flags
from common.train.checkpoints import Checkpointer, parse_best_metric
from common.train.distribute import (get_strategy, is_chief, make_distributed_step,
                                     set_cpu_threads, set_precision, set_seed)
from common.train.errors import CheckpointError
from common.train.flags import lr_factor_fn, parse_profile_steps, validate_common_flags
from common.train.loop import run_train_loop
from common.train.summaries import SummaryWriters


class Trainer:
    """What `train` runs: one paper stage's networks, optimizers and step.

    A subclass builds its networks and optimizers in `__init__` under `strategy.scope()` (every
    optimizer built, so a checkpoint restores in place) and implements

    * `trackables()`: {name: network, optimizer, pool, ...}: what a checkpoint holds;
    * `replica_step(batch)`: one update on this replica's share of a global batch, returning
      {name: scalar tensor} (logged unchanged; losses go through `replica_loss`);
    * `samples(batch)`: {name: float images [B, H, W, 3] in [0, 1]}, TensorBoard image grids
      (a row of the batch: input | output | target side by side).

    The optimizers found in `trackables()` have their learning rate (and float16 loss scale)
    logged by `train`.
    """

    def __init__(self, config: flags.FlagValues, strategy: tf.distribute.Strategy | None = None):
        self.config = config
        self.strategy = strategy or tf.distribute.get_strategy()

    def trackables(self) -> dict:
        raise NotImplementedError

    def replica_step(self, batch: Mapping) -> Mapping[str, tf.Tensor]:
        raise NotImplementedError

    def samples(self, batch: Mapping) -> Mapping[str, tf.Tensor]:
        del batch
        return {}

    def optimizers(self) -> dict[str, keras.optimizers.Optimizer]:
        return {name: obj for name, obj in self.trackables().items()
                if isinstance(obj, keras.optimizers.Optimizer)}


def start_run(config: flags.FlagValues, workdir: str,
              validate: Callable[[flags.FlagValues], None] | None = None, *,
              paper: str | None = None, stage: str | None = None,
              ) -> tuple[tf.distribute.Strategy, str]:
    """The start every trainer shares: checks the common flags (`validate_common_flags`), seeds
    everything (`--seed`), sizes TensorFlow's thread pools (`--intra_op_threads`,
    `--inter_op_threads`), builds the strategy (`--strategy`, `--cpu_devices`), sets the precision
    policy (`--mixed_precision`), runs the trainer's own checks `validate(config)` (e.g. the crop
    against the images) and only then writes the resolved flags to `workdir/flags.txt`, so a bad
    value leaves nothing behind. `paper` / `stage` (e.g. "paper1", "srn": `common.papers`) go
    into flags.txt's `# paper:` / `# stage:` lines, which say what the workdir holds
    (`common.train.workdirs.workdir_kind`). The chief first takes the workdir's lock (`workdir_lock`:
    `WorkdirLocked` names the live process that holds it; `train` releases it at its end).
    Returns (strategy, resolved policy name)."""
    validate_common_flags(config)
    set_cpu_threads(config.intra_op_threads, config.inter_op_threads)
    set_seed(config.seed)
    strategy = get_strategy(config.strategy, config.cpu_devices)
    policy = set_precision(config.mixed_precision)
    if validate is not None:
        validate(config)
    if is_chief():  # one writer per workdir: a second launch is refused here, in one line
        workdir_lock.acquire(workdir)
        try:
            save_flags(config, workdir, paper=paper, stage=stage)
        except OSError as e:  # a full disk, a quota: one line naming the file
            workdir_lock.release(workdir)
            raise CheckpointError(
                f"cannot write {os.path.join(workdir, FLAGS_FILENAME)} ({e.strerror}; "
                f"{workdir_lock.free_space(workdir)}): free some space or use another "
                f"--workdir.") from None
    return strategy, policy


def side_by_side(*images) -> tf.Tensor:
    """Concatenates float images [B,H,W,C] along width, clipped to [0,1] (a TensorBoard grid row;
    one-channel images are repeated to three)."""
    rows = []
    for i in images:
        i = tf.cast(i, tf.float32)
        rows.append(tf.repeat(i, 3, axis=-1) if i.shape[-1] == 1 else i)
    return tf.clip_by_value(tf.concat(rows, axis=2), 0.0, 1.0)


def fuse_trainer_instance_norms(trainer: Trainer) -> int:
    """--fused_norm: every instance norm of the trainer's networks (the Keras models among
    `trainer.trackables()`) as one fused kernel (`keras_utils.fuse_instance_norms`); returns
    how many layers that covers (a layer shared by two models counts twice)."""
    return sum(keras_utils.fuse_instance_norms(m) for m in trainer.trackables().values()
               if isinstance(m, keras.Model))


def train(workdir: str, config: flags.FlagValues, trainer: Trainer, dataset, *,
          sample_batch: Mapping | None = None, eval_batch: Mapping | None = None,
          eval_fn: Callable[[int], Mapping[str, float]] | None = None,
          num_steps: int | None = None) -> int:
    """The loop every trainer shares; returns the final step.

    Restores `trainer.trackables()` from the newest checkpoint of `workdir`, writes the resolved
    flags as TensorBoard hparams, and runs `trainer.replica_step` on `strategy.run` over
    `dataset` (a tf.data.Dataset of global batches, a distributed dataset, or a function of the
    restored step returning either, for a seed that moves on at a resume) with
    `run_train_loop` under the common flags (`--num_steps` unless `num_steps` is given,
    intervals, time budget, `--profile_steps`). Image grids: `trainer.samples(sample_batch)` in
    the train writer every `--image_every` steps, `trainer.samples(eval_batch)` in the eval
    writer at each evaluation (`eval_fn(step)`: {name: scalar}). The chief holds the
    workdir's lock (`workdir_lock`, taken by `start_run` or here) until training ends.
    """
    chief = is_chief()
    if chief:  # held since start_run when it ran; released when training ends
        workdir_lock.acquire(workdir)
    try:
        return _train(workdir, config, trainer, dataset, sample_batch=sample_batch,
                      eval_batch=eval_batch, eval_fn=eval_fn, num_steps=num_steps)
    finally:
        if chief:
            workdir_lock.release(workdir)


def _train(workdir, config, trainer, dataset, *, sample_batch, eval_batch, eval_fn, num_steps):
    strategy = trainer.strategy
    if getattr(config, "fused_norm", False):
        n = fuse_trainer_instance_norms(trainer)
        if n:
            logging.info("--fused_norm: %d instance norms run as fused kernels", n)
    best_metric = getattr(config, "best_metric", "")
    if best_metric:
        parse_best_metric(best_metric)
        if eval_fn is None:
            raise ValueError(f"--best_metric={best_metric} needs an evaluation: this trainer "
                             f"evaluates only with its evaluation data flag (e.g. --eval_data)")
    checkpointer = Checkpointer(workdir, config.keep_checkpoints, best_metric=best_metric,
                                **trainer.trackables())
    start = checkpointer.restore_latest()
    if not start and getattr(config, "start_step", 0):
        start = int(config.start_step)
        checkpointer.step.assign(start)
        logging.info("No checkpoint in %s: counting from --start_step=%d", workdir, start)
    ds = dataset(start) if callable(dataset) else dataset
    if isinstance(ds, tf.data.Dataset):
        ds = strategy.experimental_distribute_dataset(ds)
    writers = SummaryWriters(workdir)
    try:
        writers.hparams(config)
        return run_train_loop(
            train_step=make_distributed_step(strategy, trainer.replica_step),
            iterator=iter(ds), checkpointer=checkpointer, writers=writers,
            num_steps=num_steps or config.num_steps, log_every=config.log_every,
            checkpoint_every=config.checkpoint_every, max_train_minutes=config.max_train_minutes,
            image_fn=None if sample_batch is None else (lambda s: trainer.samples(sample_batch)),
            image_every=config.image_every, eval_fn=eval_fn, eval_every=config.eval_every,
            eval_image_fn=None if eval_batch is None else (lambda s: trainer.samples(eval_batch)),
            save_on_signal=config.save_on_signal, optimizers=trainer.optimizers(),
            profile_steps=parse_profile_steps(config.profile_steps),
            profile_dir=os.path.join(workdir, "train"), lr_factor_fn=lr_factor_fn(config))
    finally:
        writers.close()
