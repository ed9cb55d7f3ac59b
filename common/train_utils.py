"""Training utilities every paper trainer shares.

What lives here (a paper's `train.py` keeps only its networks, losses and `train_step`):

* `define_common_flags(fv)`: the flags every trainer has (`--workdir`, `--strategy`,
  `--mixed_precision`, `--seed`, `--num_steps`, intervals, `--max_train_minutes`, ...), defined on a
  given `absl.flags.FlagValues` so tests can build a fresh one and parse a real flagfile.
* `parse_flags` / `flags_parser`: parse argv after expanding `--flagfile=` arguments; a relative
  flagfile path is tried against the working directory, the including flagfile's directory and the
  repository root, and so are relative data paths inside a flagfile, so shipped flagfiles work
  from any working directory. A bad flag or value is absl's one `FATAL Flags parsing error` line
  and exit status 1.
* `run_app(main, required)`: every CLI's `__main__` (absl `app.run`, `--help` listing the common
  flags); `run_main(train_and_evaluate, define_flags)`: a trainer's whole `__main__`.
* `Trainer` (trackables / replica_step / samples) and `train(workdir, config, trainer, dataset)`:
  the interface every paper stage implements and the one loop that runs it.
* `save_flags` / `load_flags`: the resolved flags beside the checkpoints (`workdir/flags.txt`), so
  evaluation rebuilds the exact network that was trained.
* `get_strategy`, `set_precision`, `make_optimizer`: `tf.distribute` strategy, Keras mixed precision
  policy (float16 on GPU, bfloat16 on CPU with `auto`), Adam wrapped in a loss-scale optimizer only
  for float16.
* `Checkpointer`: `tf.train.CheckpointManager` over (step, models, optimizers, ...), restore-latest
  (an unreadable newest checkpoint falls back to the previous one with a warning; checkpoint
  files without their index are an error), and a save that refuses non-finite weights.
* `workdir_kind` / `check_workdir_kind` / `restore_init`: what a workdir holds, read from its
  flags.txt ("a paper-1 SRN workdir"), and the restore behind every init flag (`--init_sn`,
  `--hg_workdir`, ...) that fails naming the flag and that kind instead of restoring nothing.
* `SummaryWriters`: TensorBoard writers under `workdir/train` and `workdir/eval`.
* `start_run(config, workdir)`: seed, precision policy, strategy and flags.txt from the common flags,
  after taking the workdir's single-writer lock (`common.workdir_lock`; `train` releases it).
* `run_train_loop`: the loop under `train`: resume from the restored step, log scalars, steps/s,
  learning rates, the float16 loss scale and "step N/TOTAL ... ETA", hparams, images, profiler trace,
  periodic evaluation, checkpoints at intervals / on the time budget / at the end / on SIGTERM or
  SIGINT (`--save_on_signal`), and a guard that stops on a non-finite loss or non-finite weights
  without saving the bad state (the error names the last finite checkpoint).
* `validate_common_flags` (called by `start_run` before flags.txt is written) and `check_min`.
"""
from __future__ import annotations

import functools
import glob
import json
import math
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from typing import Callable, Iterable, Mapping, Sequence

from absl import flags, logging
import keras
import numpy as np
import tensorflow as tf

from common import hardware, image_io, keras_utils, workdir_lock
from common.paths import REPO_ROOT

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")
PRECISIONS = ("none", "mixed_float16", "mixed_bfloat16", "auto")
FLAGS_FILENAME = "flags.txt"


# --------------------------------------------------------------------------- flags


