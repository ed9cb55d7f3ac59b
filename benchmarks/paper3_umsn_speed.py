"""UMSN speed on this machine; prints one JSON object (not a test).

    python benchmarks/paper3_umsn_speed.py [--variant=paper] [--steps=5] [--batch=16] [--size=128]

For float32 and mixed_bfloat16: full-UMSN train steps/s and images/s (SN frozen, CN + its
optimizer, L_total without VGG: the perceptual term needs ImageNet weights), timed per step after
2 warm-up steps; inference ms for one 128x128 and one 256x256 face (SN + UMSN, tf.function,
median of 5 after warm-up); peak RSS (ru_maxrss) of the process.
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tensorflow as tf  # noqa: E402
import keras  # noqa: E402

from paper3_umsn import losses, models  # noqa: E402


def train_speed(variant, policy, batch, size, steps):
    keras.mixed_precision.set_global_policy(policy)
    sn, umsn, cn = models.build_sn(variant), models.build_umsn(variant, "umsn"), models.build_cn(variant)
    x = tf.random.uniform((batch, size, size, 3))
    y = tf.random.uniform((batch, size, size, 3))
    sn(x), umsn([x, tf.fill((batch, size, size, 4), 0.25)]), cn([x, x])
    opt, cn_opt = keras.optimizers.Adam(2e-4), keras.optimizers.Adam(2e-4)
    opt.build(umsn.trainable_variables)
    cn_opt.build(cn.trainable_variables)

    @tf.function
    def step(x, y):
        m_hat = tf.nn.softmax(tf.cast(sn(y), tf.float32))
        m = tf.nn.softmax(tf.cast(sn(x), tf.float32))
        with tf.GradientTape(persistent=True) as tape:
            xh = umsn([y, m_hat], training=True)["x_hat"]
            conf = tf.stack([cn([m[..., i:i + 1] * xh, m[..., i:i + 1] * x]) for i in range(4)], -1)
            loss = losses.confidence_loss(x, xh, m, conf, 0.01)
        opt.apply(tape.gradient(loss, umsn.trainable_variables), umsn.trainable_variables)
        cn_opt.apply(tape.gradient(loss, cn.trainable_variables), cn.trainable_variables)
        return loss

    for _ in range(2):
        step(x, y).numpy()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step(x, y).numpy()
        times.append(time.perf_counter() - t)
    sps = 1.0 / statistics.median(times)
    return {"steps_per_sec": sps, "images_per_sec": sps * batch, "median_step_s": statistics.median(times)}


def infer_ms(variant, size):
    keras.mixed_precision.set_global_policy("float32")
    sn, umsn = models.build_sn(variant), models.build_umsn(variant, "umsn")
    model = models.UMSNDeblurrer(sn, umsn)
    fn = tf.function(model)
    x = tf.random.uniform((1, size, size, 3))
    for _ in range(2):
        fn(x).numpy()
    times = []
    for _ in range(5):
        t = time.perf_counter()
        fn(x).numpy()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--variant", default="paper")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--size", type=int, default=128)
    a = p.parse_args()
    out = {"variant": a.variant, "batch": a.batch, "size": a.size, "cpu_count": os.cpu_count(),
           "train": {pol: train_speed(a.variant, pol, a.batch, a.size, a.steps)
                     for pol in ("float32", "mixed_bfloat16")},
           "inference_ms": {str(s): infer_ms(a.variant, s) for s in (128, 256)},
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
