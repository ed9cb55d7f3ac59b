"""Paper 2 speed: cGAN and HG train steps/s, images/s, inference ms (HG + G_bl), peak RSS; JSON.

    python benchmarks/paper2_speed.py --variant=small --size=256 --batch=4 --steps=5 \
        [--mixed_precision=mixed_bfloat16] [--out=/tmp/p2_bench.json]
Synthetic inputs (speed only); the first step (tracing) is excluded from the timings.
"""
import argparse
import json
import os
import platform
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from common import cli  # noqa: E402
from common.train import distribute  # noqa: E402
from paper2_identity_cgan import models, train  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--variant", default="small")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--mixed_precision", default="none")
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    policy = distribute.set_precision(a.mixed_precision)
    strategy = tf.distribute.get_strategy()
    rng = np.random.default_rng(0)
    x = rng.random((a.batch, a.size, a.size, 3), dtype=np.float32)
    batch = {"sharp": tf.constant(x), "blurred": tf.constant(x * 0.9 + 0.05)}
    result = {"paper": "paper2_identity_cgan", "variant": a.variant, "size": a.size,
              "batch": a.batch, "precision": policy, "device": platform.processor() or "cpu",
              "gpus": len(tf.config.list_physical_devices("GPU"))}
    for stage in ("hg", "cgan"):
        cfg = cli.parse_flags([train.define_flags], [
            "p", f"--stage={stage}", f"--variant={a.variant}", f"--crop_size={a.size}",
            "--workdir=/tmp/unused"])
        t = train.build_trainer(cfg, strategy, restore_hg=False)
        step = tf.function(t.replica_step)
        step(batch)  # trace
        t0 = time.perf_counter()
        for _ in range(a.steps):
            out = step(batch)
        float(next(iter(out.values())))
        dt = (time.perf_counter() - t0) / a.steps
        result[f"{stage}_train_steps_per_sec"] = 1.0 / dt
        result[f"{stage}_train_images_per_sec"] = a.batch / dt
        if stage == "cgan":
            fn = tf.function(lambda im: models.deblur(t.hg, t.g_bl, im))
            one = tf.constant(x[:1])
            fn(one)
            t0 = time.perf_counter()
            for _ in range(a.steps):
                fn(one).numpy()
            result["inference_ms_per_image"] = 1000.0 * (time.perf_counter() - t0) / a.steps
            result["params"] = {"hg": t.hg.count_params(), "g_bl": t.g_bl.count_params(),
                                "g_s": t.g_s.count_params(), "d": t.d.count_params()}
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    text = json.dumps(result, indent=1)
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
