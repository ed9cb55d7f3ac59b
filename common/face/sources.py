"""Images of one condition addressed by a relative path (the conditions of the LFW protocols).

    sharp     ImageSource(lfw_dir)                 the images of a folder
    blurred   BlurredSource(sharp, kernels, sigma)  each image convolved with one kernel of a bank,
              picked by crc32(relative path) % K so every run and every model sees the same blur;
              optional Gaussian noise (seeded by the same hash); rounded to uint8
    restored  RestoredSource(restored_dir)          the same relative paths under another folder,
              any image extension
"""
from __future__ import annotations

import os
import zlib

import numpy as np

CONDITIONS = ("sharp", "blurred", "restored")


class ImageSource:
    """Sharp images of a folder, addressed by relative path."""

    condition = "sharp"

    def __init__(self, root: str):
        if not os.path.isdir(root):
            raise FileNotFoundError(f"image folder {root} not found")
        self.root = root

    def path(self, rel: str) -> str:
        p = os.path.join(self.root, rel)
        if os.path.isfile(p):
            return p
        stem = os.path.splitext(p)[0]
        for ext in (".png", ".jpg", ".jpeg", ".bmp", ".PNG", ".JPG"):
            if os.path.isfile(stem + ext):
                return stem + ext
        raise FileNotFoundError(f"{self.condition} image for {rel} not found under {self.root}")

    def __call__(self, rel: str) -> np.ndarray:
        from common import image_io
        return image_io.read_image(self.path(rel))


class RestoredSource(ImageSource):
    """Restored images under a folder mirroring the LFW layout (--restored_dir)."""
    condition = "restored"


class BlurredSource:
    """Sharp images blurred with a kernel bank, deterministic per relative path.

    Kernel k = kernels[crc32(rel) % K]; convolution by `common.blur.apply_kernels` (reflect
    borders); Gaussian noise of std `noise_sigma` (seeded by the same hash); rounded to uint8.
    """

    condition = "blurred"

    def __init__(self, sharp, kernels: np.ndarray, noise_sigma: float = 0.0):
        self.sharp = sharp
        self.kernels = np.asarray(kernels, np.float32)
        if self.kernels.ndim != 3 or self.kernels.shape[1] != self.kernels.shape[2]:
            raise ValueError(f"kernels must be [K,S,S], got {self.kernels.shape}")
        self.noise_sigma = float(noise_sigma)

    def kernel_index(self, rel: str) -> int:
        return zlib.crc32(rel.encode()) % len(self.kernels)

    def __call__(self, rel: str) -> np.ndarray:
        from common import blur
        img = self.sharp(rel).astype(np.float32) / 255.0
        out = np.asarray(blur.apply_kernels(img, self.kernels[self.kernel_index(rel)]))
        if self.noise_sigma > 0:
            rng = np.random.default_rng(zlib.crc32(rel.encode()))
            out = out + rng.normal(0.0, self.noise_sigma, out.shape)
        return np.clip(np.round(out * 255.0), 0, 255).astype(np.uint8)


def load_kernels(spec: str, num: int = 64, seed: int = 0, centre: bool = False) -> np.ndarray:
    """Kernel bank [K,S,S] from a .npz/.mat path or a generator name (common.blur.make_kernel_bank);
    `centre`: a file's kernels moved onto their centroids (common.blur.centre_kernel)."""
    from common import blur
    return blur.make_kernel_bank(spec, num=None if os.path.exists(spec) else num, seed=seed,
                                 centre=centre)
