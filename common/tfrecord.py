"""The one TFRecord schema shared by every paper, and an atomic sharded writer.

Each record is a ``tf.train.Example`` with namespaced keys (all optional, but a record holds at
least one of the two images):

==================  ==============  =====================================================
key                 stored as       decoded by :func:`parse_example`
==================  ==============  =====================================================
``image/sharp``     PNG bytes       uint8 ``[H, W, 3]`` RGB
``image/blurred``   PNG bytes       uint8 ``[H, W, 3]`` RGB
``mask/classes``    PNG bytes (L)   uint8 ``[H, W, 1]`` class ids 0..3: 0 background,
                                    1 face skin, 2 brows+eyes+nose+lips+mouth, 3 hair
                                    (paper 3's masks m1..m4)
``landmarks``       float list      float32 ``[P, 2]`` (x, y) in pixels
``identity``        int64           int64 scalar
``kernel``          float list      float32 ``[k, k]`` (needs ``kernel/size`` = k)
``kernel/size``     int64           (read together with ``kernel``)
``source``          bytes           string scalar (original path, video id, ...)
==================  ==============  =====================================================

Shards are named ``<name>-00000-of-00008.tfrecord`` (:func:`shard_name`); :class:`ShardedWriter`
writes ``<shard>.tmp`` files and renames them only when the ``with`` block ends without an
exception, so a crash never leaves a half-written shard under a final name.
"""
from __future__ import annotations

import glob as _glob
import os
import re
from typing import Sequence

import numpy as np
import tensorflow as tf

from common import image_io

SHARP = "image/sharp"
BLURRED = "image/blurred"
MASK = "mask/classes"
LANDMARKS = "landmarks"
IDENTITY = "identity"
KERNEL = "kernel"
KERNEL_SIZE = "kernel/size"
SOURCE = "source"

IMAGE_KEYS = (SHARP, BLURRED)
ALL_KEYS = (SHARP, BLURRED, MASK, LANDMARKS, IDENTITY, KERNEL, SOURCE)
NUM_MASK_CLASSES = 4

# Feature spec for tf.io.parse_single_example (fixed-length where one value is stored).
FEATURES = {
    SHARP: tf.io.FixedLenFeature([], tf.string),
    BLURRED: tf.io.FixedLenFeature([], tf.string),
    MASK: tf.io.FixedLenFeature([], tf.string),
    LANDMARKS: tf.io.VarLenFeature(tf.float32),
    IDENTITY: tf.io.FixedLenFeature([], tf.int64),
    KERNEL: tf.io.VarLenFeature(tf.float32),
    KERNEL_SIZE: tf.io.FixedLenFeature([], tf.int64),
    SOURCE: tf.io.FixedLenFeature([], tf.string),
}

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- writing examples
def _bytes_feature(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _float_feature(values) -> tf.train.Feature:
    return tf.train.Feature(float_list=tf.train.FloatList(value=np.asarray(values, np.float32).ravel()))


def _int_feature(value: int) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))


def _rgb_png(img, what: str) -> bytes:
    if isinstance(img, (bytes, bytearray)):
        if bytes(img[:8]) == _PNG_SIGNATURE:
            return bytes(img)
        img = image_io.decode_image(bytes(img), name=f"<{what} bytes>")  # JPEG/BMP -> re-encode as PNG
    arr = image_io.to_uint8(np.asarray(img))
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise ValueError(f"make_example: {what} must be an RGB image [H,W,3] (or gray [H,W]), "
                         f"got shape {arr.shape}")
    return image_io.encode_png(arr)


def _hw(img):
    if isinstance(img, (bytes, bytearray)):
        return None
    return tuple(np.asarray(img).shape[:2])


