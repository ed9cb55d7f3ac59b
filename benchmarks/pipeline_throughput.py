"""Throughput of common.pipeline.make_dataset on real faces; prints one JSON object.

Builds TFRecords of LFW faces (150x150 JPEG -> centre 128x128, PNG-encoded sharp + blurred
pairs) in a temporary folder, then times full training batches (crop 128 of the 128x128
records: decode + crop + flip + float conversion + shuffle + batch) for:

  * ``records_pairs``: sharp + blurred PNG pairs read and decoded from TFRecord;
  * ``on_the_fly_blur``: sharp read from TFRecord, blurred synthesized per example with a kernel
    bank (camera-shake kernels up to 29x29, or the Levin et al. bank) + noise sigma 0.03;
  * ``cached_pairs``: as ``records_pairs`` with ``cache=True`` (decoded uint8 in memory).

Usage:  python benchmarks/pipeline_throughput.py [--num_images 512] [--batch_size 32] [--seconds 8]
Images/s counts pairs (one sharp + one blurred image per pair).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from common import blur, image_io, pipeline, tfrecord  # noqa: E402
from common.paths import SHARED_DATA

LFW = os.path.join(SHARED_DATA, "lfw")
LEVIN = os.path.join(SHARED_DATA, "kernels/levin09.npz")


def _build_records(out_dir, num_images, size=128):
    files = image_io.list_images(LFW)[:num_images]
    bank = blur.pad_kernels(blur.load_kernel_bank(LEVIN))
    t0 = time.perf_counter()
    with tfrecord.ShardedWriter(out_dir, "bench", num_shards=4) as w:
        for start in range(0, len(files), 64):
            chunk = files[start:start + 64]
            sharp = []
            for f in chunk:
                img = image_io.read_image(f)
                oy, ox = (img.shape[0] - size) // 2, (img.shape[1] - size) // 2
                sharp.append(img[oy:oy + size, ox:ox + size])
            sharp = np.stack(sharp)
            kernels = bank[np.arange(start, start + len(chunk)) % len(bank)]
            blurred = blur.apply_kernels(image_io.to_float32(sharp), kernels).numpy()
            for f, s, b in zip(chunk, sharp, blurred):
                w.write(tfrecord.make_example(sharp=s, blurred=b, source=f))
    return len(files), time.perf_counter() - t0


def _time(ds, batch_size, seconds, warmup=3):
    it = iter(ds)
    for _ in range(warmup):
        next(it)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        b = next(it)
        n += int(b["sharp"].shape[0])
    dt = time.perf_counter() - t0
    return {"images_per_s": round(n / dt, 1), "batches": n // batch_size, "seconds": round(dt, 2)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num_images", type=int, default=512)
    ap.add_argument("--batch_size", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--crop", type=int, default=128)
    args = ap.parse_args()

    try:
        kbank = blur.make_kernel_bank("camera_shake", num=64, seed=0)
        bank_desc = "camera_shake x64 (make_kernel_bank)"
    except Exception as e:  # noqa: BLE001 - fall back to the real Levin kernels
        kbank = blur.pad_kernels(blur.load_kernel_bank(LEVIN))
        bank_desc = f"levin09 x8 (camera_shake unavailable: {type(e).__name__})"

    result = {"machine": f"{platform.machine()} {os.cpu_count()} cpus", "tf": tf.__version__,
              "size": args.crop, "batch_size": args.batch_size}
    with tempfile.TemporaryDirectory() as d:
        n, build_s = _build_records(d, args.num_images, size=args.crop)
        result["records"] = n
        result["build_records_s"] = round(build_s, 2)
        pattern = os.path.join(d, "bench-*")
        result["records_pairs"] = _time(pipeline.make_dataset(
            pattern, args.batch_size, crop=args.crop, seed=0), args.batch_size, args.seconds)
        result["on_the_fly_blur"] = _time(pipeline.make_dataset(
            pattern, args.batch_size, crop=args.crop, seed=0, kernel_bank=kbank, noise_sigma=0.03,
            quantize=True), args.batch_size, args.seconds)
        result["on_the_fly_blur"]["kernel_bank"] = f"{bank_desc}, shape {list(kbank.shape)}"
        result["cached_pairs"] = _time(pipeline.make_dataset(
            pattern, args.batch_size, crop=args.crop, seed=0, cache=True), args.batch_size, args.seconds)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
