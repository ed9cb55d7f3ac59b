"""The blurred face test sets of Shen et al. (CVPR 2018, "Deep Semantic Face Deblurring"), used
by paper 3 (UMSN) Table III: every sharp test face blurred by 10 kernels at each of the sizes
13, 15, ..., 27 (80 blurred copies per face).

The public release has no single canonical folder naming, so the expected layout is fixed here
(a small rename script gets any copy into it):
    <manual_dir>/<subset>/sharp/<name>.png                       e.g. helen/sharp/0001.png
    <manual_dir>/<subset>/blurred/<name>_ker<K>_size<S>.png      e.g. helen/blurred/0001_ker03_size17.png
  or, equivalently, blurred/ker<K>/size<S>/<name>.png (kernel and size read from the folders).
<subset> is any folder name (typically `helen` and `celeba`); each subset is one split.
Blurred copies whose <name> has no sharp image raise a LayoutError.
"""
import os

import numpy as np
import tensorflow_datasets as tfds

from common.evaluation import stored_sets
from data.builders import _layout

KERNEL_SIZES = tuple(range(13, 28, 2))
NUM_KERNELS = 10
MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Arrange the Shen et al. 2018 test sets as manual_dir/<subset>/sharp/<name>.png and
manual_dir/<subset>/blurred/<name>_ker<K>_size<S>.png (see data/builders/shen_blurred_faces.py).
"""


def parse_blurred(rel_path):
    """(name, kernel index, kernel size) from a path relative to blurred/, or None (one parser
    for the builder and the evaluation core: `common.evaluation.stored_sets.parse_shen_blurred`)."""
    return stored_sets.parse_shen_blurred(rel_path)


def check_layout(manual_dir):
    if not manual_dir or not os.path.isdir(manual_dir):
        raise _layout.LayoutError(f"manual_dir {manual_dir!r} is not a folder.")
    subsets = sorted(d for d in os.listdir(manual_dir)
                     if os.path.isdir(os.path.join(manual_dir, d, "sharp"))
                     and os.path.isdir(os.path.join(manual_dir, d, "blurred")))
    if not subsets:
        raise _layout.LayoutError(f"no <subset>/sharp/ + <subset>/blurred/ folders in {manual_dir!r} "
                                  "(e.g. helen/sharp/0001.png, helen/blurred/0001_ker01_size13.png).")
    return subsets


def generate(manual_dir, split):
    """Yields (rel blurred path, {"sharp", "blurred": paths, "kernel_index", "kernel_size", "name"})."""
    subsets = check_layout(manual_dir)
    if split not in subsets:
        raise _layout.LayoutError(f"subset {split!r} not found in {manual_dir!r}; found {subsets}.")
    sharp_dir = os.path.join(manual_dir, split, "sharp")
    blurred_dir = os.path.join(manual_dir, split, "blurred")
    sharp = {os.path.splitext(os.path.basename(p))[0]: p for p in _layout.images_in(sharp_dir)}
    blurred = _layout.images_in(blurred_dir, recursive=True)
    if not blurred:
        raise _layout.LayoutError(f"{blurred_dir} holds no image.")
    for b in blurred:
        rel = os.path.relpath(b, blurred_dir)
        parsed = parse_blurred(rel)
        if parsed is None:
            raise _layout.LayoutError(f"cannot read kernel and size from {b}: expected "
                                      "<name>_ker<K>_size<S>.png or ker<K>/size<S>/<name>.png.")
        name, k, size = parsed
        if name not in sharp:
            raise _layout.LayoutError(f"blurred image {b} has no sharp image {name}.* in {sharp_dir}.")
        yield rel, {"sharp": sharp[name], "blurred": b, "kernel_index": k, "kernel_size": size,
                    "name": name}


class ShenBlurredFaces(_layout.ManualDirBuilder):
    """Shen et al. 2018 face deblurring test sets: sharp/blurred pairs with kernel id and size."""

    name = "facedeblur_shen_blurred_faces"
    MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS
    CITATION = "Shen, Lai, Xu, Kautz, Yang. Deep Semantic Face Deblurring. CVPR 2018."
    SUPERVISED_KEYS = ("blurred", "sharp")

    def _features(self):
        return {
            "sharp": tfds.features.Image(shape=(None, None, 3)),
            "blurred": tfds.features.Image(shape=(None, None, 3)),
            "kernel_index": np.int64, "kernel_size": np.int64, "name": tfds.features.Text(),
        }

    def _split_names(self, manual_dir):
        return check_layout(manual_dir)  # one split per subset folder

    def _examples(self, manual_dir, split):
        return generate(manual_dir, split)
