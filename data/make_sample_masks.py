"""Class masks for the embedded sample: 68 dlib landmarks -> `common.face.masks`.

    python -m data.make_sample_masks [--sample_dir=data/sample] [--detector=dlib]

For every image of `faces/` and `test_faces/`, detects the largest face, fits the 68-point dlib
shape model and draws the 4-class map (0 background, 1 skin, 2 brows+eyes+nose+lips+mouth,
3 hair -- hair is a geometric guess, see common/face/masks.py) to `masks/<stem>.png` (uint8,
1 channel). Faces where detection fails get no mask and are listed in `masks/MISSING.txt`.
"""
import os

from absl import app, flags
import numpy as np
from PIL import Image

from common import face, image_io


def make_masks(sample_dir, detector="dlib", models_dir=None):
    """Writes masks; returns (written stems, missing file names)."""
    landmarker = face.get_landmarker("dlib68", detector=detector, models_dir=models_dir)
    out_dir = os.path.join(sample_dir, "masks")
    os.makedirs(out_dir, exist_ok=True)
    written, missing = [], []
    for sub in ("faces", "test_faces"):
        for path in image_io.list_images(os.path.join(sample_dir, sub), recursive=False):
            img = image_io.read_image(path)
            lm = landmarker.landmarks(img)
            stem = os.path.splitext(os.path.basename(path))[0]
            if lm is None:
                missing.append(f"{sub}/{os.path.basename(path)}")
                continue
            mask = face.landmarks_to_class_mask(lm, img.shape[0], img.shape[1])
            tmp = os.path.join(out_dir, stem + ".png.tmp")
            Image.fromarray(np.asarray(mask, np.uint8), mode="L").save(tmp, format="PNG", optimize=True)
            os.replace(tmp, os.path.join(out_dir, stem + ".png"))
            written.append(stem)
    with open(os.path.join(out_dir, "MISSING.txt"), "w") as f:
        f.write("# images of faces/ and test_faces/ where no face was detected (no mask)\n")
        f.writelines(m + "\n" for m in missing)
    return written, missing


def main(argv):
    del argv
    w, m = make_masks(flags.FLAGS.sample_dir, flags.FLAGS.detector, flags.FLAGS.dlib_models_dir)
    print(f"{len(w)} masks written, {len(m)} faces without detection: {m}")


if __name__ == "__main__":
    flags.DEFINE_string("sample_dir", "data/sample", "Sample root (faces/, test_faces/).")
    flags.DEFINE_string("detector", "dlib", "common.face detector name.")
    flags.DEFINE_string("dlib_models_dir", None, "Folder of dlib .dat models (optional).")
    app.run(main)
