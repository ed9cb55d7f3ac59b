"""Input helpers shared by the three stages (TensorFlow data side; no networks here).

A data flag names either TFRecords (a glob of the shared schema, `common.tfrecord`) or a folder of
images. Folders only hold sharp faces, so an image of the blurred domain is then made on the fly
by convolving with a kernel of the bank named by `--blur_kernels` (`common.shared_flags.kernel_bank`:
real camera-shake kernels, e.g. Levin et al.'s `kernels/levin09.npz`, or a generator), as
`common.pipeline.make_dataset` does.
"""
from __future__ import annotations

import os

import tensorflow as tf

from common import blur, pipeline
from common.shared_flags import parse_resize


def is_folder(source):
    return isinstance(source, (str, os.PathLike)) and os.path.isdir(os.fspath(source))


def domain_dataset(source, key, batch_size, crop, *, kernels=None, noise_sigma=0.0, resize=None,
                   training=True, seed=None, flag_name="--data", shard=None,
                   quantize=blur.QUANTIZE_BLUR):
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
                                   quantize=quantize, resize=parse_resize(resize), seed=seed, shard=shard)
    else:
        ds = pipeline.make_dataset(source, batch_size, crop=crop, training=training, keys=(key,),
                                   resize=parse_resize(resize), seed=seed, shard=shard)
    return ds.map(lambda ex: ex[key])


def paired_dataset(source, batch_size, crop, *, kernels=None, noise_sigma=0.0, resize=None,
                   training=True, seed=None, repeat=None, flag_name="--train_data", shard=None,
                   quantize=blur.QUANTIZE_BLUR):
    """Batches of {"sharp", "blurred"} pairs: stored pairs, or sharp faces (a folder, or records
    without image/blurred) blurred on the fly with `kernels`.

    `noise_sigma`: a number or a (lo, hi) range (`shared_flags.noise_level`); added to the
    on-the-fly blur of a folder, and to stored pairs' blurred images when `training`.
    """
    if not source:
        raise ValueError(f"{flag_name} is required (a TFRecord glob or a folder of images)")
    if not pipeline.stores_blurred(source):
        if kernels is None:
            what = "a folder" if is_folder(source) else "records of sharp faces only"
            raise ValueError(f"{flag_name}={source} is {what}: pass --blur_kernels to make pairs")
        return pipeline.make_dataset(source, batch_size, crop=crop, training=training,
                                     keys=("sharp", "blurred"), kernel_bank=kernels,
                                     noise_sigma=noise_sigma, quantize=quantize, resize=parse_resize(resize),
                                     seed=seed, repeat=repeat, shard=shard)
    # stored pairs: training adds the noise to the stored blurred image; evaluation reads them as
    # stored
    return pipeline.make_dataset(source, batch_size, crop=crop, training=training,
                                 keys=("sharp", "blurred"), resize=parse_resize(resize), seed=seed,
                                 repeat=repeat, shard=shard,
                                 noise_sigma=noise_sigma if training else 0.0)


def to_unit(x):
    """[-1,1] -> [0,1]."""
    return (tf.cast(x, tf.float32) + 1.0) * 0.5


def to_signed(x):
    """[0,1] -> [-1,1]."""
    return tf.cast(x, tf.float32) * 2.0 - 1.0
