"""The three small interfaces every face backend implements.

Images are RGB uint8 [H, W, 3] (float [0, 1] inputs are converted). A backend is one class; another
model is dropped in by subclassing and registering it in `common.face.registry`.
"""
from __future__ import annotations

import abc
import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Box:
    """Axis-aligned face box in pixels, (left, top) inclusive, (right, bottom) exclusive."""
    left: float
    top: float
    right: float
    bottom: float
    score: float = 1.0

    @property
    def width(self) -> float:
        return self.right - self.left

    @property
    def height(self) -> float:
        return self.bottom - self.top

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)

    @property
    def diagonal(self) -> float:
        return float(np.hypot(self.width, self.height))

    @classmethod
    def whole_image(cls, image, score: float = 0.0) -> "Box":
        """The box of the whole [H, W, ...] image: the fallback when no face is detected."""
        return cls(0.0, 0.0, float(image.shape[1]), float(image.shape[0]), score)


def as_uint8_rgb(image) -> np.ndarray:
    """[H, W, 3] uint8 view of an RGB image given as uint8 or float [0, 1]; gray -> RGB."""
    img = np.asarray(image)
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    if img.ndim != 3 or img.shape[-1] not in (1, 3, 4):
        raise ValueError(f"expected an image [H, W, 3], got shape {img.shape}")
    if img.shape[-1] == 1:
        img = np.repeat(img, 3, axis=-1)
    img = img[..., :3]
    if img.dtype != np.uint8:
        img = np.clip(np.round(img.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(img)


class Detector(abc.ABC):
    """Face detector: image -> boxes sorted by decreasing score."""

    name = "detector"

    @abc.abstractmethod
    def detect(self, image) -> list[Box]:
        """Detect faces in one RGB image [H, W, 3]; [] when none is found."""

    def detect_largest(self, image) -> Box | None:
        """The largest detected face, or None."""
        boxes = self.detect(image)
        return max(boxes, key=lambda b: b.area) if boxes else None


class Landmarker(abc.ABC):
    """68-point (iBUG 300-W order) landmark localiser."""

    name = "landmarker"
    num_points = 68

    @abc.abstractmethod
    def landmarks(self, image, box: Box | None = None) -> np.ndarray | None:
        """(x, y) float32 [P, 2] for the face in `box` (or the detector's largest face when None);
        None when no box is given and no face is detected."""


class IdentityModel(abc.ABC):
    """Face identity embedding: face image -> L2-normalised float32 [D]."""

    name = "identity"
    dim = 0

    @abc.abstractmethod
    def embed(self, image, box: Box | None = None) -> np.ndarray:
        """Embedding of the face in `box` (the whole image when None for a tight crop)."""

    def embed_many(self, images, boxes=None) -> np.ndarray:
        boxes = boxes if boxes is not None else [None] * len(images)
        return np.stack([self.embed(im, b) for im, b in zip(images, boxes)]).astype(np.float32)


def l2_normalize(v: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    v = np.asarray(v, np.float32)
    return v / max(float(np.linalg.norm(v)), eps)
