"""Measures the face scale the shipped models were trained at and writes their sidecars.

    python benchmarks/face_scale.py [--lfw=../shared/data/lfw] [--num=200] [--write]

All three shipped models were trained on 128x128 centres of LFW's 150x150 deep-funneled faces
(their model cards). This crops the first image of the first --num LFW people the same way,
runs the detector `deblur` uses by default (MTCNN) and dlib's 68 landmarks, and prints the
median face-box side (sqrt(w*h)) and inter-ocular distance (outer eye corners 36-45) in
pixels of the 128 crop, as JSON. --write stores them in each paper*/weights/NAME.json
(`common.photo.read_face_scale` reads them).
"""
import argparse
import json
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
SHIPPED = ("paper1_cyclegan_srn/weights/srn_small", "paper2_identity_cgan/weights/cgan_small",
           "paper3_umsn/weights/umsn_small")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--lfw", default=os.path.join(ROOT, "..", "shared", "data", "lfw"))
    p.add_argument("--num", type=int, default=200)
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--write", action="store_true")
    a = p.parse_args()
    from common import image_io
    from common.face import get_detector, get_landmarker
    det, lm = get_detector("mtcnn"), get_landmarker("dlib68")
    sides, iods, n = [], [], 0
    for person in sorted(os.listdir(a.lfw))[:a.num]:
        files = image_io.list_images(os.path.join(a.lfw, person))
        if not files:
            continue
        img = image_io.to_uint8(image_io.read_image(files[0]))
        h, w = img.shape[:2]
        t, l = (h - a.crop) // 2, (w - a.crop) // 2
        crop = img[t:t + a.crop, l:l + a.crop]
        n += 1
        boxes = det.detect(crop)
        if not boxes:
            continue
        b = boxes[0]
        sides.append(float(np.sqrt(b.width * b.height)))
        pts = lm.landmarks(crop, b)
        if pts is not None:
            iods.append(float(np.linalg.norm(pts[36] - pts[45])))
    out = {"crop_size": a.crop, "detector": "mtcnn", "face_box": round(float(np.median(sides)), 1),
           "face_box_iqr": [round(float(v), 1) for v in np.percentile(sides, [25, 75])],
           "interocular": round(float(np.median(iods)), 1), "faces_measured": len(sides),
           "images": n, "measured_on": f"first image of the first {a.num} LFW people, "
           f"{a.crop}x{a.crop} centre crops (the shipped models' training crops)",
           "command": "python benchmarks/face_scale.py --write"}
    print(json.dumps(out, indent=1))
    if a.write:
        for ref in SHIPPED:
            with open(os.path.join(ROOT, ref + ".json"), "w", encoding="utf-8") as f:
                json.dump(out, f, indent=1)
                f.write("\n")


if __name__ == "__main__":
    main()
