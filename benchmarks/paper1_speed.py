"""Paper 1 speed benchmark: prints one JSON object.

    python benchmarks/paper1_speed.py [--train_size=128] [--batch=4] [--steps=5] \
        [--generator=resnet_9blocks] [--srn_variant=paper] [--precision=none]

Measures, on random data (no I/O): CycleGAN train steps/s and images/s (G, F, D_X, D_Y, both
optimisers, image pool), SRN train steps/s and images/s, inference ms per 256x256 image for G and
SRN (batch 1, after one warm-up call), and the process's peak RSS. The first (tracing) step is
excluded from every timing.
"""
import argparse
import json
import os
import resource
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import flags  # noqa: E402

from common import cli  # noqa: E402
from common.train import distribute  # noqa: E402
from paper1_cyclegan_srn import cyclegan, srn, train_cyclegan, train_srn  # noqa: E402


def _timed(fn, steps):
    fn()  # trace / warm up
    t = time.perf_counter()
    for _ in range(steps):
        out = fn()
    if isinstance(out, dict):
        float(next(iter(out.values())))
    return (time.perf_counter() - t) / steps


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--train_size", type=int, default=128)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--generator", default="resnet_9blocks")
    p.add_argument("--discriminator", default="patchgan_70")
    p.add_argument("--srn_variant", default="paper")
    p.add_argument("--precision", default="none")
    a = p.parse_args()
    policy = distribute.set_precision(a.precision)
    rng = np.random.default_rng(0)
    s, b = a.train_size, a.batch
    batch = {"x": tf.constant(rng.uniform(size=(b, s, s, 3)), tf.float32),
             "y": tf.constant(rng.uniform(size=(b, s, s, 3)), tf.float32)}

    cg = cli.parse_flags([train_cyclegan.define_flags], [
        "prog", f"--crop_size={s}", f"--generator={a.generator}",
        f"--discriminator={a.discriminator}", f"--batch_size={b}", "--num_steps=1000"],
        fv=flags.FlagValues())
    trainer = train_cyclegan.CycleGANTrainer(cg)
    cg_step = distribute.make_distributed_step(trainer.strategy, trainer.replica_step)
    cg_sec = _timed(lambda: cg_step(batch), a.steps)

    sr = cli.parse_flags([train_srn.define_flags], [
        "prog", f"--crop_size={s}", f"--variant={a.srn_variant}", f"--batch_size={b}",
        "--num_steps=1000"], fv=flags.FlagValues())
    srn_trainer = train_srn.SRNTrainer(sr)
    pairs = {"sharp": batch["x"], "blurred": batch["y"]}
    srn_step = distribute.make_distributed_step(srn_trainer.strategy, srn_trainer.replica_step)
    srn_sec = _timed(lambda: srn_step(pairs), a.steps)

    img = tf.constant(rng.uniform(size=(1, 256, 256, 3)), tf.float32)
    g = cyclegan.build_generator(a.generator, image_size=256)
    g_fn = tf.function(lambda x: g(x, training=False))
    g_ms = 1000 * _timed(lambda: g_fn(img).numpy(), a.steps)
    model = srn.build_srn(a.srn_variant, image_size=256)
    s_fn = train_srn.restore_fn(model)
    srn_ms = 1000 * _timed(lambda: s_fn(img).numpy(), a.steps)

    print(json.dumps({
        "device": "GPU" if tf.config.list_physical_devices("GPU") else f"CPU x{os.cpu_count()}",
        "precision": policy, "train_size": s, "batch": b, "timed_steps": a.steps,
        "cyclegan": {"generator": a.generator, "discriminator": a.discriminator,
                     "train_steps_per_sec": round(1 / cg_sec, 4),
                     "train_images_per_sec": round(b / cg_sec, 3),
                     "generator_params": g.count_params(),
                     "inference_ms_256_G": round(g_ms, 1)},
        "srn": {"variant": a.srn_variant, "train_steps_per_sec": round(1 / srn_sec, 4),
                "train_images_per_sec": round(b / srn_sec, 3), "params": model.count_params(),
                "inference_ms_256": round(srn_ms, 1)},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }))


if __name__ == "__main__":
    main()