def define_common_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
    """Defines the flags shared by every trainer on `fv`. Calling it twice is harmless."""
    if "workdir" in fv:
        return
    flags.DEFINE_string("workdir", None, "Folder for checkpoints, TensorBoard events and flags.txt.",
                        flag_values=fv)
    flags.DEFINE_enum("strategy", "default", STRATEGIES,
                      "tf.distribute strategy: default (one device), mirrored (all local GPUs, or "
                      "--cpu_devices logical CPUs), multi_worker (TF_CONFIG), tpu.", flag_values=fv)
    flags.DEFINE_integer("cpu_devices", 0,
                         "Split the CPU into this many logical devices (0: leave as is). For testing "
                         "the mirrored strategy without GPUs.", flag_values=fv)
    flags.DEFINE_enum("mixed_precision", "none", PRECISIONS,
                      "Keras mixed-precision policy; auto = mixed_float16 on GPU, mixed_bfloat16 "
                      "on a CPU with bfloat16 instructions (AMX/AVX512-BF16), else float32.",
                      flag_values=fv)
    flags.DEFINE_integer("seed", 0, "Random seed (Python, NumPy, TensorFlow, Keras, tf.data).",
                         flag_values=fv)
    flags.DEFINE_integer("num_steps", 1000, "Total training steps (optimizer updates).",
                         flag_values=fv)
    flags.DEFINE_integer("batch_size", 16, "Global batch size (split across replicas).",
                         flag_values=fv)
    flags.DEFINE_integer("log_every", 100, "Write training scalars every N steps.", flag_values=fv)
    flags.DEFINE_integer("checkpoint_every", 1000, "Save a checkpoint every N steps.",
                         flag_values=fv)
    flags.DEFINE_integer("eval_every", 1000, "Evaluate every N steps (0: only at the end).",
                         flag_values=fv)
    flags.DEFINE_integer("image_every", 1000, "Write TensorBoard image grids every N steps "
                         "(0: never).", flag_values=fv)
    flags.DEFINE_float("max_train_minutes", 0.0, "Stop (and checkpoint) after this many minutes of "
                       "training; 0 means no limit.", flag_values=fv)
    flags.DEFINE_integer("keep_checkpoints", 3, "How many recent checkpoints to keep.",
                         flag_values=fv)
    flags.DEFINE_bool("fused_norm", True, "TensorFlow backend: every instance norm of the "
                      "trained networks runs as TensorFlow's fused kernel (common.keras_utils."
                      "fuse_instance_norms): the same formula, less memory and time per step "
                      "(benchmarks/README.md); --nofused_norm keeps Keras's GroupNormalization.",
                      flag_values=fv)
    flags.DEFINE_string("best_metric", "", "An evaluation scalar (e.g. psnr; -NAME to minimise, "
                        "e.g. -loss) whose best checkpoint is kept in WORKDIR/best with "
                        "best.json, beside the recent ones; choose it on validation data, never "
                        "on a test set. Export or evaluate it with --checkpoint=best. Empty: "
                        "none.", flag_values=fv)
    flags.DEFINE_bool("save_on_signal", True, "On SIGTERM or SIGINT, save a checkpoint and exit "
                      "(status 128 + signal number) instead of losing the steps since the last "
                      "one.", flag_values=fv)
    flags.DEFINE_enum("lr_schedule", "constant", LR_SCHEDULES, "Learning-rate schedule of every "
                      "optimizer, as a factor of its flag's rate by the global step: constant, or "
                      "cosine (linear warm-up over --lr_warmup_steps, then cosine decay to "
                      "--lr_min_factor at --lr_schedule_steps). The factor follows the restored "
                      "step, so a run resumed across sessions stays on one schedule.",
                      flag_values=fv)
    flags.DEFINE_integer("lr_warmup_steps", 0, "Steps of linear learning-rate warm-up (cosine).",
                         flag_values=fv)
    flags.DEFINE_integer("lr_schedule_steps", 0, "Step at which the cosine reaches "
                         "--lr_min_factor (0: --num_steps); after it the factor stays there.",
                         flag_values=fv)
    flags.DEFINE_float("lr_min_factor", 0.01, "Final factor of the cosine schedule.",
                       flag_values=fv)
    flags.DEFINE_string("profile_steps", "", "A,B: record a TensorFlow profiler trace of steps "
                        "A..B into WORKDIR/train (TensorBoard's Profile tab); empty: none.",
                        flag_values=fv)


LR_SCHEDULES = ("constant", "cosine")


def lr_factor(step: int, schedule: str = "constant", *, warmup_steps: int = 0,
              total_steps: int = 0, min_factor: float = 0.01) -> float:
    """The factor of a flag's learning rate used for update number `step + 1` (`step` done).

    constant: 1. cosine: (step + 1) / warmup_steps during the warm-up, then
    min + (1 - min) * (1 + cos(pi * p)) / 2 with p = (step - warmup) / (total - warmup), held at
    `min_factor` from `total_steps` on (Loshchilov & Hutter's SGDR without restarts).
    """
    if schedule == "constant":
        return 1.0
    if schedule != "cosine":
        raise ValueError(f"unknown learning-rate schedule {schedule!r}; one of {LR_SCHEDULES}")
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(total_steps - warmup_steps, 1)
    p = min(max(step - warmup_steps, 0) / span, 1.0)
    return min_factor + (1.0 - min_factor) * 0.5 * (1.0 + math.cos(math.pi * p))


def lr_factor_fn(config) -> Callable[[int], float] | None:
    """`lr_factor` under a trainer's flags, or None for a constant rate (old configs too)."""
    schedule = getattr(config, "lr_schedule", "constant")
    if schedule == "constant":
        return None
    total = getattr(config, "lr_schedule_steps", 0) or config.num_steps
    if total <= config.lr_warmup_steps:
        raise ValueError(f"--lr_schedule_steps={total} must exceed --lr_warmup_steps="
                         f"{config.lr_warmup_steps}")
    return functools.partial(lr_factor, schedule=schedule, warmup_steps=config.lr_warmup_steps,
                             total_steps=total, min_factor=config.lr_min_factor)


