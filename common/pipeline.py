"""The tf.data input pipeline shared by every paper: records or image folders -> batches.

:func:`make_dataset` reads the shared record schema (:mod:`common.tfrecord`) or a folder of
images, and yields dicts of batched tensors::

    "sharp", "blurred"  float32 [B, h, w, 3] in [0, 1]
    "mask"              int32   [B, h, w, 1] class ids 0..3
    "landmarks"         float32 [B, P, 2] (x, y) pixels in the cropped frame (training=False only)
    "identity"          int64   [B]
    "source"            string  [B]
    "kernel"            float32 [B, k, k] (the record's kernel, or the bank kernel used on the fly)

It is the composition of three stages, each its own function: `read_examples` (storage ->
uint8 examples; the one place a TFDS reader would slot in), `augment_and_batch` (paired crop +
flip, float32, batch) and `blur_batches` (on-the-fly blur + noise). Order of operations (per
example unless noted)::

    read + decode (uint8) -> resize (optional; rounded back to uint8) -> cache (optional)
    -> shuffle (training) -> repeat -> crop + flip (the SAME window and flip for every paired
    field) -> float32 [0, 1] -> batch -> on-the-fly blur (optional, per batch) -> prefetch

Randomness is stateless: each example gets the seed ``(seed, running index)``, from which the
crop offsets, the flip and the blur-kernel index are drawn; noise uses the batch's first seed.
With a fixed ``seed`` the stream of batches is therefore reproducible, whatever the number of
parallel map calls.
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import tensorflow as tf

from common import blur, image_io, tfds_source, tfrecord

# short output key -> record key
RECORD_KEYS = {
    "sharp": tfrecord.SHARP,
    "blurred": tfrecord.BLURRED,
    "mask": tfrecord.MASK,
    "landmarks": tfrecord.LANDMARKS,
    "identity": tfrecord.IDENTITY,
    "kernel": tfrecord.KERNEL,
    "source": tfrecord.SOURCE,
}
SPATIAL_KEYS = ("sharp", "blurred", "mask")
_AUTOTUNE = tf.data.AUTOTUNE


def _pair(x, name):
    if x is None:
        return None
    if isinstance(x, (int, np.integer)):
        x = (int(x), int(x))
    x = tuple(int(v) for v in x)
    if len(x) != 2 or min(x) < 1:
        raise ValueError(f"make_dataset: {name} must be an int or (height, width) of positive ints, got {x}")
    return x


def noise_range(noise_sigma):
    """(lo, hi) from a noise level: a number (fixed) or a (lo, hi) pair (uniform per example)."""
    if isinstance(noise_sigma, (tuple, list)):
        if len(noise_sigma) != 2:
            raise ValueError(f"noise_sigma: a number or a (lo, hi) pair, got {noise_sigma!r}")
        lo, hi = (float(v) for v in noise_sigma)
    else:
        lo = hi = float(noise_sigma)
    if not 0.0 <= lo <= hi:
        raise ValueError(f"noise_sigma: need 0 <= lo <= hi, got {noise_sigma!r}")
    return lo, hi


def _is_folder(source) -> bool:
    return isinstance(source, (str, os.PathLike)) and os.path.isdir(os.fspath(source))


def stores_blurred(source) -> bool:
    """Whether a data source (`make_dataset`'s forms) stores blurred images: False for a folder
    (sharp faces only) and for records of sharp faces only (`data.build --mode=sharp`), which a
    trainer then blurs on the fly; TFDS sources count as stored pairs."""
    if _is_folder(source):
        return False
    if isinstance(source, str) and source.startswith("tfds:"):
        return True
    for f in tfrecord.list_files(source):
        first = next(iter(tf.data.TFRecordDataset(f).take(1)), None)
        if first is not None:
            return tfrecord.BLURRED in tfrecord.record_keys(first.numpy())
    return True  # empty files: make_dataset names the problem


def _check_records(files: Sequence[str], record_keys: Sequence[str], pattern) -> None:
    """Reads the first record of every file and checks that the requested keys are there."""
    nonempty = 0
    for f in files:
        first = next(iter(tf.data.TFRecordDataset(f).take(1)), None)
        if first is None:
            continue
        nonempty += 1
        try:
            present = tfrecord.record_keys(first.numpy())
        except Exception as e:  # noqa: BLE001 - re-raised with the file name
            raise ValueError(f"{f} does not hold tf.train.Example records of the shared schema "
                             f"({type(e).__name__}: {e})") from e
        for k in record_keys:
            if k not in present:
                raise ValueError(f"records in {f} have no key {k!r} (keys present: {sorted(present)}); "
                                 f"ask only for keys the records hold, or rebuild them with "
                                 f"python -m data.build")
    if nonempty == 0:
        raise ValueError(f"the TFRecord files matching {pattern!r} hold no records ({len(files)} files)")


def first_image_sizes(source, limit: int = 8) -> list[tuple[str, int, int]]:
    """(name, height, width) of the first `limit` images of an image folder or a TFRecord glob
    (their first file's first records), read without decoding whole datasets."""
    import io  # pylint: disable=import-outside-toplevel
    from PIL import Image  # pylint: disable=import-outside-toplevel
    out = []
    if tfds_source.is_tfds(source):
        for ex in tfds_source.read(source, ("sharp",)).take(limit):
            h, w = ex["sharp"].shape[:2]
            out.append((f"an example of {source}", int(h), int(w)))
        return out
    if _is_folder(source):
        for path in image_io.list_images(os.fspath(source))[:limit]:
            with Image.open(path) as im:
                out.append((path, im.size[1], im.size[0]))
        return out
    files = tfrecord.list_files(source)
    for raw in tf.data.TFRecordDataset(files[:1]).take(limit):
        example = tf.train.Example.FromString(raw.numpy())
        for key in tfrecord.IMAGE_KEYS:
            values = example.features.feature[key].bytes_list.value
            if values:
                with Image.open(io.BytesIO(values[0])) as im:
                    out.append((f"a record of {files[0]}", im.size[1], im.size[0]))
                break
    return out


def check_crop(source, crop: int | None, resize=None, crop_flag: str = "--crop",
               source_flag: str = "--train_data") -> None:
    """Raises a one-line ValueError when the training crop is larger than the images of `source`
    (after `resize`, an int or (height, width)), so the mistake shows before a workdir exists
    rather than as a tf.data error at the first step."""
    if not crop or not source:
        return
    resize = _pair(resize, "resize")
    for name, h, w in first_image_sizes(source):
        if resize is not None:
            h, w = resize
        if crop > min(h, w):
            raise ValueError(f"{crop_flag}={crop} is larger than the images of {source_flag}="
                             f"{source} ({name} is {h}x{w}"
                             f"{' after the resize' if resize is not None else ''}): use "
                             f"{crop_flag} <= {min(h, w)} or resize the images.")


def _read_folder_image(path):
    return image_io.read_image(path.decode() if isinstance(path, bytes) else path)


def _resize_example(ex, size, short_side=None):
    """Resizes images (bilinear, antialiased, rounded to uint8), masks (nearest) and landmarks
    to ``size`` (H, W), or with ``short_side`` so that the shorter side is that many pixels
    (aspect kept, per example)."""
    out = dict(ex)
    hw_src = None
    for k in ("sharp", "blurred", "mask"):
        if k not in ex:
            continue
        if hw_src is None:
            hw_src = tf.cast(tf.shape(ex[k])[:2], tf.float32)
            if short_side is not None:
                size = tf.cast(tf.round(hw_src * (short_side / tf.reduce_min(hw_src))), tf.int32)
        if k == "mask":
            out[k] = tf.image.resize(ex[k], size, method="nearest")
        else:
            r = tf.image.resize(ex[k], size, method="bilinear", antialias=True)
            out[k] = tf.cast(tf.clip_by_value(tf.round(r), 0.0, 255.0), tf.uint8)
    if "landmarks" in ex and hw_src is not None:
        # half-pixel centres, as tf.image.resize: x' = (x + 0.5) * W'/W - 0.5
        size_f = tf.cast(size, tf.float32)
        scale = tf.stack([size_f[1] / hw_src[1], size_f[0] / hw_src[0]])
        out["landmarks"] = (ex["landmarks"] + 0.5) * scale - 0.5
    return out


def make_dataset(source, batch_size, crop=None, training=True, keys=("sharp", "blurred"), *,
                 resize=None, resize_short=None, kernel_bank=None, noise_sigma=0.0,
                 quantize=blur.QUANTIZE_BLUR,
                 shuffle_buffer=256, cache=False, seed=None, repeat=None, drop_remainder=None,
                 flip=True, shard=None) -> tf.data.Dataset:
    """Builds the batched input pipeline.

    Args:
      source: a TFRecord glob, a comma-separated string of globs, or a list of files/globs;
        OR a folder of PNG/JPEG/BMP images (then only "sharp" exists on disk and "blurred"
        needs ``kernel_bank``); OR ``tfds:NAME[:SPLIT][@DATA_DIR]``, a split prepared by the
        TFDS builders of ``data.builders`` (``common.tfds_source``).
      batch_size: examples per batch.
      crop: int or (h, w): random crop when ``training``, centre crop otherwise. None = no crop
        (then every image must share one size, or pass ``resize``).
      training: random crop + flip, shuffle, repeat by default, drop the last partial batch.
      keys: output keys, among "sharp", "blurred", "mask", "landmarks", "identity", "source",
        "kernel". "landmarks" only with ``training=False`` (a random flip would have to swap
        left/right points).
      resize: (H, W): resize every example before cropping (bilinear + antialias for images,
        rounded to uint8 as if stored at that size; nearest for masks; landmarks scaled).
      resize_short: int: instead of ``resize``, resize every example so that its shorter side
        is this many pixels, keeping its aspect (e.g. held-out faces of any shape before a
        centre crop of that size).
      kernel_bank: float32 [K, S, S] (S odd). "blurred" is then made on the fly from the
        cropped "sharp" with a kernel drawn uniformly per example
        (``common.blur.apply_kernels``, reflect borders), plus Gaussian noise ``noise_sigma``
        (a number, or a (lo, hi) pair: one level per example drawn uniformly in [lo, hi])
        (``common.blur.add_noise``) and, with ``quantize``, rounding to 1/255 steps.
        Without a bank, ``noise_sigma`` is added to the stored "blurred" image the same way.
      shuffle_buffer: shuffle buffer (training only); 0 disables.
      cache: cache the decoded (and resized) uint8 examples in memory (True) or in a file
        (a path string).
      seed: int; same seed -> same batches. None -> fresh randomness on each call.
      repeat: repeat forever; default True when training.
      drop_remainder: default = ``training``.
      flip: random horizontal flip when training.
      shard: (num_shards, index): read only shard ``index`` of ``num_shards`` (one per worker's
        input pipeline, ``common.train.distribute.distribute_per_worker``): whole files when
        there are at least ``num_shards`` files (or images of a folder), else every
        num_shards-th record.

    Returns:
      tf.data.Dataset of dicts (see the module docstring), prefetched.

    Raises:
      FileNotFoundError: the pattern matches nothing (named) or the folder holds no image.
      ValueError: unknown key, a key missing from the records (named with the file), a crop
        larger than ``resize``, landmarks with training=True, blurred from a folder without a
        kernel bank. A crop larger than an image (without ``resize``) fails while iterating
        with an InvalidArgumentError saying to pass ``resize``.
    """
    if isinstance(keys, str):
        keys = (keys,)
    keys = tuple(keys)
    unknown = [k for k in keys if k not in RECORD_KEYS]
    if unknown or not keys:
        raise ValueError(f"make_dataset: unknown key(s) {unknown or keys}; choose from {tuple(RECORD_KEYS)}")
    if int(batch_size) < 1:
        raise ValueError(f"make_dataset: batch_size must be >= 1, got {batch_size}")
    crop = _pair(crop, "crop")
    resize = _pair(resize, "resize")
    if shard is not None:
        shard = (int(shard[0]), int(shard[1]))
        if shard[0] < 1 or not 0 <= shard[1] < shard[0]:
            raise ValueError(f"make_dataset: shard must be (num_shards >= 1, 0 <= index < "
                             f"num_shards), got {shard}")
    if resize is not None and resize_short is not None:
        raise ValueError("make_dataset: pass resize or resize_short, not both")
    if resize_short is not None and int(resize_short) < 1:
        raise ValueError(f"make_dataset: resize_short must be >= 1, got {resize_short}")
    if crop is not None and resize is not None and (crop[0] > resize[0] or crop[1] > resize[1]):
        raise ValueError(f"make_dataset: crop {crop} is larger than resize {resize}")
    if training and "landmarks" in keys:
        raise ValueError("make_dataset: 'landmarks' is only available with training=False "
                         "(random crops and flips would invalidate them)")
    if "landmarks" in keys and (crop or resize or resize_short) and not set(keys) & set(SPATIAL_KEYS):
        raise ValueError("make_dataset: 'landmarks' with crop/resize needs an image key too "
                         "(e.g. keys=('sharp', 'landmarks')), so the crop window is known")
    repeat = training if repeat is None else bool(repeat)
    drop_remainder = training if drop_remainder is None else bool(drop_remainder)
    if seed is None:
        seed = int(np.random.SeedSequence().generate_state(1)[0])
        shuffle_seed = None
    else:
        seed = int(seed)
        shuffle_seed = seed

    bank = None
    synth = set()
    if kernel_bank is not None:
        bank = np.asarray(kernel_bank, np.float32)
        if bank.ndim == 2:
            bank = bank[None]
        if bank.ndim != 3 or bank.shape[1] != bank.shape[2] or bank.shape[1] % 2 == 0 or len(bank) == 0:
            raise ValueError(f"make_dataset: kernel_bank must be float32 [K,S,S] with S odd, got shape "
                             f"{bank.shape}; common.blur.pad_kernels() centres kernels in one odd size")
        synth = {"blurred", "kernel"} & set(keys)
        if not synth:
            bank = None  # nothing to synthesize
    # what must be read from disk
    read = [k for k in keys if k not in synth]
    if synth and "sharp" not in read:
        read.append("sharp")  # on-the-fly blur needs the sharp image
    pattern_desc = os.fspath(source) if isinstance(source, (str, os.PathLike)) else list(source)
    ds = read_examples(source, read, shard)
    if resize is not None:
        ds = ds.map(lambda ex: _resize_example(ex, resize), num_parallel_calls=_AUTOTUNE)
    elif resize_short is not None:
        ds = ds.map(lambda ex: _resize_example(ex, None, short_side=int(resize_short)),
                    num_parallel_calls=_AUTOTUNE)
    if cache:
        ds = ds.cache(cache if isinstance(cache, str) else "")
    if training and shuffle_buffer and shuffle_buffer > 1:
        ds = ds.shuffle(int(shuffle_buffer), seed=shuffle_seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = augment_and_batch(ds, batch_size, crop=crop, training=training, flip=flip, seed=seed,
                           num_kernels=0 if bank is None else len(bank),
                           drop_remainder=drop_remainder, source_desc=pattern_desc,
                           noise_sigma=noise_sigma if bank is None else 0.0)
    if bank is not None:
        ds = blur_batches(ds, bank, keys, noise_sigma=noise_sigma, quantize=quantize)
    return ds.prefetch(_AUTOTUNE)


def read_examples(source, read: Sequence[str], shard=None) -> tf.data.Dataset:
    """Stage 1 of `make_dataset`: unbatched dicts of the `read` keys as stored (images uint8
    [H, W, C], masks uint8 [H, W, 1], ...), from a TFRecord glob / list of files (checked: every
    file's first record holds the keys) or an image folder ("sharp" and "source" only).
    `shard=(num_shards, index)`: whole files (images) when there are enough, else records.

    A split prepared by the TFDS builders of `data.builders` (`tfds:NAME[:SPLIT][@DATA_DIR]`) is
    read by `common.tfds_source.read` into the same dicts.
    """
    read = list(read)
    if tfds_source.is_tfds(source):
        return tfds_source.read(source, read, shard)
    pattern_desc = os.fspath(source) if isinstance(source, (str, os.PathLike)) else list(source)
    if _is_folder(source):
        folder = os.fspath(source)
        bad = [k for k in read if k not in ("sharp", "source")]
        if bad:
            hint = (" ('blurred' from a folder needs kernel_bank=... to synthesize it)"
                    if "blurred" in bad else "")
            raise ValueError(f"make_dataset: the image folder {folder} holds only sharp images; "
                             f"key(s) {bad} need TFRecords (python -m data.build){hint}")
        files = image_io.list_images(folder)
        if shard is not None:
            files = files[shard[1]::shard[0]]
        ds = tf.data.Dataset.from_tensor_slices(files)

        def _load(path):
            ex = {}
            if "sharp" in read:
                img = tf.numpy_function(_read_folder_image, [path], tf.uint8, stateful=False)
                ex["sharp"] = tf.ensure_shape(img, [None, None, 3])
            if "source" in read:
                ex["source"] = path
            return ex

        ds = ds.map(_load, num_parallel_calls=_AUTOTUNE)
    else:
        files = tfrecord.list_files(source)
        _check_records(files, [RECORD_KEYS[k] for k in read], pattern_desc)
        rkeys = tuple(RECORD_KEYS[k] for k in read)
        by_record = shard is not None and len(files) < shard[0]
        if shard is not None and not by_record:
            files = files[shard[1]::shard[0]]
        ds = tf.data.TFRecordDataset(files, num_parallel_reads=min(len(files), 8) if len(files) > 1 else None)
        if by_record:
            ds = ds.shard(shard[0], shard[1])

        def _parse(serialized):
            parsed = tfrecord.parse_example(serialized, keys=rkeys)
            return {k: parsed[RECORD_KEYS[k]] for k in read}

        ds = ds.map(_parse, num_parallel_calls=_AUTOTUNE)
    return ds


def augment_and_batch(ds: tf.data.Dataset, batch_size: int, *, crop=None, training=True,
                      flip=True, seed: int = 0, num_kernels: int = 0, drop_remainder=False,
                      source_desc="", noise_sigma=0.0) -> tf.data.Dataset:
    """Stage 2 of `make_dataset`: per example (seed `(seed, running index)`), the same crop
    window (random when `training`, else centred) and horizontal flip for every spatial key,
    landmarks shifted with the crop, images to float32 [0, 1], masks to int32; with
    `num_kernels`, the index of the bank kernel drawn for the example (`_kernel_index`) and its
    seed (`_seed`) for `blur_batches`; without kernels, `noise_sigma` (a number or a (lo, hi)
    range, see `make_dataset`) added to a stored "blurred" image. Then batched."""
    crop = _pair(crop, "crop")
    noise_lo, noise_hi = noise_range(noise_sigma)
    crop_msg = (f"an image is smaller than the crop {crop}; pass resize=(H, W) to make_dataset "
                f"(source: {source_desc})")

    def _augment(index, ex):
        s = tf.stack([tf.constant(seed, tf.int64), tf.cast(index, tf.int64)])
        s_off, s_flip, s_kernel = tf.unstack(tf.random.experimental.stateless_split(s, 3))
        out = dict(ex)
        spatial = [k for k in SPATIAL_KEYS if k in ex]
        if crop is not None and spatial:
            hw = tf.shape(ex[spatial[0]])[:2]
            ch, cw = crop
            check = tf.debugging.assert_greater_equal(hw, tf.constant([ch, cw]), message=crop_msg)
            with tf.control_dependencies([check]):
                hw = tf.identity(hw)
            if training:
                off = tf.random.stateless_uniform([2], s_off, maxval=tf.int32.max, dtype=tf.int32)
                off = off % (hw - tf.constant([ch, cw]) + 1)
            else:
                off = (hw - tf.constant([ch, cw])) // 2
            for k in spatial:
                out[k] = tf.slice(ex[k], tf.stack([off[0], off[1], 0]), tf.stack([ch, cw, -1]))
                out[k].set_shape([ch, cw, ex[k].shape[-1]])
            if "landmarks" in ex:
                out["landmarks"] = ex["landmarks"] - tf.cast(tf.stack([off[1], off[0]]), tf.float32)
        if training and flip and spatial:
            do_flip = tf.random.stateless_uniform([], s_flip) < 0.5
            for k in spatial:
                out[k] = tf.cond(do_flip, lambda v=out[k]: tf.reverse(v, axis=[1]), lambda v=out[k]: v)
        for k in ("sharp", "blurred"):
            if k in out:
                out[k] = tf.cast(out[k], tf.float32) / 255.0
        if "mask" in out:
            out["mask"] = tf.cast(out["mask"], tf.int32)
        if num_kernels:
            out["_kernel_index"] = tf.random.stateless_uniform([], s_kernel, maxval=num_kernels, dtype=tf.int32)
            out["_seed"] = s
        elif noise_hi > 0 and "blurred" in out:  # stored pairs: noise on the stored blurred image
            sigma = tf.random.stateless_uniform([], tf.random.experimental.stateless_fold_in(s_kernel, 2),
                                                minval=noise_lo, maxval=noise_hi) \
                if noise_lo < noise_hi else noise_hi
            out["blurred"] = blur.add_noise(out["blurred"], sigma,
                                            seed=tf.random.experimental.stateless_fold_in(s_kernel, 1))
        return out

    ds = ds.enumerate().map(_augment, num_parallel_calls=_AUTOTUNE)
    ds = ds.batch(int(batch_size), drop_remainder=drop_remainder)
    return ds


def blur_batches(ds: tf.data.Dataset, bank, keys: Sequence[str], *, noise_sigma=0.0,
                 quantize=blur.QUANTIZE_BLUR) -> tf.data.Dataset:
    """Stage 3 of `make_dataset`: "blurred" (and "kernel") made from each batch's "sharp" with
    the bank kernel `augment_and_batch` drew per example (`common.blur.apply_kernels`, reflect
    borders), Gaussian noise `noise_sigma` (a number or a (lo, hi) range per example) and, with
    `quantize`, rounding to 1/255 steps; "sharp" is dropped unless in `keys`."""
    bank_t = tf.constant(bank)
    lo, hi = noise_range(noise_sigma)

    def _blur(batch):
        out = {k: v for k, v in batch.items() if not k.startswith("_")}
        kernels = tf.gather(bank_t, batch["_kernel_index"])
        blurred = blur.apply_kernels(batch["sharp"], kernels, border="reflect")
        if hi > 0:
            seed0 = batch["_seed"][0]
            sigma = hi
            if lo < hi:  # one noise level per example, uniform in [lo, hi]
                sigma = tf.random.stateless_uniform(
                    [tf.shape(blurred)[0], 1, 1, 1], tf.random.experimental.stateless_fold_in(seed0, 2),
                    minval=lo, maxval=hi)
            blurred = blur.add_noise(blurred, sigma,
                                     seed=tf.random.experimental.stateless_fold_in(seed0, 1))
        else:
            blurred = tf.clip_by_value(blurred, 0.0, 1.0)
        if quantize:
            blurred = blur.quantize_uint8(blurred)
        if "blurred" in keys:
            out["blurred"] = blurred
        if "kernel" in keys:
            out["kernel"] = kernels
        if "sharp" not in keys:
            out.pop("sharp")
        return out

    ds = ds.map(_blur, num_parallel_calls=_AUTOTUNE)
    return ds
