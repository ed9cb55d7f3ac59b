"""Checkpoints: saving and resuming a run, keeping its best state, restoring for evaluation.

* `Checkpointer`: `tf.train.CheckpointManager` over (step, models, optimizers, ...) under
  `workdir/checkpoints`, restore-latest (an unreadable newest checkpoint falls back to the
  previous one with a warning; checkpoint files without their index are an error), a save that
  refuses non-finite weights, and the `--best_metric` checkpoint in `workdir/best`
  (`parse_best_metric`, `read_best`); `check_checkpoint_reaches` (every Keras variable reachable).
* `checkpoint_path` (an export/evaluate CLI's --checkpoint), `restore_for_eval`.
* `restore_init` (the restore behind every init flag, `--init_sn`, `--hg_workdir`, ..., which fails
  naming the flag and what the workdir holds), `load_init_model` / `copy_init_weights` (an
  exported `.keras` init model).
* `CheckpointError` (from `common.train.errors`).
"""
from __future__ import annotations

import glob
import json
import math
import os
import re
import shutil
import tempfile
from typing import Mapping, Sequence

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from common import image_io, workdir_lock
from common.train.distribute import is_chief
from common.train.errors import CheckpointError, NonFiniteLossError
from common.train.workdirs import check_workdir_kind, describe_workdir, stage_word, workdir_of


def check_checkpoint_reaches(checkpoint: tf.train.Checkpoint, trackables: Mapping) -> None:
    """Raises if a Keras layer's variables are not all reachable from `checkpoint`.

    Keras 3 layers keep sublayers held in plain Python lists or dicts out of TensorFlow's object
    graph, so `tf.train.Checkpoint` silently skips their variables (trainable ones survive only
    through an optimizer's slots; batch-norm statistics, and every weight of a model restored for
    evaluation, are lost). Assign each sublayer to its own attribute instead.
    """
    reachable = {id(obj) for obj in tf.train.TrackableView(checkpoint).descendants()}
    for name, obj in trackables.items():
        if not isinstance(obj, keras.layers.Layer):
            continue
        missing = [v.path for v in obj.variables if id(v) not in reachable]
        if missing:
            raise ValueError(
                f"{len(missing)} of {len(obj.variables)} variables of {name!r} "
                f"({type(obj).__name__}) are not reachable by tf.train.Checkpoint and would not be "
                f"saved or restored, e.g. {missing[:3]}. Keras 3 does not track layers kept in "
                f"Python lists/dicts for TensorFlow checkpoints: assign each sublayer to an "
                f"attribute (setattr(self, f'block_{{i}}', layer)).")


