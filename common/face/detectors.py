"""Face detectors: MTCNN (paper 1's detection-rate protocol), OpenCV Haar cascade, dlib HOG."""
from __future__ import annotations

import numpy as np

from common.face import _deps
from common.face.base import Box, Detector, as_uint8_rgb


class MTCNNDetector(Detector):
    """MTCNN (Zhang et al. 2016) from the `mtcnn` package; weights ship inside its wheel.

    Args:
      min_confidence: boxes scoring below this are dropped (mtcnn's own default keeps >= 0.7
        after the O-net; 0.9 is the usual "a face was found" threshold).
      min_face_size: smallest face, in pixels, searched by the image pyramid.
    """

    name = "mtcnn"

    def __init__(self, min_confidence: float = 0.9, min_face_size: int = 20):
        mtcnn = _deps.require("mtcnn", "mtcnn")
        _deps.require("lz4", "lz4")
        self._net = mtcnn.MTCNN(device="CPU:0")
        self.min_confidence = float(min_confidence)
        self.min_face_size = int(min_face_size)

    def _to_boxes(self, results) -> list[Box]:
        boxes = []
        for r in results:
            x, y, w, h = (float(v) for v in r["box"])
            score = float(r["confidence"])
            if score >= self.min_confidence:
                boxes.append(Box(x, y, x + w, y + h, score))
        return sorted(boxes, key=lambda b: -b.score)

    def detect(self, image) -> list[Box]:
        img = as_uint8_rgb(image)
        return self._to_boxes(self._net.detect_faces(img, min_face_size=self.min_face_size))

    def detect_batch(self, images) -> list[list[Box]]:
        """Detect in a list of same-size images at once (several times faster than one by one)."""
        imgs = [as_uint8_rgb(im) for im in images]
        if not imgs:
            return []
        results = self._net.detect_faces(imgs, min_face_size=self.min_face_size)
        return [self._to_boxes(r) for r in results]


class HaarDetector(Detector):
    """Viola-Jones frontal-face Haar cascade from `opencv-python-headless` (cv2.data.haarcascades)."""

    name = "haar"

    def __init__(self, cascade: str = "haarcascade_frontalface_default.xml", scale_factor: float = 1.1,
                 min_neighbors: int = 5, min_size: int = 20):
        cv2 = _deps.require("cv2", "opencv-python-headless")
        path = cv2.data.haarcascades + cascade
        self._cascade = cv2.CascadeClassifier(path)
        if self._cascade.empty():
            raise _deps.FaceBackendMissing(f"OpenCV could not load the Haar cascade {path}; "
                                           f"reinstall the face extra: {_deps.INSTALL_HINT}")
        self._cv2 = cv2
        self.scale_factor, self.min_neighbors, self.min_size = scale_factor, min_neighbors, min_size

    def detect(self, image) -> list[Box]:
        gray = self._cv2.cvtColor(as_uint8_rgb(image), self._cv2.COLOR_RGB2GRAY)
        rects, _, weights = self._cascade.detectMultiScale3(
            gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
            minSize=(self.min_size, self.min_size), outputRejectLevels=True)
        boxes = [Box(float(x), float(y), float(x + w), float(y + h), float(s))
                 for (x, y, w, h), s in zip(np.asarray(rects).reshape(-1, 4), np.ravel(weights))]
        return sorted(boxes, key=lambda b: -b.score)


class DlibHOGDetector(Detector):
    """dlib's HOG + linear SVM frontal face detector (the boxes its 68-point model was trained on).

    Args:
      upsample: image pyramid upsampling steps (1 finds faces down to ~40 px).
      threshold: SVM score threshold (dlib's default 0).
    """

    name = "dlib"

    def __init__(self, upsample: int = 1, threshold: float = 0.0):
        dlib = _deps.require("dlib", "dlib-bin")
        self._det = dlib.get_frontal_face_detector()
        self.upsample, self.threshold = int(upsample), float(threshold)

    def detect(self, image) -> list[Box]:
        rects, scores, _ = self._det.run(as_uint8_rgb(image), self.upsample, self.threshold)
        boxes = [Box(float(r.left()), float(r.top()), float(r.right() + 1), float(r.bottom() + 1), float(s))
                 for r, s in zip(rects, scores)]
        return sorted(boxes, key=lambda b: -b.score)
