"""Helen with the Smith et al. (CVPR 2013, "Exemplar-based face parsing") labels, grouped into
paper 3's four classes (UMSN, Sec. 3.1: m1 background, m2 face skin, m3 brows + eyes + nose +
lips + inner mouth, m4 hair).

Manual layout (`SmithCVPR2013_dataset_resized` or `..._original`, as released):
    <manual_dir>/images/<id>.jpg                      e.g. 100032540_1.jpg
    <manual_dir>/labels/<id>/<id>_lbl00.png .. _lbl10.png   one gray map per label (0..255)
    <manual_dir>/exemplars.txt   2000 lines "  1 , 100032540_1"   -> split "train"
    <manual_dir>/tuning.txt      230 lines                          -> split "validation"
    <manual_dir>/testing.txt     100 lines                          -> split "test"
Paper 3 trains on the 2000 exemplars and tests on 330 images = tuning + testing: that is split
"test330" here.

Smith et al. labels: 00 background, 01 face skin, 02 left brow, 03 right brow, 04 left eye,
05 right eye, 06 nose, 07 upper lip, 08 inner mouth, 09 lower lip, 10 hair. The class map is
the per-pixel argmax of the 11 maps, then grouped with `LABEL_TO_CLASS`.
"""
import os

import numpy as np
import tensorflow_datasets as tfds

from data.builders import _layout

NUM_LABELS = 11
LABEL_TO_CLASS = np.array([0, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3], np.uint8)
CLASS_NAMES = ("background", "skin", "brows_eyes_nose_lips_mouth", "hair")
SPLIT_FILES = {"train": ("exemplars.txt",), "validation": ("tuning.txt",),
               "test": ("testing.txt",), "test330": ("tuning.txt", "testing.txt")}

MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Download the Helen face parsing labels of Smith et al. 2013 (SmithCVPR2013_dataset_resized.zip,
http://pages.cs.wisc.edu/~lizhang/projects/face-parsing/), extract it and pass its folder (the
one holding images/, labels/, exemplars.txt, tuning.txt, testing.txt) as manual_dir.
"""


def read_ids(path):
    """Image ids of a split file ('index , id' per line; a bare id per line is accepted too)."""
    ids = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                ids.append(line.split(",")[-1].strip())
    if not ids:
        raise _layout.LayoutError(f"{path} lists no image ids (expected lines like '1 , 100032540_1').")
    return ids


def check_layout(manual_dir):
    hint = "Expected the SmithCVPR2013_dataset layout: images/, labels/<id>/<id>_lbl00.png, exemplars.txt."
    lay = {
        "images": _layout.require_dir(manual_dir, "images", hint=hint),
        "labels": _layout.require_dir(manual_dir, "labels", hint=hint),
    }
    for names in SPLIT_FILES.values():
        for n in names:
            lay[n] = _layout.require_file(manual_dir, n, hint=hint)
    return lay


def find_image(images_dir, image_id):
    for ext in (".jpg", ".png", ".jpeg"):
        p = os.path.join(images_dir, image_id + ext)
        if os.path.isfile(p):
            return p
    raise _layout.LayoutError(f"image {image_id!r} listed in the split file is missing: expected "
                              f"{os.path.join(images_dir, image_id + '.jpg')}.")


def class_mask(labels_dir, image_id):
    """uint8 [H,W,1] class ids 0..3 from the 11 label maps of `image_id`."""
    from common import image_io  # pylint: disable=g-import-not-at-top
    maps = []
    for i in range(NUM_LABELS):
        p = os.path.join(labels_dir, image_id, f"{image_id}_lbl{i:02d}.png")
        if not os.path.isfile(p):
            raise _layout.LayoutError(f"missing label map {p} (expected labels/<id>/<id>_lbl00..10.png).")
        maps.append(image_io.read_image(p)[..., 0])
    shapes = {m.shape for m in maps}
    if len(shapes) != 1:
        raise ValueError(f"label maps of {image_id} differ in size: {sorted(shapes)}")
    labels = np.argmax(np.stack(maps, 0), axis=0)
    return LABEL_TO_CLASS[labels][..., None]


def generate(manual_dir, split):
    """Yields (id, {"image": path, "mask": uint8 [H,W,1], "file_name": id})."""
    if split not in SPLIT_FILES:
        raise ValueError(f"unknown Helen split {split!r}; use one of {sorted(SPLIT_FILES)}")
    lay = check_layout(manual_dir)
    for n in SPLIT_FILES[split]:
        for image_id in read_ids(lay[n]):
            yield image_id, {"image": find_image(lay["images"], image_id),
                             "mask": class_mask(lay["labels"], image_id),
                             "file_name": image_id}


class HelenParsing(_layout.ManualDirBuilder):
    """Helen images + 4-class parsing masks (paper 3's m1..m4)."""

    name = "facedeblur_helen_parsing"
    MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS
    HOMEPAGE = "http://pages.cs.wisc.edu/~lizhang/projects/face-parsing/"
    CITATION = "Smith, Zhang, Brandt, Lin, Yang. Exemplar-Based Face Parsing. CVPR 2013."

    def _features(self):
        return {
            "image": tfds.features.Image(shape=(None, None, 3), encoding_format="jpeg"),
            "mask": tfds.features.Image(shape=(None, None, 1), encoding_format="png"),
            "file_name": tfds.features.Text(),
        }

    def _split_names(self, manual_dir):
        check_layout(manual_dir)
        return list(SPLIT_FILES)

    def _examples(self, manual_dir, split):
        return generate(manual_dir, split)
