"""Shared helpers of the dataset builders: layout checks with clear errors, and a no-download
`prepare()` that runs a TFDS builder from a local manual folder.

Every builder module in `data.builders` exposes, beside its `tfds.core.GeneratorBasedBuilder`:
  * `check_layout(manual_dir, ...)` -> dict of resolved paths; raises `LayoutError` naming the
    file or folder it expected;
  * `generate(manual_dir, split, ...)` -> iterator of `(key, example)` where images are file paths
    (or uint8 arrays when they have to be computed). The TFDS builder's `_generate_examples` and
    `python -m data.build` both consume this one generator, so the two never disagree.

`ManualDirBuilder` is the TFDS side they share: version, release notes, `_info` from a features
dict, and `_split_generators` that checks the layout and runs `generate()` per split.
"""
import abc
import os
import re

import tensorflow_datasets as tfds

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")


class LayoutError(FileNotFoundError):
    """The manual folder does not hold the layout a builder expects (message says what is missing)."""


def _where(manual_dir, what, hint):
    msg = f"{what} (manual_dir={manual_dir!r})."
    if hint:
        msg += " " + hint
    return msg


def require_dir(manual_dir, *candidates, hint=""):
    """The first existing folder among `candidates` (relative to manual_dir) or LayoutError."""
    if not manual_dir or not os.path.isdir(manual_dir):
        raise LayoutError(f"manual_dir {manual_dir!r} does not exist or is not a folder. {hint}".strip())
    for c in candidates:
        p = os.path.join(manual_dir, c)
        if os.path.isdir(p):
            return p
    raise LayoutError(_where(manual_dir, "expected folder " + " or ".join(repr(c) for c in candidates)
                             + " inside manual_dir, found none", hint))


def find_file(manual_dir, *candidates):
    """The first existing file among `candidates` (relative to manual_dir), else None."""
    for c in candidates:
        p = os.path.join(manual_dir, c)
        if os.path.isfile(p):
            return p
    return None


def require_file(manual_dir, *candidates, hint=""):
    p = find_file(manual_dir, *candidates)
    if p is None:
        raise LayoutError(_where(manual_dir, "expected file " + " or ".join(repr(c) for c in candidates)
                                 + " inside manual_dir, found none", hint))
    return p


def is_image(name):
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def images_in(folder, recursive=False):
    """Sorted image paths in `folder` (natural order: 'frame2' before 'frame10')."""
    out = []
    if recursive:
        for root, dirs, files in os.walk(folder):
            dirs.sort()
            out.extend(os.path.join(root, f) for f in files if is_image(f))
    else:
        out = [os.path.join(folder, f) for f in os.listdir(folder) if is_image(f)]
    return sorted(out, key=natural_key)


def natural_key(s):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", s)]


def prepare(builder_cls, manual_dir, data_dir, config=None, max_examples_per_split=None,
            beam_runner=None, beam_options=None, **kwargs):
    """Builds `builder_cls` into `data_dir` from `manual_dir`; never touches the network.

    With `beam_runner` or `beam_options` (an `apache_beam` runner / `PipelineOptions`, e.g.
    `PipelineOptions(["--runner=DataflowRunner", ...])` for a cluster, or `DirectRunner()`), the
    split generation runs as an Apache Beam pipeline (`ManualDirBuilder(beam=True)`).
    Returns the prepared builder (`builder.as_dataset(split=...)` reads it back; trainers read it
    as `--train_data=tfds:NAME:SPLIT@DATA_DIR`, `common.tfds_source`).
    """
    if beam_runner is not None or beam_options is not None:
        kwargs["beam"] = True
    builder = builder_cls(data_dir=data_dir, config=config, **kwargs)
    download_config = tfds.download.DownloadConfig(
        manual_dir=manual_dir,
        download_mode=tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS,
        try_download_gcs=False,
        max_examples_per_split=max_examples_per_split,
        beam_runner=beam_runner, beam_options=beam_options)
    builder.download_and_prepare(download_config=download_config,
                                 file_format="tfrecord")
    return builder


def manual_dir_of(dl_manager):
    """`dl_manager.manual_dir` as a str, with an error that says how to pass it."""
    try:
        d = dl_manager.manual_dir
    except AssertionError as e:  # tfds raises AssertionError when the folder is missing
        raise LayoutError(f"{e} Pass --manual_dir (tfds DownloadConfig(manual_dir=...)).") from e
    return os.fspath(d)


class ManualDirBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Base of the facedeblur TFDS builders: examples come from a local manual folder.

    A subclass sets `name`, `MANUAL_DOWNLOAD_INSTRUCTIONS` and optionally `HOMEPAGE`, `CITATION`,
    `SUPERVISED_KEYS`, and implements:
      * `_features()` -> dict of feature name -> tfds feature;
      * `_split_names(manual_dir)` -> the split names, after checking the layout (`LayoutError`);
      * `_examples(manual_dir, split)` -> iterator of `(key, example)` (the module's `generate`).
    """

    VERSION = tfds.core.Version("1.0.0")
    BEAM_NOTE = """With beam=True each split is an Apache Beam pipeline: the items (file paths,
    and the arrays a generator computes, e.g. Helen's class masks) are listed on the launching
    machine, and the workers read, encode and write the examples into the TFDS shards; the
    result is the same dataset as the in-process build (any Beam runner: DirectRunner,
    Dataflow, Flink, Spark)."""
    RELEASE_NOTES = {"1.0.0": "Manual-dir builder for facedeblur."}
    HOMEPAGE = None
    CITATION = None
    SUPERVISED_KEYS = None

    @abc.abstractmethod
    def _features(self):
        """dict of feature name -> tfds feature (built per call)."""

    @abc.abstractmethod
    def _split_names(self, manual_dir):
        """Checks manual_dir's layout (LayoutError) and returns the split names to build."""

    @abc.abstractmethod
    def _examples(self, manual_dir, split):
        """Iterator of (key, example) of one split."""

    def _info(self):
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(self._features()),
            supervised_keys=self.SUPERVISED_KEYS, homepage=self.HOMEPAGE, citation=self.CITATION)

    def __init__(self, *args, beam=False, **kwargs):
        self._beam = bool(beam)
        super().__init__(*args, **kwargs)

    def _split_generators(self, dl_manager):
        manual_dir = manual_dir_of(dl_manager)
        if self._beam:  # see BEAM_NOTE
            return {s: self._beam_examples(manual_dir, s) for s in self._split_names(manual_dir)}
        return {s: self._generate_examples(manual_dir, s) for s in self._split_names(manual_dir)}

    def _beam_examples(self, manual_dir, split):
        beam = tfds.core.lazy_imports.apache_beam
        return f"list_{split}" >> beam.Create(list(self._examples(manual_dir, split)))

    def _generate_examples(self, manual_dir, split):
        yield from self._examples(manual_dir, split)
