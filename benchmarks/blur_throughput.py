"""Throughput of on-the-fly blur synthesis in tf.data (pairs/s), printed as JSON.

Pipeline measured (the one `common.pipeline.make_dataset(kernel_bank=...)` runs): decoded
128x128 uint8 faces held in memory -> float [0,1] -> a random kernel (sizes 13..29, zero-padded
to 29x29) from a camera-shake bank -> `common.blur.apply_kernels` -> Gaussian noise sigma 0.03 ->
batches of 16 pairs (sharp, blurred). Several ways of applying the kernels are timed:

  batched_auto       batch first, one apply_kernels call per batch, default method="auto"
                     (FFT for these 29x29 kernels) -- what common.pipeline runs
  batched_direct     the same with method="direct" (batch folded into channels, one
                     depthwise conv)
  batched_fft        the same with method="fft"
  per_example        apply_kernels(method="direct") per example (map before batch)
  batched_map_fn     batch first, tf.map_fn over examples with a per-example conv2d

Usage:  python benchmarks/blur_throughput.py [--faces DIR] [--seconds 4] [--rounds 3] [--variants a,b]
"""
import argparse
import json
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from common import blur, image_io  # noqa: E402
from common.paths import SHARED_DATA

SIZE, BATCH, SIGMA = 128, 16, 0.03


def load_faces(folder, num):
    paths = image_io.list_images(folder)[:num]
    out = []
    for p in paths:
        img = image_io.read_image(p)
        h, w = img.shape[:2]
        if min(h, w) < SIZE:
            continue
        top, left = (h - SIZE) // 2, (w - SIZE) // 2
        out.append(img[top:top + SIZE, left:left + SIZE])
    return np.stack(out)


def _map_fn_apply(images, kernels):
    def one(args):
        x, k = args
        p = tf.shape(k)[0] // 2
        x = tf.pad(x[None], [[0, 0], [p, p], [p, p], [0, 0]], mode="SYMMETRIC")
        k = tf.reverse(k, [0, 1])[:, :, None, None]
        chans = [tf.nn.conv2d(x[..., c:c + 1], k, 1, "VALID") for c in range(3)]
        return tf.concat(chans, -1)[0]
    return tf.map_fn(one, (images, kernels), fn_output_signature=tf.float32)


def build(variant, faces, bank, seed=0):
    bank_t = tf.constant(bank)
    num_k = bank.shape[0]
    ds = tf.data.Dataset.from_tensor_slices(faces).repeat().shuffle(256, seed=seed)

    def pick(img):
        i = tf.random.uniform([], 0, num_k, tf.int32)
        return tf.cast(img, tf.float32) / 255.0, tf.gather(bank_t, i)

    ds = ds.map(pick, num_parallel_calls=tf.data.AUTOTUNE)

    def finish(sharp, blurred):
        return {"sharp": sharp, "blurred": blur.add_noise(blurred, SIGMA)}

    if variant == "per_example":
        ds = ds.map(lambda x, k: finish(x, blur.apply_kernels(x, k, method="direct")),
                    num_parallel_calls=tf.data.AUTOTUNE).batch(BATCH, drop_remainder=True)
    else:
        fn = {"batched_auto": blur.apply_kernels,
              "batched_direct": lambda x, k: blur.apply_kernels(x, k, method="direct"),
              "batched_fft": lambda x, k: blur.apply_kernels(x, k, method="fft"),
              "batched_map_fn": _map_fn_apply}[variant]
        ds = ds.batch(BATCH, drop_remainder=True)
        ds = ds.map(lambda x, k: finish(x, fn(x, k)), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def measure(ds, seconds, warmup=5):
    it = iter(ds)
    for _ in range(warmup):
        next(it)
    n, t0, c0 = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - t0 < seconds:
        batch = next(it)
        n += int(batch["blurred"].shape[0])
    _ = batch["blurred"].numpy()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return n / wall, n / cpu


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faces", default=os.path.join(SHARED_DATA, "lfw"),
                    help="folder of face images (>=128 px), e.g. the LFW copy")
    ap.add_argument("--num_faces", type=int, default=256)
    ap.add_argument("--num_kernels", type=int, default=128)
    ap.add_argument("--seconds", type=float, default=4.0, help="per variant and round")
    ap.add_argument("--rounds", type=int, default=3,
                    help="variants are timed interleaved, round after round (shared, loaded CPUs "
                         "drift); the median and all rounds are reported")
    ap.add_argument("--variants", default="batched_auto,batched_direct,batched_fft,per_example,batched_map_fn")
    args = ap.parse_args()

    faces = load_faces(args.faces, args.num_faces)
    t0 = time.perf_counter()
    bank = blur.make_kernel_bank("camera_shake", num=args.num_kernels, seed=0)
    bank_s = time.perf_counter() - t0

    # Correctness check of the alternative variants against apply_kernels on one batch.
    x = tf.constant(faces[:4], tf.float32) / 255.0
    ref = blur.apply_kernels(x, bank[:4], method="direct").numpy()
    check = {"batched_map_fn": float(np.abs(_map_fn_apply(x, bank[:4]).numpy() - ref).max()),
             "batched_fft": float(np.abs(blur.apply_kernels(x, bank[:4], method="fft").numpy()
                                         - ref).max())}

    variants = args.variants.split(",")
    pipelines = {v: build(v, faces, bank) for v in variants}
    rounds = {v: [] for v in variants}
    cpu_rounds = {v: [] for v in variants}
    for _ in range(args.rounds):
        for v in variants:
            wall, cpu = measure(pipelines[v], args.seconds)
            rounds[v].append(round(wall, 1))
            cpu_rounds[v].append(round(cpu, 1))
    results = {v: float(np.median(r)) for v, r in rounds.items()}
    # Pairs per CPU-second of this process (all threads): less sensitive than wall-clock
    # throughput to other processes competing for the cores.
    cpu_results = {v: float(np.median(r)) for v, r in cpu_rounds.items()}
    print(json.dumps({
        "benchmark": "blur_throughput",
        "pairs_per_s": results, "pairs_per_s_rounds": rounds,
        "pairs_per_cpu_s": cpu_results, "pairs_per_cpu_s_rounds": cpu_rounds,
        "image": [SIZE, SIZE, 3], "batch": BATCH, "kernel_bank": list(bank.shape),
        "noise_sigma": SIGMA, "bank_build_s": round(bank_s, 2),
        "max_abs_diff_vs_direct": check,
        "faces": int(len(faces)), "seconds_per_variant_round": args.seconds,
        "cpu_count": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2),
        "tf": tf.__version__, "python": platform.python_version(),
    }, indent=1))


if __name__ == "__main__":
    main()
