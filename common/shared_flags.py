"""One flag vocabulary for what the papers share, defined once and reused by every CLI.

| idea | flags | parsed by |
|---|---|---|
| training crop | `--crop_size` (square, pixels) | (an int) |
| resize before cropping | `--resize` ("H,W" or "S"; empty: none) | `parse_resize` |
| blur kernels | `--blur_kernels` (comma-separated: generator names or mixtures of `common.blur.make_kernel_bank`, or .npz/.mat banks), `--num_kernels`, `--kernel_sizes` ("start:stop[:step]" inclusive, or "a,b,c"), `--kernel_exposure`, `--kernel_min_taps`, `--kernel_min_extent` (one value, or one per item) | `kernel_bank`, `parse_kernel_sizes`, `parse_min_extents` |
| noise on blurred images | `--noise_sigma`, `--noise_sigma_min` (per-example level in [min, sigma]) | `noise_level` |
| Adam | `--learning_rate`, `--beta_1` | (floats) |
| precision, strategy | `--mixed_precision`, `--strategy` (`common.train.flags.define_common_flags`) | `common.train.flags` |

Each `define_*` takes the paper's defaults as arguments, so the name and the meaning are the
same everywhere while each paper keeps its own default values. Defining a flag twice on one
`FlagValues` is harmless (the second call is skipped).
"""
from __future__ import annotations

import os
from typing import Sequence

from absl import flags
import numpy as np

from common import blur


def _define(fv, kind, name, default, help_text, **kw):
    if name in fv:
        return
    getattr(flags, f"DEFINE_{kind}")(name, default, help_text, flag_values=fv, **kw)


def define_crop_flag(fv: flags.FlagValues, default: int, help_extra: str = "") -> None:
    """`--crop_size`: the square training crop in pixels."""
    _define(fv, "integer", "crop_size", default, "Training crop (square, pixels)"
            + (f"; {help_extra}" if help_extra else "") + ".", lower_bound=1)


def define_resize_flag(fv: flags.FlagValues, default: str | None = None) -> None:
    """`--resize`: "H,W" or "S" (square); empty for none."""
    _define(fv, "string", "resize", default, "Resize every image to H,W (or S,S for one number) "
            "before cropping; empty: no resize.")


def parse_resize(text, flag: str = "--resize") -> tuple[int, int] | None:
    """"312,256" -> (312, 256); "128" -> (128, 128); "" / None -> None; else a one-line error."""
    if text is None or str(text).strip() == "":
        return None
    parts = [p.strip() for p in str(text).split(",")]
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) not in (1, 2) or min(values) < 1:
        raise ValueError(f"{flag}={text!r}: give H,W or S (positive integers), e.g. "
                         f"{flag}=312,256 or {flag}=128.")
    return (values[0], values[0]) if len(values) == 1 else (values[0], values[1])


def define_noise_flags(fv: flags.FlagValues, noise_sigma: float = 0.0,
                       noise_sigma_min: float | None = None) -> None:
    """`--noise_sigma` and `--noise_sigma_min` (Gaussian noise on blurred images, [0, 1] scale)."""
    _define(fv, "float", "noise_sigma", noise_sigma, "Gaussian noise std added to blurred images "
            "([0, 1] scale).", lower_bound=0.0)
    _define(fv, "float", "noise_sigma_min", noise_sigma_min, "If set, each example's noise std "
            "is drawn uniformly in [--noise_sigma_min, --noise_sigma].", lower_bound=0.0)


def define_quantize_flag(fv: flags.FlagValues) -> None:
    """`--quantize_blur` of every trainer, default `blur.QUANTIZE_BLUR` (the one default)."""
    _define(fv, "bool", "quantize_blur", blur.QUANTIZE_BLUR, "Round images blurred on the fly "
            "(blur + noise) to 8 bits, as stored or photographed blurred images are.")


def noise_level(config):
    """--noise_sigma, or the (min, max) range when --noise_sigma_min is set."""
    if getattr(config, "noise_sigma_min", None) is None:
        return config.noise_sigma
    return (config.noise_sigma_min, config.noise_sigma)


