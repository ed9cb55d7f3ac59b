"""dlib backends: the 68-point shape predictor (Kazemi & Sullivan 2014, trained on iBUG 300-W)
and the 128-D face-recognition ResNet (99.38 % on LFW as published by dlib).

Model files come from the `face_recognition_models` package, Debian's libdlib-data or
--dlib_models_dir (see common.face._deps.dlib_model_path); nothing is downloaded.
Note: the 68-point model's training data excludes commercial use.
"""
from __future__ import annotations

import numpy as np

from common.face import _deps
from common.face.base import Box, Detector, IdentityModel, Landmarker, as_uint8_rgb, l2_normalize


def _rect(dlib, box: Box):
    return dlib.rectangle(int(round(box.left)), int(round(box.top)),
                          int(round(box.right)) - 1, int(round(box.bottom)) - 1)


class _HOGBoxes:
    """The detector a dlib model falls back on when called without a box: dlib HOG unless given."""

    _detector: Detector | None = None

    @property
    def detector(self) -> Detector:
        if self._detector is None:
            from common.face.detectors import DlibHOGDetector
            self._detector = DlibHOGDetector()
        return self._detector


class DlibLandmarker(_HOGBoxes, Landmarker):
    """dlib 68-point landmarks in a given box, or in the detector's largest face.

    Args:
      detector: used when `landmarks()` gets no box (default: dlib HOG, the boxes the model was
        trained on; boxes of another shape, e.g. MTCNN's, raise the landmark error somewhat).
      models_dir: directory holding shape_predictor_68_face_landmarks.dat (optional).
    """

    name = "dlib68"
    num_points = 68

    def __init__(self, detector: Detector | None = None, models_dir: str | None = None):
        self._dlib = _deps.require("dlib", "dlib-bin")
        self._predictor = self._dlib.shape_predictor(
            _deps.dlib_model_path(_deps.DLIB_LANDMARKS_68, models_dir))
        self._detector = detector

    def landmarks(self, image, box: Box | None = None) -> np.ndarray | None:
        img = as_uint8_rgb(image)
        if box is None:
            box = self.detector.detect_largest(img)
            if box is None:
                return None
        shape = self._predictor(img, _rect(self._dlib, box))
        return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)


class DlibResNetIdentity(_HOGBoxes, IdentityModel):
    """dlib's 128-D face descriptor (a ResNet-29 on 150x150 chips aligned by 5 landmarks).

    With no box the face is found with the dlib HOG detector; when none is found the whole image
    is used as the box (LFW crops are tight, so this is a reasonable fallback) and
    `self.last_fallback` is set.
    """

    name = "dlib_resnet"
    dim = 128

    def __init__(self, models_dir: str | None = None, detector: Detector | None = None,
                 num_jitters: int = 0):
        self._dlib = _deps.require("dlib", "dlib-bin")
        self._sp5 = self._dlib.shape_predictor(_deps.dlib_model_path(_deps.DLIB_LANDMARKS_5, models_dir))
        self._net = self._dlib.face_recognition_model_v1(_deps.dlib_model_path(_deps.DLIB_RESNET, models_dir))
        self._detector = detector
        self.num_jitters = int(num_jitters)
        self.last_fallback = False

    def embed(self, image, box: Box | None = None) -> np.ndarray:
        img = as_uint8_rgb(image)
        self.last_fallback = False
        if box is None:
            box = self.detector.detect_largest(img)
            if box is None:
                box, self.last_fallback = Box.whole_image(img), True
        shape = self._sp5(img, _rect(self._dlib, box))
        desc = self._net.compute_face_descriptor(img, shape, self.num_jitters)
        return l2_normalize(np.asarray(desc, np.float32))
