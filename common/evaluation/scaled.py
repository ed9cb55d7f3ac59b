"""The strong-blur test at N x its scale: faces N x larger, their blur N x larger with them.

    scaled = scale_test_set(load_test_set("/tmp/lfw_strong_blur"), 4)   # 512-px faces

Each sample's sharp face is enlarged N x (bicubic, OpenCV), its stored kernel enlarged N x
(bilinear, each tap spread over N x N px, renormalised to sum 1, odd side), the enlarged face
blurred with it (reflect borders, `common.blur.apply_kernels`), Gaussian noise of the set's
sigma added (seeded per image) and stored as uint8, as `data.build` does at 1 x. This is a
phone-photo face: its blur is measured in face widths, not pixels. `python -m common.compare
--scale=N` scores methods on it (benchmarks/README.md, "Face scale").
"""
from __future__ import annotations

import dataclasses
import zlib

import numpy as np

from common.evaluation.stored_sets import Sample, TestSet


def scale_kernel(kernel: np.ndarray, factor: int) -> np.ndarray:
    """float32 [k,k] -> [K,K], K = the odd side nearest k * factor, sum 1, same shape N x larger."""
    import cv2  # pylint: disable=import-outside-toplevel
    k = np.asarray(kernel, np.float32)
    side = int(k.shape[0] * factor) | 1
    big = cv2.resize(k, (side, side), interpolation=cv2.INTER_LINEAR)
    big = np.maximum(big, 0.0)
    return (big / max(float(big.sum()), 1e-12)).astype(np.float32)


def scale_test_set(ts: TestSet, factor: int, noise_sigma: float | None = None,
                   seed: int = 2026) -> TestSet:
    """The test set at `factor` x (module doc); factor 1 returns it unchanged. Needs the sharp
    images and the kernels; noise_sigma None: the set's build noise (`meta`), else 0.01."""
    if factor == 1:
        return ts
    if factor < 1 or int(factor) != factor:
        raise ValueError(f"--scale={factor}: give an integer >= 1")
    if not (ts.has_reference and ts.has_kernels):
        raise ValueError(f"--scale={factor} needs a test set that stores sharp images and kernels "
                         f"(DIR/sharp, DIR/kernels); {ts.source} does not: build it with "
                         "data/configs/lfw_strong_blur_test.flags")
    import cv2  # pylint: disable=import-outside-toplevel
    from common import blur  # pylint: disable=import-outside-toplevel
    if noise_sigma is None:
        noise_sigma = float(ts.meta.get("noise_sigma", 0.01) or 0.01)
    samples = []
    for s in ts.samples:
        h, w = s.sharp.shape[:2]
        sharp = cv2.resize(s.sharp.astype(np.float32) / 255.0, (w * factor, h * factor),
                           interpolation=cv2.INTER_CUBIC).clip(0.0, 1.0)
        k = scale_kernel(s.kernel, factor)
        blurred = blur.apply_kernels(sharp[None], k[None])
        blurred = blur.add_noise(blurred, noise_sigma, seed=zlib.crc32(s.name.encode()) + seed)
        blurred = np.round(np.asarray(blurred)[0] * 255.0).clip(0, 255).astype(np.uint8)
        sharp8 = np.round(sharp * 255.0).clip(0, 255).astype(np.uint8)
        samples.append(Sample(s.name, blurred, sharp8, k))
    meta = {**ts.meta, "scale": factor, "noise_sigma": noise_sigma}
    return dataclasses.replace(ts, name=f"{ts.name}@{factor}x", samples=samples, meta=meta)
