"""Validation (and, after the decision, test) PSNR against training hours, for a model card.

A curve file is the JSON record a long training campaign keeps beside its shipped model
(e.g. `paper3_umsn/weights/umsn_small_campaign.json`):

    {"model": "umsn_small",
     "sets": {"val_kair": "...what the set is...", "val_family": "..."},
     "references": {"blurred input": {"val_kair": [PSNR, SSIM], ...}, ...},
     "points": [{"step": 1500, "hours": 0.36, "val_kair": [PSNR, SSIM], ...}, ...],
     "chosen_step": 3500,
     "test": {"set": "...", "points": [{"step": 3500, "hours": ..., "psnr": ..., "ssim": ...}]}}

`hours` are wall-clock hours of training on the run's machine (the card says which). Plot one or
more files (one panel per validation set, references as dashed lines, the chosen checkpoint
circled):

    python -m common.curves --curve=paper3_umsn/weights/umsn_small_campaign.json \
        --output=docs/umsn_campaign.png
"""
from __future__ import annotations

import io
import json
import os

from absl import app, flags

from common import image_io


def load_curve(path):
    """Reads and checks a curve file; a ValueError names the file and what is wrong."""
    try:
        with open(path, encoding="utf-8") as f:
            curve = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a readable curve JSON file ({e})") from None
    sets = curve.get("sets")
    points = curve.get("points")
    if not isinstance(sets, dict) or not sets or not isinstance(points, list) or not points:
        raise ValueError(f"{path}: a curve needs a non-empty 'sets' mapping and 'points' list")
    for i, p in enumerate(points):
        missing = [k for k in ("step", "hours", *sets) if k not in p]
        if missing:
            raise ValueError(f"{path}: point {i} lacks {', '.join(missing)}")
        for name in sets:
            if len(p[name]) != 2:
                raise ValueError(f"{path}: point {i}: {name} must be [PSNR, SSIM]")
    if [p["hours"] for p in points] != sorted(p["hours"] for p in points):
        raise ValueError(f"{path}: points must be in training order (hours increasing)")
    return curve


def plot_curves(paths, output):
    """One PSNR-vs-hours panel per validation set of the first file; returns `output`."""
    import matplotlib  # pylint: disable=import-outside-toplevel
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
    curves = [load_curve(p) for p in paths]
    names = list(curves[0]["sets"])
    fig, axes = plt.subplots(1, len(names), figsize=(4.6 * len(names), 3.4), squeeze=False)
    for ax, name in zip(axes[0], names):
        for curve in curves:
            pts = [p for p in curve["points"] if name in p]
            hours = [p["hours"] for p in pts]
            line, = ax.plot(hours, [p[name][0] for p in pts], "o-", ms=3,
                            label=curve.get("model", "model"))
            for ref, values in curve.get("references", {}).items():
                if name in values:
                    ax.axhline(values[name][0], ls="--", lw=1, color="0.5")
                    ax.annotate(ref, (hours[0], values[name][0]), fontsize=7, color="0.35",
                                xytext=(0, 2), textcoords="offset points")
            chosen = [p for p in pts if p["step"] == curve.get("chosen_step")]
            for p in chosen:
                ax.plot(p["hours"], p[name][0], "o", ms=10, mfc="none", color=line.get_color())
            test = curve.get("test", {})
            if name == names[0] and test.get("points"):
                ax.plot([p["hours"] for p in test["points"]], [p["psnr"] for p in test["points"]],
                        "s", color=line.get_color(), label=f"test: {test.get('set', '')}")
        ax.set_title(f"{name}: {curves[0]['sets'][name]}", fontsize=8)
        ax.set_xlabel("training hours", fontsize=8)
        ax.set_ylabel("PSNR (dB)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=90)
    plt.close(fig)
    image_io.atomic_write(output, png.getvalue())
    return output


def define_flags(fv=flags.FLAGS):
    d = dict(flag_values=fv)
    flags.DEFINE_multi_string("curve", [], "A curve JSON file (repeatable); see the module doc.", **d)
    flags.DEFINE_string("output", None, "The PNG to write.", **d)


def main(argv):
    del argv
    fv = flags.FLAGS
    if not fv.curve or not fv.output:
        raise app.UsageError("give --curve=FILE.json (one or more) and --output=PLOT.png")
    try:
        print(plot_curves(fv.curve, fv.output))
    except ValueError as e:
        raise app.UsageError(str(e)) from None


if __name__ == "__main__":
    define_flags()
    app.run(main)