class Checkpointer:
    """`tf.train.Checkpoint(step, **trackables)` managed under `workdir/checkpoints`.

    Build every model and optimizer (`optimizer.build(model.trainable_variables)`) before
    `restore_latest()`, so their variables exist and are restored in place. Saving or restoring
    checks that every variable of every Keras model is reachable (see `check_checkpoint_reaches`).

    Multi-worker: every worker restores from `workdir/checkpoints` and takes part in each save
    (saving mirrored variables is collective), but only the chief (`is_chief`) writes there; the
    others write to a private temporary folder that is deleted after each save.
    """

    def __init__(self, workdir: str, max_to_keep: int = 3, *, best_metric: str = "",
                 **trackables):
        self.directory = os.path.join(workdir, "checkpoints")
        self.best_directory = os.path.join(workdir, BEST_DIR)
        self.best_metric = best_metric or ""
        self._best_manager = None
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self._trackables = trackables
        self.checkpoint = tf.train.Checkpoint(step=self.step, **trackables)
        self.chief = is_chief()
        self._write_dir = self.directory if self.chief else tempfile.mkdtemp(prefix="ckpt_worker_")
        self.manager = tf.train.CheckpointManager(self.checkpoint, self._write_dir,
                                                  max_to_keep=max_to_keep)

    def restore_latest(self) -> int:
        """Restores the newest readable checkpoint if there is one; returns the step to resume from.

        * No checkpoint: returns 0 (a fresh run).
        * Checkpoint files (`ckpt-N.index`) but no `checkpoints/checkpoint` index file: raises
          `CheckpointError` (never a silent restart at step 0 beside old checkpoints).
        * The newest checkpoint is unreadable (truncated, corrupt): a warning names its files and
          the next older one is restored; if none can be read, `CheckpointError` names them all.
        * A checkpoint that reads but does not match this run's networks (another paper, stage or
          variant): `CheckpointError` saying what the workdir holds (`describe_workdir`).
        """
        check_checkpoint_reaches(self.checkpoint, self._trackables)
        # Newest first, from the index file (a non-chief worker restores what the chief wrote),
        # not `manager.checkpoints`: that leaves out entries without timestamps, which an index
        # written by hand (as the error below advises) or copied from a committed run has.
        state = tf.train.get_checkpoint_state(self.directory)
        paths = []
        if state:
            paths = list(state.all_model_checkpoint_paths) or [state.model_checkpoint_path]
        candidates = [os.path.join(self.directory, os.path.basename(p)) for p in reversed(paths) if p]
        if not candidates:
            orphans = _checkpoint_prefixes(self.directory)
            if orphans:
                newest = os.path.basename(orphans[-1])
                raise CheckpointError(
                    f"{os.path.join(self.directory, 'checkpoint')} (the index file) is missing but "
                    f"{len(orphans)} checkpoint(s) are there, the newest {newest}: refusing to "
                    f"restart at step 0 beside them. To resume, recreate the index: echo "
                    f"'model_checkpoint_path: \"{newest}\"' > "
                    f"{os.path.join(self.directory, 'checkpoint')}; to start over, move "
                    f"{self.directory} away.")
            return 0
        failures = []
        rates = self._flag_learning_rates()
        for path in candidates:
            try:
                self.checkpoint.restore(path).assert_existing_objects_matched()
            except AssertionError as e:
                workdir = os.path.dirname(self.directory)
                raise CheckpointError(
                    f"{path} does not match this run's networks ({_first_line(e)}); "
                    f"{workdir} holds {describe_workdir(workdir)}: is --workdir the workdir of "
                    f"another paper, stage or variant? Use a fresh --workdir.") from None
            except Exception as e:  # noqa: BLE001 - unreadable: try the next older one
                failures.append(f"{path} ({type(e).__name__}: {_first_line(e)})")
                logging.warning("checkpoint %s (files %s.index, %s.data-*) cannot be read "
                                "(%s: %s); trying the previous one.", path, path, path,
                                type(e).__name__, _first_line(e))
                continue
            if failures:
                logging.warning("Restored the older checkpoint %s instead of the unreadable %s.",
                                path, "; ".join(failures))
            logging.info("Restored %s (step %d)", path, int(self.step.numpy()))
            self._keep_flag_learning_rates(rates)
            return int(self.step.numpy())
        raise CheckpointError(
            f"no checkpoint under {self.directory} can be read: {'; '.join(failures)}. Move the "
            f"unreadable ckpt-N.* files away to fall back further, or the whole folder to start "
            f"over.")

    def _flag_learning_rates(self) -> dict:
        """{name: (optimizer, rate)} of the optimizers whose learning rate is a constant (a Keras
        variable, which checkpoints save): the rate the run was started with."""
        out = {}
        for name, obj in self._trackables.items():
            if isinstance(obj, keras.optimizers.Optimizer) and isinstance(
                    getattr(obj, "_learning_rate", None), keras.Variable):
                out[name] = (obj, float(np.asarray(obj.learning_rate)))
        return out

    @staticmethod
    def _keep_flag_learning_rates(rates: dict) -> None:
        """A restore brings back the saved learning rate; the run's own (its flags) wins, so a
        restart after a non-finite step with a lower --learning_rate really uses it."""
        for name, (opt, rate) in rates.items():
            saved = float(np.asarray(opt.learning_rate))
            if saved != rate:
                logging.info("%s: learning rate %g from the flags replaces the checkpoint's %g",
                             name, rate, saved)
                opt.learning_rate = rate

    def save(self, step: int | None = None) -> str:
        """Saves a checkpoint at `step` (default: the current one) after checking that every
        floating-point variable is finite: raises `NonFiniteLossError` instead of saving broken
        weights, so the newest checkpoint on disk is always the last finite state."""
        check_checkpoint_reaches(self.checkpoint, self._trackables)
        if step is not None:
            self.step.assign(int(step))
        bad, total = self.non_finite_variables()
        if bad:
            raise NonFiniteLossError(
                f"{len(bad)} of {total} weight tensors are non-finite after step "
                f"{int(self.step.numpy())} (e.g. {', '.join(bad[:3])}); not saved: the last "
                f"finite checkpoint is {self.latest}. Lower the learning rate (or check the data) "
                f"and rerun the same command to resume from it.")
        try:
            path = self.manager.save(checkpoint_number=int(self.step.numpy()))
        except (OSError, tf.errors.OpError) as e:  # disk full, quota, I/O error: one line
            raise self._save_failed(int(self.step.numpy()), e) from None
        if not self.chief:  # a non-chief worker's copy: written (collectives), then dropped
            shutil.rmtree(self._write_dir, ignore_errors=True)
            os.makedirs(self._write_dir, exist_ok=True)
            return os.path.join(self.directory, os.path.basename(path))
        return path

    def _save_failed(self, number: int, error: BaseException) -> "CheckpointError":
        """Removes what the failed save of ckpt-`number` left (TensorFlow's `ckpt-N_temp*`
        folders, a partial `ckpt-N.*`) and returns the one-line error: the path, the reason,
        the free space there and the last good checkpoint."""
        prefix = os.path.join(self._write_dir, f"ckpt-{number}")
        kept = set(self.manager.checkpoints)
        for leftover in glob.glob(prefix + "_temp*") + glob.glob(prefix + ".*"):
            if prefix in kept and not leftover.startswith(prefix + "_temp"):
                continue  # an older save of the same number that the index still lists
            if os.path.isdir(leftover):
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                try:
                    os.remove(leftover)
                except OSError:
                    pass
        if isinstance(error, tf.errors.OpError):  # "{{function_node ...}} PATH; No space left"
            text = re.sub(r"^\{\{function_node [^}]*\}\}\s*", "", error.message or str(error))
            text = text.strip().splitlines()[0] if text.strip() else type(error).__name__
            reason = _first_line(text.rsplit("; ", 1)[-1], 200)
        else:
            reason = error.strerror or _first_line(error, 200)
        free = workdir_lock.free_space(self._write_dir)
        return CheckpointError(
            f"saving checkpoint {prefix} failed ({type(error).__name__}: {reason}; {free}); "
            f"nothing of it was kept, the last good checkpoint is {self.latest}. Free some "
            f"space (or fix the folder) and rerun the same command to resume from it.")

    def non_finite_variables(self) -> tuple[list[str], int]:
        """(names of the floating-point variables holding NaN/inf, number of float variables)."""
        bad, total, seen = [], 0, set()
        for obj in tf.train.TrackableView(self.checkpoint).descendants():
            if not isinstance(obj, (tf.Variable, keras.Variable)) or id(obj) in seen:
                continue
            seen.add(id(obj))
            if not tf.as_dtype(obj.dtype).is_floating:
                continue
            total += 1
            if not bool(tf.reduce_all(tf.math.is_finite(tf.convert_to_tensor(obj)))):
                bad.append(getattr(obj, "path", None) or obj.name)
        return bad, total

    @property
    def latest(self) -> str | None:
        return tf.train.latest_checkpoint(self.directory)

    def best_record(self) -> dict | None:
        """WORKDIR/best/best.json ({"metric", "value", "step", "checkpoint"}), or None."""
        return read_best(os.path.dirname(self.directory))

    def save_if_best(self, results: Mapping[str, float]) -> bool:
        """With `best_metric` set: saves the current state to WORKDIR/best (one checkpoint) when
        `results[name]` beats the best so far (best.json, so a resumed run keeps comparing with
        it); returns whether it saved. `-name` minimises. Raises a one-line ValueError naming the
        available scalars when `results` has no such name."""
        if not self.best_metric:
            return False
        name, sign = parse_best_metric(self.best_metric)
        if name not in results:
            raise ValueError(f"--best_metric={self.best_metric}: the evaluation has no scalar "
                             f"{name!r}; it has {', '.join(sorted(results))}")
        value = float(results[name])
        best = self.best_record()
        if not math.isfinite(value) or (
                best is not None and best.get("metric") == self.best_metric
                and sign * value <= sign * float(best["value"])):
            return False
        if self._best_manager is None:
            write_dir = self.best_directory if self.chief else tempfile.mkdtemp(prefix="best_worker_")
            self._best_manager = tf.train.CheckpointManager(self.checkpoint, write_dir, max_to_keep=1)
        path = self._best_manager.save(checkpoint_number=int(self.step.numpy()))
        if not self.chief:
            shutil.rmtree(self._best_manager.directory, ignore_errors=True)
            os.makedirs(self._best_manager.directory, exist_ok=True)
            return True
        record = {"metric": self.best_metric, "value": value, "step": int(self.step.numpy()),
                  "checkpoint": os.path.basename(path)}
        image_io.atomic_write(os.path.join(self.best_directory, BEST_JSON),
                              json.dumps(record, indent=1))
        logging.info("best %s so far: %.6g at step %d -> %s", self.best_metric, value,
                     record["step"], path)
        return True


