"""Shape statistics of blur kernels, to compare training banks with recorded camera shake.

    python -m common.kernel_stats --output_dir=OUT \
        --bank="levin (test: measure, never train)=../shared/data/kernels/levin09.npz" \
        --bank="shipped umsn blur=camera_shake+markov+linear:15:29:12" --bank="shake=shake:13:29"

A --bank is NAME=SPEC, SPEC a kernel file (.npz/.mat, every kernel) or GENERATOR[:MIN:MAX[:TAPS]]
(`common.blur.make_kernel_bank` at whole exposure, odd sizes MIN..MAX, redrawn below TAPS
effective taps; --num kernels). Writes OUT/kernel_stats.md (median and 10-90 % range of every
statistic per bank), kernel_stats.json, kernel_stats.png (one histogram per statistic) and
kernel_gallery.png (each bank's first 8 kernels in a row, square-root brightness).

`--write_validation_bank=FILE.npz` writes the validation-only family (`validation_bank`):
neither a training family nor the test's, for choosing recipes (data/README.md).
"""
from __future__ import annotations

import json
import os

import numpy as np
from absl import flags

from common import blur, image_io

# (key, title): the statistics of `kernel_stats`, in table order.
STATS = (("extent", "extent px"), ("taps", "effective taps"), ("path", "path length px"),
         ("tortuosity", "path / extent"), ("spread", "spread px"), ("aniso", "anisotropy"),
         ("off_path", "energy off path"))


def kernel_stats(kernel, rel=0.05):
    """Shape statistics of one kernel (any size, non-negative, normalised here).

    - extent: `blur.kernel_extent`, the longer side of the box of taps >= rel * max (px).
    - taps: `blur.effective_taps`, 1 / sum(k^2) (a line of L px: ~L).
    - path: pixels of the skeleton of those taps (skimage `skeletonize`): the length of the
      camera path (a straight line of L px: L; a loop: more than its extent).
    - tortuosity: path / extent (1 for a straight line, larger for curves and loops).
    - spread: sqrt of the trace of the kernel's weighted covariance (px), the radius of gyration.
    - aniso: sqrt(smaller / larger eigenvalue) of that covariance (0: a line, 1: isotropic).
    - off_path: the fraction of energy farther than 1 px from the skeleton (thickness, halo).
    """
    from scipy import ndimage
    from skimage.morphology import skeletonize
    k = np.asarray(kernel, np.float64)
    if k.ndim != 2 or not np.all(np.isfinite(k)) or k.min() < 0 or k.sum() <= 0:
        raise ValueError(f"kernel_stats: need a finite non-negative 2-D kernel with positive "
                         f"mass, got shape {k.shape}")
    k = k / k.sum()
    skeleton = skeletonize(k >= rel * k.max())
    ys, xs = np.indices(k.shape)
    cy, cx = (k * ys).sum(), (k * xs).sum()
    dy, dx = ys - cy, xs - cx
    cov = np.array([[(k * dy * dy).sum(), (k * dy * dx).sum()],
                    [(k * dy * dx).sum(), (k * dx * dx).sum()]])
    lo, hi = np.clip(np.linalg.eigvalsh(cov), 0.0, None)
    extent = blur.kernel_extent(k, rel)
    path = int(skeleton.sum())
    near = ndimage.distance_transform_edt(~skeleton) <= 1.5
    return {"extent": float(extent), "taps": blur.effective_taps(k), "path": float(path),
            "tortuosity": path / extent, "spread": float(np.sqrt(lo + hi)),
            "aniso": float(np.sqrt(lo / hi)) if hi > 0 else 1.0,
            "off_path": float(k[~near].sum())}


def summarise(kernels):
    """{stat: {"median", "p10", "p90", "values"}} over a list or stack of kernels."""
    rows = [kernel_stats(k) for k in kernels]
    out = {}
    for key, _ in STATS:
        v = np.array([r[key] for r in rows])
        out[key] = {"median": float(np.median(v)), "p10": float(np.percentile(v, 10)),
                    "p90": float(np.percentile(v, 90)), "values": v.tolist()}
    return out


def validation_bank(num=200, seed=0, sizes=range(13, 28, 2), kair_path=None):
    """The validation-only kernel family: never trained on, not the test's (Levin et al.'s).

    Boracchi & Foi trajectories with DeblurGAN's low anxiety (0.005: smooth, long paths) at
    whole exposure on a 32-px canvas (twice the scale of `blur.camera_shake_kernel`'s default),
    sizes 13..27, plus -- when `kair_path` (KAIR's `kernels_12.npz`) is given -- its two motion
    kernels that are not Levin et al.'s (`k10`, `k11`; `k8` and `k9` are Levin's kernels 7 and
    6, padded to 25 px, and are left out). float32 [K, S, S], zero-padded to one odd size.
    """
    rng = np.random.default_rng(seed)
    sizes = list(sizes)
    kernels = [blur.camera_shake_kernel(int(sizes[rng.integers(len(sizes))]), rng=rng,
                                        anxiety=0.005, exposure=1.0, canvas=32)
               for _ in range(num)]
    if kair_path:
        with np.load(kair_path) as z:
            kernels += [blur.centre_kernel(z[name]) for name in ("k10", "k11")]
    return blur.pad_kernels(kernels)


