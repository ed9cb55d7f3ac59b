"""Optional-dependency and model-file lookup for the face backends (no downloads, ever)."""
from __future__ import annotations

import importlib
import importlib.util
import os

INSTALL_HINT = 'pip install -e ".[face]"'

# dlib model files and where they are looked for, in order: an explicit directory (the
# --dlib_models_dir flag of python -m common.face, or $FACEDEBLUR_DLIB_MODELS), the
# `face_recognition_models` package (found by path: importing it needs pkg_resources), and
# Debian's libdlib-data.
DLIB_LANDMARKS_68 = "shape_predictor_68_face_landmarks.dat"
DLIB_LANDMARKS_5 = "shape_predictor_5_face_landmarks.dat"
DLIB_RESNET = "dlib_face_recognition_resnet_model_v1.dat"
DEBIAN_DLIB_DIR = "/usr/share/dlib"


class FaceBackendMissing(ImportError):
    """An optional face backend (package or model file) is not installed."""


def require(module: str, package: str):
    """Import `module` or raise FaceBackendMissing naming the pip package and the extra."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise FaceBackendMissing(
            f"The face backend needs the Python module '{module}' (package '{package}'), which is "
            f"not installed ({e}). Install the face extra: {INSTALL_HINT}") from e


def _face_recognition_models_dir() -> str | None:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    return os.path.join(list(spec.submodule_search_locations)[0], "models")


def dlib_model_path(filename: str, models_dir: str | None = None) -> str:
    """Path of a dlib model file, or FaceBackendMissing naming the flag and the extra."""
    models_dir = models_dir or os.environ.get("FACEDEBLUR_DLIB_MODELS") or None
    if models_dir:
        path = os.path.join(models_dir, filename)
        if os.path.isfile(path):
            return path
        raise FileNotFoundError(
            f"dlib model file {path} not found: --dlib_models_dir={models_dir} must hold {filename}")
    candidates = [d for d in (_face_recognition_models_dir(), DEBIAN_DLIB_DIR) if d]
    for d in candidates:
        path = os.path.join(d, filename)
        if os.path.isfile(path):
            return path
    raise FaceBackendMissing(
        f"dlib model file {filename} not found in {candidates}. Install the face extra "
        f"({INSTALL_HINT}, which brings face_recognition_models), apt-get install libdlib-data, "
        f"or pass --dlib_models_dir=DIR holding {filename}.")
