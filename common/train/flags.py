"""The flags every trainer shares, their checks and the learning-rate schedule.

* `define_common_flags(fv)`: `--workdir`, `--strategy`, `--intra_op_threads` / `--inter_op_threads`,
  `--mixed_precision`, `--seed`,
  `--num_steps`, intervals, `--max_train_minutes`, `--best_metric`, `--lr_schedule`, ...,
  defined on a given `absl.flags.FlagValues` so tests can build a fresh one and parse a real
  flagfile; `define_remat_flag` (a trainer's `--remat`).
* `validate_common_flags` (called by `common.train.trainer.start_run` before flags.txt is
  written), `check_min`, `parse_profile_steps`.
* `lr_factor` / `lr_factor_fn` / `paper_schedule_or_rate`: the shared `--lr_schedule` (constant,
  or cosine with warm-up) as a factor of each optimizer's flag rate.
"""
from __future__ import annotations

import functools
import math
from typing import Callable, Sequence

from absl import flags


STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")
PRECISIONS = ("none", "mixed_float16", "mixed_bfloat16", "auto")


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
    flags.DEFINE_integer("intra_op_threads", 0, "Threads of one TensorFlow op (0: TensorFlow's "
                         "default, one per core). 1 with --inter_op_threads=2 speeds up the cGAN "
                         "small step 1.3x on a 2-core CPU (common.train.distribute.set_cpu_threads).",
                         flag_values=fv)
    flags.DEFINE_integer("inter_op_threads", 0, "TensorFlow ops run at the same time (0: "
                         "TensorFlow's default, one per core).", flag_values=fv)
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
    flags.DEFINE_integer("start_step", 0, "On a workdir without checkpoints, count steps from N "
                         "instead of 0, so --lr_schedule and --num_steps continue a committed run "
                         "whose workdir is gone (give its weights as --init_model; the "
                         "optimizer's moments start fresh). Ignored when a checkpoint is "
                         "restored.", flag_values=fv)
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
                  ("start_step", 0, "the step a run without checkpoints counts from"),
                  ("batch_size", 1, "the global batch size"),
                  ("log_every", 1, "steps between logged scalars"),
                  ("checkpoint_every", 0, "steps between checkpoints; 0: only at the end"),
                  ("eval_every", 0, "steps between evaluations; 0: only at the end"),
                  ("image_every", 0, "steps between image summaries; 0: never"),
                  ("keep_checkpoints", 1, "checkpoints kept"),
                  ("cpu_devices", 0, "logical CPU devices; 0: leave as is"),
                  ("intra_op_threads", 0, "threads per TensorFlow op; 0: TensorFlow's default"),
                  ("inter_op_threads", 0, "TensorFlow ops at once; 0: TensorFlow's default"),
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
