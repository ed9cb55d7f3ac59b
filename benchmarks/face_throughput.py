"""Per-image cost of the face backends on LFW images; prints JSON (run on demand, not a test).

    python benchmarks/face_throughput.py [--num_images=20] [--lfw_dir=../shared/data/lfw]

Reports wall seconds and CPU seconds (process_time, robust to other processes on shared cores)
per image for each detector, the 68-point landmarker (given a box) and the identity embedding,
plus the one-off build time of each backend.
"""
import glob
import json
import os
import sys
import time

from absl import app, flags
from common.paths import SHARED_DATA

flags.DEFINE_integer("num_images", 20, "LFW images to time")
flags.DEFINE_string("lfw_dir", os.path.join(SHARED_DATA, "lfw"), "LFW folder")
FLAGS = flags.FLAGS


def _time(fn, items):
    w, c = time.perf_counter(), time.process_time()
    for x in items:
        fn(x)
    n = max(len(items), 1)
    return {"wall_s_per_image": (time.perf_counter() - w) / n, "cpu_s_per_image": (time.process_time() - c) / n}


def main(argv):
    del argv
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from common import face
    from common.image_io import read_image

    paths = sorted(glob.glob(os.path.join(FLAGS.lfw_dir, "*", "*.jpg")))[:FLAGS.num_images]
    if not paths:
        raise FileNotFoundError(f"no LFW images under --lfw_dir={FLAGS.lfw_dir}")
    imgs = [read_image(p) for p in paths]
    out = {"images": len(imgs), "size": list(imgs[0].shape)}
    for name in ("mtcnn", "haar", "dlib"):
        t = time.perf_counter()
        det = face.get_detector(name)
        build = time.perf_counter() - t
        det.detect(imgs[0])  # warm-up (graph tracing for MTCNN)
        out[f"detector/{name}"] = {"build_s": build, **_time(det.detect, imgs)}
    det = face.get_detector("mtcnn")
    w, c = time.perf_counter(), time.process_time()
    det.detect_batch(imgs)
    out["detector/mtcnn_batch"] = {"wall_s_per_image": (time.perf_counter() - w) / len(imgs),
                                   "cpu_s_per_image": (time.process_time() - c) / len(imgs)}
    hog = face.get_detector("dlib")
    boxes = [hog.detect_largest(im) or face.Box(0, 0, im.shape[1], im.shape[0]) for im in imgs]
    lm = face.get_landmarker("dlib68")
    out["landmarker/dlib68_given_box"] = _time(lambda i: lm.landmarks(imgs[i], boxes[i]), range(len(imgs)))
    idm = face.get_identity_model("dlib_resnet")
    out["identity/dlib_resnet_given_box"] = _time(lambda i: idm.embed(imgs[i], boxes[i]), range(len(imgs)))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    app.run(main)
