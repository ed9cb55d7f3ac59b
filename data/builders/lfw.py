"""Labeled Faces in the Wild (Huang et al. 2007) with the official verification pairs.

Used for identity metrics (paper 2 Sec. 4, verification on deblurred faces) and as a
sharp-face source for `python -m data.build`.

Manual layout:
    <manual_dir>/<Name>/<Name>_0001.jpg ...           (e.g. lfw/, lfw-deepfunneled/)
    pairs.txt  official View-2 file: first line "10 300", then per fold 300 lines
               "Name i j" (same person) and 300 lines "Name1 i Name2 j" (different).
    pairs.txt is looked up as <manual_dir>/pairs.txt, <manual_dir>/../pairs.txt or
    <manual_dir>/../lfw_pairs.txt (the layout of ../shared/data), or given as `pairs_path`.

Configs:
  * `images`: split `test` = images of the people in the pairs of fold 10 (`TEST_FOLDS`);
    `train` = every other image (people of folds 1..9 and people in no pair); `all`. The ten
    View-2 folds are person-disjoint (checked on the real file), so the split is deterministic and
    identity-disjoint: a deblurring model trained on `train` never saw a test identity.
    (`../shared/data/lfw` holds only the 7,701 images that pairs.txt names: 6,916 train / 785 test.)
  * `pairs`: split `test`: the 6,000 pairs with `fold` (0..9) and `same`.
"""
import os

import numpy as np
import tensorflow_datasets as tfds

from data.builders import _layout

MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Put the LFW images (<Name>/<Name>_0001.jpg folders, e.g. from lfw-deepfunneled.tgz) in manual_dir
and the official pairs.txt in manual_dir (or its parent, also as lfw_pairs.txt).
"""
TEST_FOLDS = (9,)
PAIRS_CANDIDATES = ("pairs.txt", os.path.join("..", "pairs.txt"), os.path.join("..", "lfw_pairs.txt"))


def image_path(root, name, index):
    return os.path.join(root, name, f"{name}_{int(index):04d}.jpg")


def _is_person_dir(root, name):
    folder = os.path.join(root, name)
    if not os.path.isdir(folder):
        return False
    return any(f.startswith(name + "_") and _layout.is_image(f) for f in os.listdir(folder))


def check_layout(manual_dir, pairs_path=None):
    if not manual_dir or not os.path.isdir(manual_dir):
        raise _layout.LayoutError(f"LFW manual_dir {manual_dir!r} is not a folder.")
    names = sorted(n for n in os.listdir(manual_dir) if _is_person_dir(manual_dir, n))
    if not names:
        raise _layout.LayoutError(
            f"no LFW person folder in {manual_dir!r}: expected <Name>/<Name>_0001.jpg "
            "(e.g. Aaron_Eckhart/Aaron_Eckhart_0001.jpg).")
    if pairs_path is None:
        pairs_path = _layout.find_file(manual_dir, *PAIRS_CANDIDATES)
    elif not os.path.isfile(pairs_path):
        raise _layout.LayoutError(f"LFW pairs file {pairs_path!r} does not exist.")
    return {"root": manual_dir, "names": names, "pairs": pairs_path}


def read_pairs(path, root=None):
    """[(name1, idx1, name2, idx2, same, fold)] from an official pairs.txt; checks files exist."""
    with open(path) as f:
        lines = [l.split() for l in f.read().splitlines() if l.strip()]
    try:
        num_folds, per_fold = int(lines[0][0]), int(lines[0][1])
    except (IndexError, ValueError) as e:
        raise _layout.LayoutError(f"{path}: first line must be '<folds> <pairs per class>', "
                                  f"got {lines[:1]}") from e
    body = lines[1:]
    if len(body) != num_folds * 2 * per_fold:
        raise _layout.LayoutError(f"{path}: header says {num_folds}x2x{per_fold} pairs, "
                                  f"found {len(body)} lines.")
    pairs = []
    for i, p in enumerate(body):
        fold = i // (2 * per_fold)
        if len(p) == 3:
            pair = (p[0], int(p[1]), p[0], int(p[2]), True, fold)
        elif len(p) == 4:
            pair = (p[0], int(p[1]), p[2], int(p[3]), False, fold)
        else:
            raise _layout.LayoutError(f"{path} line {i + 2}: expected 3 or 4 fields, got {p}")
        if root is not None:
            for name, idx in ((pair[0], pair[1]), (pair[2], pair[3])):
                if not os.path.isfile(image_path(root, name, idx)):
                    raise _layout.LayoutError(f"{path} line {i + 2} names {image_path(root, name, idx)}, "
                                              "which does not exist.")
        pairs.append(pair)
    return pairs


def generate_images(manual_dir, split, pairs_path=None):
    """Yields (rel path, {"image": path, "name", "identity": index in sorted names, "file_name"})."""
    if split not in ("train", "test", "all"):
        raise ValueError(f"unknown LFW images split {split!r}; use train, test or all")
    lay = check_layout(manual_dir, pairs_path)
    if split != "all" and lay["pairs"] is None:
        raise _layout.LayoutError(f"LFW split {split!r} needs pairs.txt: looked for "
                                  f"{', '.join(PAIRS_CANDIDATES)} relative to {manual_dir!r}.")
    test_people = set()
    if lay["pairs"]:
        for n1, _, n2, _, _, fold in read_pairs(lay["pairs"]):
            if fold in TEST_FOLDS:
                test_people.update((n1, n2))
    for identity, name in enumerate(lay["names"]):
        if split != "all" and (name in test_people) != (split == "test"):
            continue
        folder = os.path.join(manual_dir, name)
        for f in sorted(os.listdir(folder)):
            if _layout.is_image(f):
                yield f"{name}/{f}", {"image": os.path.join(folder, f), "name": name,
                                      "identity": identity, "file_name": f}


def generate_pairs(manual_dir, pairs_path=None):
    lay = check_layout(manual_dir, pairs_path)
    if lay["pairs"] is None:
        raise _layout.LayoutError(f"no pairs.txt found for {manual_dir!r} (looked for {PAIRS_CANDIDATES}).")
    for i, (n1, i1, n2, i2, same, fold) in enumerate(read_pairs(lay["pairs"], manual_dir)):
        yield i, {"image1": image_path(manual_dir, n1, i1), "image2": image_path(manual_dir, n2, i2),
                  "name1": n1, "name2": n2, "same": same, "fold": fold}


def generate(manual_dir, split, pairs_path=None):
    """`python -m data.build` entry: the images of `split`."""
    return generate_images(manual_dir, split, pairs_path)


class LfwConfig(tfds.core.BuilderConfig):
    pass


class Lfw(_layout.ManualDirBuilder):
    """LFW images (identity-disjoint train/test) or the official verification pairs."""

    name = "facedeblur_lfw"
    MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS
    HOMEPAGE = "http://vis-www.cs.umass.edu/lfw/"
    CITATION = "Huang, Ramesh, Berg, Learned-Miller. Labeled Faces in the Wild. UMass TR 07-49, 2007."
    BUILDER_CONFIGS = [LfwConfig(name="images", description="Images with identity."),
                       LfwConfig(name="pairs", description="Official 10-fold verification pairs.")]

    def __init__(self, *, pairs_path=None, **kwargs):
        self._pairs_path = pairs_path
        super().__init__(**kwargs)

    def _features(self):
        img = lambda: tfds.features.Image(shape=(None, None, 3), encoding_format="jpeg")
        if self.builder_config.name == "pairs":
            return {"image1": img(), "image2": img(), "name1": tfds.features.Text(),
                    "name2": tfds.features.Text(), "same": np.bool_, "fold": np.int64}
        return {"image": img(), "name": tfds.features.Text(), "identity": np.int64,
                "file_name": tfds.features.Text()}

    def _split_names(self, manual_dir):
        check_layout(manual_dir, self._pairs_path)
        return ["test"] if self.builder_config.name == "pairs" else ["train", "test"]

    def _examples(self, manual_dir, split):
        if self.builder_config.name == "pairs":
            return generate_pairs(manual_dir, self._pairs_path)
        return generate_images(manual_dir, split, self._pairs_path)
