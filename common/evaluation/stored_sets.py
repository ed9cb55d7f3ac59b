"""Fixed test sets: stored blurred images (never re-blurred here), optional ground truth.

Three sources, all loaded by `load_test_set(path)`:

* the folder layout written by `python -m data.build ... --output_format=folder` (and the
  GoPro / RealBlur convention, which is the same with only blurred/ and sharp/):

      DIR/blurred/NAME.png   DIR/sharp/NAME.png     same relative names, uint8 RGB
      DIR/kernels/NAME.npy   float32 [k,k] summing to 1, the kernel that made the blurred image
      DIR/masks/NAME.png     uint8 class ids 0..3 (common.face.masks)
      DIR/landmarks/NAME.npy float32 [68,2], (x, y) in pixels
      DIR/identities.txt     lines NAME<TAB>identity
      DIR/meta.json          provenance (kept in TestSet.meta)

* the stored test images of Shen et al. (CVPR 2018; paper 3's Table III Helen/CelebA columns),
  one folder per subset, every sharp face blurred by several kernels and sizes:

      DIR/sharp/NAME.png                          DIR/blurred/NAME_ker<K>_size<S>.png
      (or DIR/blurred/ker<K>/size<S>/NAME.png)    DIR/masks/NAME.png (optional, per sharp face)

  (the same convention as `data/builders/shen_blurred_faces.py`; sample names keep the kernel
  and size, e.g. 0001_ker03_size17);
* a folder of real blurry photos without ground truth (images directly in DIR, or DIR/blurred/
  with no DIR/sharp/): no-reference, so only detection rate and a contact sheet;
* TFRecords of the shared schema (`common.tfrecord`: image/blurred required, image/sharp,
  kernel, mask/classes, landmarks, identity used when present): a file, a glob or a folder of
  *.tfrecord.

A folder with sharp/ but no blurred/ is refused: evaluation never synthesises blur.
"""
from __future__ import annotations

import dataclasses
import glob
import json
import os
import re
import zlib

import numpy as np

from common import image_io

MAKE_HINT = ("write one with `python -m data.build ... --output_format=folder` "
             "(DIR/blurred/NAME.png + DIR/sharp/NAME.png)")


@dataclasses.dataclass
class Sample:
    """One test image: blurred uint8 [H,W,3]; sharp uint8 [H,W,3] or None (no reference);
    kernel float32 [k,k]; mask uint8 [H,W] class ids 0..3; landmarks float32 [68,2] (x, y);
    identity str."""
    name: str
    blurred: np.ndarray
    sharp: np.ndarray | None = None
    kernel: np.ndarray | None = None
    mask: np.ndarray | None = None
    landmarks: np.ndarray | None = None
    identity: str | None = None


@dataclasses.dataclass
class TestSet:
    name: str
    source: str
    kind: str          # "folder" | "tfrecord" | "no_reference"
    samples: list
    meta: dict = dataclasses.field(default_factory=dict)

    def __len__(self):
        return len(self.samples)

    def _all(self, attr):
        return bool(self.samples) and all(getattr(s, attr) is not None for s in self.samples)

    @property
    def has_reference(self):
        return self._all("sharp")

    @property
    def has_kernels(self):
        return self._all("kernel")

    @property
    def has_masks(self):
        return self._all("mask")

    @property
    def has_landmarks(self):
        return self._all("landmarks")

    @property
    def has_identities(self):
        return self._all("identity")

    def fingerprint(self) -> str:
        """crc32 over names and blurred pixels: a resumed benchmark checks it scores the same set."""
        c = 0
        for s in self.samples:
            c = zlib.crc32(s.name.encode(), c)
            c = zlib.crc32(np.ascontiguousarray(s.blurred).tobytes(), c)
        return f"{len(self.samples)}-{c:08x}"

    def describe(self) -> str:
        extras = [k for k in ("kernels", "masks", "landmarks", "identities") if getattr(self, "has_" + k)]
        ref = "with ground truth" if self.has_reference else "no reference"
        return (f"{self.name}: {len(self)} images ({self.kind}, {ref}"
                + (", stores " + ", ".join(extras) if extras else "") + f") from {self.source}")


