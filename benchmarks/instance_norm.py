"""The fused instance norm's two layouts on UMSN `small`'s norm shapes: one kernel call per sample
("split") or the batch folded into channels ("fold", two transposes each way); forward +
backward time per shape and the step's total under each rule; JSON out.

    python benchmarks/instance_norm.py [--batch=8] [--size=128] [--repeats=7]
        [--output=benchmarks/results/instance_norm.json]

The shapes are read from the traced UMSN `small` train step (`train_bench.build_train`, stage
umsn, --fused_norm) with every norm forced to "split": each FusedBatchNormV3 input [1,H,W,C]
there is one sample of one norm layer, so a layer's shape is [B,H,W,C] and counts/B layers have it.
Each row: median of --repeats calls of one `tf.function` (`common.keras_utils.fused_instance_norm`,
bfloat16 input, float32 statistics, the gradient of sum(y * r) with respect to x, scale, offset)
after a warm-up; "auto" is what the trainers run (`folds_batch`). Outputs of the two
layouts are checked equal. The norms of SN (frozen, forward only) are timed with a backward pass
too, so the totals are an upper bound of the step's norm time.
"""
import argparse
import collections
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
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from common import keras_utils  # noqa: E402


def norm_shapes(batch, size):
    """{(B,H,W,C): number of norm layers} of UMSN small's train step."""
    import train_bench  # pylint: disable=import-outside-toplevel
    keep = keras_utils.folds_batch
    keras_utils.folds_batch = lambda h, w, c: False  # every norm per sample: one [1,H,W,C] op each
    try:
        step, data = train_bench.build_train("paper3", "small", batch, size, None, True)
        graph = step.get_concrete_function(data).graph
    finally:
        keras_utils.folds_batch = keep
    count = collections.Counter(tuple(op.inputs[0].shape.as_list()) for op in graph.get_operations()
                                if op.type == "FusedBatchNormV3")
    return {(batch,) + s[1:]: n // batch for s, n in sorted(count.items())}


def time_layout(shape, mode, repeats, rng):
    x = tf.constant(rng.normal(1.0, 3.0, shape).astype(np.float32), tf.bfloat16)
    scale = tf.constant(rng.normal(1.0, 0.3, shape[-1]).astype(np.float32))
    offset = tf.constant(rng.normal(0.0, 0.3, shape[-1]).astype(np.float32))
    r = tf.constant(rng.normal(size=shape).astype(np.float32))

    @tf.function
    def step(x, scale, offset):
        with tf.GradientTape() as tape:
            tape.watch([x, scale, offset])
            y = keras_utils.fused_instance_norm(x, scale, offset, 1e-5, mode)
            loss = tf.reduce_sum(tf.cast(y, tf.float32) * r)
        return [y] + tape.gradient(loss, [x, scale, offset])

    out = [t.numpy() for t in step(x, scale, offset)]
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        [t_.numpy() for t_ in step(x, scale, offset)]
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--output", default="")
    a = p.parse_args()
    start = _machine.machine_info()
    shapes = norm_shapes(a.batch, a.size)
    rng = np.random.default_rng(0)
    rows, totals = [], {"split": 0.0, "fold": 0.0, "auto": 0.0, "best": 0.0}
    for shape, layers in shapes.items():
        seed = int(rng.integers(1 << 30))  # the same inputs for both layouts
        t_split, y_split = time_layout(shape, "split", a.repeats, np.random.default_rng(seed))
        t_fold, y_fold = time_layout(shape, "fold", a.repeats, np.random.default_rng(seed))
        err = max(float(np.max(np.abs(u.astype(np.float32) - v.astype(np.float32))))
                  for u, v in zip(y_fold, y_split))
        auto = "fold" if keras_utils.folds_batch(*shape[1:]) else "split"
        totals["split"] += layers * t_split
        totals["fold"] += layers * t_fold
        totals["auto"] += layers * (t_fold if auto == "fold" else t_split)
        totals["best"] += layers * min(t_split, t_fold)
        rows.append({"shape": list(shape), "layers": layers, "split_ms": round(t_split * 1e3, 3),
                     "fold_ms": round(t_fold * 1e3, 3), "auto": auto,
                     "max_abs_diff_split_vs_fold": err})
        print(f"{shape} x{layers}: split {t_split * 1e3:.2f} ms, fold {t_fold * 1e3:.2f} ms, "
              f"auto={auto}, |diff| {err:.3g}", flush=True)
    result = {"command": " ".join(sys.argv), "batch": a.batch, "size": a.size,
              "fold_max_elements": keras_utils.FOLD_MAX_ELEMENTS,
              "fold_max_channels": keras_utils.FOLD_MAX_CHANNELS, "rows": rows,
              "step_norm_ms": {k: round(v * 1e3, 1) for k, v in totals.items()},
              "machine_start": start, "machine_end": _machine.machine_info()}
    print(json.dumps(result["step_norm_ms"]))
    if a.output:
        os.makedirs(os.path.dirname(os.path.abspath(a.output)), exist_ok=True)
        with open(a.output, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
