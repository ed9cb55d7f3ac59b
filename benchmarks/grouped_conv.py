"""Four narrow streams as separate convolutions, one grouped convolution, or one block-diagonal
dense convolution: time of a forward and of a forward + backward on this CPU; JSON out.

    python benchmarks/grouped_conv.py [--batch=16] [--size=64] [--width=8] [--inner=16]
        [--repeats=5] [--precision=float32|mixed_bfloat16] [--output=benchmarks/results/grouped_conv.json]

The shapes are UMSN `small`'s four F-Net streams (paper3_umsn/models.py: width 8, inner width
inter_mult x 8 = 16, 3x3 convolutions at half of a 128x128 crop, batch 16), the issue-31 idea of
running them as one `keras.layers.Conv2D(groups=4)`. All three compute the same maths (checked
here: outputs and input gradients agree to float32 rounding); "dense" zeroes the off-diagonal blocks of
one 4*W -> 4*I kernel, so it does 4x the multiply-adds of the separate streams. Each row is the
median of --repeats calls of one `tf.function` after a warm-up call, in float32 or under Keras's
mixed_bfloat16 policy (the layers compute in bfloat16, as the trainers' --mixed_precision=auto on a
CPU with bfloat16 instructions).
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

import _machine  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

STREAMS = 4


def build(width, inner, seed=0):
    """The three layouts with the same weights: 4 x Conv2D(W -> I), Conv2D(4W -> 4I, groups=4),
    Conv2D(4W -> 4I) with a block-diagonal kernel (and the mask that keeps it so)."""
    rng = np.random.default_rng(seed)
    kernels = [rng.normal(0, 0.1, (3, 3, width, inner)).astype(np.float32) for _ in range(STREAMS)]
    biases = [rng.normal(0, 0.1, (inner,)).astype(np.float32) for _ in range(STREAMS)]
    separate = [keras.layers.Conv2D(inner, 3, padding="same") for _ in range(STREAMS)]
    for conv, k, b in zip(separate, kernels, biases):
        conv.build((None, None, None, width))
        conv.set_weights([k, b])
    grouped = keras.layers.Conv2D(STREAMS * inner, 3, padding="same", groups=STREAMS)
    grouped.build((None, None, None, STREAMS * width))
    grouped.set_weights([np.concatenate(kernels, -1), np.concatenate(biases)])
    mask = np.zeros((3, 3, STREAMS * width, STREAMS * inner), np.float32)
    dense_k = np.zeros_like(mask)
    for i, k in enumerate(kernels):
        mask[:, :, i * width:(i + 1) * width, i * inner:(i + 1) * inner] = 1
        dense_k[:, :, i * width:(i + 1) * width, i * inner:(i + 1) * inner] = k
    dense = keras.layers.Conv2D(STREAMS * inner, 3, padding="same")
    dense.build((None, None, None, STREAMS * width))
    dense.set_weights([dense_k, np.concatenate(biases)])
    return separate, grouped, dense, tf.constant(mask)


def forwards(separate, grouped, dense, mask):
    def f_separate(x):
        return tf.concat([c(p) for c, p in zip(separate, tf.split(x, STREAMS, -1))], -1)

    def f_grouped(x):
        return grouped(x)

    def f_dense(x):  # the masked kernel: what a trained block-diagonal layer would apply
        dtype = dense.compute_dtype
        y = tf.nn.conv2d(tf.cast(x, dtype), tf.cast(dense.kernel * mask, dtype), 1, "SAME")
        return tf.nn.bias_add(y, tf.cast(dense.bias, dtype))
    return {"separate": (f_separate, [v for c in separate for v in c.trainable_variables]),
            "grouped": (f_grouped, grouped.trainable_variables),
            "dense_block_diagonal": (f_dense, dense.trainable_variables)}


def with_grad(fn, variables):
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = fn(x)
            loss = tf.reduce_sum(tf.square(y))
        return [y] + tape.gradient(loss, [x] + list(variables))
    return step


def median_seconds(fn, x, repeats):
    fn(x)  # trace + warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn(x)
        tf.nest.map_structure(lambda t: t.numpy(), out)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--inner", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--precision", default="float32", choices=["float32", "mixed_bfloat16"])
    ap.add_argument("--output", default=os.path.join(HERE, "results", "grouped_conv.json"))
    args = ap.parse_args()
    start = _machine.machine_info()
    keras.mixed_precision.set_dtype_policy(args.precision)
    x = tf.constant(np.random.default_rng(1).random(
        (args.batch, args.size, args.size, STREAMS * args.width)).astype(np.float32))
    layouts = forwards(*build(args.width, args.inner))
    ref = None
    rows = {}
    for name, (fn, variables) in layouts.items():
        fwd, train = tf.function(fn), tf.function(with_grad(fn, variables))
        outs = [tf.cast(t, tf.float32).numpy() for t in train(x)]
        if ref is None:
            ref = outs
        # same maths: outputs and gradients with respect to the input agree with "separate"
        diff = max(float(np.max(np.abs(outs[0] - ref[0]))), float(np.max(np.abs(outs[1] - ref[1]))))
        rows[name] = {"forward_s": median_seconds(fwd, x, args.repeats),
                      "forward_backward_s": median_seconds(train, x, args.repeats),
                      "max_abs_diff_to_separate": diff}
        print(name, rows[name], flush=True)
    result = {"benchmark": "grouped_conv", "config": vars(args), "rows": rows,
              "machine_start": start, "machine_end": _machine.machine_info(),
              "tensorflow": tf.__version__, "keras": keras.__version__}
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(result, f, indent=1)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
