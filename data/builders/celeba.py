"""CelebA (Liu et al., ICCV 2015): aligned faces, identities, 5 landmarks, official partition.

Used by paper 3 (UMSN, Sec. 4: trained on CelebA/Helen with synthetic kernels) and by
`python -m data.build` as a sharp-face source.

Manual layout (either the flat one below or the Google-Drive one with `Img/`, `Anno/`, `Eval/`):
    <manual_dir>/img_align_celeba/000001.jpg ... 202599.jpg   (or Img/img_align_celeba/)
    <manual_dir>/list_eval_partition.txt      "000001.jpg 0"   0 train, 1 validation, 2 test  (or Eval/)
    <manual_dir>/identity_CelebA.txt          "000001.jpg 2880"                              (or Anno/)
    <manual_dir>/list_landmarks_align_celeba.txt  count line, header line, then
                                              "000001.jpg 69 109 106 113 77 142 73 152 108 154"  (or Anno/)

Fallback (documented, e.g. for `../shared/data/celeba_small`, which only has images): without
`list_eval_partition.txt` the images are split by sorted file name, 80 % train / 10 % validation /
10 % test (last 10 % = test); without `identity_CelebA.txt` identity is -1; without the landmark
file landmarks are all -1 and `has_landmarks` is False. Landmarks are scaled to the actual image
size when images are downscaled copies of the 178x218 aligned set (celeba_small is 89x109).
"""
import os

import numpy as np
import tensorflow_datasets as tfds

from data.builders import _layout

ALIGNED_SIZE = (178, 218)  # (width, height) of img_align_celeba
SPLITS = {"train": 0, "validation": 1, "test": 2}
FALLBACK_FRACTIONS = (0.8, 0.1, 0.1)

MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Download CelebA (https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html), extract
img_align_celeba.zip, and put in manual_dir: img_align_celeba/ (or Img/img_align_celeba/),
list_eval_partition.txt (or Eval/...), identity_CelebA.txt and list_landmarks_align_celeba.txt
(or Anno/...). Only img_align_celeba/ is required (see data/builders/celeba.py for the fallback).
"""


def _read_table(path, skip_header_lines=0):
    rows = {}
    with open(path) as f:
        lines = f.read().splitlines()
    for line_no, line in enumerate(lines[skip_header_lines:], skip_header_lines + 1):
        parts = line.split()
        if not parts:
            continue
        rows[parts[0]] = parts[1:]
    if not rows:
        raise _layout.LayoutError(f"{path} holds no rows; expected '<file>.jpg <values...>' lines.")
    return rows


def check_layout(manual_dir):
    """Resolved paths: images folder (required) and the three optional annotation files."""
    images = _layout.require_dir(manual_dir, "img_align_celeba", "Img/img_align_celeba",
                                 hint="Extract img_align_celeba.zip there.")
    return {
        "images": images,
        "partition": _layout.find_file(manual_dir, "list_eval_partition.txt",
                                       "Eval/list_eval_partition.txt"),
        "identity": _layout.find_file(manual_dir, "identity_CelebA.txt", "Anno/identity_CelebA.txt"),
        "landmarks": _layout.find_file(manual_dir, "list_landmarks_align_celeba.txt",
                                       "Anno/list_landmarks_align_celeba.txt"),
    }


def split_files(manual_dir, split):
    """(layout, sorted file names of `split`)."""
    if split not in SPLITS:
        raise ValueError(f"unknown CelebA split {split!r}; use one of {sorted(SPLITS)}")
    lay = check_layout(manual_dir)
    files = sorted(f for f in os.listdir(lay["images"]) if _layout.is_image(f))
    if not files:
        raise _layout.LayoutError(f"{lay['images']} holds no images (expected 000001.jpg ...).")
    if lay["partition"]:
        part = _read_table(lay["partition"])
        present = set(files)
        files = [f for f, v in sorted(part.items()) if int(v[0]) == SPLITS[split] and f in present]
    else:
        n = len(files)
        a = int(round(n * FALLBACK_FRACTIONS[0]))
        b = int(round(n * (FALLBACK_FRACTIONS[0] + FALLBACK_FRACTIONS[1])))
        files = {"train": files[:a], "validation": files[a:b], "test": files[b:]}[split]
    return lay, files


def generate(manual_dir, split):
    """Yields (file name, {"image": path, "identity", "landmarks" [5,2], "has_landmarks", "file_name"})."""
    lay, files = split_files(manual_dir, split)
    ids = _read_table(lay["identity"]) if lay["identity"] else {}
    lms = _read_table(lay["landmarks"], skip_header_lines=2) if lay["landmarks"] else {}
    scale = None
    for f in files:
        path = os.path.join(lay["images"], f)
        lm = lms.get(f)
        if lm is not None:
            if scale is None:  # all images of one folder share a size
                from PIL import Image  # pylint: disable=g-import-not-at-top
                with Image.open(path) as im:
                    scale = np.array([im.size[0] / ALIGNED_SIZE[0], im.size[1] / ALIGNED_SIZE[1]], np.float32)
            landmarks = np.asarray(lm[:10], np.float32).reshape(5, 2) * scale
        else:
            landmarks = np.full((5, 2), -1, np.float32)
        yield f, {
            "image": path,
            "file_name": f,
            "identity": int(ids[f][0]) if f in ids else -1,
            "landmarks": landmarks,
            "has_landmarks": lm is not None,
        }


class Celeba(_layout.ManualDirBuilder):
    """CelebA aligned faces with identity and 5 landmarks, from a local manual folder."""

    name = "facedeblur_celeba"
    MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS
    HOMEPAGE = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"
    CITATION = "Liu, Luo, Wang, Tang. Deep Learning Face Attributes in the Wild. ICCV 2015."

    def _features(self):
        return {
            "image": tfds.features.Image(shape=(None, None, 3), encoding_format="jpeg"),
            "file_name": tfds.features.Text(),
            "identity": np.int64,
            "landmarks": tfds.features.Tensor(shape=(5, 2), dtype=np.float32),
            "has_landmarks": np.bool_,
        }

    def _split_names(self, manual_dir):
        check_layout(manual_dir)
        return list(SPLITS)

    def _examples(self, manual_dir, split):
        return generate(manual_dir, split)