def paper_schedule_or_rate(config, paper_schedule, rate: float):
    """A trainer's own (paper) learning-rate schedule under --lr_schedule=constant; otherwise the
    flag's constant `rate`, which the shared --lr_schedule then scales step by step (an optimizer
    built on a schedule object has no settable rate)."""
    return paper_schedule if lr_factor_fn(config) is None else rate


# (flag, smallest allowed value, what it is) checked by validate_common_flags.
_COMMON_MINIMA = (("num_steps", 1, "the total number of training steps"),
                  ("batch_size", 1, "the global batch size"),
                  ("log_every", 1, "steps between logged scalars"),
                  ("checkpoint_every", 0, "steps between checkpoints; 0: only at the end"),
                  ("eval_every", 0, "steps between evaluations; 0: only at the end"),
                  ("image_every", 0, "steps between image summaries; 0: never"),
                  ("keep_checkpoints", 1, "checkpoints kept"),
                  ("cpu_devices", 0, "logical CPU devices; 0: leave as is"),
                  ("max_train_minutes", 0, "minutes of training; 0: no limit"),
                  ("lr_warmup_steps", 0, "steps of learning-rate warm-up"),
                  ("lr_schedule_steps", 0, "the cosine schedule's length; 0: --num_steps"),
                  ("lr_min_factor", 0, "the cosine schedule's final factor"))


def define_remat_flag(fv: flags.FlagValues, modes: Sequence[str], what: str) -> None:
    """--remat (default none): a trainer's rematerialisation switch (recompute activations in
    the backward pass instead of keeping them: same maths, less memory, more compute; see
    `common.keras_utils.remat_call` and benchmarks/README.md). `what`: the modes, for --help."""
    flags.DEFINE_enum("remat", "none", list(modes), "Training memory: recompute activations in "
                      f"backprop instead of keeping them (same values and gradients); {what}.",
                      flag_values=fv)


def check_min(fv: flags.FlagValues, name: str, minimum, what: str = "") -> None:
    """Raises a one-line ValueError if `--name` is below `minimum` (and not None)."""
    value = getattr(fv, name)
    if value is not None and value < minimum:
        raise ValueError(f"--{name}={value}: must be >= {minimum}" + (f" ({what})" if what else "")
                         + ".")


def validate_common_flags(fv: flags.FlagValues) -> None:
    """Checks the common flags' values (`--num_steps=-5`, `--batch_size=0`, ...) so a bad value
    fails in one line before the workdir or flags.txt exist."""
    for name, minimum, what in _COMMON_MINIMA:
        if name in fv:
            check_min(fv, name, minimum, what)
    if "profile_steps" in fv:
        parse_profile_steps(fv.profile_steps)


def parse_profile_steps(text: str | None) -> tuple[int, int] | None:
    """"5,8" -> (5, 8) (profile steps 5..8); "" -> None; else a one-line ValueError."""
    if not text:
        return None
    try:
        first, last = (int(v) for v in str(text).split(","))
    except ValueError:
        first, last = 0, -1
    if not 1 <= first <= last:
        raise ValueError(f"--profile_steps={text!r}: give A,B with 1 <= A <= B (steps A..B are "
                         f"traced), e.g. --profile_steps=5,8.")
    return first, last


def _resolve_flagfile(path: str, including_dir: str | None) -> str:
    candidates = [path]
    if not os.path.isabs(path):
        if including_dir:
            candidates.append(os.path.join(including_dir, path))
        candidates.append(os.path.join(REPO_ROOT, path))
    for candidate in candidates:
        if os.path.isfile(candidate):
            return os.path.abspath(candidate)
    raise FileNotFoundError(
        f"flagfile {path!r} not found (tried: {', '.join(candidates)}). Pass a path relative to "
        f"the working directory or to the repository root {REPO_ROOT}.")


def _exists(path: str) -> bool:
    return bool(glob.glob(path)) if glob.has_magic(path) else os.path.exists(path)


def _resolve_value_path(part: str, flagfile_dir: str) -> str:
    """A relative path (or glob) of a flagfile value: kept if it exists from the working
    directory, else made absolute against the flagfile's folder or the repository root when it
    exists there (first match); anything else is kept as written."""
    if not part or os.path.isabs(part) or "://" in part or _exists(part):
        return part
    if not (os.sep in part or "/" in part or part.startswith(".")):
        return part  # a bare word (an enum value, a number, a generator name), not a path
    for base in (flagfile_dir, REPO_ROOT):
        candidate = os.path.normpath(os.path.join(base, part))
        if _exists(candidate):
            return candidate
    return part