def _rel_images(folder: str) -> list[str]:
    return sorted(os.path.relpath(p, folder) for p in image_io.list_images(folder))


def _stem(rel: str) -> str:
    return os.path.splitext(rel)[0]


def _read_mask(path: str, shape) -> np.ndarray:
    from PIL import Image
    with Image.open(path) as im:
        m = np.asarray(im)
    if m.ndim == 3:
        m = m[..., 0]
    if m.shape != tuple(shape[:2]):
        raise ValueError(f"mask {path} is {m.shape[1]}x{m.shape[0]} but its image is "
                         f"{shape[1]}x{shape[0]}; masks must match the images")
    if m.size and m.max() > 3:
        raise ValueError(f"mask {path} holds class ids up to {m.max()}; expected 0..3 "
                         "(common.face.masks classes)")
    return m.astype(np.uint8)


def _read_identities(path: str) -> dict:
    out = {}
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 2:
                raise ValueError(f"{path}: line {i} must be NAME<TAB>identity, got {line.strip()!r}")
            out[parts[0]] = parts[1]
            out.setdefault(_stem(parts[0]), parts[1])
    return out


def load_folder(root: str, num_images: int = 0) -> TestSet:
    """The folder layout (see the module docstring)."""
    blurred_dir, sharp_dir = os.path.join(root, "blurred"), os.path.join(root, "sharp")
    rels = _rel_images(blurred_dir)
    if not rels:
        raise ValueError(f"test set {root}: {blurred_dir} holds no images (.png/.jpg); {MAKE_HINT}")
    if num_images:
        rels = rels[:num_images]
    has_sharp = os.path.isdir(sharp_dir)
    ids_path = os.path.join(root, "identities.txt")
    ids = _read_identities(ids_path) if os.path.isfile(ids_path) else {}
    samples = []
    for rel in rels:
        blurred = image_io.read_image(os.path.join(blurred_dir, rel))
        s = Sample(_stem(rel), blurred)
        if has_sharp:
            path = os.path.join(sharp_dir, rel)
            if not os.path.isfile(path):
                raise FileNotFoundError(f"test set {root}: {path} missing: every blurred/NAME needs "
                                        "sharp/NAME with the same file name")
            s.sharp = image_io.read_image(path)
            if s.sharp.shape != blurred.shape:
                raise ValueError(f"test set {root}: sharp/{rel} is {s.sharp.shape} but blurred/{rel} "
                                 f"is {blurred.shape}; pairs must have the same size")
        k = os.path.join(root, "kernels", s.name + ".npy")
        if os.path.isfile(k):
            s.kernel = np.load(k).astype(np.float32)
            if s.kernel.ndim != 2 or s.kernel.shape[0] != s.kernel.shape[1]:
                raise ValueError(f"kernel {k} has shape {s.kernel.shape}; expected square [k,k]")
        m = os.path.join(root, "masks", s.name + ".png")
        if os.path.isfile(m):
            s.mask = _read_mask(m, blurred.shape)
        lm = os.path.join(root, "landmarks", s.name + ".npy")
        if os.path.isfile(lm):
            s.landmarks = np.load(lm).astype(np.float32)
            if s.landmarks.ndim != 2 or s.landmarks.shape[1] != 2:
                raise ValueError(f"landmarks {lm} have shape {s.landmarks.shape}; expected [68,2] (x, y)")
        s.identity = ids.get(rel, ids.get(s.name))
        samples.append(s)
    meta = {}
    meta_path = os.path.join(root, "meta.json")
    if os.path.isfile(meta_path):
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
    kind = "folder" if has_sharp else "no_reference"
    return TestSet(os.path.basename(os.path.normpath(root)), root, kind, samples, meta)


def load_no_reference(root: str, num_images: int = 0) -> TestSet:
    """A folder of real blurry photos (no ground truth)."""
    rels = _rel_images(root)
    if not rels:
        raise ValueError(f"test set {root}: no images (.png/.jpg) found")
    if num_images:
        rels = rels[:num_images]
    samples = [Sample(_stem(r), image_io.read_image(os.path.join(root, r))) for r in rels]
    return TestSet(os.path.basename(os.path.normpath(root)), root, "no_reference", samples)


