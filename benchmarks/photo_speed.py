"""Time and peak RSS of the default `deblur` command on 12 / 24 / 48 MP photos with 3 faces.

    python benchmarks/photo_speed.py [--mp=12,24,48] [--paper=paper3_umsn] [--whole_image] \
        [--modes=cold,warm] [--before_root=DIR]

Each photo: a smooth noisy background at the size, with 3 strong-blur LFW faces (Levin kernel,
`data/sample`-free: the first faces of ../shared/data/lfw, 4x enlarged and blurred with a 4x
kernel, ~500 px) pasted in, saved as JPEG 95. Runs `python -m PAPER.deblur PHOTO --output_dir`
in a fresh process under /usr/bin/time -v (wall time and max RSS of the whole command: Python,
TensorFlow and MTCNN start-up included). Prints JSON; writes benchmarks/results/photo_speed.json.

Modes, run one after the other per photo (so that they see the same machine load): "cold" with
an empty --model_cache (the first run of a model: Keras build, trace, cache written), "warm"
with the cache that run left (every later run), "nocache" with --model_cache='', and "before"
the same command run from the checkout --before_root (e.g. `git archive main | tar -x -C DIR`),
to compare with the code before a change.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
SIZES = {12: (4000, 3000), 24: (6000, 4000), 48: (8000, 6000)}


def make_photo(path, w, h):
    import cv2
    from common import blur, image_io
    rng = np.random.default_rng(0)
    bg = cv2.resize(rng.random((12, 16, 3)).astype(np.float32), (w, h),
                    interpolation=cv2.INTER_CUBIC)
    bg = (np.clip(bg, 0, 1) * 200 + 20).astype(np.uint8)
    lfw = os.path.join(ROOT, "..", "shared", "data", "lfw")
    bank = np.load(os.path.join(ROOT, "..", "shared", "data", "kernels", "levin09.npz"))
    k = np.asarray(bank[sorted(bank.files)[0]], np.float32)
    from common.evaluation.scaled import scale_kernel
    k4 = scale_kernel(k / k.sum(), 4)
    for i, person in enumerate(sorted(os.listdir(lfw))[:3]):
        face = image_io.read_image(image_io.list_images(os.path.join(lfw, person))[0])
        face = cv2.resize(face[11:139, 11:139].astype(np.float32) / 255, (512, 512),
                          interpolation=cv2.INTER_CUBIC)
        face = np.asarray(blur.apply_kernels(face[None], k4[None]))[0]
        y, x = h // 3, w // 6 + i * (w // 3)
        bg[y:y + 512, x:x + 512] = (np.clip(face, 0, 1) * 255).astype(np.uint8)
    image_io.write_image(path, bg)


def run(cmd, root=ROOT):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": root,
           "PYTHONDONTWRITEBYTECODE": "1"}
    p = subprocess.run(["/usr/bin/time", "-v"] + cmd, cwd=root, capture_output=True, text=True,
                       env=env)
    if p.returncode:
        raise SystemExit(p.stderr[-2000:])
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr).group(1))
    wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", p.stderr)
    secs = int(wall.group(1) or 0) * 3600 + int(wall.group(2)) * 60 + float(wall.group(3))
    return {"wall_s": round(secs, 1), "peak_rss_gb": round(rss / 1e6, 2)}


def main():
    a = argparse.ArgumentParser()
    a.add_argument("--mp", default="12,24,48")
    a.add_argument("--paper", default="paper3_umsn")
    a.add_argument("--whole_image", action="store_true")
    a.add_argument("--modes", default="cold,warm")
    a.add_argument("--before_root", default="")
    a.add_argument("--output", default="", help="JSON path (default benchmarks/results/"
                   "photo_speed.json, or photo_speed_whole.json with --whole_image)")
    args = a.parse_args()
    results = []
    with open("/proc/loadavg", encoding="ascii") as f:
        load = f.read().split()[:3]
    with tempfile.TemporaryDirectory() as tmp:
        cache = os.path.join(tmp, "cache")
        for mp in (int(v) for v in args.mp.split(",")):
            w, h = SIZES[mp]
            src = os.path.join(tmp, f"photo{mp}.jpg")
            make_photo(src, w, h)
            for mode in args.modes.split(","):
                cmd = [sys.executable, "-m", f"{args.paper}.deblur", src,
                       f"--output_dir={tmp}/out", "--overwrite"]
                cmd += ["--whole_image"] if args.whole_image else []
                root = ROOT
                if mode == "cold":
                    shutil.rmtree(cache, ignore_errors=True)
                if mode in ("cold", "warm"):
                    cmd.append(f"--model_cache={cache}")
                elif mode == "nocache":
                    cmd.append("--model_cache=")
                elif mode == "before":
                    root = args.before_root or sys.exit("--modes=before needs --before_root")
                r = {"megapixels": mp, "size": [w, h], "paper": args.paper, "code": mode,
                     "mode": "whole_image" if args.whole_image else "default (3 faces)",
                     **run(cmd, root)}
                print(json.dumps(r), flush=True)
                results.append(r)
    with open("/proc/loadavg", encoding="ascii") as f:
        load += f.read().split()[:3]
    name = "photo_speed_whole.json" if args.whole_image else "photo_speed.json"
    out = args.output or os.path.join(ROOT, "benchmarks", "results", name)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        json.dump({"command": " ".join(sys.argv), "load_avg_before_after": load,
                   "cpus": os.cpu_count(), "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
