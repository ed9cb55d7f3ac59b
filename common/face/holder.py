"""FaceModels: the one holder of the face models an evaluation needs (built lazily, on first use).

    fm = FaceModels(identity_model="dlib_resnet", landmarker="dlib68", detector="mtcnn")
    box = fm.box("img_001", sharp)          # face box found on the SHARP image, cached by key
    fm.embed(restored, box)                  # identity descriptor in that box, L2-normalised [D]
    fm.landmarks(restored, box)              # [68,2] (NaN rows when the landmarker fails)
    fm.detected(restored)                    # detection success: the detector finds >= 1 face

Boxes come from `box_detector` (dlib HOG by default: the boxes dlib's 68-point model was trained
on) on the sharp image and are reused for every version of that image (blurred, restored), so
landmark and identity numbers measure the landmarker / embedding, not the detector. When no face
is found the whole image is the box (`fallbacks` counts such keys); `find_box` returns None instead.
Used by `common.evaluation`, `common.face.evaluate` and the papers' `evaluate` modules.
"""
from __future__ import annotations

import numpy as np

from common.face.base import Box, as_uint8_rgb


class FaceModels:
    """Args:
      identity_model: "dlib_resnet" | "vgg_face" | "" (none).
      landmarker: "dlib68" | "" (none).
      detector: detector of the detection-rate metric ("mtcnn", "haar", "dlib"; "" none).
      box_detector: detector of the face boxes for landmarks / identity / face-region metrics.
      vgg_face_weights, dlib_models_dir: model files (nothing is downloaded).
    """

    def __init__(self, identity_model: str = "dlib_resnet", landmarker: str = "dlib68",
                 detector: str = "mtcnn", box_detector: str = "dlib", vgg_face_weights: str | None = None,
                 dlib_models_dir: str | None = None):
        if identity_model == "vgg_face" and not vgg_face_weights:
            raise ValueError("identity model vgg_face needs --vgg_face_weights=PATH (a Keras VGG-Face "
                             "weights file; none ships and nothing is downloaded), or use dlib_resnet")
        self.identity_name, self.landmarker_name = identity_model or "", landmarker or ""
        self.detector_name, self.box_detector_name = detector or "", box_detector or "dlib"
        self.vgg_face_weights, self.dlib_models_dir = vgg_face_weights or None, dlib_models_dir or None
        self._identity = self._landmarker = self._detector = self._box_detector = None
        self.boxes: dict = {}
        self.cache: dict = {}   # per-user caches (e.g. embeddings of the sharp images), by name
        self.fallbacks = 0

    # ------------------------------------------------------------------ lazily built models
    @property
    def box_detector(self):
        if self._box_detector is None:
            from common import face
            self._box_detector = face.get_detector(self.box_detector_name)
        return self._box_detector

    @property
    def detector(self):
        if self._detector is None and self.detector_name:
            from common import face
            self._detector = (self.box_detector if self.detector_name == self.box_detector_name
                              else face.get_detector(self.detector_name))
        return self._detector

    @property
    def identity(self):
        if self._identity is None and self.identity_name:
            from common import face
            extra = ({} if self.identity_name == "vgg_face" else {"models_dir": self.dlib_models_dir})
            self._identity = face.get_identity_model(self.identity_name, weights=self.vgg_face_weights,
                                                     **extra)
        return self._identity

    @property
    def landmarker(self):
        if self._landmarker is None and self.landmarker_name:
            from common import face
            self._landmarker = face.get_landmarker(self.landmarker_name, detector=self.box_detector,
                                                   models_dir=self.dlib_models_dir)
        return self._landmarker

    # ------------------------------------------------------------------ boxes
    def find_box(self, key, sharp) -> Box | None:
        """The largest face the box detector finds on the sharp image (cached by key), or None."""
        if key not in self.boxes:
            self.boxes[key] = self.box_detector.detect_largest(as_uint8_rgb(sharp))
            self.fallbacks += self.boxes[key] is None
        return self.boxes[key]

    def box(self, key, sharp) -> Box:
        """`find_box`, or the whole image when no face is found (`fallbacks` counts the keys)."""
        b = self.find_box(key, sharp)
        return Box.whole_image(np.asarray(sharp)) if b is None else b

    # ------------------------------------------------------------------ measurements
    def embed(self, image, box: Box | None = None) -> np.ndarray:
        """Identity descriptor (float64 [D], L2-normalised) of the face in `box`."""
        if self.identity is None:
            raise ValueError("FaceModels was built without an identity model")
        return np.asarray(self.identity.embed(as_uint8_rgb(image), box), np.float64)

    def embed_many(self, images, boxes=None) -> np.ndarray:
        boxes = boxes if boxes is not None else [None] * len(images)
        return np.stack([self.embed(im, b) for im, b in zip(images, boxes)])

    def landmarks(self, image, box: Box | None = None) -> np.ndarray:
        """[68,2] float64 landmarks in `box`; NaN rows when the landmarker finds none."""
        if self.landmarker is None:
            raise ValueError("FaceModels was built without a landmarker")
        p = self.landmarker.landmarks(as_uint8_rgb(image), box)
        return np.full((68, 2), np.nan) if p is None else np.asarray(p, np.float64)

    def landmarks_many(self, images, boxes) -> np.ndarray:
        return np.stack([self.landmarks(im, b) for im, b in zip(images, boxes)])

    def detected(self, image) -> bool:
        """Detection success: the detector finds at least one face."""
        if self.detector is None:
            raise ValueError("FaceModels was built without a detector")
        return len(self.detector.detect(as_uint8_rgb(image))) > 0