def define_kernel_flags(fv: flags.FlagValues, *, blur_kernels: str | None, num_kernels: int,
                        kernel_sizes: str, kernel_exposure: float = 0.0,
                        kernel_min_taps: float = 0.0, kernel_min_extent: int = 0,
                        help_extra: str = "") -> None:
    """The blur-kernel flags (see `kernel_bank`), with the caller's defaults."""
    _define(fv, "string", "blur_kernels", blur_kernels, "Blur kernels: comma-separated "
            "generator names or '+'-mixtures (" + "/".join(blur.KERNEL_SPECS) + ", e.g. "
            "camera_shake+markov) and/or .npz/.mat kernel banks"
            + (f"; {help_extra}" if help_extra else "") + ".")
    _define(fv, "integer", "num_kernels", num_kernels, "Kernels drawn per generator in "
            "--blur_kernels (files: all their kernels).", lower_bound=1)
    _define(fv, "string", "kernel_sizes", kernel_sizes, "Odd kernel sizes of the generators: "
            "'start:stop[:step]' (inclusive, step 2 by default) or 'a,b,c'.")
    _define(fv, "float", "kernel_exposure", kernel_exposure, "camera_shake: trajectory fraction "
            "integrated; 0 = Boracchi-Foi random exposure, 1 = whole trajectory.",
            lower_bound=0.0, upper_bound=1.0)
    _define(fv, "float", "kernel_min_taps", kernel_min_taps, "Redraw generated kernels with "
            "fewer effective taps (common.blur.effective_taps); 0 keeps every draw.",
            lower_bound=0.0)
    new_min_extent = "kernel_min_extent" not in fv
    _define(fv, "string", "kernel_min_extent", str(kernel_min_extent), "Redraw generated "
            "kernels that reach fewer pixels along their longest side (common.blur.kernel_extent); "
            "0 keeps every draw. One number for every generator of --blur_kernels, or one per "
            "comma-separated item (e.g. --blur_kernels=M,M --kernel_min_extent=0,13: a bank half "
            "of M as drawn, half of M's long motions; 0 for a file).")
    if new_min_extent:
        flags.register_multi_flags_validator(["blur_kernels", "kernel_min_extent"],
                                             _check_min_extents, flag_values=fv)


def _check_min_extents(values: dict) -> bool:
    """absl validator: a bad --kernel_min_extent is one flags-parsing error, before any work."""
    try:
        parse_min_extents(values["kernel_min_extent"], _spec_items(values["blur_kernels"]))
    except ValueError as e:
        raise flags.ValidationError(str(e)) from None
    return True


def parse_kernel_sizes(text, flag: str = "--kernel_sizes") -> list[int]:
    """"13:29" -> [13, 15, ..., 29]; "13:29:4" -> [13, 17, ...]; "7,9" -> [7, 9]. Odd sizes only."""
    text = str(text).strip()
    try:
        if ":" in text:
            parts = [int(p) for p in text.split(":")]
            step = parts[2] if len(parts) > 2 else 2
            sizes = list(range(parts[0], parts[1] + 1, step)) if step > 0 else []
        else:
            sizes = [int(p) for p in text.split(",") if p.strip()]
    except (ValueError, IndexError):
        sizes = []
    if not sizes or any(s < 1 or s % 2 == 0 for s in sizes):
        raise ValueError(f"{flag}={text!r}: give odd sizes >= 1 as 'start:stop[:step]' "
                         f"(e.g. 13:29) or 'a,b,c'.")
    return sizes


def _spec_items(spec) -> list[str]:
    """The comma-separated items of a --blur_kernels value ([] for an empty one)."""
    return [p.strip() for p in str(spec or "").split(",") if p.strip()]


def _is_file_spec(item: str) -> bool:
    return not blur.is_generator_spec(item)


