"""Test-time self-ensemble (Timofte et al. 2016, "Seven ways to improve example-based single
image super resolution"; EDSR's "+" models): run a restorer on the 8 flips / 90-degree rotations
of its input, undo each, and average. Up to 8x the time; no training.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

# The dihedral group D4 on [B, H, W, C] batches: (quarter turns, horizontal flip).
TRANSFORMS = tuple((k, flip) for flip in (False, True) for k in range(4))


def _forward(images, k, flip):
    out = images[:, :, ::-1] if flip else images
    return np.rot90(out, k, axes=(1, 2))


def _inverse(images, k, flip):
    out = np.rot90(images, -k, axes=(1, 2))
    return out[:, :, ::-1] if flip else out


def self_ensemble(fn: Callable[[np.ndarray], np.ndarray], images, num: int = 8) -> np.ndarray:
    """mean over the first `num` of `TRANSFORMS` of inverse(fn(forward(images))).

    fn: float32 [B, H, W, C] -> the same shape (a rotated batch is [B, W, H, C]); num: 1 (fn
    alone), 2, 4 or 8 transforms. Returns float32 [B, H, W, C].
    """
    if num not in (1, 2, 4, 8):
        raise ValueError(f"self_ensemble: num must be 1, 2, 4 or 8 transforms, got {num}")
    images = np.asarray(images, np.float32)
    if images.ndim != 4:
        raise ValueError(f"self_ensemble: need a [B, H, W, C] batch, got shape {images.shape}")
    order = [TRANSFORMS[i] for i in (0, 4, 2, 6, 1, 5, 3, 7)[:num]]  # flips and half turns first
    total = np.zeros(images.shape, np.float64)
    for k, flip in order:
        x = np.ascontiguousarray(_forward(images, k, flip))
        y = np.asarray(fn(x), np.float32)
        if y.shape != x.shape:
            raise ValueError(f"self_ensemble: the method returned {y.shape} for input {x.shape}")
        total += _inverse(y, k, flip)
    return (total / num).astype(np.float32)
