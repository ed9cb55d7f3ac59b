"""Score one Method on one TestSet: per-image metrics and their summary.

Per image (ground-truth sets):
  psnr, ssim            whole image, `common.metrics` (= scikit-image), restored image rounded to
                        uint8 first (as a saved result would be)
  face_psnr, face_ssim  inside the face box: the box detector's largest face on the SHARP image
                        (`common.face.FaceModels`), or the centre half of the image when face models
                        are off or no face is found (`face_box` says which)
  class{k}_psnr/_ssim   per class k = 0..3 when the test set stores masks ("region" mode of
                        `common.metrics.per_class_psnr_ssim`: pixels of the class only)
  nme                   landmark NME (by the ground-truth box diagonal): stored landmarks, else dlib
                        68 landmarks on the sharp image as pseudo ground truth (labelled)
  identity_cosine       cosine of identity descriptors of the restored and sharp faces (same box)
  detected              the detector finds a face in the restored image (also without reference)
  ms                    wall time of the method on this image, milliseconds
Summary: means (NaN-aware), landmark AUC@max_error and failure rate, detection rate, and
ms_per_image (mean over images after the first, which pays for tracing / warm-up).
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np

from common import image_io, inference, metrics
from common.evaluation.methods import Method
from common.evaluation.stored_sets import TestSet

NUM_CLASSES = 4
MAX_ERROR = 0.08


@dataclasses.dataclass
class MethodResult:
    method: dict
    test_set: str
    fingerprint: str
    per_image: list
    summary: dict
    restored: list = dataclasses.field(default_factory=list)   # uint8 images of the first keep_images

    def to_json(self) -> dict:
        return {"method": self.method, "test_set": self.test_set, "fingerprint": self.fingerprint,
                "summary": self.summary, "per_image": self.per_image}


def centre_box(shape):
    """The centre half (each side) of an [H,W,...] image: the face region when no face is found."""
    from common.face.base import Box
    h, w = shape[:2]
    return Box(w / 4.0, h / 4.0, 3.0 * w / 4.0, 3.0 * h / 4.0, 0.0)


def crop_box(img, box):
    h, w = img.shape[:2]
    l, t = int(max(0, np.floor(box.left))), int(max(0, np.floor(box.top)))
    r, b = int(min(w, np.ceil(box.right))), int(min(h, np.ceil(box.bottom)))
    return img[t:b, l:r]


def _restore(method: Method, sample) -> tuple[np.ndarray, float]:
    fn = (lambda x: method(x, [sample.kernel])) if method.needs_kernel else method
    t0 = time.perf_counter()
    out = inference.deblur_image(fn, sample.blurred, stride=method.stride)
    return image_io.to_uint8(out), 1000.0 * (time.perf_counter() - t0)


def restore_all(method: Method, test_set: TestSet):
    """Yields (sample, restored uint8 [H,W,3], ms) for every image of the test set."""
    if method.needs_kernel and not test_set.has_kernels:
        raise ValueError(f"method {method.name!r} ({method.spec}) needs the blur kernel of every image, "
                         f"but test set {test_set.source} stores none (DIR/kernels/NAME.npy or the "
                         "records' `kernel`); drop it or use a set built with kernels")
    for s in test_set.samples:
        restored, ms = _restore(method, s)
        yield s, restored, ms


def restore_images(method: Method, images, kernels=None) -> np.ndarray:
    """float32 [N,H,W,3] restored by `method` one image at a time (padded to its stride);
    images: uint8 or float [N,H,W,3]; kernels: one [k,k] per image for non-blind methods."""
    if method.needs_kernel and kernels is None:
        raise ValueError(f"method {method.name!r} ({method.spec}) needs the blur kernel of every image, "
                         "but this test set stores none; drop it or use a set with kernels")
    out = []
    for i, im in enumerate(images):
        fn = (lambda x, k=kernels[i]: method(x, [k])) if method.needs_kernel else method
        out.append(inference.deblur_image(fn, im, stride=method.stride))
    return np.stack(out).astype(np.float32)


def compare_rows(method_specs, blurred, sharp, kernels=None) -> dict:
    """{name: {"psnr", "ssim", "num_params"}} of extra measured rows (`--compare=NAME=SPEC`: classical
    baselines, the other papers' models) on fixed float [N,H,W,3] pairs, for the papers' tables."""
    from common.evaluation.methods import resolve_method
    out = {}
    for spec in method_specs:
        m = resolve_method(spec)
        r = restore_images(m, blurred, kernels)
        out[m.name] = {"psnr": float(np.mean(metrics.psnr(r, sharp))),
                       "ssim": float(np.mean(metrics.ssim(r, sharp))), "num_params": m.num_params,
                       "restored": r}
    return out


def _pair_metrics(restored, sharp) -> dict:
    return {"psnr": float(metrics.psnr(restored, sharp)),
            "ssim": float(metrics.ssim(restored, sharp))}


def _face_region(restored, sharp, box) -> dict:
    r, s = crop_box(restored, box), crop_box(sharp, box)
    if min(r.shape[:2]) < metrics.SSIM_WIN:
        return {"face_psnr": float("nan"), "face_ssim": float("nan")}
    m = _pair_metrics(r, s)
    return {"face_psnr": m["psnr"], "face_ssim": m["ssim"]}


def image_metrics(sample, restored, face=None, face_metrics=("identity", "landmarks", "detection")) -> dict:
    """The metrics of one restored image (see the module docstring)."""
    out = {"name": sample.name}
    sharp = sample.sharp
    if sharp is not None:
        out.update(_pair_metrics(restored, sharp))
        box, src = None, "centre"
        if face is not None:
            box = face.find_box(sample.name, sharp)
            src = "detected" if box is not None else "centre"
        out.update(_face_region(restored, sharp, box or centre_box(sharp.shape)))
        out["face_box"] = src
        if sample.mask is not None:
            pc = metrics.per_class_psnr_ssim(restored, sharp, sample.mask.astype(np.int64),
                                             NUM_CLASSES)
            for k in range(NUM_CLASSES):
                out[f"class{k}_psnr"] = float(pc["psnr"][k])
                out[f"class{k}_ssim"] = float(pc["ssim"][k])
    if face is None:
        return out
    fbox = face.box(sample.name, sharp) if sharp is not None else None
    if sharp is not None and "identity" in face_metrics and face.identity is not None:
        cache = face.cache.setdefault("identity_sharp", {})
        if sample.name not in cache:
            cache[sample.name] = face.embed(sharp, fbox)
        out["identity_cosine"] = float(metrics.cosine_similarity(face.embed(restored, fbox), cache[sample.name]))
    if sharp is not None and "landmarks" in face_metrics and face.landmarker is not None:
        if sample.landmarks is not None:
            gt, out["landmarks_gt"] = np.asarray(sample.landmarks, np.float64), "stored"
        else:
            cache = face.cache.setdefault("landmarks_sharp", {})
            if sample.name not in cache:
                cache[sample.name] = face.landmarks(sharp, fbox)
            gt, out["landmarks_gt"] = cache[sample.name], "dlib68 on sharp (pseudo ground truth)"
        if np.all(np.isfinite(gt)):
            out["nme"] = float(metrics.landmark_nme(face.landmarks(restored, fbox), gt))
    if "detection" in face_metrics and face.detector is not None:
        out["detected"] = bool(face.detected(restored))
    return out


def summarize(per_image: list, max_error: float = MAX_ERROR) -> dict:
    """Means over images (NaN-aware; inf PSNR of identical images kept as inf), landmark
    AUC/failure, detection rate, ms per image."""
    out = {"num_images": len(per_image)}
    if not per_image:
        return out
    keys = [k for k in per_image[0] if k not in ("name", "face_box", "landmarks_gt", "detected", "nme", "ms")]
    for k in keys:
        v = np.array([r.get(k, np.nan) for r in per_image], np.float64)
        if np.all(np.isnan(v)):
            out[k] = float("nan")
        else:
            with np.errstate(invalid="ignore"):
                out[k] = float(np.nanmean(v))
    nme = np.array([r["nme"] for r in per_image if "nme" in r], np.float64)
    if nme.size:
        nme = np.where(np.isnan(nme), np.inf, nme)
        out["nme"] = float(np.mean(nme[np.isfinite(nme)])) if np.isfinite(nme).any() else float("inf")
        out[f"auc@{max_error:g}"] = metrics.auc_ced(nme, max_error)
        out["failure_rate"] = metrics.failure_rate(nme, max_error)
        out["landmarks_gt"] = per_image[0].get("landmarks_gt")
        out["num_landmark_images"] = int(nme.size)
    det = [r["detected"] for r in per_image if "detected" in r]
    if det:
        out["detection_rate"] = float(np.mean(det))
    boxes = [r["face_box"] for r in per_image if "face_box" in r]
    if boxes:
        out["face_boxes_detected"] = int(sum(b == "detected" for b in boxes))
    ms = [r["ms"] for r in per_image if "ms" in r]
    if ms:
        out["ms_per_image"] = float(np.mean(ms[1:] if len(ms) > 1 else ms))
    return out


def evaluate(method: Method, test_set: TestSet, face=None, keep_images: int = 0,
             face_metrics=("identity", "landmarks", "detection"), max_error: float = MAX_ERROR,
             log=None) -> MethodResult:
    """Runs `method` on every image of `test_set` and scores it. face: a `common.face.FaceModels`
    (None: no face models; the face region is then the centre box). keep_images: keep the first
    N restored images (uint8) for a contact sheet."""
    per_image, kept = [], []
    t0 = time.time()
    for i, (s, restored, ms) in enumerate(restore_all(method, test_set)):
        r = image_metrics(s, restored, face, face_metrics)
        r["ms"] = ms
        per_image.append(r)
        if i < keep_images:
            kept.append(restored)
        if log and (i + 1) % 50 == 0:
            log(f"  {method.name}: {i + 1}/{len(test_set)} images, {time.time() - t0:.0f} s")
    return MethodResult(method.info(), test_set.source, test_set.fingerprint(), per_image,
                        summarize(per_image, max_error), kept)
