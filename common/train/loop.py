"""The training loop under `common.train.trainer.train`.

`run_train_loop`: resume from the restored step, log scalars, steps/s, learning rates, the float16
loss scale (`optimizer_scalars`) and "step N/TOTAL ... ETA", images, a profiler trace
(`_Profiler`), the share of time spent waiting for data (`DataWaitMeter`), periodic evaluation,
checkpoints at intervals / on the time budget / at the end / on SIGTERM or SIGINT
(`--save_on_signal`, `_SignalFlag`, `TrainingInterrupted`), and a guard that stops on a
non-finite loss or non-finite weights without saving the bad state (`NonFiniteLossError` names
the last finite checkpoint).
"""
from __future__ import annotations

import math
import os
import signal
import threading
import time
from typing import Callable, Mapping

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from common.train.checkpoints import Checkpointer
from common.train.distribute import is_chief
from common.train.errors import NonFiniteLossError, TrainingInterrupted
from common.train.summaries import SummaryWriters


class _SignalFlag:
    """Within `with`, SIGTERM/SIGINT only set `.signum` (main thread only; restored on exit)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.signum = None
        self._old = {}

    def _handle(self, signum, frame):
        del frame
        if self.signum is not None:  # a second signal: stop now, without the checkpoint
            raise KeyboardInterrupt(f"second {signal.Signals(signum).name}")
        self.signum = signum

    def __enter__(self):
        if self.enabled:
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        return False


# Under mixed_float16 a step whose loss or gradients overflow is skipped by
# keras.optimizers.LossScaleOptimizer (weights untouched, scale halved). That many skips in a row
# (the scale has then fallen 2^20-fold) mean a real divergence, and the loop stops as in float32.
MAX_FLOAT16_SKIPS = 20


def _loss_scale_skips(skips_in_a_row: int) -> bool:
    """True when a non-finite step is a loss-scale skip to pass over, not a divergence."""
    return (keras.mixed_precision.global_policy().name == "mixed_float16"
            and skips_in_a_row < MAX_FLOAT16_SKIPS)


def optimizer_scalars(optimizers: Mapping[str, keras.optimizers.Optimizer]) -> dict[str, float]:
    """{"learning_rate/NAME": the rate the next update uses, "loss_scale/NAME": the dynamic loss
    scale of a float16 LossScaleOptimizer} of each optimizer (TensorBoard scalars)."""
    out = {}
    for name, opt in optimizers.items():
        out[f"learning_rate/{name}"] = float(np.asarray(opt.learning_rate))
        if isinstance(opt, keras.optimizers.LossScaleOptimizer):
            out[f"loss_scale/{name}"] = float(np.asarray(opt.dynamic_scale))
    return out


def _duration(seconds: float) -> str:
    seconds = int(round(max(seconds, 0.0)))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class _Profiler:
    """Records a TensorFlow profiler trace of steps first..last into `logdir` (chief only)."""

    def __init__(self, steps: tuple[int, int] | None, logdir: str):
        self.steps, self.logdir, self.active = steps, logdir, False

    def before(self, step: int) -> None:  # `step` is the step about to run (1-based)
        if self.steps and not self.active and self.steps[0] <= step <= self.steps[1] \
                and is_chief():
            tf.profiler.experimental.start(self.logdir)
            self.active = True

    def after(self, step: int) -> None:
        if self.active and step >= self.steps[1]:
            self.stop()

    def stop(self) -> None:
        if self.active:
            tf.profiler.experimental.stop()
            self.active = False
            logging.info("profiler trace of steps %d..%d written under %s (TensorBoard: Profile)",
                         self.steps[0], self.steps[1], self.logdir)
class DataWaitMeter:
    """Fraction of a training loop's wall time spent waiting in `next(iterator)` for data.

    `meter.next(it)` replaces `next(it)`; `fraction()` is waited / elapsed since the last
    `reset()` (0 = the input pipeline never made a step wait). `clock` is injectable for tests.
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter):
        self._clock = clock
        self.reset()

    def reset(self) -> None:
        self.waited, self.start = 0.0, self._clock()

    def next(self, iterator):
        t = self._clock()
        try:
            return next(iterator)
        finally:
            self.waited += self._clock() - t

    def fraction(self) -> float:
        elapsed = self._clock() - self.start
        return self.waited / elapsed if elapsed > 0 else 0.0


