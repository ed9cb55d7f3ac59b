"""Deblur real photos the way users expect: faces brought to the model's trained scale, any size.

The shipped models were trained on 128x128 face-centred crops in which the MTCNN face box is
~105 px (their sidecars `paper*/weights/NAME.json`, measured by `benchmarks/face_scale.py`). A
phone photo's face is 300-1,000 px and its blur scales with it, out of the training range. So,
by default (GFPGAN / CodeFormer style):

    restored, info = deblur_photo(model, img, detector, stride=4, scale=FaceScale(105.2, 128))

detects the faces, merges the regions that overlap (one region is deblurred once, never pasted
twice), resizes each region so that its face box is `scale.face_box` px, deblurs it, brings the
result back to the photo's resolution (`restore`: "resample", the default, resamples the
restored region; "correction" adds the upsampled correction restored - input to the
full-resolution region; resample kept 95-190 % of each shipped model's 1x gain at 2x and 4x,
correction 60-118 %: benchmarks/README.md, "Face scale") and pastes it with a feathered mask. The
background is left as it is (`background="keep"`: the cheap path; a 12 MP photo with 3 faces
takes ~7 s of work after the model has loaded, benchmarks/README.md) or deblurred whole
(`"deblur"`). No face found: the whole image is deblurred, and `info`
says so. Whole images go through `deblur_bounded`: tiles sized so that the network's working
memory stays under `max_memory` bytes, each tile run with `TILE_CONTEXT` px of context on every
side and only its centre kept, written straight into a uint8 output (no float copy of a 48 MP
photo is ever held).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Callable

import numpy as np

from common import image_io, keras_utils

DEFAULT_MAX_MEMORY = 2 << 30          # --max_memory default: 2 GiB for the network's work
DEFAULT_BYTES_PER_PIXEL = 900.0       # network working memory per input pixel when unmeasured
TILE_CONTEXT = 32                     # px of context around each tile's kept centre
SCALE_TOLERANCE = 1.25                # faces within this factor of the trained scale: not resized
CONTEXT = 1.3                         # region side = CONTEXT x the crop side that holds the face
DETECT_SIDE = 1600                    # faces are detected on a copy of at most this long side
RESTORE_MODES = ("correction", "resample")
BACKGROUNDS = ("keep", "deblur")


@dataclasses.dataclass(frozen=True)
class FaceScale:
    """The face scale a model was trained at: the detector's face-box side `face_box` (px,
    sqrt(w*h)) in its `crop_size` x `crop_size` training crops."""
    face_box: float = 105.2
    crop_size: int = 128
    bytes_per_pixel: float = DEFAULT_BYTES_PER_PIXEL


def sidecar_path(model_path: str) -> str:
    """weights/NAME.keras -> weights/NAME.json."""
    return os.path.splitext(model_path)[0] + ".json"


def read_face_scale(model_path: str | None) -> FaceScale:
    """The FaceScale of a model file's sidecar JSON; the shipped models' scale when there is none
    (a workdir, a model exported by the user: all our recipes train on the same crops)."""
    path = sidecar_path(model_path) if model_path else ""
    if not path or not os.path.isfile(path):
        return FaceScale()
    try:
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
        return FaceScale(float(d["face_box"]), int(d["crop_size"]),
                         float(d.get("bytes_per_pixel", DEFAULT_BYTES_PER_PIXEL)))
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"model sidecar {path} is not valid JSON with face_box and crop_size "
                         f"({e}): restore it from the repository or delete it") from e


# --------------------------------------------------------------------------- resampling


def resize(img: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """float32 [H,W,C] resized to hw = (h, w): area-averaged when shrinking, bicubic when
    enlarging (OpenCV)."""
    import cv2  # pylint: disable=import-outside-toplevel
    h, w = int(hw[0]), int(hw[1])
    if (h, w) == img.shape[:2]:
        return img.astype(np.float32, copy=False)
    shrink = h * w < img.shape[0] * img.shape[1]
    out = cv2.resize(np.ascontiguousarray(img, np.float32), (w, h),
                     interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
    return out.reshape(h, w, -1)


def _run(model, x: np.ndarray, stride: int) -> np.ndarray:
    h, w = x.shape[:2]
    padded = np.asarray(keras_utils.pad_to_multiple(x, stride), np.float32)
    out = model(padded[None])
    if isinstance(out, dict):
        out = next(iter(out.values()))
    return np.clip(np.asarray(out, np.float32)[0, :h, :w], 0.0, 1.0)


# --------------------------------------------------------------------------- whole images


def tile_size(max_memory: float, bytes_per_pixel: float, stride: int,
              context: int = TILE_CONTEXT) -> int:
    """The largest tile side (a multiple of stride, context included) whose network working
    memory tile^2 * bytes_per_pixel fits max_memory; at least 4 * context."""
    side = int(math.sqrt(max(float(max_memory), 1.0) / max(bytes_per_pixel, 1e-3)))
    side = max(side - side % stride, stride * -(-4 * context // stride))
    return side


def deblur_bounded(model: Callable, img, stride: int = 1, max_memory: float = DEFAULT_MAX_MEMORY,
                   bytes_per_pixel: float = DEFAULT_BYTES_PER_PIXEL,
                   context: int = TILE_CONTEXT, progress: Callable | None = None) -> np.ndarray:
    """Deblurs a whole image of any size under a memory bound; returns uint8 [H,W,3].

    The image is cut into a grid of kept cells; each is run with `context` px of the image
    around it (reflect-padded at the image border) in one tile of at most `tile_size(...)` px
    and only its cell is written. One tile when the image fits. progress(done, total) per tile.
    """
    src = np.asarray(img)
    if src.ndim != 3 or src.shape[-1] != 3:
        raise ValueError(f"expected an RGB image [H,W,3], got shape {src.shape}")
    h, w = src.shape[:2]
    side = tile_size(max_memory, bytes_per_pixel, stride, context)
    if h * w <= side * side and max(h, w) <= 4 * side:
        return image_io.to_uint8(_run(model, image_io.to_float32(src), stride))
    cell = side - 2 * context
    out = np.empty((h, w, 3), np.uint8)
    ys, xs = range(0, h, cell), range(0, w, cell)
    total, done = len(ys) * len(xs), 0
    for y0 in ys:
        for x0 in xs:
            y1, x1 = min(y0 + cell, h), min(x0 + cell, w)
            t, l = max(y0 - context, 0), max(x0 - context, 0)
            b, r = min(y1 + context, h), min(x1 + context, w)
            res = _run(model, image_io.to_float32(src[t:b, l:r]), stride)
            out[y0:y1, x0:x1] = image_io.to_uint8(res[y0 - t:y1 - t, x0 - l:x1 - l])
            done += 1
            if progress:
                progress(done, total)
    return out


# --------------------------------------------------------------------------- faces


def _box(b) -> tuple[float, float, float, float]:
    if hasattr(b, "left"):
        return float(b.left), float(b.top), float(b.right), float(b.bottom)
    return tuple(float(v) for v in b)[:4]


def face_regions(boxes, shape, scale: FaceScale = FaceScale(), context: float = CONTEXT):
    """Square regions (top, left, bottom, right, factor) to deblur, overlapping ones merged.

    Each face box of side s (sqrt(w*h)) gets the square, centred on it, that holds it the way
    the training crop held its face (side s * crop_size / face_box) times `context`, clipped to
    the image; factor = face_box / s (1 within SCALE_TOLERANCE). Regions that overlap are
    replaced by their union (factor: that of the larger face) until none overlap.
    """
    h, w = shape[:2]
    regs = []
    for b in boxes:
        x0, y0, x1, y1 = _box(b)
        s = math.sqrt(max(x1 - x0, 1.0) * max(y1 - y0, 1.0))
        half = 0.5 * s * scale.crop_size / scale.face_box * context
        cx, cy = 0.5 * (x0 + x1), 0.5 * (y0 + y1)
        t, l = max(int(cy - half), 0), max(int(cx - half), 0)
        bt, r = min(int(math.ceil(cy + half)), h), min(int(math.ceil(cx + half)), w)
        if bt - t >= 8 and r - l >= 8:
            regs.append([t, l, bt, r, s])
    merged = True
    while merged:
        merged = False
        for i in range(len(regs)):
            for j in range(i + 1, len(regs)):
                a, c = regs[i], regs[j]
                if a[0] < c[2] and c[0] < a[2] and a[1] < c[3] and c[1] < a[3]:
                    regs[i] = [min(a[0], c[0]), min(a[1], c[1]), max(a[2], c[2]),
                               max(a[3], c[3]), max(a[4], c[4])]
                    del regs[j]
                    merged = True
                    break
            if merged:
                break
    out = []
    for t, l, b, r, s in regs:
        f = scale.face_box / s
        out.append((t, l, b, r, 1.0 if 1 / SCALE_TOLERANCE <= f <= SCALE_TOLERANCE else f))
    return out


def feather_mask(h: int, w: int, edges=(True, True, True, True), frac: float = 0.12):
    """float32 [h,w,1] weight: 1 inside, a cosine ramp over frac of the side to 0 at the
    edges flagged in `edges` (top, left, bottom, right; an edge on the image border stays 1)."""
    def ramp(n, lo, hi):
        v = np.ones(n, np.float32)
        k = max(int(round(frac * n)), 1)
        r = 0.5 - 0.5 * np.cos(np.pi * (np.arange(k, dtype=np.float32) + 0.5) / k)
        if lo:
            v[:k] = np.minimum(v[:k], r)
        if hi:
            v[n - k:] = np.minimum(v[n - k:], r[::-1])
        return v
    t, l, b, r = edges
    return (ramp(h, t, b)[:, None] * ramp(w, l, r)[None, :])[..., None]


def deblur_region(model: Callable, region: np.ndarray, factor: float, stride: int,
                  restore: str = "resample") -> np.ndarray:
    """float32 region [h,w,3] deblurred at `factor` x its size, back at its own size."""
    if restore not in RESTORE_MODES:
        raise ValueError(f"restore={restore!r}: choose one of {RESTORE_MODES}")
    h, w = region.shape[:2]
    if factor == 1.0:
        return _run(model, region, stride)
    small = resize(region, (max(round(h * factor), 8), max(round(w * factor), 8)))
    res = _run(model, small, stride)
    if restore == "resample":
        return np.clip(resize(res, (h, w)), 0.0, 1.0)
    return np.clip(region + resize(res - small, (h, w)), 0.0, 1.0)


def detect_faces(detector, img: np.ndarray, max_side: int = DETECT_SIDE) -> list:
    """detector.detect on a copy shrunk to at most max_side px (a 12 MP photo: 8x fewer
    pixels; faces under ~20 px there, 50 px in the photo, are not sought), boxes in img px."""
    h, w = img.shape[:2]
    f = min(1.0, max_side / max(h, w))
    if f == 1.0:
        return list(detector.detect(img))
    small = image_io.to_uint8(resize(image_io.to_float32(img), (round(h * f), round(w * f))))
    return [tuple(v / f for v in _box(b)) for b in detector.detect(small)]


def deblur_photo(model: Callable, img, detector=None, *, stride: int = 1,
                 scale: FaceScale = FaceScale(), restore: str = "resample",
                 background: str = "keep", max_memory: float = DEFAULT_MAX_MEMORY,
                 boxes=None, progress: Callable | None = None) -> tuple[np.ndarray, dict]:
    """The default `deblur` path (module doc): uint8 [H,W,3] and an info dict
    {"faces": N detected, "regions": [(t, l, b, r, factor)], "whole_image": bool}.

    boxes: face boxes to use instead of running `detector` (video tracking)."""
    if background not in BACKGROUNDS:
        raise ValueError(f"background={background!r}: choose one of {BACKGROUNDS}")
    src = image_io.to_uint8(np.asarray(img))
    if boxes is None:
        boxes = detect_faces(detector, src) if detector is not None else []
    bpp = scale.bytes_per_pixel
    if not boxes:
        out = deblur_bounded(model, src, stride, max_memory, bpp, progress=progress)
        return out, {"faces": 0, "regions": [], "whole_image": True}
    regs = face_regions(boxes, src.shape, scale)
    out = (deblur_bounded(model, src, stride, max_memory, bpp) if background == "deblur"
           else src.copy())
    h, w = src.shape[:2]
    for t, l, b, r, f in regs:
        region = image_io.to_float32(src[t:b, l:r])
        if (b - t) * (r - l) * f * f * bpp > max_memory:  # a huge face region: bounded tiles
            small = resize(region, (max(round((b - t) * f), 8), max(round((r - l) * f), 8)))
            res = image_io.to_float32(deblur_bounded(model, small, stride, max_memory, bpp))
            res = np.clip(region + resize(res - small, (b - t, r - l)), 0, 1)
        else:
            res = deblur_region(model, region, f, stride, restore)
        m = feather_mask(b - t, r - l, (t > 0, l > 0, b < h, r < w))
        base = image_io.to_float32(out[t:b, l:r])
        out[t:b, l:r] = image_io.to_uint8(base * (1.0 - m) + res * m)
    return out, {"faces": len(boxes), "regions": regs, "whole_image": False}


def photo_method(model: Callable, detector, stride: int, scale: FaceScale = FaceScale(),
                 **options) -> Callable:
    """images float32 [B,H,W,3] -> float32 [B,H,W,3] through `deblur_photo` (what `deblur`
    runs by default), for `common.compare`'s photo: methods."""
    def fn(images):
        outs = [image_io.to_float32(deblur_photo(model, im, detector, stride=stride, scale=scale,
                                                 **options)[0]) for im in np.asarray(images)]
        return np.stack(outs)
    return fn


def write_jpeg_like(dst: str, img, src: str, quality: int = 95) -> str:
    """Writes img (uint8 or float [0,1]) as a JPEG at `quality`, with the ICC profile of the
    image file `src` (its EXIF orientation is already applied by `image_io.read_image`, so the
    orientation tag is not copied). Atomic; returns dst."""
    from PIL import Image  # pylint: disable=import-outside-toplevel
    icc = None
    try:
        with Image.open(src) as im:
            icc = im.info.get("icc_profile")
    except OSError:
        pass
    pil = Image.fromarray(image_io.to_uint8(np.asarray(img))[..., :3])
    kwargs = {"quality": int(quality)} | ({"icc_profile": icc} if icc else {})
    return image_io.atomic_write(dst, lambda f: pil.save(f, format="JPEG", **kwargs))