def _resolve_line_paths(line: str, flagfile_dir: str) -> str:
    """`--name=a,b` from a flagfile with each existing relative path resolved (see
    `_resolve_value_path`), so a shipped flagfile works from any working directory."""
    if not line.startswith("--") or "=" not in line or line.startswith("--flagfile="):
        return line
    name, value = line.split("=", 1)
    return name + "=" + ",".join(_resolve_value_path(p, flagfile_dir) for p in value.split(","))


def expand_flagfiles(argv: Sequence[str], _including_dir: str | None = None,
                     _depth: int = 0) -> list[str]:
    """Returns argv with every `--flagfile=PATH` replaced by the flags it holds (recursively).

    Follows absl's flagfile format: one flag per line; blank lines and whole lines starting with `#`
    or `//` are skipped. Later flags override earlier ones, as with absl. A relative path inside
    a flagfile (a data folder, a kernel bank, a glob) that does not exist from the working
    directory is resolved against the flagfile's folder, then the repository root, so shipped
    flagfiles run from any working directory.
    """
    if _depth > 10:
        raise ValueError("flagfiles nest more than 10 deep: is one including itself?")
    out: list[str] = []
    for arg in argv:
        if arg.startswith("--flagfile="):
            path = _resolve_flagfile(arg.split("=", 1)[1], _including_dir)
            with open(path, encoding="utf-8") as f:
                lines = [line.strip() for line in f]
            lines = [line for line in lines
                     if line and not line.startswith("#") and not line.startswith("//")]
            lines = [_resolve_line_paths(line, os.path.dirname(path)) for line in lines]
            out.extend(expand_flagfiles(lines, os.path.dirname(path), _depth + 1))
        else:
            out.append(arg)
    return out


def parse_flags(define_fns: Iterable[Callable[[flags.FlagValues], None]], argv: Sequence[str],
                fv: flags.FlagValues | None = None) -> flags.FlagValues:
    """Defines flags with each of `define_fns` on a fresh `FlagValues` (or `fv`) and parses argv.

    `argv[0]` is the program name, as with absl. Example::

        fv = parse_flags([define_common_flags, train.define_flags],
                         ["prog", "--flagfile=paper3_umsn/configs/smoke.flags", "--workdir=/tmp/x"])
    """
    fv = flags.FlagValues() if fv is None else fv
    for define in define_fns:
        define(fv)
    fv(expand_flagfiles(list(argv)))
    return fv


def flags_parser(argv: Sequence[str]) -> list[str]:
    """`absl.app.run(main, flags_parser=flags_parser)`: absl's parser (a bad flag or value is one
    `FATAL Flags parsing error: ...` line and exit status 1) after expanding flagfiles (see
    `expand_flagfiles`); a flagfile that cannot be read fails the same way."""
    from absl import app  # pylint: disable=import-outside-toplevel
    try:
        argv = expand_flagfiles(list(argv))
    except (OSError, ValueError) as e:
        sys.stderr.write(f"FATAL Flags parsing error: {e}\n"
                         "Pass --helpshort or --helpfull to see help on flags.\n")
        sys.exit(1)
    return app.parse_flags_with_usage(argv)


def adopt_key_flags(fv: flags.FlagValues = flags.FLAGS,
                    modules: Sequence[str] = ("common.train_utils", "common.shared_flags",
                                               "common.inference")) -> None:
    """Lists the flags defined in `modules` (the common flags) in the main program's `--help`,
    beside its own (absl shows only the main module's key flags)."""
    main = sys.argv[0]
    for module in modules:
        for flag in fv.get_key_flags_for_module(module):
            fv.register_key_flag_for_module(main, flag)


def run_app(main: Callable[[list], object], required: Sequence[str] = ()) -> None:
    """Every CLI's `if __name__ == "__main__":`: marks `required` flags, adds the common flags to
    `--help` (`adopt_key_flags`) and runs `main` through `absl.app.run` with `flags_parser`."""
    from absl import app  # pylint: disable=import-outside-toplevel
    if required:
        flags.mark_flags_as_required(list(required))
    adopt_key_flags()
    app.run(main, flags_parser=flags_parser)