BEST_DIR = "best"
BEST_JSON = "best.json"


def parse_best_metric(spec: str) -> tuple[str, int]:
    """--best_metric: "psnr" -> ("psnr", +1) (maximise); "-loss" -> ("loss", -1) (minimise)."""
    spec = (spec or "").strip()
    sign = -1 if spec.startswith("-") else 1
    name = spec.lstrip("-+")
    if not name:
        raise ValueError(f"--best_metric={spec!r}: give an evaluation scalar, e.g. psnr or -loss")
    return name, sign


def read_best(workdir: str) -> dict | None:
    """WORKDIR/best/best.json written by a run with --best_metric, or None."""
    path = os.path.join(workdir, BEST_DIR, BEST_JSON)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def checkpoint_path(workdir: str, checkpoint: str | None = None) -> str:
    """What `restore_for_eval` should read for a --checkpoint flag of an export/evaluate CLI:
    empty or "latest": the workdir (its newest checkpoint); "best": WORKDIR/best (the checkpoint
    kept by --best_metric); anything else: a checkpoint prefix (WORKDIR/checkpoints/ckpt-N)."""
    if not checkpoint or checkpoint == "latest":
        return workdir
    if checkpoint == "best":
        best = os.path.join(workdir, BEST_DIR)
        if read_best(workdir) is None or tf.train.latest_checkpoint(best) is None:
            raise FileNotFoundError(
                f"--checkpoint=best: {best} holds no best checkpoint; train with --best_metric "
                f"(and evaluation data) to keep one, or pass --checkpoint=latest")
        return best
    return checkpoint


