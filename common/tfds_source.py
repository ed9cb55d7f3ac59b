"""Read what the TFDS builders prepared (`data.builders`, `tfds.core.DatasetBuilder
.download_and_prepare`) as the trainers' input: one data path for TFDS and the trainers.

A source string ``tfds:NAME[:SPLIT][@DATA_DIR]`` names a prepared TFDS dataset, e.g.

    tfds:facedeblur_helen_parsing:train@/data/tfds
    tfds:facedeblur_lfw/images:test                 (config after '/'; DATA_DIR from $TFDS_DATA_DIR)

and can stand wherever a record glob or an image folder is accepted (``--train_data``,
``--eval_data``, ``common.pipeline.make_dataset``). SPLIT defaults to ``train`` (any TFDS split
expression, e.g. ``train[:90%]``); DATA_DIR defaults to TFDS's own (``$TFDS_DATA_DIR`` or
``~/tensorflow_datasets``). The prepared files are read with ``tfds.builder(NAME,
data_dir=DATA_DIR).as_dataset(split=SPLIT)``: the builder classes need not be imported (TFDS
reads the dataset's own metadata from DATA_DIR), nothing is downloaded or generated here.

The builders' features map to the pipeline's keys (``common.pipeline.RECORD_KEYS``):
``sharp`` <- ``sharp`` or ``image``; ``blurred``, ``mask``, ``landmarks``, ``identity`` <- the
feature of the same name; ``source`` <- ``file_name`` (or ``name``). A key the dataset lacks is
an error naming the dataset and the features it has.
"""
from __future__ import annotations

import os

import tensorflow as tf

PREFIX = "tfds:"
# pipeline key -> builder features that provide it, in order of preference
FEATURES = {
    "sharp": ("sharp", "image"),
    "blurred": ("blurred",),
    "mask": ("mask",),
    "landmarks": ("landmarks",),
    "identity": ("identity",),
    "source": ("file_name", "name"),
}


def is_tfds(source) -> bool:
    return isinstance(source, str) and source.startswith(PREFIX)


def parse(spec: str) -> tuple[str, str, str | None]:
    """(name, split, data_dir or None) of ``tfds:NAME[:SPLIT][@DATA_DIR]``."""
    if not is_tfds(spec):
        raise ValueError(f"not a TFDS source (tfds:NAME[:SPLIT][@DATA_DIR]): {spec!r}")
    body = spec[len(PREFIX):]
    data_dir = None
    if "@" in body:
        body, data_dir = body.split("@", 1)
        data_dir = os.path.expanduser(data_dir) or None
    name, _, split = body.partition(":")
    if not name:
        raise ValueError(f"{spec!r}: no dataset name; use tfds:NAME[:SPLIT][@DATA_DIR], e.g. "
                         "tfds:facedeblur_celeba:train@/data/tfds")
    return name, split or "train", data_dir


def builder(spec: str):
    """The prepared TFDS builder of a ``tfds:`` source (error says how to prepare it)."""
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
    name, _, data_dir = parse(spec)
    how = ("prepare it first, e.g. data.builders.prepare(celeba.Celeba, manual_dir=..., "
           "data_dir=...) (data/README.md)")
    try:
        b = tfds.builder(name, data_dir=data_dir)
    except Exception as e:  # noqa: BLE001 - DatasetNotFoundError and friends: one clear line
        raise FileNotFoundError(f"{spec}: no prepared TFDS dataset {name!r} in "
                                f"{data_dir or 'the default TFDS data_dir'} "
                                f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
                                f"{how}") from e
    if not b.is_prepared():
        raise FileNotFoundError(f"{spec}: TFDS dataset {name!r} is not prepared in {b.data_dir}; "
                                f"{how}")
    return b


def feature_map(spec: str, features, keys) -> dict[str, str]:
    """{pipeline key: builder feature} for `keys`; ValueError naming what is missing."""
    out = {}
    for k in keys:
        found = next((f for f in FEATURES.get(k, ()) if f in features), None)
        if found is None:
            raise ValueError(f"{spec}: the TFDS dataset has no feature for key {k!r} (it has "
                             f"{sorted(features)}; {k!r} comes from "
                             f"{' or '.join(FEATURES.get(k, ())) or 'no TFDS feature'})")
        out[k] = found
    return out


def read(spec: str, keys, shard=None) -> tf.data.Dataset:
    """Unbatched dicts {key: tensor} of a prepared TFDS split, in the pipeline's dtypes before
    augmentation (uint8 images [H, W, 3], uint8 mask [H, W, 1], float32 landmarks, int64
    identity, string source). ``shard``: (num_shards, index) keeps every num_shards-th example
    (one shard per worker's pipeline)."""
    b = builder(spec)
    _, split, _ = parse(spec)
    fmap = feature_map(spec, b.info.features, keys)
    ds = b.as_dataset(split=split, shuffle_files=False)
    if shard is not None:
        ds = ds.shard(int(shard[0]), int(shard[1]))

    def _select(ex):
        out = {}
        for k, f in fmap.items():
            v = ex[f]
            if k == "landmarks":
                v = tf.cast(tf.reshape(v, [-1, 2]), tf.float32)
            elif k == "identity":
                v = tf.cast(v, tf.int64)
            elif k == "mask":
                v = tf.cast(v, tf.uint8)
            out[k] = v
        return out

    return ds.map(_select, num_parallel_calls=tf.data.AUTOTUNE)


def num_examples(spec: str) -> int:
    """Examples in the split of a ``tfds:`` source (from the dataset's metadata; a sliced split
    such as ``train[:90%]`` counts its slice)."""
    b = builder(spec)
    _, split, _ = parse(spec)
    return int(b.info.splits[split].num_examples)