def run_main(train_and_evaluate: Callable[[str, flags.FlagValues], object],
             define_flags: Callable[[flags.FlagValues], None]) -> None:
    """A trainer's `if __name__ == "__main__":` block.

    Defines the common flags and the trainer's (`define_flags`) on the global FLAGS, marks
    `--workdir` required, parses sys.argv through `run_app` and calls
    `train_and_evaluate(workdir, FLAGS)` (which saves the resolved flags itself). Like `app.run`,
    exits the process when done.
    """
    define_common_flags(flags.FLAGS)
    define_flags(flags.FLAGS)

    def main(argv):
        del argv
        try:
            train_and_evaluate(flags.FLAGS.workdir, flags.FLAGS)
        except TrainingInterrupted as e:  # checkpoint saved: exit like a signalled process would
            sys.stderr.write(f"{e}\n")
            sys.exit(128 + e.signum)
        except (ValueError, FileNotFoundError, NonFiniteLossError, CheckpointError,
                workdir_lock.LockError) as e:
            # bad input or a stopped run: one line that says what to do, no traceback
            sys.stderr.write(f"error: {e}\n")
            sys.exit(1)

    run_app(main, required=("workdir",))


PROJECT_MODULES = ("__main__", "common", "data", "paper1_cyclegan_srn", "paper2_identity_cgan",
                   "paper3_umsn", "tests", "benchmarks")


def _own_flags(fv: flags.FlagValues) -> list:
    """The flags defined by this project's modules, sorted by name.

    The global FLAGS also hold absl's logging flags and flags other libraries define on import
    (TensorFlow's `--delta_threshold`, ...): those are left out, so `flags.txt` parses again on a
    FlagValues that only has the trainer's flags.
    """
    own = {}
    for module, module_flags in fv.flags_by_module_dict().items():
        # absl files `__main__`'s flags under sys.argv[0]: under `python -m pkg.train` that is the
        # script's path, so a path inside the repository counts as ours too.
        in_repo = os.path.isabs(module) and os.path.abspath(module).startswith(REPO_ROOT + os.sep)
        if module.split(".")[0] not in PROJECT_MODULES and not in_repo:
            continue
        for flag in module_flags:
            own[flag.name] = flag
    return [own[name] for name in sorted(own)]


def save_flags(fv: flags.FlagValues, workdir: str) -> str:
    """Writes the resolved flags to `workdir/flags.txt` (a flagfile) and returns its path."""
    os.makedirs(workdir, exist_ok=True)
    lines = [f.serialize() for f in _own_flags(fv) if f.value is not None]
    path = os.path.join(workdir, FLAGS_FILENAME)
    image_io.atomic_write(path, "# Resolved flags of this run (a flagfile: --flagfile=" + path
                          + ")\n" + "\n".join(line for line in lines if line) + "\n")
    return path


def load_flags(define_fns: Iterable[Callable[[flags.FlagValues], None]], workdir: str,
               overrides: Sequence[str] = ()) -> flags.FlagValues:
    """Rebuilds the FlagValues a run was trained with from `workdir/flags.txt` (+ overrides)."""
    path = os.path.join(workdir, FLAGS_FILENAME)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path} not found: --workdir must be a training workdir (it holds flags.txt and "
            f"checkpoints/).")
    return parse_flags(define_fns, ["prog", f"--flagfile={path}", *overrides])


def start_run(config: flags.FlagValues, workdir: str,
              validate: Callable[[flags.FlagValues], None] | None = None,
              ) -> tuple[tf.distribute.Strategy, str]:
    """The start every trainer shares: checks the common flags (`validate_common_flags`), seeds
    everything (`--seed`), builds the strategy (`--strategy`, `--cpu_devices`), sets the precision
    policy (`--mixed_precision`), runs the trainer's own checks `validate(config)` (e.g. the crop
    against the images) and only then writes the resolved flags to `workdir/flags.txt`, so a bad
    value leaves nothing behind. The chief first takes the workdir's lock (`workdir_lock`:
    `WorkdirLocked` names the live process that holds it; `train` releases it at its end).
    Returns (strategy, resolved policy name)."""
    validate_common_flags(config)
    set_seed(config.seed)
    strategy = get_strategy(config.strategy, config.cpu_devices)
    policy = set_precision(config.mixed_precision)
    if validate is not None:
        validate(config)
    if is_chief():  # one writer per workdir: a second launch is refused here, in one line
        workdir_lock.acquire(workdir)
        try:
            save_flags(config, workdir)
        except OSError as e:  # a full disk, a quota: one line naming the file
            workdir_lock.release(workdir)
            raise CheckpointError(
                f"cannot write {os.path.join(workdir, FLAGS_FILENAME)} ({e.strerror}; "
                f"{workdir_lock.free_space(workdir)}): free some space or use another "
                f"--workdir.") from None
    return strategy, policy


# --------------------------------------------------------------------------- devices, precision