def run_train_loop(*, train_step: Callable[[Mapping], Mapping[str, tf.Tensor]],
                   iterator, checkpointer: Checkpointer, writers: SummaryWriters, num_steps: int,
                   log_every: int = 100, checkpoint_every: int = 1000,
                   max_train_minutes: float = 0.0,
                   image_fn: Callable[[int], Mapping[str, tf.Tensor]] | None = None,
                   image_every: int = 0,
                   eval_fn: Callable[[int], Mapping[str, float]] | None = None,
                   eval_every: int = 0, save_on_signal: bool = True,
                   eval_image_fn: Callable[[int], Mapping[str, tf.Tensor]] | None = None,
                   optimizers: Mapping[str, keras.optimizers.Optimizer] | None = None,
                   profile_steps: tuple[int, int] | None = None,
                   profile_dir: str | None = None,
                   lr_factor_fn: Callable[[int], float] | None = None) -> int:
    """Runs `train_step` from the checkpointer's step up to `num_steps`; returns the final step.

    * `train_step(batch)` returns a dict of scalar tensors (losses, confidences, ...), logged as the
      mean over each `log_every` window together with `steps_per_sec`, the learning rate of each
      of `optimizers` and, under float16, its loss scale (`optimizer_scalars`); the log line reads
      `step N/TOTAL (P%), S steps/s, ETA H:MM:SS: name=value, ...`; `data_wait_fraction` is the
      window's share of wall time spent waiting for the next batch (`DataWaitMeter`).
    * A non-finite value raises `NonFiniteLossError` before anything is saved, and every save
      first checks that the weights are finite (the update of the last step can break them while
      its loss, computed before the update, was finite): the newest checkpoint on disk is always
      the last finite state, and the error names it. Under mixed_float16 the loss scale has
      skipped that update instead: the loop moves on to the next batch without counting a step,
      and raises only after `MAX_FLOAT16_SKIPS` skips in a row.
    * `save_on_signal`: SIGTERM or SIGINT finishes the current step, saves a checkpoint and raises
      `TrainingInterrupted` (the handlers are restored afterwards).
    * Checkpoints: every `checkpoint_every` steps, when `max_train_minutes` runs out, when the
      iterator ends, and at `num_steps`. `eval_fn(step)` runs every `eval_every` steps and at the
      end; its dict goes to the eval writer, with `eval_image_fn(step)`'s {name: images}.
      `image_fn(step)` returns {name: images} for the train writer every `image_every` steps.
    * `profile_steps=(a, b)`: a profiler trace of steps a..b under `profile_dir`.
    * `lr_factor_fn(step)`: before each update, every optimizer of `optimizers` gets its rate at
      the start of this call (the flag's, `Checkpointer.restore_latest`) times this factor.
    """
    step = int(checkpointer.step.numpy())
    base_rates = {name: float(np.asarray(opt.learning_rate))
                  for name, opt in (optimizers or {}).items()} if lr_factor_fn else {}
    rates: dict[str, float] = {}
    if step >= num_steps:
        logging.info("Already at step %d >= --num_steps=%d: nothing to train.", step, num_steps)
        return step
    start = time.time()
    window_start, window_steps = time.time(), 0
    sums: dict[str, float] = {}
    last_saved = step
    first_step = step
    log_every = max(1, int(log_every))
    float16_skips = 0
    profiler = _Profiler(profile_steps, profile_dir or os.path.join(checkpointer.directory, ".."))
    data_wait = DataWaitMeter()

    def save():
        nonlocal last_saved
        if last_saved != step:
            checkpointer.save(step)
            last_saved = step

    def evaluate():
        results = eval_fn(step)
        writers.scalars("eval", step, results)
        try:
            checkpointer.save_if_best(results)
        except ValueError:
            save()  # lose no training to a wrong --best_metric
            raise
        if eval_image_fn is not None:
            for name, images in eval_image_fn(step).items():
                writers.images("eval", step, name, images)

    try:
        with _SignalFlag(save_on_signal) as signals:
            while step < num_steps:
                if signals.signum is not None:
                    save()
                    logging.warning("%s received at step %d: saved %s.",
                                    signal.Signals(signals.signum).name, step, checkpointer.latest)
                    raise TrainingInterrupted(signals.signum, step, checkpointer.latest)
                try:
                    batch = data_wait.next(iterator)
                except StopIteration:
                    logging.info("Training data ended at step %d.", step)
                    break
                profiler.before(step + 1)
                if base_rates:
                    factor = lr_factor_fn(step)
                    for name, rate in base_rates.items():
                        optimizers[name].learning_rate = rate * factor
                if (step + 1) % log_every == 0 or step + 1 == num_steps:
                    rates = {k: v for k, v in optimizer_scalars(optimizers or {}).items()
                             if k.startswith("learning_rate/")}  # the rates this step uses
                values = {k: float(v) for k, v in train_step(batch).items()}
                bad = sorted(k for k, v in values.items() if not math.isfinite(v))
                if bad and _loss_scale_skips(float16_skips):
                    # float16: the LossScaleOptimizer skipped this update and halved its scale.
                    float16_skips += 1
                    logging.warning("non-finite %s at step %d under mixed_float16: update skipped "
                                    "by the loss scale (%d in a row).", ", ".join(bad), step + 1,
                                    float16_skips)
                    continue
                float16_skips = 0
                if bad:
                    raise NonFiniteLossError(
                        f"non-finite {', '.join(bad)} at step {step + 1}; nothing was saved for "
                        f"this step, the last finite checkpoint is {checkpointer.latest}. Lower the "
                        f"learning rate or check the data, then rerun to resume from it.")
                step += 1
                profiler.after(step)
                checkpointer.step.assign(step)
                window_steps += 1
                for k, v in values.items():
                    sums[k] = sums.get(k, 0.0) + v
                if step % log_every == 0 or step == num_steps:
                    now = time.time()
                    rate = window_steps / max(now - window_start, 1e-9)
                    means = {k: v / window_steps for k, v in sums.items()}
                    means["steps_per_sec"] = rate
                    means["data_wait_fraction"] = data_wait.fraction()
                    means.update(optimizer_scalars(optimizers or {}))  # loss scale: after
                    means.update(rates)
                    writers.scalars("train", step, means)
                    overall = (step - first_step) / max(now - start, 1e-9)
                    eta = (num_steps - step) / max(overall, 1e-9)
                    if max_train_minutes:
                        eta = min(eta, 60.0 * max_train_minutes - (now - start))
                    logging.info("step %d/%d (%.0f%%), %.3g steps/s, ETA %s: %s", step, num_steps,
                                 100.0 * step / num_steps, rate, _duration(eta),
                                 ", ".join(f"{k}={v:.4g}" for k, v in sorted(means.items())
                                           if k != "steps_per_sec"))
                    sums, window_steps, window_start = {}, 0, time.time()
                    data_wait.reset()
                if image_fn is not None and image_every and step % image_every == 0:
                    for name, images in image_fn(step).items():
                        writers.images("train", step, name, images)
                if eval_fn is not None and eval_every and step % eval_every == 0:
                    evaluate()
                if checkpoint_every and step % checkpoint_every == 0:
                    save()
                if max_train_minutes and time.time() - start > 60.0 * max_train_minutes:
                    logging.info("--max_train_minutes=%g reached at step %d.", max_train_minutes,
                                 step)
                    break
            profiler.stop()
            save()
            if eval_fn is not None and not (eval_every and step % eval_every == 0):
                evaluate()
    finally:
        profiler.stop()
    return step
