"""Face analysis: backends (detection, landmarks, identity), the papers' face protocols, LFW.

    backends   get_detector("mtcnn" | "haar" | "dlib"); get_landmarker("dlib68");
               get_identity_model("dlib_resnet" | "vgg_face"); FaceModels (holder.py) holds the
               ones an evaluation needs, with face boxes found once on the sharp image
    protocols  detection_success_rate, landmark_protocol, identity_similarity, lfw_verification,
               probe_gallery_split, recognition_topk (protocols.py; the math is common.metrics)
    LFW        read_pairs, subset_pairs, unique_images, ... (lfw.py); the sharp / blurred /
               restored image sources (sources.py)
    masks      landmarks_to_class_mask, class_areas: 4-class masks from 68 landmarks (masks.py)
    plots      plot_ced, plot_similarity (plots.py); embedding cache (cache.py)
    CLI        python -m common.face --output_dir=DIR (cli.py, evaluate.py; options: config.py),
               or from Python: run(default_config(output_dir=DIR, ...))

Backends import their optional package only when built; a missing one raises
FaceBackendMissing naming `pip install -e ".[face]"`. Models come from installed packages or a
path flag, never from the network. To add a model, subclass Detector / Landmarker /
IdentityModel and add it to the dicts below.
"""
from __future__ import annotations

from common.face._deps import INSTALL_HINT, FaceBackendMissing, dlib_model_path
from common.face.base import Box, Detector, IdentityModel, Landmarker, as_uint8_rgb
from common.face.holder import FaceModels
from common.face.lfw import Pair, balanced_image_order, read_pairs, subset_pairs, unique_images
from common.face.masks import class_areas, landmarks_to_class_mask
from common.face.plots import plot_ced, plot_similarity
from common.face.protocols import (detection_success_rate, identity_similarity, landmark_protocol,
                                   lfw_verification, probe_gallery_split, recognition_topk)
from common.face.sources import BlurredSource, ImageSource, RestoredSource, load_kernels
from common.face.config import EvalConfig, default_config
from common.face.evaluate import run

# name -> "module:Class" (imported lazily so a missing backend only fails when asked for).
DETECTORS = {
    "mtcnn": "common.face.detectors:MTCNNDetector",
    "haar": "common.face.detectors:HaarDetector",
    "dlib": "common.face.detectors:DlibHOGDetector",
}
LANDMARKERS = {"dlib68": "common.face.dlib_models:DlibLandmarker"}
IDENTITY_MODELS = {
    "dlib_resnet": "common.face.dlib_models:DlibResNetIdentity",
    "vgg_face": "common.face.vgg_face:VGGFace",
}


def _load(table: dict, kind: str, name: str):
    if name not in table:
        raise ValueError(f"unknown {kind} '{name}'; choose one of {sorted(table)}")
    import importlib
    module, cls = table[name].split(":")
    return getattr(importlib.import_module(module), cls)


def get_detector(name: str = "mtcnn", **kwargs) -> Detector:
    return _load(DETECTORS, "detector", name)(**kwargs)


def get_landmarker(name: str = "dlib68", detector: Detector | str | None = None,
                   models_dir: str | None = None, **kwargs) -> Landmarker:
    if isinstance(detector, str):
        detector = get_detector(detector)
    return _load(LANDMARKERS, "landmarker", name)(detector=detector, models_dir=models_dir, **kwargs)


def get_identity_model(name: str = "dlib_resnet", weights: str | None = None,
                       models_dir: str | None = None, **kwargs) -> IdentityModel:
    cls = _load(IDENTITY_MODELS, "identity model", name)
    if name == "vgg_face":
        return cls(weights=weights, **kwargs)
    if weights:
        raise ValueError(f"identity model '{name}' takes no weights file (got {weights}); "
                         f"use models_dir / --dlib_models_dir for dlib models")
    return cls(models_dir=models_dir, **kwargs)


__all__ = [
    # backends
    "Box", "FaceModels", "Detector", "Landmarker", "IdentityModel", "FaceBackendMissing", "INSTALL_HINT",
    "as_uint8_rgb", "dlib_model_path", "get_detector", "get_landmarker", "get_identity_model",
    "DETECTORS", "LANDMARKERS", "IDENTITY_MODELS",
    # protocols, LFW, image sources, masks, plots
    "detection_success_rate", "landmark_protocol", "identity_similarity", "lfw_verification",
    "probe_gallery_split", "recognition_topk", "Pair", "read_pairs", "subset_pairs", "unique_images",
    "balanced_image_order", "ImageSource", "RestoredSource", "BlurredSource", "load_kernels",
    "landmarks_to_class_mask", "class_areas", "plot_ced", "plot_similarity",
    # the LFW evaluation
    "EvalConfig", "default_config", "run",
]