def get_strategy(name: str = "default", cpu_devices: int = 0) -> tf.distribute.Strategy:
    """Returns the tf.distribute strategy named by `--strategy`.

    `cpu_devices > 1` splits the (first) physical CPU into that many logical devices before the
    runtime starts; `mirrored` then mirrors over them when no GPU is present.
    """
    if name not in STRATEGIES:
        raise ValueError(f"--strategy={name!r}: choose one of {STRATEGIES}")
    if cpu_devices and cpu_devices > 1:
        cpus = tf.config.list_physical_devices("CPU")
        try:
            tf.config.set_logical_device_configuration(
                cpus[0], [tf.config.LogicalDeviceConfiguration()] * cpu_devices)
        except RuntimeError:
            have = len(tf.config.list_logical_devices("CPU"))
            if have != cpu_devices:
                raise RuntimeError(
                    f"--cpu_devices={cpu_devices}: TensorFlow was already initialised with {have} "
                    f"logical CPU device(s); call get_strategy before any other TensorFlow op.")
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        if tf.config.list_logical_devices("GPU"):
            return tf.distribute.MirroredStrategy()
        devices = [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices)
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def is_chief(tf_config: str | None = None) -> bool:
    """Whether this process is the one that writes checkpoints, TensorBoard events and flags.txt.

    Read from `TF_CONFIG` (the JSON `MultiWorkerMirroredStrategy` reads): the `chief` task, or
    worker 0 when the cluster has no chief. Without a cluster (one machine, `mirrored`, `tpu`)
    the process is the chief.
    """
    raw = os.environ.get("TF_CONFIG", "") if tf_config is None else tf_config
    if not raw:
        return True
    try:
        spec = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ValueError(f"TF_CONFIG is not JSON ({e}): set it to "
                         f'{{"cluster": {{"worker": ["host:port", ...]}}, '
                         f'"task": {{"type": "worker", "index": 0}}}}') from e
    cluster, task = spec.get("cluster") or {}, spec.get("task") or {}
    if not cluster or not task:
        return True
    if task.get("type") == "chief":
        return True
    return task.get("type") == "worker" and int(task.get("index", 0)) == 0 and "chief" not in cluster


def distribute_per_worker(strategy: tf.distribute.Strategy, global_batch: int,
                          make_dataset: Callable[[int, int, int], tf.data.Dataset]):
    """`strategy.distribute_datasets_from_function`: each worker builds its own input pipeline.

    `make_dataset(per_replica_batch, pipeline_id, num_pipelines)` must return a dataset batched
    per replica that reads shard `pipeline_id` of `num_pipelines` (e.g. `make_dataset(...,
    shard=(num_pipelines, pipeline_id))`) with a seed that differs per pipeline, so workers see
    different examples. With one worker this is one pipeline over all the data; the global batch
    (`--batch_size`) is always split evenly over all replicas of all workers.
    """
    replicas = strategy.num_replicas_in_sync
    if global_batch % replicas:
        raise ValueError(f"--batch_size={global_batch} is not divisible by the {replicas} replicas "
                         f"of the strategy: use a multiple of {replicas}")

    def fn(ctx: tf.distribute.InputContext):
        return make_dataset(ctx.get_per_replica_batch_size(global_batch), ctx.input_pipeline_id,
                            ctx.num_input_pipelines)

    return strategy.distribute_datasets_from_function(fn)


def pipeline_seed(seed: int, start: int, pipeline_id: int = 0, num_pipelines: int = 1,
                  seeds_per_pipeline: int = 1) -> int:
    """The seed of input pipeline `pipeline_id` of `num_pipelines` for a run (re)started at step
    `start`: `(seed + start) * num_pipelines + seeds_per_pipeline * pipeline_id`. A resumed run
    (start > 0) draws new crops, kernels and noise instead of replaying its first batches; a
    pipeline that uses several seeds (paper 1's CycleGAN: one per domain) takes
    `seeds_per_pipeline` of them."""
    return (int(seed) + int(start)) * int(num_pipelines) + int(seeds_per_pipeline) * int(pipeline_id)


def reseeded_dataset(strategy: tf.distribute.Strategy, config,
                     make_dataset: Callable[[int, int, tuple | None], tf.data.Dataset], *,
                     seeds_per_pipeline: int = 1) -> Callable[[int], object]:
    """The `dataset` argument of `train` every trainer shares: a function of the restored step
    `start` returning `distribute_per_worker(strategy, --batch_size, ...)` whose workers build
    `make_dataset(per_replica_batch, seed, shard)` with `seed = pipeline_seed(--seed, start,
    ...)` and `shard` (num_pipelines, pipeline_id), None with one pipeline."""
    def dataset(start):
        def worker_dataset(per_replica_batch, pipeline_id, num_pipelines):
            return make_dataset(
                per_replica_batch,
                pipeline_seed(config.seed, start, pipeline_id, num_pipelines, seeds_per_pipeline),
                (num_pipelines, pipeline_id) if num_pipelines > 1 else None)
        return distribute_per_worker(strategy, config.batch_size, worker_dataset)
    return dataset


