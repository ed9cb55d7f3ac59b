"""GoPro_Large (Nah et al., CVPR 2017) blurred/sharp pairs (paper 1, Table 1, GoPro columns).

Manual layout (as released, GOPRO_Large.zip):
    <manual_dir>/train/<sequence>/blur/000047.png   and   .../sharp/000047.png
    <manual_dir>/test/<sequence>/blur/*.png         and   .../sharp/*.png
    (`blur_gamma/` folders are used instead of `blur/` with `blur_folder="blur_gamma"`.)
Every blurred frame must have a sharp frame of the same name.
"""
import os

import tensorflow_datasets as tfds

from data.builders import _layout

SPLITS = ("train", "test")
MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Download GOPRO_Large.zip (https://seungjunnah.github.io/Datasets/gopro), extract it and pass the
folder holding train/ and test/ as manual_dir.
"""


def check_layout(manual_dir, blur_folder="blur"):
    lay = {}
    for s in SPLITS:
        root = _layout.require_dir(manual_dir, s, hint="Expected GOPRO_Large's train/ and test/ folders.")
        seqs = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
        if not seqs:
            raise _layout.LayoutError(f"{root} holds no sequence folder (expected <seq>/{blur_folder}/ and <seq>/sharp/).")
        for q in seqs:
            for sub in (blur_folder, "sharp"):
                if not os.path.isdir(os.path.join(root, q, sub)):
                    raise _layout.LayoutError(f"missing folder {os.path.join(root, q, sub)} "
                                              f"(each GoPro sequence needs {blur_folder}/ and sharp/).")
        lay[s] = (root, seqs)
    return lay


def generate(manual_dir, split, blur_folder="blur"):
    """Yields ("<seq>/<frame>", {"blurred": path, "sharp": path, "sequence", "file_name"})."""
    if split not in SPLITS:
        raise ValueError(f"unknown GoPro split {split!r}; use train or test")
    root, seqs = check_layout(manual_dir, blur_folder)[split]
    for q in seqs:
        for b in _layout.images_in(os.path.join(root, q, blur_folder)):
            f = os.path.basename(b)
            s = os.path.join(root, q, "sharp", f)
            if not os.path.isfile(s):
                raise _layout.LayoutError(f"blurred frame {b} has no sharp frame {s}.")
            yield f"{q}/{f}", {"blurred": b, "sharp": s, "sequence": q, "file_name": f}


class Gopro(_layout.ManualDirBuilder):
    """GoPro_Large blurred/sharp frame pairs."""

    name = "facedeblur_gopro"
    MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS
    HOMEPAGE = "https://seungjunnah.github.io/Datasets/gopro"
    CITATION = "Nah, Kim, Lee. Deep Multi-scale CNN for Dynamic Scene Deblurring. CVPR 2017."
    SUPERVISED_KEYS = ("blurred", "sharp")

    def _features(self):
        return {
            "blurred": tfds.features.Image(shape=(None, None, 3)),
            "sharp": tfds.features.Image(shape=(None, None, 3)),
            "sequence": tfds.features.Text(),
            "file_name": tfds.features.Text(),
        }

    def _split_names(self, manual_dir):
        check_layout(manual_dir)
        return list(SPLITS)

    def _examples(self, manual_dir, split):
        return generate(manual_dir, split)
