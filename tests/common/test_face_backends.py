"""common.face backends on real LFW images (CI installs .[test,face], so nothing is skipped)."""
import os
import sys

import numpy as np
import pytest

from common import face
from common.face import _deps
from common.image_io import read_image
from common.paths import SHARED_DATA

LFW = os.path.join(SHARED_DATA, "lfw")
BUSH_A = f"{LFW}/George_W_Bush/George_W_Bush_0007.jpg"
BUSH_B = f"{LFW}/George_W_Bush/George_W_Bush_0016.jpg"
POWELL = f"{LFW}/Colin_Powell/Colin_Powell_0040.jpg"
ECKHART = f"{LFW}/Aaron_Eckhart/Aaron_Eckhart_0001.jpg"


@pytest.fixture(scope="module")
def images():
    return {k: read_image(p) for k, p in
            {"bush_a": BUSH_A, "bush_b": BUSH_B, "powell": POWELL, "eckhart": ECKHART}.items()}


def _centre_in(box, img):
    cx, cy = (box.left + box.right) / 2, (box.top + box.bottom) / 2
    h, w = img.shape[:2]
    return w * 0.25 < cx < w * 0.75 and h * 0.25 < cy < h * 0.75


_DETECTORS = {}


def _detector(name):
    if name not in _DETECTORS:  # MTCNN takes seconds to build: build each detector once
        _DETECTORS[name] = face.get_detector(name)
    return _DETECTORS[name]


@pytest.mark.parametrize("name", ["mtcnn", "haar", "dlib"])
def test_detectors_find_the_lfw_face(name, images):
    det = _detector(name)
    for key in ("bush_a", "eckhart"):
        box = det.detect_largest(images[key])
        assert box is not None, (name, key)
        assert _centre_in(box, images[key]) and 40 < box.width < 160, (name, key, box)
    # a flat grey image holds no face
    assert det.detect(np.full((150, 150, 3), 128, np.uint8)) == []


def test_mtcnn_batch_matches_single(images):
    det = _detector("mtcnn")
    batch = det.detect_batch([images["bush_a"], images["powell"]])
    single = det.detect(images["powell"])
    assert len(batch) == 2 and len(batch[1]) == len(single)
    np.testing.assert_allclose([batch[1][0].left, batch[1][0].top], [single[0].left, single[0].top], atol=2)


@pytest.fixture(scope="module")
def landmarker():
    return face.get_landmarker("dlib68")


def test_landmarks_68_inside_image_and_ordered(landmarker, images):
    img = images["bush_a"]
    lm = landmarker.landmarks(img)
    assert lm.shape == (68, 2) and lm.dtype == np.float32
    h, w = img.shape[:2]
    assert np.all(lm >= -2) and np.all(lm[:, 0] <= w + 2) and np.all(lm[:, 1] <= h + 2)
    eyes_y, mouth_y, brows_y = lm[36:48, 1].mean(), lm[48:60, 1].mean(), lm[17:27, 1].mean()
    assert brows_y < eyes_y < mouth_y < lm[8, 1]                  # brows, eyes, mouth, chin
    assert lm[36:42, 0].mean() < lm[42:48, 0].mean()              # subject's right eye on image left
    # a given box gives the same result as the detector's box
    box = landmarker.detector.detect_largest(img)
    np.testing.assert_allclose(landmarker.landmarks(img, box), lm)
    assert landmarker.landmarks(np.full((150, 150, 3), 128, np.uint8)) is None


def test_mask_from_real_landmarks(landmarker, images):
    lm = landmarker.landmarks(images["eckhart"])
    m = face.landmarks_to_class_mask(lm, 150, 150)
    areas = face.class_areas(m)
    assert 0.15 < areas[1] < 0.7 and 0.02 < areas[2] < areas[1] and areas[3] > 0.01
    parts = np.argwhere(m == 2)
    skin = np.argwhere(m == 1)
    assert parts.min(0)[0] >= skin.min(0)[0] and parts.max(0)[0] <= skin.max(0)[0] + 1


def test_identity_same_person_closer(images):
    model = face.get_identity_model("dlib_resnet")
    e = {k: model.embed(v) for k, v in images.items()}
    assert all(v.shape == (128,) for v in e.values())
    np.testing.assert_allclose([np.linalg.norm(v) for v in e.values()], 1.0, rtol=1e-5)
    same = float(e["bush_a"] @ e["bush_b"])
    for other in ("powell", "eckhart"):
        assert same > float(e["bush_a"] @ e[other]) + 0.05
        assert same > float(e["bush_b"] @ e[other]) + 0.05


def test_vgg_face_needs_weights_flag(tmp_path):
    with pytest.raises(ValueError, match="--vgg_face_weights"):
        face.get_identity_model("vgg_face")
    with pytest.raises(FileNotFoundError, match="--vgg_face_weights"):
        face.get_identity_model("vgg_face", weights=str(tmp_path / "missing.weights.h5"))


def test_vgg_face_random_build(tmp_path, images):
    from common.face.vgg_face import VGGFace
    m = VGGFace(allow_random=True, input_size=32)
    assert m.model.get_layer("fc8").units == 2622 and m.model.get_layer("fc7").units == 4096
    e = m.embed_many([images["bush_a"], images["powell"]])
    assert e.shape == (2, 4096) and e.dtype == np.float32
    assert np.all(np.isfinite(e))


def test_missing_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "dlib", None)                # makes `import dlib` fail
    with pytest.raises(face.FaceBackendMissing, match=r'pip install -e "\.\[face\]"'):
        face.get_landmarker("dlib68")
    monkeypatch.setitem(sys.modules, "cv2", None)
    with pytest.raises(ImportError, match="opencv-python-headless"):
        face.get_detector("haar")


def test_model_paths_and_names(tmp_path):
    assert _deps.dlib_model_path(_deps.DLIB_LANDMARKS_68).endswith("shape_predictor_68_face_landmarks.dat")
    with pytest.raises(FileNotFoundError, match="--dlib_models_dir"):
        _deps.dlib_model_path(_deps.DLIB_RESNET, str(tmp_path))
    with pytest.raises(ValueError, match="unknown detector"):
        face.get_detector("nope")
    with pytest.raises(ValueError, match="takes no weights"):
        face.get_identity_model("dlib_resnet", weights="x.h5")
