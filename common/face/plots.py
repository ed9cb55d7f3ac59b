"""PNG plots of the face protocols (matplotlib, Agg): CED curves and identity-similarity histograms.

Each function writes the PNG atomically and returns its bytes (for a TensorBoard image summary).
"""
from __future__ import annotations

import io

import numpy as np


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save_fig(fig, path: str) -> bytes:
    from common import image_io
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    data = buf.getvalue()
    image_io.atomic_write(path, data)
    return data


def plot_ced(curves: dict, path: str, title: str = "CED") -> bytes:
    """curves: label -> (thresholds, fraction). Writes a PNG, returns its bytes."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 4))
    for label, (t, f) in curves.items():
        ax.plot(t, f, label=label)
    ax.set_xlabel("NME (normalised by GT box diagonal)")
    ax.set_ylabel("fraction of images")
    ax.set_ylim(0, 1.02)
    ax.set_xlim(-0.002, max(float(t[-1]) for t, _ in curves.values()))  # keep a step at 0 visible
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title(title)
    data = _save_fig(fig, path)
    plt.close(fig)
    return data


def plot_similarity(dists: dict, path: str, title: str = "identity cosine similarity") -> bytes:
    """dists: label -> cosine values [N]. Histogram PNG."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 4))
    lo = min(float(np.min(v)) for v in dists.values())
    lo = max(-1.0, np.floor(lo * 20) / 20)  # common range for all histograms, 0.05 steps
    for label, v in dists.items():
        ax.hist(np.asarray(v), bins=40, range=(lo, 1.0), alpha=0.5, label=label)
    ax.set_xlabel("cosine similarity to the sharp image's embedding")
    ax.set_ylabel("images")
    ax.legend()
    ax.set_title(title)
    data = _save_fig(fig, path)
    plt.close(fig)
    return data