def make_example(sharp=None, blurred=None, mask=None, landmarks=None, identity=None,
                 kernel=None, source=None) -> tf.train.Example:
    """Builds one record of the shared schema.

    Args:
      sharp, blurred: RGB images, uint8 or float [0, 1] ``[H, W, 3]`` (gray ``[H, W]`` is
        replicated), or already-encoded image bytes (PNG kept as is; JPEG/BMP re-encoded to PNG).
      mask: integer class map ``[H, W]`` or ``[H, W, 1]`` with ids 0..3.
      landmarks: ``[P, 2]`` (x, y) pixel coordinates.
      identity: integer identity label.
      kernel: square blur kernel ``[k, k]``.
      source: str or bytes (original file path, video id, ...).

    Raises:
      ValueError: no image given, wrong shapes, mask ids outside 0..3, or paired arrays whose
        height/width differ.
    """
    if sharp is None and blurred is None:
        raise ValueError("make_example: a record needs at least one image (sharp or blurred)")
    feats = {}
    sizes = {}
    if sharp is not None:
        feats[SHARP] = _bytes_feature(_rgb_png(sharp, "sharp"))
        sizes["sharp"] = _hw(sharp)
    if blurred is not None:
        feats[BLURRED] = _bytes_feature(_rgb_png(blurred, "blurred"))
        sizes["blurred"] = _hw(blurred)
    if mask is not None:
        m = np.asarray(mask)
        if m.ndim == 3 and m.shape[-1] == 1:
            m = m[..., 0]
        if m.ndim != 2:
            raise ValueError(f"make_example: mask must be [H,W] or [H,W,1], got shape {np.shape(mask)}")
        if not (np.issubdtype(m.dtype, np.integer) or m.dtype == np.bool_):
            raise ValueError(f"make_example: mask must hold integer class ids, got dtype {m.dtype}")
        if m.size and (m.min() < 0 or m.max() >= NUM_MASK_CLASSES):
            raise ValueError(f"make_example: mask class ids must be in 0..{NUM_MASK_CLASSES - 1}, "
                             f"got range {m.min()}..{m.max()}")
        feats[MASK] = _bytes_feature(image_io.encode_png(m.astype(np.uint8)))
        sizes["mask"] = m.shape
    known = {k: v for k, v in sizes.items() if v is not None}
    if len(set(known.values())) > 1:
        raise ValueError(f"make_example: paired images must share height and width, got {known}")
    if landmarks is not None:
        lm = np.asarray(landmarks, np.float32)
        if lm.ndim != 2 or lm.shape[-1] != 2:
            raise ValueError(f"make_example: landmarks must be [P,2] (x, y), got shape {lm.shape}")
        feats[LANDMARKS] = _float_feature(lm)
    if identity is not None:
        feats[IDENTITY] = _int_feature(identity)
    if kernel is not None:
        k = np.asarray(kernel, np.float32)
        if k.ndim != 2 or k.shape[0] != k.shape[1]:
            raise ValueError(f"make_example: kernel must be square [k,k], got shape {k.shape}")
        feats[KERNEL] = _float_feature(k)
        feats[KERNEL_SIZE] = _int_feature(k.shape[0])
    if source is not None:
        feats[SOURCE] = _bytes_feature(source.encode("utf-8") if isinstance(source, str) else bytes(source))
    return tf.train.Example(features=tf.train.Features(feature=feats))


# --------------------------------------------------------------------------- reading examples
def _check_keys(keys) -> tuple:
    if isinstance(keys, str):
        keys = (keys,)
    keys = tuple(keys)
    bad = [k for k in keys if k not in ALL_KEYS]
    if bad:
        raise ValueError(f"parse_example: unknown key(s) {bad}; known keys: {ALL_KEYS}")
    return keys


def feature_spec(keys) -> dict:
    """The ``tf.io`` feature spec for the named keys (``kernel`` brings ``kernel/size``)."""
    spec = {}
    for k in _check_keys(keys):
        spec[k] = FEATURES[k]
        if k == KERNEL:
            spec[KERNEL_SIZE] = FEATURES[KERNEL_SIZE]
    return spec