def set_precision(policy: str = "none") -> str:
    """Sets Keras's global dtype policy; returns the resolved name ("float32" for none).

    `auto`: mixed_float16 on a GPU; on a CPU mixed_bfloat16 where it computes bfloat16 natively
    (`common.hardware.cpu_bfloat16_support`), else float32. An explicit mixed_bfloat16 on a CPU without bfloat16
    instructions is kept but warned about: it runs several times slower than float32.
    """
    if policy not in PRECISIONS:
        raise ValueError(f"--mixed_precision={policy!r}: choose one of {PRECISIONS}")
    gpu = bool(tf.config.list_physical_devices("GPU"))
    native_bf16 = None if gpu else hardware.cpu_bfloat16_support()
    if policy == "auto":
        policy = "mixed_float16" if gpu else ("none" if native_bf16 is False else "mixed_bfloat16")
        build = ("this TensorFlow is a CPU-only build (tensorflow-cpu): install the GPU one with "
                 "pip install -e \".[gpu]\"" if not tf.test.is_built_with_cuda() else
                 "TensorFlow has CUDA but sees no GPU: check nvidia-smi and "
                 "CUDA_VISIBLE_DEVICES")
        if policy == "mixed_bfloat16":
            logging.warning("--mixed_precision=auto found no GPU: training in mixed_bfloat16 on "
                            "the CPU; %s.", build)
        elif not gpu:
            logging.warning("--mixed_precision=auto found no GPU and a CPU without bfloat16 "
                            "instructions (no amx_bf16/avx512_bf16 in /proc/cpuinfo): training in "
                            "float32; %s.", build)
    elif policy == "mixed_bfloat16" and native_bf16 is False:
        logging.warning("--mixed_precision=mixed_bfloat16 on a CPU without bfloat16 instructions "
                        "(no amx_bf16/avx512_bf16 in /proc/cpuinfo): TensorFlow emulates them, "
                        "several times slower than float32. Use --mixed_precision=auto (float32 "
                        "here) or none.")
    resolved = "float32" if policy == "none" else policy
    keras.mixed_precision.set_global_policy(resolved)
    return resolved


def make_optimizer(learning_rate, policy: str | None = None, **adam_kwargs) -> keras.optimizers.Optimizer:
    """Adam; under mixed_float16 wrapped in a LossScaleOptimizer (float16 needs loss scaling).

    In the train step use `optimizer.scale_loss(loss)` before taking gradients: it is the identity
    for plain optimizers and scales for the loss-scale optimizer, whose `apply` unscales.
    """
    policy = policy or keras.mixed_precision.global_policy().name
    optimizer = keras.optimizers.Adam(learning_rate=learning_rate, **adam_kwargs)
    if policy == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def make_distributed_step(strategy: tf.distribute.Strategy,
                          replica_step: Callable[[Mapping], Mapping[str, tf.Tensor]]):
    """Wraps a per-replica step into a `tf.function` returning replica-averaged scalars.

    `replica_step(batch)` runs on each replica on its share of the global batch. Gradients applied
    through an optimizer created in `strategy.scope()` are summed over replicas, so the loss used for
    gradients must be the replica's mean loss divided by `num_replicas_in_sync` (see
    `replica_loss`); the returned logging values are the replica means of what it returns.
    """

    @tf.function
    def step(batch):
        per_replica = strategy.run(replica_step, args=(batch,))
        return {k: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None)
                for k, v in per_replica.items()}

    return step


def replica_loss(loss: tf.Tensor) -> tf.Tensor:
    """Scales a replica's mean loss so that summed gradients over replicas equal the global mean.

    Call it inside the `GradientTape` block: the division must be recorded to be differentiated.
    """
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return loss / tf.cast(replicas, loss.dtype)


def set_seed(seed: int) -> None:
    """Seeds Python, NumPy, TensorFlow and Keras."""
    keras.utils.set_random_seed(int(seed))


# --------------------------------------------------------------------------- checkpoints, summaries


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


class CheckpointError(RuntimeError):
    """A checkpoint folder that cannot be resumed safely; the message names the files and the fix."""


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


# --------------------------------------------------------------------------- what a workdir holds