# Shen et al. blurred names: NAME_ker<K>_size<S> (or ker<K>/size<S>/NAME): kernel index, size.
SHEN_PATTERN = re.compile(r"ker(?:nel)?[_-]?(?P<kernel>\d+)[_/\\-]+(?:size|k)[_-]?(?P<size>\d+)",
                          re.IGNORECASE)


def parse_shen_blurred(rel_path: str):
    """(sharp name, kernel index, kernel size) of a Shen et al. blurred file's path relative to
    blurred/ (NAME_ker03_size17.png or ker03/size17/NAME.png), or None if it does not match."""
    m = SHEN_PATTERN.search(rel_path.replace(os.sep, "/"))
    if not m:
        return None
    stem = os.path.splitext(os.path.basename(rel_path))[0]
    inner = SHEN_PATTERN.search(stem)
    name = stem[:inner.start()].rstrip("_-") if inner else stem
    return name, int(m.group("kernel")), int(m.group("size"))


def is_shen_layout(root: str) -> bool:
    """DIR/blurred + DIR/sharp whose first blurred image has no same-named sharp image but a
    Shen et al. name (NAME_ker<K>_size<S>)."""
    blurred_dir, sharp_dir = os.path.join(root, "blurred"), os.path.join(root, "sharp")
    if not (os.path.isdir(blurred_dir) and os.path.isdir(sharp_dir)):
        return False
    rels = _rel_images(blurred_dir)
    return bool(rels) and not os.path.isfile(os.path.join(sharp_dir, rels[0])) \
        and parse_shen_blurred(rels[0]) is not None


def load_shen(root: str, num_images: int = 0) -> TestSet:
    """Shen et al.'s stored test images of one subset (see the module docstring): every blurred
    copy paired with its sharp face (and that face's mask when DIR/masks/NAME.png exists)."""
    blurred_dir, sharp_dir = os.path.join(root, "blurred"), os.path.join(root, "sharp")
    sharp_paths = {_stem(r): os.path.join(sharp_dir, r) for r in _rel_images(sharp_dir)}
    rels = _rel_images(blurred_dir)
    if not rels:
        raise ValueError(f"test set {root}: {blurred_dir} holds no images")
    if num_images:
        rels = rels[:num_images]
    cache, samples = {}, []
    for rel in rels:
        parsed = parse_shen_blurred(rel)
        if parsed is None:
            raise ValueError(f"test set {root}: cannot read kernel and size from blurred/{rel}; "
                             "expected NAME_ker<K>_size<S>.png or ker<K>/size<S>/NAME.png")
        name, k, size = parsed
        if name not in sharp_paths:
            raise FileNotFoundError(f"test set {root}: blurred/{rel} has no sharp image "
                                    f"sharp/{name}.png")
        if name not in cache:
            sharp = image_io.read_image(sharp_paths[name])
            m = os.path.join(root, "masks", name + ".png")
            cache[name] = (sharp, _read_mask(m, sharp.shape) if os.path.isfile(m) else None)
        sharp, mask = cache[name]
        blurred = image_io.read_image(os.path.join(blurred_dir, rel))
        if blurred.shape != sharp.shape:
            raise ValueError(f"test set {root}: blurred/{rel} is {blurred.shape} but sharp/{name} "
                             f"is {sharp.shape}; pairs must have the same size")
        samples.append(Sample(f"{name}_ker{k:02d}_size{size}", blurred, sharp, mask=mask))
    meta = {"layout": "shen", "faces": len(cache),
            "kernels": sorted({parse_shen_blurred(r)[1] for r in rels}),
            "sizes": sorted({parse_shen_blurred(r)[2] for r in rels})}
    return TestSet(os.path.basename(os.path.normpath(root)), root, "folder", samples, meta)