def parse_example(serialized, keys=(SHARP, BLURRED)) -> dict:
    """Parses one serialized record and decodes the named keys (graph-safe, for ``tf.data``).

    Returns a dict keyed by the record keys: images uint8 ``[H, W, 3]``, mask uint8
    ``[H, W, 1]``, landmarks float32 ``[P, 2]``, identity int64 ``[]``, kernel float32
    ``[k, k]``, source string ``[]``. Asking for a key the record lacks raises
    ``tf.errors.InvalidArgumentError`` (the pipeline checks files up front to name them).
    """
    keys = _check_keys(keys)
    parsed = tf.io.parse_single_example(serialized, feature_spec(keys))
    out = {}
    for k in keys:
        v = parsed[k]
        if k in IMAGE_KEYS:
            out[k] = tf.io.decode_png(v, channels=3, dtype=tf.uint8)
        elif k == MASK:
            out[k] = tf.io.decode_png(v, channels=1, dtype=tf.uint8)
        elif k == LANDMARKS:
            out[k] = tf.reshape(tf.sparse.to_dense(v), [-1, 2])
        elif k == KERNEL:
            size = tf.cast(parsed[KERNEL_SIZE], tf.int32)
            out[k] = tf.reshape(tf.sparse.to_dense(v), tf.stack([size, size]))
        else:
            out[k] = v
    return out


def record_keys(serialized: bytes) -> set:
    """The keys present in one serialized record (eager, for checks and error messages)."""
    ex = tf.train.Example.FromString(bytes(serialized))
    return set(ex.features.feature.keys())


# --------------------------------------------------------------------------- files
def shard_name(name: str, index: int, num_shards: int) -> str:
    """``shard_name("train", 3, 8) == "train-00003-of-00008.tfrecord"``."""
    if not 0 <= index < num_shards:
        raise ValueError(f"shard index {index} out of range for {num_shards} shards")
    return f"{name}-{index:05d}-of-{num_shards:05d}.tfrecord"


def list_files(pattern) -> list[str]:
    """Expands a glob pattern, a comma-separated string of patterns, or a list of them.

    Returns the sorted, de-duplicated matching files. Raises FileNotFoundError naming the
    pattern when nothing matches.
    """
    if isinstance(pattern, (str, os.PathLike)):
        patterns = [p.strip() for p in os.fspath(pattern).split(",") if p.strip()]
    else:
        patterns = [os.fspath(p) for p in pattern]
    if not patterns:
        raise FileNotFoundError(f"no TFRecord pattern given (got {pattern!r})")
    files = set()
    for p in patterns:
        if os.path.isdir(p):
            raise ValueError(f"{p} is a folder; give a TFRecord glob such as {os.path.join(p, '*.tfrecord')}")
        matched = tf.io.gfile.glob(p) if "://" in p else _glob.glob(p)
        matched = [f for f in matched if not f.endswith(".tmp")]
        if _glob.has_magic(p):
            check_shard_sets(matched, p)
        files.update(matched)
    if not files:
        raise FileNotFoundError(f"no TFRecord files match {pattern!r}; check the path "
                                f"(shards look like name-00000-of-00008.tfrecord)")
    return sorted(files)


_SHARD_RE = re.compile(r"^(?P<prefix>.*)-(?P<index>\d{5})-of-(?P<total>\d{5})(?P<ext>\.tfrecord)?$")


def check_shard_sets(files: Sequence[str], pattern: str = "") -> None:
    """Raises ValueError when `files` (what a glob matched) hold part of a shard set: some
    ``name-0000i-of-0000N`` files of a set but not all N, i.e. a build that was killed or shards
    deleted since. Reading them would silently train or evaluate on a fraction of the data.
    (Name shard files one by one, without a glob, to read part of a set on purpose.)"""
    sets: dict[tuple[str, int, str], set[int]] = {}
    for f in files:
        m = _SHARD_RE.match(os.fspath(f))
        if m:
            key = (m["prefix"], int(m["total"]), m["ext"] or "")
            sets.setdefault(key, set()).add(int(m["index"]))
    for (prefix, total, ext), present in sorted(sets.items()):
        missing = [i for i in range(total) if i not in present]
        if missing:
            names = ", ".join(os.path.basename(shard_name(os.path.basename(prefix), i, total))
                              if ext else f"{os.path.basename(prefix)}-{i:05d}-of-{total:05d}"
                              for i in missing[:3])
            more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
            raise ValueError(
                f"{pattern or 'the records'} matches {len(present)} of the {total} shards of "
                f"{prefix}-*-of-{total:05d}{ext}: missing {names}{more}. Its build did not finish "
                f"(or shards were deleted): rerun the same python -m data.build command to "
                f"complete it.")


