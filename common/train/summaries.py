"""TensorBoard summaries of a run: `SummaryWriters` under `workdir/train` and `workdir/eval`
(scalars, image grids, the resolved flags as hparams)."""
from __future__ import annotations

import os
from typing import Mapping

from absl import flags
import tensorflow as tf

from common.cli import own_flags
from common.train.distribute import is_chief


class SummaryWriters:
    """TensorBoard writers under `workdir/train` and `workdir/eval` (no-op writers on a
    non-chief worker, see `is_chief`)."""

    def __init__(self, workdir: str):
        if not is_chief():
            self.train = self.eval = tf.summary.create_noop_writer()
            return
        self.train = tf.summary.create_file_writer(os.path.join(workdir, "train"))
        self.eval = tf.summary.create_file_writer(os.path.join(workdir, "eval"))

    def _writer(self, split: str):
        if split not in ("train", "eval"):
            raise ValueError(f"split must be 'train' or 'eval', got {split!r}")
        return getattr(self, split)

    def scalars(self, split: str, step: int, values: Mapping[str, float]) -> None:
        with self._writer(split).as_default():
            for name, value in values.items():
                tf.summary.scalar(name, float(value), step=int(step))
        self._writer(split).flush()

    def images(self, split: str, step: int, name: str, images, max_outputs: int = 4) -> None:
        """Writes float images [B,H,W,3] in [0, 1] (clipped) as a TensorBoard image summary."""
        images = tf.clip_by_value(tf.cast(images, tf.float32), 0.0, 1.0)
        with self._writer(split).as_default():
            tf.summary.image(name, images, step=int(step), max_outputs=max_outputs)
        self._writer(split).flush()

    def hparams(self, config: flags.FlagValues) -> dict:
        """Writes the run's resolved flags (this project's, `flags.txt`'s) as TensorBoard hparams
        (the HPARAMS tab: compare runs by `--ablation`, `--learning_rate`, ...); returns them."""
        from tensorboard.plugins.hparams import api as hp  # pylint: disable=import-outside-toplevel
        values = {}
        for flag in own_flags(config):
            value = flag.value
            if value is None:
                continue
            if isinstance(value, (list, tuple)):
                value = ",".join(str(v) for v in value)
            if not isinstance(value, (bool, int, float, str)):
                value = str(value)
            values[flag.name] = value
        with self.train.as_default():
            hp.hparams(values)
        self.train.flush()
        return values

    def close(self) -> None:
        self.train.close()
        self.eval.close()
