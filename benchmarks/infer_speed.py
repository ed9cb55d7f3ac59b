"""Where a deblurrer's inference time goes, and what `common.inference.fast_model` saves; JSON.

    python benchmarks/infer_speed.py [--model=paper3_umsn/weights/umsn_small.keras] \
        [--sizes=128,256,512] [--rounds=3] [--xla] [--op_profile=256] \
        [--faces_dir=/tmp/lfw_strong_blur]

--model: a `.keras` deblurrer (default: paper 3's shipped umsn_small), or `paper3:paper` for
paper 3's `paper` variant with random weights (speed does not depend on the weights).
Configurations, all on the same model and input, measured in interleaved rounds (one call of
each per round, after one warm-up call each) so that a varying machine load hits them alike:
  eager      model(x) called eagerly, layer by layer (what `common.inference` did before)
  f32        fast_model(float32, fused_norm=False): one traced tf.function per input shape
  f32_fused  + instance norms as one fused kernel (`keras_utils.fuse_instance_norms`)
  bf16       fast_model(bfloat16, fused_norm=False): mixed_bfloat16 copy, float32 output
  bf16_fused + fused instance norms (the `deblur` default on a CPU with bfloat16 units)
  *_xla      the same with jit_compile=True (--xla)
Per size: the float32 call's FLOPs (TensorFlow's profiler on the traced graph); per size and
configuration: median wall ms and median CPU ms (time.process_time of this
process, all its threads) of one [1,S,S,3] call. On a loaded machine the wall time depends on the
load, the CPU time much less: compare CPU ms between configurations.
--op_profile=S: CPU time per TensorFlow op type of one traced float32 and one bf16_fused call at
SxS (a frozen graph run with FULL_TRACE): where the time goes.
--faces_dir: a data.build folder (sharp/, blurred/) such as the strong-blur test faces
(data/configs/lfw_strong_blur_test.flags): mean PSNR (scikit-image, data_range 1) of each
configuration's restorations through `common.inference.deblur_image`, and its difference to
float32 eager (the target: within 0.05 dB).
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

from common import image_io, inference  # noqa: E402
import paper2_identity_cgan.models  # noqa: E402,F401  (registers the classes for load_keras)
import paper3_umsn.models  # noqa: E402,F401

DEFAULT_MODEL = os.path.join("paper3_umsn", "weights", "umsn_small.keras")
STRIDES = {"UMSNDeblurrer": 4, "CGANDeblurrer": 128}


def load(spec):
    if spec.startswith("paper3:"):
        from paper3_umsn import models
        variant = spec.split(":", 1)[1]
        model = models.UMSNDeblurrer(models.build_sn(variant), models.build_umsn(variant))
        model(np.zeros((1, 32, 32, 3), np.float32))
        return model
    return inference.load_keras(os.path.join(_machine.ROOT, spec) if not os.path.isabs(spec)
                                else spec)


def configurations(model, stride, xla):
    size = stride * -(-32 // stride)
    out = {"eager": lambda x: model(x)}
    for prec in ("float32", "bfloat16"):
        for fused in (False, True):
            for jit in ((False, True) if xla else (False,)):
                name = ("f32" if prec == "float32" else "bf16") + ("_fused" if fused else "") \
                    + ("_xla" if jit else "")
                out[name] = inference.fast_model(model, prec, fused_norm=fused, jit_compile=jit,
                                                 sample_size=size)
    return out


def timings(fns, size, rounds):
    x = tf.constant(np.random.default_rng(0).random((1, size, size, 3), dtype=np.float32))
    for fn in fns.values():
        np.asarray(fn(x))  # trace / warm up
    wall, cpu = collections.defaultdict(list), collections.defaultdict(list)
    for _ in range(rounds):
        for name, fn in fns.items():
            t, c = time.perf_counter(), time.process_time()
            np.asarray(fn(x))
            wall[name].append(time.perf_counter() - t)
            cpu[name].append(time.process_time() - c)
    return {name: {"wall_ms": round(1000 * statistics.median(wall[name]), 1),
                   "cpu_ms": round(1000 * statistics.median(cpu[name]), 1)} for name in fns}


def op_profile(fn, size, top=12):
    """CPU ms per op type of one call of a fast_model function (frozen graph, FULL_TRACE)."""
    from tensorflow.python.framework.convert_to_constants import (  # pylint: disable=import-outside-toplevel
        convert_variables_to_constants_v2)
    x = np.random.default_rng(0).random((1, size, size, 3), dtype=np.float32)
    frozen = convert_variables_to_constants_v2(fn.get_concrete_function(tf.constant(x)))
    graph_def = frozen.graph.as_graph_def()
    ops = {n.name: n.op for n in graph_def.node}
    graph = tf.Graph()
    with graph.as_default():
        tf.import_graph_def(graph_def, name="")
    with tf.compat.v1.Session(graph=graph) as sess:
        feed = {frozen.inputs[0].name: x}
        sess.run(frozen.outputs[0].name, feed)
        meta = tf.compat.v1.RunMetadata()
        sess.run(frozen.outputs[0].name, feed, run_metadata=meta, options=tf.compat.v1.RunOptions(
            trace_level=tf.compat.v1.RunOptions.FULL_TRACE))
    per_op, count = collections.Counter(), collections.Counter()
    for dev in meta.step_stats.dev_stats:
        for ns in dev.node_stats:
            op = ops.get(ns.node_name.split(":")[0])
            if op:
                per_op[op] += ns.op_end_rel_micros - ns.op_start_rel_micros
                count[op] += 1
    total = sum(per_op.values()) or 1
    return {op: {"share": round(us / total, 3), "calls": count[op]}
            for op, us in per_op.most_common(top)}


def face_psnr(fns, faces_dir, stride):
    from skimage.metrics import peak_signal_noise_ratio  # pylint: disable=import-outside-toplevel
    names = sorted(os.listdir(os.path.join(faces_dir, "sharp")))
    if not names:
        raise FileNotFoundError(f"no faces in {faces_dir}/sharp: build them with data.build")
    read = lambda kind, n: image_io.to_float32(image_io.read_image(os.path.join(faces_dir, kind, n)))
    sharp = [read("sharp", n) for n in names]
    blurred = [read("blurred", n) for n in names]
    res = {"faces": len(names), "psnr_blurred": float(np.mean(
        [peak_signal_noise_ratio(s, b, data_range=1.0) for s, b in zip(sharp, blurred)]))}
    ref = None
    for name, fn in fns.items():
        out = [inference.deblur_image(fn, b, stride=stride) for b in blurred]
        res[f"psnr_{name}"] = float(np.mean([peak_signal_noise_ratio(s, o, data_range=1.0)
                                             for s, o in zip(sharp, out)]))
        if ref is None:
            ref = (name, out)
        else:
            res[f"psnr_{name}_minus_{ref[0]}_db"] = res[f"psnr_{name}"] - res[f"psnr_{ref[0]}"]
            res[f"max_abs_pixel_diff_{name}"] = float(max(np.abs(a - b).max()
                                                          for a, b in zip(out, ref[1])))
    return res


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--sizes", default="128,256,512")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--xla", action="store_true", help="also the jit_compile=True configurations")
    p.add_argument("--op_profile", type=int, default=0, help="size of the per-op profile (0: none)")
    p.add_argument("--faces_dir", default="", help="data.build folder: PSNR per configuration")
    a = p.parse_args()
    model = load(a.model)
    stride = STRIDES.get(type(model).__name__, 16)
    fns = configurations(model, stride, a.xla)
    out = {"model": a.model, "class": type(model).__name__,
           "params": int(model.count_params()), "machine": _machine.machine_info(),
           "tf": tf.__version__,
           "cpu_bf16": inference.resolve_precision("auto") == "bfloat16"}
    if a.faces_dir:
        out["faces"] = face_psnr(fns, a.faces_dir, stride)
    sizes = [int(v) for v in a.sizes.split(",") if v]
    out["ms"] = {str(s): timings(fns, s, a.rounds) for s in sizes}
    from train_bench import step_flops  # pylint: disable=import-outside-toplevel
    out["gflop_per_call"] = {str(s): round(step_flops(fns["f32"].get_concrete_function(
        tf.zeros((1, s, s, 3)))) / 1e9, 2) for s in sizes}
    if a.op_profile:
        out["op_profile"] = {name: op_profile(fns[name], a.op_profile)
                             for name in ("f32", "bf16_fused")}
    out["peak_rss_mb"] = _machine.peak_rss_mb()
    out["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