def count_records(pattern) -> int:
    """Number of records in all files matching ``pattern`` (see :func:`list_files`)."""
    ds = tf.data.TFRecordDataset(list_files(pattern))
    return int(ds.reduce(np.int64(0), lambda n, _: n + 1).numpy())


def _rename_tmp(tmp: str, path: str) -> None:
    """Renames a finished ``<path>.tmp`` to ``path``; a tmp file that vanished under us means
    another process wrote (and renamed) the same shard: say so instead of a bare NotFoundError."""
    try:
        tf.io.gfile.rename(tmp, path, overwrite=True)
    except tf.errors.NotFoundError:
        raise FileNotFoundError(
            f"{tmp} vanished before it could be renamed to {path}: another process is writing "
            f"the same records (two runs on one folder?). Run one at a time; rerun this command "
            f"once the other has finished.") from None


def write_shard(path, examples) -> int:
    """Writes ``examples`` (``tf.train.Example`` or serialized bytes) to one TFRecord file, atomically.

    The file is written as ``<path>.tmp`` and renamed to ``path`` once every example is in; if
    writing fails the tmp file is removed and an existing ``path`` is left untouched. Returns the
    number of records written. (`ShardedWriter` writes a whole shard set round-robin; this writes one
    shard at a time, for builders that resume shard by shard.)
    """
    path = os.fspath(path)
    tmp = path + ".tmp"
    count = 0
    try:
        with tf.io.TFRecordWriter(tmp) as writer:
            for example in examples:
                writer.write(example.SerializeToString()
                             if hasattr(example, "SerializeToString") else bytes(example))
                count += 1
        _rename_tmp(tmp, path)
    except BaseException:
        if tf.io.gfile.exists(tmp):
            tf.io.gfile.remove(tmp)
        raise
    return count


class ShardedWriter:
    """Writes examples round-robin into ``num_shards`` TFRecord shards, atomically.

    Usage::

        with ShardedWriter(out_dir, "train", num_shards=8) as w:
            for ...:
                w.write(make_example(sharp=..., blurred=...))
        w.paths  # the final shard paths

    Each shard is written to ``<shard>.tmp``; on a clean exit every tmp file is renamed to its
    final name (``os.replace``). If the block raises, the tmp files are deleted and no final
    name is created (existing files under those names are left untouched).
    """

    def __init__(self, output_dir, name: str, num_shards: int):
        if int(num_shards) < 1:
            raise ValueError(f"num_shards must be >= 1, got {num_shards}")
        self.output_dir = os.fspath(output_dir)
        self.name = name
        self.num_shards = int(num_shards)
        self.paths = [os.path.join(self.output_dir, shard_name(name, i, self.num_shards))
                      for i in range(self.num_shards)]
        self.counts = [0] * self.num_shards
        self._writers = None
        self._next = 0

    @property
    def num_written(self) -> int:
        return sum(self.counts)

    def __enter__(self):
        tf.io.gfile.makedirs(self.output_dir)
        self._writers = [tf.io.TFRecordWriter(p + ".tmp") for p in self.paths]
        return self

    def write(self, example) -> None:
        """Appends one ``tf.train.Example`` (or serialized bytes) to the next shard."""
        if self._writers is None:
            raise RuntimeError("ShardedWriter.write() outside its `with` block")
        data = example.SerializeToString() if hasattr(example, "SerializeToString") else bytes(example)
        i = self._next
        self._writers[i].write(data)
        self.counts[i] += 1
        self._next = (i + 1) % self.num_shards

    def _close_writers(self):
        writers, self._writers = self._writers or [], None
        for w in writers:
            w.close()

    def __exit__(self, exc_type, exc, tb):
        ok = exc_type is None
        try:
            self._close_writers()
        except BaseException:
            ok = False
            raise
        finally:
            if ok:
                for p in self.paths:
                    _rename_tmp(p + ".tmp", p)
            else:
                for p in self.paths:
                    if tf.io.gfile.exists(p + ".tmp"):
                        tf.io.gfile.remove(p + ".tmp")
        return False
