"""bfloat16 vs float32 inference of paper 3's shipped UMSN on the sample test faces; JSON out.

    python benchmarks/infer_precision.py [--crop=128] [--steps=3]

The shipped SN + UMSN (`paper3_umsn/weights/umsn_small.keras`, float32) is rebuilt under the
mixed_bfloat16 policy with the same weights (bfloat16 compute, float32 variables and last layers).
The 30 faces of `data/sample/test_faces` (centre `--crop` crops) are blurred with a fixed bank
like the shipped model's training blur (configs/cpu90_strong.flags: four kernel families,
9-29 px, whole-trajectory exposure, >= 4 taps; seed 0) + noise sigma 0.01 (seed 0). The JSON
gives the mean PSNR of the blurred input and of both restorations against the sharp crops, their
difference, the largest per-pixel difference between the two restorations, and the median ms of
one 256x256 face.
"""
import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import _machine  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from common import blur, image_io, inference  # noqa: E402
from paper3_umsn import models  # noqa: E402

FACES = os.path.join(_machine.ROOT, "data", "sample", "test_faces")


def test_pairs(crop):
    files = image_io.list_images(FACES)
    if not files:
        raise FileNotFoundError(f"no images in {FACES}")
    sharp = []
    for f in files:
        img = image_io.to_float32(image_io.read_image(f))
        oy, ox = (img.shape[0] - crop) // 2, (img.shape[1] - crop) // 2
        if min(oy, ox) < 0:
            raise ValueError(f"{f} is {img.shape[:2]}, smaller than --crop={crop}")
        sharp.append(img[oy:oy + crop, ox:ox + crop])
    sharp = np.stack(sharp)
    # The shipped model's training blur (configs/cpu90_strong.flags): kernels that really blur.
    bank = blur.make_kernel_bank("camera_shake+markov+linear+gaussian", num=len(sharp),
                                 sizes=range(9, 30, 2), seed=0, exposure=1.0, min_taps=4)
    blurred = blur.add_noise(blur.apply_kernels(sharp, bank), 0.01, seed=0)
    return sharp, np.asarray(blurred, np.float32)


def bf16_copy(model):
    """The same SN + UMSN built under mixed_bfloat16, weights copied from the float32 model."""
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        sn = models.build_sn(model.umsn.variant)
        umsn = models.build_umsn(model.umsn.variant, model.umsn.ablation)
        copy = models.UMSNDeblurrer(sn, umsn)
        copy(np.zeros((1, 32, 32, 3), np.float32))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    src, dst = model.weights, copy.weights
    if [w.shape for w in src] != [w.shape for w in dst]:
        raise ValueError("bfloat16 rebuild does not match the shipped model's weights")
    copy.set_weights(model.get_weights())
    return copy


def ms_per_call(fn, x, steps):
    fn(x).numpy()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        fn(x).numpy()
        times.append(time.perf_counter() - t)
    return round(1000 * statistics.median(times), 1)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--steps", type=int, default=3)
    a = p.parse_args()
    path = inference.shipped_weights(os.path.join(_machine.ROOT, "paper3_umsn"), "umsn_small")
    f32 = inference.load_keras(path)
    b16 = bf16_copy(f32)
    sharp, blurred = test_pairs(a.crop)
    out = {"model": os.path.relpath(path, _machine.ROOT), "faces": len(sharp), "crop": a.crop,
           "machine": _machine.machine_info()}
    restored = {}
    for name, model in (("float32", f32), ("bfloat16", b16)):
        fn = tf.function(lambda x, m=model: m(x), reduce_retracing=True)
        restored[name] = np.concatenate([fn(blurred[i:i + 8]).numpy()
                                         for i in range(0, len(blurred), 8)])
        out[f"psnr_{name}"] = float(tf.reduce_mean(tf.image.psnr(restored[name], sharp, 1.0)))
        x = tf.constant(np.random.default_rng(0).random((1, 256, 256, 3), dtype=np.float32))
        out[f"ms_256_{name}"] = ms_per_call(fn, x, a.steps)
    out["psnr_blurred"] = float(tf.reduce_mean(tf.image.psnr(blurred, sharp, 1.0)))
    out["psnr_bf16_minus_f32_db"] = out["psnr_bfloat16"] - out["psnr_float32"]
    out["max_abs_pixel_diff"] = float(np.abs(restored["bfloat16"] - restored["float32"]).max())
    out["peak_rss_mb"] = _machine.peak_rss_mb()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