def _record_files(pattern: str) -> list[str]:
    if os.path.isdir(pattern):
        return sorted(glob.glob(os.path.join(pattern, "*.tfrecord*")))
    return sorted(glob.glob(pattern)) if any(ch in pattern for ch in "*?[") else (
        [pattern] if os.path.isfile(pattern) else [])


def load_tfrecords(pattern: str, num_images: int = 0) -> TestSet:
    """Records of the shared schema; image/blurred is required (evaluation never re-blurs)."""
    import tensorflow as tf
    from common import tfrecord
    files = _record_files(pattern)
    if not files:
        raise FileNotFoundError(f"test set {pattern}: no TFRecord files found")
    samples = []
    for i, rec in enumerate(tf.data.TFRecordDataset(files)):
        if num_images and i >= num_images:
            break
        raw = rec.numpy()
        keys = tfrecord.record_keys(raw)
        if tfrecord.BLURRED not in keys:
            raise ValueError(f"test set {pattern}: record {i} stores no {tfrecord.BLURRED}; evaluation "
                             f"never re-blurs a test set: {MAKE_HINT}, or build records with blurred images")
        want = [k for k in tfrecord.ALL_KEYS if k in keys]
        ex = tfrecord.parse_example(raw, want)
        src = ex[tfrecord.SOURCE].numpy().decode("utf-8", "replace") if tfrecord.SOURCE in ex else ""
        s = Sample(f"{i:06d}" + (f"_{_stem(os.path.basename(src))}" if src else ""),
                   ex[tfrecord.BLURRED].numpy())
        if tfrecord.SHARP in ex:
            s.sharp = ex[tfrecord.SHARP].numpy()
        if tfrecord.KERNEL in ex:
            s.kernel = ex[tfrecord.KERNEL].numpy().astype(np.float32)
        if tfrecord.MASK in ex:
            s.mask = ex[tfrecord.MASK].numpy()[..., 0]
        if tfrecord.LANDMARKS in ex:
            s.landmarks = ex[tfrecord.LANDMARKS].numpy().astype(np.float32)
        if tfrecord.IDENTITY in ex:
            s.identity = str(int(ex[tfrecord.IDENTITY].numpy()))
        samples.append(s)
    if not samples:
        raise ValueError(f"test set {pattern}: the records are empty")
    kind = "tfrecord" if all(s.sharp is not None for s in samples) else "no_reference"
    name = os.path.basename(os.path.normpath(pattern if os.path.isdir(pattern) else os.path.dirname(files[0])))
    return TestSet(name, pattern, kind, samples)


def stores_blurred(path: str) -> bool:
    """True when `path` is a test set that stores blurred images (the folder layout with
    blurred/, or TFRecords whose first record holds image/blurred), so it must not be re-blurred."""
    if not path:
        return False
    if os.path.isdir(path) and os.path.isdir(os.path.join(path, "blurred")):
        return True
    if os.path.isdir(path) and not _record_files(path):
        return False
    files = _record_files(path)
    if not files:
        return False
    import tensorflow as tf
    from common import tfrecord
    for rec in tf.data.TFRecordDataset(files[:1]).take(1):
        return tfrecord.BLURRED in tfrecord.record_keys(rec.numpy())
    return False


def load_test_set(path: str, num_images: int = 0) -> TestSet:
    """A TestSet from a folder in the layout above, a folder of blurry photos, or TFRecords."""
    if not path:
        raise ValueError("--test_set is required: a folder DIR/blurred + DIR/sharp, a folder of "
                         "blurry photos, or TFRecords")
    if os.path.isdir(path):
        if is_shen_layout(path):
            return load_shen(path, num_images)
        if os.path.isdir(os.path.join(path, "blurred")):
            return load_folder(path, num_images)
        if os.path.isdir(os.path.join(path, "sharp")):
            raise ValueError(f"test set {path} has sharp/ but no blurred/: evaluation never re-blurs; "
                             + MAKE_HINT)
        if _record_files(path):
            return load_tfrecords(path, num_images)
        return load_no_reference(path, num_images)
    if _record_files(path):
        return load_tfrecords(path, num_images)
    raise FileNotFoundError(f"test set {path} not found (a folder or TFRecord file/glob)")