def _first_line(e: BaseException, limit: int = 300) -> str:
    text = str(e).strip().splitlines()
    line = text[0] if text else type(e).__name__
    return line if len(line) <= limit else line[:limit] + "..."


def _checkpoint_prefixes(directory: str) -> list[str]:
    """`directory/ckpt-N` prefixes that have an `.index` file, oldest (smallest N) first."""
    found = []
    for index in glob.glob(os.path.join(directory, "*.index")):
        m = re.search(r"-(\d+)\.index$", index)
        found.append((int(m.group(1)) if m else -1, index[:-len(".index")]))
    return [p for _, p in sorted(found)]


def load_init_model(path: str, model_class: type, what: str, export_cmd: str,
                    flag: str = "--init_model"):
    """The exported model named by an init flag: a `model_class` `.keras` file (its package
    imported by the caller), or a one-line error naming the flag."""
    from common import inference  # pylint: disable=import-outside-toplevel
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{flag}={path}: no such file (give an exported .keras file: "
                                f"{export_cmd} writes one)")
    model = inference.load_keras(path)
    if not isinstance(model, model_class):
        raise ValueError(f"{flag}={path} holds a {type(model).__name__}, not {what} "
                         f"({export_cmd} writes one)")
    return model


def copy_init_weights(src, dst, path: str, settings: str, flag: str = "--init_model",
                      widen_last_axis: bool = False) -> None:
    """Copies the weights of network `src` (of an init model) into the built network `dst`, or a
    one-line error naming the flag and the `settings` (flags) that shape the network.

    ``widen_last_axis``: `dst` may have more entries on a weight's last axis than `src` (the
    input channels of a transposed convolution's [kh, kw, out, in] kernel that gained a
    concatenated input); the `src` values fill the leading part and the rest is zero, so the
    function is unchanged when the added inputs are appended after the old ones.
    """
    src_w, dst_w = src.get_weights(), dst.get_weights()

    def fits(a, b):
        if a.shape == b.shape:
            return True
        return (widen_last_axis and a.ndim == b.ndim and a.shape[:-1] == b.shape[:-1]
                and a.shape[-1] < b.shape[-1])

    if len(src_w) != len(dst_w) or not all(fits(a, b) for a, b in zip(src_w, dst_w)):
        raise ValueError(f"{flag}={path} does not match {settings} (different weight shapes)")
    dst.set_weights([np.pad(a, [(0, 0)] * (a.ndim - 1) + [(0, b.shape[-1] - a.shape[-1])])
                     for a, b in zip(src_w, dst_w)])