def kernel_bank(config, seed: int | None = None, spec: str | None = None,
                flag: str = "--blur_kernels", num: int | None = None) -> np.ndarray | None:
    """The kernel bank named by the kernel flags: float32 [K, S, S] (one odd S), or None when
    `--blur_kernels` is empty.

    Each comma-separated item of the spec is either a generator (or a '+' mixture) of
    `common.blur.make_kernel_bank`, drawn `--num_kernels` times over `--kernel_sizes` with
    `--kernel_exposure` / `--kernel_min_taps` / its `--kernel_min_extent` (`parse_min_extents`)
    and seed `seed + i` for the i-th item (so a generator named twice draws new kernels), or a
    .npz/.mat file (all its kernels). `seed` defaults to `--seed`; `spec` overrides
    `--blur_kernels`, `num` `--num_kernels`.
    """
    spec = config.blur_kernels if spec is None else spec
    if not spec:
        return None
    seed = int(config.seed if seed is None else seed)
    items = _spec_items(spec)
    min_extents = parse_min_extents(getattr(config, "kernel_min_extent", 0), items)
    kernels = []
    for index, (item, min_extent) in enumerate(zip(items, min_extents)):
        if _is_file_spec(item):
            if not os.path.isfile(item):
                raise FileNotFoundError(
                    f"{flag}: {item} is neither a kernel generator ({', '.join(blur.KERNEL_SPECS)}, "
                    f"or a '+' mixture of them) nor an existing .npz/.mat file (e.g. "
                    f"../shared/data/kernels/levin09.npz).")
            kernels.extend(blur.load_kernel_bank(item))
            continue
        bank = blur.make_kernel_bank(item, num=num or config.num_kernels,
                                     sizes=parse_kernel_sizes(config.kernel_sizes),
                                     seed=seed + index, exposure=config.kernel_exposure or None,
                                     min_taps=config.kernel_min_taps, min_extent=min_extent)
        kernels.extend(list(bank))
    return blur.pad_kernels(kernels)


def parse_min_extents(text, items: Sequence[str], flag: str = "--kernel_min_extent") -> list[int]:
    """`--kernel_min_extent` for each item of `--blur_kernels`: one number for every generator
    ("13"; files keep all their kernels), or one per item ("0,13"; 0 for a file); else a
    one-line error."""
    parts = [p.strip() for p in str(0 if text in (None, "") else text).split(",")]
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if not values or min(values) < 0 or len(values) not in (1, len(items)):
        raise ValueError(f"{flag}={text!r}: give one non-negative whole number of pixels for "
                         f"every generator, or one per item of --blur_kernels ({len(items)}: "
                         f"{','.join(items)}), e.g. {flag}=13"
                         + (f" or {flag}={','.join(['0'] * (len(items) - 1) + ['13'])}"
                            if len(items) > 1 else "") + ".")
    if len(values) == 1:
        return [0 if _is_file_spec(item) else values[0] for item in items]
    files = [f"{item} ({v})" for item, v in zip(items, values) if v and _is_file_spec(item)]
    if files:
        raise ValueError(f"{flag}={text!r}: a kernel file keeps all its kernels, so its value "
                         f"must be 0: {', '.join(files)}.")
    return values


def define_adam_flags(fv: flags.FlagValues, learning_rate: float, beta_1: float = 0.9,
                      help_extra: str = "") -> None:
    """`--learning_rate` and `--beta_1` (Adam)."""
    _define(fv, "float", "learning_rate", learning_rate, "Adam learning rate"
            + (f" ({help_extra})" if help_extra else "") + ".", lower_bound=0.0)
    _define(fv, "float", "beta_1", beta_1, "Adam beta_1.", lower_bound=0.0, upper_bound=1.0)


def parse_floats(spec, n: int | None = None, flag: str = "--scale_weights") -> np.ndarray:
    """"1,1,1" -> float32 [1, 1, 1]; with `n`, exactly n numbers or a one-line error."""
    try:
        values = [float(v) for v in str(spec).split(",") if v.strip()]
    except ValueError:
        values = None
    if values is None or (n is not None and len(values) != n):
        raise ValueError(f"{flag}={spec!r}: need {n if n is not None else 'some'} "
                         f"comma-separated numbers")
    return np.asarray(values, np.float32)
