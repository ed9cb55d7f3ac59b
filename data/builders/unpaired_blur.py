"""Unpaired real clear / blurred photos (paper 1, stage 1: CycleGAN learns blurred <-> clear).

Manual layout (any image names; sub-folders are searched too):
    <manual_dir>/clear/*.png|jpg      real sharp photos (domain A)
    <manual_dir>/blurred/*.png|jpg    real blurred photos (domain B), not paired with clear/
Optional held-out sets: <manual_dir>/test/clear/, <manual_dir>/test/blurred/ -> split "test".
"""
import os

import tensorflow_datasets as tfds

from data.builders import _layout

DOMAINS = ("clear", "blurred")
MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Put real sharp photos in manual_dir/clear/ and real blurred photos in manual_dir/blurred/
(optionally manual_dir/test/clear/ and manual_dir/test/blurred/ for a held-out split).
"""


def check_layout(manual_dir):
    hint = "Expected clear/ and blurred/ folders of images."
    lay = {}
    for d in DOMAINS:
        lay[d] = _layout.require_dir(manual_dir, d, hint=hint)
    for d in DOMAINS:
        if not _layout.images_in(lay[d], recursive=True):
            raise _layout.LayoutError(f"{lay[d]} holds no image ({', '.join(_layout.IMAGE_EXTENSIONS)}).")
    test = os.path.join(manual_dir, "test")
    lay["test"] = test if all(os.path.isdir(os.path.join(test, d)) for d in DOMAINS) else None
    return lay


def generate(manual_dir, split="train"):
    """Yields (key, {"image": path, "domain": "clear"|"blurred", "file_name"})."""
    lay = check_layout(manual_dir)
    if split == "train":
        roots = {d: lay[d] for d in DOMAINS}
    elif split == "test":
        if lay["test"] is None:
            raise _layout.LayoutError(f"split 'test' needs {os.path.join(manual_dir, 'test', 'clear')} "
                                      f"and {os.path.join(manual_dir, 'test', 'blurred')}.")
        roots = {d: os.path.join(lay["test"], d) for d in DOMAINS}
    else:
        raise ValueError(f"unknown unpaired_blur split {split!r}; use train or test")
    for d in DOMAINS:
        for p in _layout.images_in(roots[d], recursive=True):
            rel = os.path.relpath(p, roots[d])
            yield f"{d}/{rel}", {"image": p, "domain": d, "file_name": rel}


class UnpairedBlur(_layout.ManualDirBuilder):
    """Unpaired clear and blurred photos, each example tagged with its domain."""

    name = "facedeblur_unpaired_blur"
    MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS

    def _features(self):
        return {
            "image": tfds.features.Image(shape=(None, None, 3)),
            "domain": tfds.features.ClassLabel(names=DOMAINS),
            "file_name": tfds.features.Text(),
        }

    def _split_names(self, manual_dir):
        return ["train", "test"] if check_layout(manual_dir)["test"] else ["train"]

    def _examples(self, manual_dir, split):
        return generate(manual_dir, split)