# (paper, stage) -> words; the stage of paper 1 is the trainer (srn or cyclegan).
_PAPER_WORDS = {"paper1": "paper-1", "paper2": "paper-2", "paper3": "paper-3"}
_STAGE_WORDS = {"srn": "SRN", "cyclegan": "CycleGAN", "hg": "HG", "cgan": "cGAN"}


def workdir_of(path: str) -> str:
    """The workdir of a workdir, its `checkpoints/` folder or a checkpoint prefix in it."""
    path = os.path.abspath(path)
    if not os.path.isdir(path):
        path = os.path.dirname(path)
    if os.path.basename(path) == "checkpoints" and not os.path.isfile(
            os.path.join(path, FLAGS_FILENAME)):
        path = os.path.dirname(path)
    return path


def read_flags_file(workdir: str) -> dict[str, str] | None:
    """{flag name: value string} of `workdir/flags.txt` (booleans as "true"/"false"), or None."""
    path = os.path.join(workdir, FLAGS_FILENAME)
    if not os.path.isfile(path):
        return None
    out = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line.startswith("--"):
                continue
            name, eq, value = line[2:].partition("=")
            if eq:
                out[name] = value
            elif name.startswith("no"):
                out[name[2:]] = "false"
            else:
                out[name] = "true"
    return out


def workdir_kind(path: str) -> tuple[str, str] | None:
    """(paper, stage) of the training workdir holding `path`, read from its flags.txt, e.g.
    ("paper1", "srn"), ("paper1", "cyclegan"), ("paper2", "cgan"), ("paper3", "umsn");
    None when there is no flags.txt or it is none of these."""
    fl = read_flags_file(workdir_of(path))
    if fl is None:
        return None
    if "ablation" in fl and "stage" in fl:
        return "paper3", fl["stage"]
    if "lambda_ci" in fl and "stage" in fl:
        return "paper2", fl["stage"]
    if "recurrent" in fl or "scale_weights" in fl:
        return "paper1", "srn"
    if "lambda_cycle" in fl:
        return "paper1", "cyclegan"
    return None


def describe_kind(kind: tuple[str, str] | None) -> str:
    """("paper1", "srn") -> "a paper-1 SRN workdir"."""
    if kind is None:
        return "no recognisable training workdir (no flags.txt of this project)"
    paper, stage = kind
    return f"a {_PAPER_WORDS.get(paper, paper)} {_STAGE_WORDS.get(stage, stage)} workdir"


def describe_workdir(path: str) -> str:
    return describe_kind(workdir_kind(path))


def check_workdir_kind(path: str, paper: str, stages: Sequence[str], flag: str = "") -> None:
    """Raises ValueError "--flag=PATH is a paper-1 SRN workdir, not a paper-3 umsn one" when the
    workdir holding `path` was trained by another paper or stage. A path without a flags.txt
    (e.g. a bare checkpoint prefix) passes: the restore itself then checks the variables."""
    kind = workdir_kind(path)
    if kind is None and read_flags_file(workdir_of(path)) is None:
        return
    if kind is not None and kind[0] == paper and kind[1] in stages:
        return
    wanted = " or ".join(_STAGE_WORDS.get(s, s) for s in stages)
    raise ValueError(f"{flag + '=' if flag else ''}{path} is {describe_kind(kind)}, not a "
                     f"{_PAPER_WORDS.get(paper, paper)} {wanted} one: pass the workdir of that "
                     f"training stage.")


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


def copy_init_weights(src, dst, path: str, settings: str, flag: str = "--init_model") -> None:
    """Copies the weights of network `src` (of an init model) into the built network `dst`, or a
    one-line error naming the flag and the `settings` (flags) that shape the network."""
    if [tuple(w.shape) for w in src.weights] != [tuple(w.shape) for w in dst.weights]:
        raise ValueError(f"{flag}={path} does not match {settings} (different weight shapes)")
    dst.set_weights(src.get_weights())


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
                         f"{'/'.join(_STAGE_WORDS.get(s, s) for s in stages)} stage")
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
        for flag in _own_flags(config):
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


# --------------------------------------------------------------------------- the loop


class NonFiniteLossError(RuntimeError):
    """A loss or a weight became NaN or infinite; the message names the step and the last finite
    checkpoint."""


class TrainingInterrupted(RuntimeError):
    """SIGTERM or SIGINT arrived; a checkpoint was saved (`run_main` exits with 128 + signum)."""

    def __init__(self, signum: int, step: int, path: str | None):
        self.signum, self.step, self.path = signum, step, path
        super().__init__(f"{signal.Signals(signum).name} at step {step}: saved {path}; rerun the "
                         f"same command to resume.")


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


# --------------------------------------------------------------------------- the trainer interface


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