def restore_init(path: str | None, flag: str, *, paper: str, stages: Sequence[str],
                 **trackables) -> str:
    """Restores networks from an earlier run for an init flag (`--init_sn`, `--hg_workdir`, ...).

    Checks the workdir's kind (`check_workdir_kind`), then restores with
    `expect_partial().assert_existing_objects_matched()`: every variable of `trackables` must come
    from the checkpoint, else a ValueError names the flag, the path and what the workdir holds.
    Returns the checkpoint path used.
    """
    if not path:
        raise ValueError(f"{flag} is required: the workdir of the "
                         f"{'/'.join(stage_word(s) for s in stages)} stage")
    check_workdir_kind(path, paper, stages, flag)
    try:
        return restore_for_eval(path, **trackables)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{flag}={path}: {e}") from None
    except ValueError as e:
        raise ValueError(f"{flag}={path}: {e}") from None


def restore_for_eval(workdir_or_checkpoint: str, **trackables) -> str:
    """Restores `trackables` (models) from a checkpoint file prefix or a workdir's newest one.

    Optimizer state in the checkpoint is ignored. Returns the checkpoint path used.
    """
    path = workdir_or_checkpoint
    if os.path.isdir(path):
        directory = os.path.join(path, "checkpoints") if os.path.isdir(
            os.path.join(path, "checkpoints")) else path
        path = tf.train.latest_checkpoint(directory)
        if path is None:
            raise FileNotFoundError(
                f"no checkpoint under {directory}: pass --checkpoint=a workdir that has trained, "
                f"or a checkpoint prefix such as WORKDIR/checkpoints/ckpt-1000")
    elif not tf.io.gfile.exists(path + ".index"):
        raise FileNotFoundError(f"checkpoint {path!r} not found (expected {path}.index)")
    checkpoint = tf.train.Checkpoint(**trackables)
    check_checkpoint_reaches(checkpoint, trackables)
    try:
        checkpoint.restore(path).expect_partial().assert_existing_objects_matched()
    except AssertionError as e:  # one line, not pages of unmatched objects
        raise ValueError(
            f"{path} does not hold {', '.join(sorted(trackables))} ({_first_line(e, 200)}); "
            f"{workdir_of(path)} holds {describe_workdir(path)}.") from None
    return path
