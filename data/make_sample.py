"""Rebuild the embedded sample `data/sample/` from the shared LFW and KAIR folders.

The sample is committed; this script documents (and can repeat) exactly how it was drawn:

* 150 LFW identities, evenly spaced through the sorted identity list (so the pick is
  deterministic and spread over the alphabet), first image of each (`<Name>_0001.jpg`),
  copied byte for byte (150x150 JPEG, LFW deep-funneled centre crops).
  The first 120 in that order go to `faces/` (train), every 5th one (30 in all) to
  `test_faces/` instead: identities never overlap between the two.
* the 6 smallest real blurry photos of the KAIR test set (MIT) to `real_blurry/`, a
  small unpaired "blurred" domain for paper 1's stage 1 demo.

Usage: python -m data.make_sample --lfw_dir=../shared/data/lfw \
          --real_blurry_dir=../shared/data/real_blurry_faces --out_dir=data/sample
"""
import os
import shutil

from absl import app, flags
from common.paths import SHARED_DATA

NUM_FACES = 150
TEST_EVERY = 5
NUM_REAL_BLURRY = 6


def pick_identities(names, num=NUM_FACES):
    """Evenly spaced `num` names from the sorted list `names`."""
    names = sorted(names)
    if len(names) < num:
        raise ValueError(f"need {num} identities, found {len(names)}")
    step = len(names) / num
    return [names[int(i * step)] for i in range(num)]


def make_sample(lfw_dir, real_blurry_dir, out_dir):
    names = [n for n in os.listdir(lfw_dir)
             if os.path.isfile(os.path.join(lfw_dir, n, f"{n}_0001.jpg"))]
    chosen = pick_identities(names)
    for sub in ("faces", "test_faces", "real_blurry"):
        os.makedirs(os.path.join(out_dir, sub), exist_ok=True)
    for i, name in enumerate(chosen):
        sub = "test_faces" if i % TEST_EVERY == TEST_EVERY - 1 else "faces"
        shutil.copyfile(os.path.join(lfw_dir, name, f"{name}_0001.jpg"),
                        os.path.join(out_dir, sub, f"{name}_0001.jpg"))
    if real_blurry_dir:
        files = sorted(os.listdir(real_blurry_dir),
                       key=lambda f: (os.path.getsize(os.path.join(real_blurry_dir, f)), f))
        for f in files[:NUM_REAL_BLURRY]:
            shutil.copyfile(os.path.join(real_blurry_dir, f), os.path.join(out_dir, "real_blurry", f))
    return chosen


def main(argv):
    del argv
    f = flags.FLAGS
    make_sample(f.lfw_dir, f.real_blurry_dir, f.out_dir)


if __name__ == "__main__":
    flags.DEFINE_string("lfw_dir", os.path.join(SHARED_DATA, "lfw"), "LFW root (<Name>/<Name>_0001.jpg).")
    flags.DEFINE_string("real_blurry_dir", os.path.join(SHARED_DATA, "real_blurry_faces"),
                        "KAIR real blurry faces (MIT); empty to skip.")
    flags.DEFINE_string("out_dir", "data/sample", "Where the sample goes.")
    app.run(main)