def load_spec(spec, num=200, seed=0):
    """A --bank SPEC's kernels: a file, or GENERATOR[:MIN:MAX[:TAPS]] at whole exposure."""
    if os.path.splitext(spec)[1].lower() in (".npz", ".mat"):
        return list(blur.load_kernel_bank(spec))
    name, *rest = spec.split(":")
    if not blur.is_generator_spec(name) or len(rest) not in (0, 2, 3):
        raise ValueError(f"--bank spec {spec!r}: give a kernel file (.npz/.mat) or "
                         f"GENERATOR[:MIN:MAX[:TAPS]] with GENERATOR from {blur.KERNEL_SPECS}")
    lo, hi = (int(rest[0]), int(rest[1])) if rest else (13, 29)
    taps = float(rest[2]) if len(rest) == 3 else 0.0
    return list(blur.make_kernel_bank(name, num, sizes=range(lo, hi + 1, 2), seed=seed,
                                      exposure=1.0, min_taps=taps))


def write_report(banks, output_dir):
    """Writes kernel_stats.md / .json / .png for {name: kernels}; returns the Markdown."""
    os.makedirs(output_dir, exist_ok=True)
    summaries = {name: summarise(ks) for name, ks in banks.items()}
    head = "| bank | kernels | " + " | ".join(t for _, t in STATS) + " |"
    lines = [head, "|" + "---|" * (len(STATS) + 2)]
    for name, s in summaries.items():
        cells = [f"{s[k]['median']:.2f} ({s[k]['p10']:.2f}-{s[k]['p90']:.2f})" for k, _ in STATS]
        lines.append(f"| {name} | {len(banks[name])} | " + " | ".join(cells) + " |")
    md = "\n".join(lines) + "\n\nmedian (10th-90th percentile) per bank; `common.kernel_stats`.\n"
    image_io.atomic_write(os.path.join(output_dir, "kernel_stats.md"), md.encode())
    image_io.atomic_write(os.path.join(output_dir, "kernel_stats.json"),
                          json.dumps(summaries, indent=1).encode())
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(2, 4, figsize=(12, 5.5))
    axes = axes.ravel()
    for ax, (key, title) in zip(axes, STATS):
        values = [np.array(s[key]["values"]) for s in summaries.values()]
        bins = np.linspace(min(v.min() for v in values), max(v.max() for v in values), 20)
        for name, v in zip(summaries, values):
            ax.hist(v, bins=bins, density=True, histtype="step", linewidth=1.5, label=name)
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=7)
    handles, labels = axes[0].get_legend_handles_labels()
    axes[-1].axis("off")
    axes[-1].legend(handles, labels, fontsize=7, loc="center")
    fig.tight_layout()
    fig.savefig(os.path.join(output_dir, "kernel_stats.png"), dpi=90)
    plt.close(fig)
    # The first 8 kernels of every bank side by side (rows = banks), each scaled to its max.
    size = max(np.asarray(k).shape[0] for ks in banks.values() for k in ks)
    rows = []
    for ks in banks.values():
        tiles = [np.asarray(k, np.float64) / np.max(k) for k in blur.pad_kernels(ks[:8], size)]
        tiles += [np.zeros((size, size))] * (8 - len(tiles))
        rows.append(np.concatenate([np.pad(t, 1, constant_values=0.3) for t in tiles], axis=1))
    gallery = (np.sqrt(np.concatenate(rows, axis=0)) * 255).astype(np.uint8)
    gallery = np.kron(gallery, np.ones((4, 4), np.uint8))
    image_io.write_image(os.path.join(output_dir, "kernel_gallery.png"), gallery[..., None]
                         .repeat(3, axis=-1))
    return md


def define_flags(fv=flags.FLAGS):
    d = dict(flag_values=fv)
    flags.DEFINE_multi_string("bank", [], "NAME=SPEC (repeatable); see the module doc.", **d)
    flags.DEFINE_string("output_dir", None, "Where kernel_stats.md/.json/.png go.", **d)
    flags.DEFINE_integer("num", 200, "Kernels drawn per generator bank.", **d)
    flags.DEFINE_integer("seed", 0, "Seed of the generator banks.", **d)
    flags.DEFINE_string("write_validation_bank", None, "Write the validation-only family "
                        "(validation_bank) to this .npz and exit.", **d)
    flags.DEFINE_string("kair_kernels", None, "KAIR's kernels_12.npz: adds its non-Levin motion "
                        "kernels k10, k11 to --write_validation_bank.", **d)


def main(argv):
    del argv
    fv = flags.FLAGS
    if fv.write_validation_bank:
        bank = validation_bank(fv.num, fv.seed, kair_path=fv.kair_kernels)
        os.makedirs(os.path.dirname(os.path.abspath(fv.write_validation_bank)), exist_ok=True)
        np.savez(fv.write_validation_bank, kernels=bank)
        print(f"wrote {len(bank)} kernels {bank.shape[1]}x{bank.shape[2]} to "
              f"{fv.write_validation_bank}")
        return
    if not fv.bank or not fv.output_dir:
        raise app_usage("give --output_dir and at least one --bank=NAME=SPEC")
    banks = {}
    for item in fv.bank:
        name, _, spec = item.rpartition("=")
        banks[name or spec] = load_spec(spec, fv.num, fv.seed)
    print(write_report(banks, fv.output_dir))


def app_usage(message):
    from absl import app  # pylint: disable=import-outside-toplevel
    return app.UsageError(message)


if __name__ == "__main__":
    from common import cli
    define_flags()
    cli.run_app(main)
