"""Input helpers shared by the three stages (TensorFlow data side; no networks here).

A data flag names either TFRecords (a glob of the shared schema, `common.tfrecord`) or a folder of
images. Folders only hold sharp faces, so an image of the blurred domain is then made on the fly
by convolving with a kernel from `--blur_kernels` (real camera-shake kernels, e.g. Levin et al.'s
`kernels/levin09.npz`), as `common.pipeline.make_dataset` does.
"""
from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from common import blur, pipeline


SYNTHETIC_KERNELS = ("camera_shake", "markov", "gaussian")


def load_kernels(spec):
    """Comma-separated .npz/.mat paths (or camera_shake/markov/gaussian for a small synthetic bank)
    -> float32 [K,S,S] (zero-padded to one odd size)."""
    if not spec:
        return None
    kernels = []
    for path in [p.strip() for p in spec.split(",") if p.strip()]:
        if path in SYNTHETIC_KERNELS:  # no file needed (smoke runs): a small seeded synthetic bank
            kernels.extend(blur.make_kernel_bank(path, num=16, sizes=range(7, 16, 2), seed=0))
            continue
        if not os.path.isfile(path):
            raise FileNotFoundError(f"--blur_kernels: {path} does not exist (give .npz/.mat kernel "
                                    f"banks, e.g. ../shared/data/kernels/levin09.npz)")
        kernels.extend(blur.load_kernel_bank(path))
    return blur.pad_kernels(kernels)


def is_folder(source):
    return isinstance(source, (str, os.PathLike)) and os.path.isdir(os.fspath(source))


def _pair(s):
    if not s:
        return None
    parts = [int(v) for v in str(s).replace("x", ",").split(",") if v.strip()]
    return (parts[0], parts[0]) if len(parts) == 1 else (parts[0], parts[1])


def domain_dataset(source, key, batch_size, crop, *, kernels=None, noise_sigma=0.0, resize=None,
                   training=True, seed=None, flag_name="--data", shard=None):
    """Batches of one image domain: float32 [B,crop,crop,3] in [0,1] under `key` ("sharp"/"blurred").

    `key="blurred"` from a folder needs `kernels` (the blur is synthesised from its sharp faces).
    """
    if not source:
        raise ValueError(f"{flag_name} is required (a TFRecord glob or a folder of images)")
    if key == "blurred" and is_folder(source):
        if kernels is None:
            raise ValueError(f"{flag_name}={source} is a folder of sharp faces: pass --blur_kernels "
                             f"to blur them, or give records holding image/blurred")
        ds = pipeline.make_dataset(source, batch_size, crop=crop, training=training,
                                   keys=("blurred",), kernel_bank=kernels, noise_sigma=noise_sigma,
                                   quantize=True, resize=_pair(resize), seed=seed, shard=shard)
    else:
        ds = pipeline.make_dataset(source, batch_size, crop=crop, training=training, keys=(key,),
                                   resize=_pair(resize), seed=seed, shard=shard)
    return ds.map(lambda ex: ex[key])


def paired_dataset(source, batch_size, crop, *, kernels=None, noise_sigma=0.0, resize=None,
                   training=True, seed=None, repeat=None, flag_name="--train_data", shard=None):
    """Batches of {"sharp", "blurred"} pairs from records, or from a folder blurred with `kernels`."""
    if not source:
        raise ValueError(f"{flag_name} is required (a TFRecord glob or a folder of images)")
    if is_folder(source):
        if kernels is None:
            raise ValueError(f"{flag_name}={source} is a folder: pass --blur_kernels to make pairs")
        return pipeline.make_dataset(source, batch_size, crop=crop, training=training,
                                     keys=("sharp", "blurred"), kernel_bank=kernels,
                                     noise_sigma=noise_sigma, quantize=True, resize=_pair(resize),
                                     seed=seed, repeat=repeat, shard=shard)
    return pipeline.make_dataset(source, batch_size, crop=crop, training=training,
                                 keys=("sharp", "blurred"), resize=_pair(resize), seed=seed,
                                 repeat=repeat, shard=shard)


def side_by_side(*images):
    """Concatenates float images [B,H,W,3] along width, clipped to [0,1] (a TensorBoard grid row)."""
    return tf.clip_by_value(tf.concat([tf.cast(i, tf.float32) for i in images], axis=2), 0.0, 1.0)


def to_unit(x):
    """[-1,1] -> [0,1]."""
    return (tf.cast(x, tf.float32) + 1.0) * 0.5


def to_signed(x):
    """[0,1] -> [-1,1]."""
    return tf.cast(x, tf.float32) * 2.0 - 1.0


def parse_floats(spec, n=None, name="--scale_weights"):
    values = [float(v) for v in str(spec).split(",") if v.strip()]
    if n is not None and len(values) != n:
        raise ValueError(f"{name}={spec!r}: need {n} comma-separated numbers")
    return np.asarray(values, np.float32)
