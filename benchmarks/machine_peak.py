"""This machine's measured matmul and conv peaks in float32 and bfloat16 (TensorFlow); JSON out.

    python benchmarks/machine_peak.py [--seconds=3] [--out=benchmarks/results/machine_peak.json]

Matmul: [N,N] x [N,N] (2 N^3 FLOP) for N = 1024, 2048. Conv: 3x3, stride 1, 'same', NHWC,
[16,64,64,C] -> C for C = 64, 128 (2*B*H*W*C_in*C_out*9 FLOP, TensorFlow's own count). Each case
runs repeatedly inside one tf.function for `--seconds`; `best` is the fastest single call (the
closest to the hardware limit on a shared machine), `median` the typical one. The peak used by the
other benchmarks' "fraction of peak" is the best over all cases of a dtype.
"""
import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tensorflow as tf  # noqa: E402

import _machine  # noqa: E402


def _time_calls(fn, seconds, min_calls=3):
    fn().numpy()  # trace + warm up
    times = []
    start = time.perf_counter()
    while len(times) < min_calls or time.perf_counter() - start < seconds:
        t = time.perf_counter()
        fn().numpy()
        times.append(time.perf_counter() - t)
    return min(times), statistics.median(times), len(times)


def _report(flop, timing):
    best, median, n = timing
    return {"gflop": round(flop / 1e9, 3), "calls": n, "best_tflops": round(flop / best / 1e12, 4),
            "median_tflops": round(flop / median / 1e12, 4)}


def matmul_case(n, dtype, seconds):
    a = tf.random.uniform((n, n), dtype=tf.float32)
    b = tf.random.uniform((n, n), dtype=tf.float32)
    a, b = tf.cast(a, dtype), tf.cast(b, dtype)
    fn = tf.function(lambda: tf.reduce_sum(tf.cast(tf.matmul(a, b)[:1, :1], tf.float32)))
    return _report(2.0 * n ** 3, _time_calls(fn, seconds))


def conv_case(channels, dtype, seconds, batch=16, size=64):
    x = tf.cast(tf.random.uniform((batch, size, size, channels)), dtype)
    k = tf.cast(tf.random.normal((3, 3, channels, channels), stddev=0.05), dtype)
    fn = tf.function(lambda: tf.reduce_sum(tf.cast(
        tf.nn.conv2d(x, k, 1, "SAME")[:1, :1, :1], tf.float32)))
    flop = 2.0 * batch * size * size * channels * channels * 9
    return _report(flop, _time_calls(fn, seconds))


def measure(seconds):
    out = {"machine": _machine.machine_info(), "tf": tf.__version__, "cases": {}, "peak_tflops": {}}
    for name, dtype in (("float32", tf.float32), ("bfloat16", tf.bfloat16)):
        cases = {}
        for n in (1024, 2048):
            cases[f"matmul_{n}"] = matmul_case(n, dtype, seconds)
        for c in (64, 128):
            cases[f"conv3x3_16x64x64x{c}"] = conv_case(c, dtype, seconds)
        out["cases"][name] = cases
        out["peak_tflops"][name] = max(v["best_tflops"] for v in cases.values())
        out["peak_tflops"][name + "_conv"] = max(v["best_tflops"] for k, v in cases.items()
                                                 if k.startswith("conv"))
    out["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=3.0, help="timing budget per case")
    p.add_argument("--out", default="", help="also write the JSON here")
    a = p.parse_args()
    result = measure(a.seconds)
    text = json.dumps(result)
    if a.out:
        os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
        with open(a.out, "w") as f:
            f.write(json.dumps(result, indent=1) + "\n")
    print(text)


if __name__ == "__main__":
    main()
