"""One configuration of one paper's real train step or inference, measured in this process; JSON.

    python benchmarks/train_bench.py --paper=paper3 --variant=paper --batch=16 --size=128 \
        --precision=mixed_bfloat16 --mode=train [--steps=2] [--peak_tflops=0.06]
    python benchmarks/train_bench.py --paper=paper3 --variant=paper --mode=infer \
        --precision=mixed_bfloat16 --infer_sizes=128,256,512

Measure ONE configuration per process (`benchmarks/run_all.py` starts one process per
configuration): `peak_rss_mb` is the process's ru_maxrss, so it includes everything this
configuration touched and nothing else.

train: the trainer's own per-replica step (paper 3: `train.make_stage(...).replica_step`, stage umsn, CN,
  L_p on a randomly initialised VGG16 relu1_2 (same cost as ImageNet weights); paper 1:
  `train_srn.SRNTrainer`; paper 2: `train.build_trainer`, stage cgan) on random data, wrapped in
  `common.train.distribute.make_distributed_step`. The first call (trace) is timed separately;
  then `--steps` timed steps. FLOPs: TensorFlow's profiler (`tf.compat.v1.profiler`, float_operation) on the traced
  step graph: forward + backward + optimizer ops as TensorFlow counts them (convs, matmuls,
  elementwise; recomputation under --remat is not counted as useful work).
flops: only traces the train step: its FLOPs (paper 3: also SN and UMSN forward per image) and the
  forward tensors its backward pass keeps (`kept_for_backprop`: where activation memory goes).
profile: where the step's time goes (`measure_profile`): TensorFlow profiler op time by op type,
  the convolutions' time by kind (forward, backprop-input, backprop-filter) beside their FLOPs.
infer: the paper's inference path (paper 3: SN + UMSN; paper 1: SRN's finest output; paper 2:
  HG + G_bl) on one face per size, tf.function, median of `--steps` calls after one warm-up.
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
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import flags  # noqa: E402

from common import cli  # noqa: E402
from common.train import distribute, trainer as training  # noqa: E402

# The papers' own training settings (batch, crop).
PAPER_SETTINGS = {"paper1": (16, 256), "paper2": (1, 256), "paper3": (16, 128)}


def step_flops(concrete_fn):
    """Float operations of a traced graph as TensorFlow's profiler counts them."""
    opts = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    opts["output"] = "none"
    return int(tf.compat.v1.profiler.profile(graph=concrete_fn.graph, options=opts).total_float_ops)


def live_conv_flops(concrete_fn):
    """Convolution FLOPs (2 x multiply-adds; forward, backprop-input and backprop-filter) of the
    ops of a traced graph that run: ancestors of its outputs and of its stateful ops (variable
    updates). TensorFlow's profiler (`step_flops`) also counts dead branches that the runtime
    prunes, e.g. the second backward pass a persistent tape builds for a second
    `tape.gradient` (paper 3's CN gradient: 2.37 of its 7.57 TFLOP per step)."""
    g = concrete_fn.graph
    live = live_op_names(concrete_fn)
    return int(sum(conv_flops(op) for op in g.get_operations() if op.name in live))


def live_op_names(concrete_fn):
    """Names of the ops of a traced graph that run: ancestors of its outputs and of its stateful
    ops (variable updates); the runtime prunes the rest."""
    g = concrete_fn.graph
    stack = [t.op for t in concrete_fn.outputs] + [
        op for op in g.get_operations()
        if op._is_stateful and op.type not in ("Placeholder", "VarHandleOp", "ReadVariableOp")]  # pylint: disable=protected-access
    live = set()
    while stack:
        op = stack.pop()
        if op.name not in live:
            live.add(op.name)
            stack.extend(t.op for t in op.inputs)
            stack.extend(op.control_inputs)
    return live


def conv_flops(op):
    """2 x multiply-adds of one convolution op of a traced graph (forward, backprop-input or
    backprop-filter); 0 for any other op."""
    if op.type == "Conv2D":
        k = op.inputs[1].shape
        return 2 * np.prod(op.outputs[0].shape.as_list()) * k[0] * k[1] * k[2]
    if op.type == "Conv2DBackpropInput":
        k = op.inputs[1].shape
        return 2 * np.prod(op.inputs[2].shape.as_list()) * k[0] * k[1] * k[2]
    if op.type == "Conv2DBackpropFilter":
        k = op.outputs[0].shape.as_list()
        return 2 * np.prod(op.inputs[2].shape.as_list()) * k[0] * k[1] * k[2]
    return 0


def _rand(rng, shape):
    return tf.constant(rng.random(shape, dtype=np.float32))


def build_train(paper, variant, batch, size, remat, fused_norm=True):
    """-> (step tf.function, batch dict) for the paper's trainer (with the trainers' default
    --fused_norm: instance norms as fused kernels; papers 1's SRN and 2 have none)."""
    rng = np.random.default_rng(0)
    sharp = _rand(rng, (batch, size, size, 3))
    data = {"sharp": sharp, "blurred": tf.clip_by_value(sharp * 0.8 + 0.1, 0.0, 1.0)}
    strategy = tf.distribute.get_strategy()
    if paper == "paper3":
        from paper3_umsn import train
        # Weights do not matter for speed or memory: skip the --init_sn/--init_fnets restores.
        train._init_from = lambda *a, **k: None
        cfg = cli.parse_flags([train.define_flags], [
            "p", "--stage=umsn", f"--variant={variant}", "--ablation=umsn", f"--crop_size={size}",
            f"--batch_size={batch}", "--allow_random_vgg", "--workdir=/tmp/unused"]
            + ([f"--remat={remat}"] if remat else []))
        stage = train.make_stage(cfg, strategy)
        if fused_norm:  # as common.train.trainer.train does with --fused_norm
            training.fuse_trainer_instance_norms(stage)
        return distribute.make_distributed_step(strategy, stage.replica_step), data
    if paper == "paper1":
        from paper1_cyclegan_srn import train_srn
        cfg = cli.parse_flags([train_srn.define_flags], [
            "p", f"--crop_size={size}", f"--variant={variant}", f"--batch_size={batch}",
            "--num_steps=1000", "--workdir=/tmp/unused"]
            + ([f"--remat={remat}"] if remat else []), fv=flags.FlagValues())
        return (distribute.make_distributed_step(strategy, train_srn.SRNTrainer(cfg).replica_step),
                data)
    if paper == "paper2":
        from paper2_identity_cgan import train
        cfg = cli.parse_flags([train.define_flags], [
            "p", "--stage=cgan", f"--variant={variant}", f"--crop_size={size}",
            f"--batch_size={batch}", "--workdir=/tmp/unused"])
        t = train.build_trainer(cfg, strategy, restore_hg=False)
        return tf.function(t.replica_step), data
    raise ValueError(f"--paper={paper}: choose paper1, paper2 or paper3")


def build_infer(paper, variant):
    """-> a tf.function blurred [1,H,W,3] -> restored, built under the current global policy."""
    if paper == "paper3":
        from paper3_umsn import models
        model = models.UMSNDeblurrer(models.build_sn(variant), models.build_umsn(variant, "umsn"))
        return tf.function(lambda x: model(x), reduce_retracing=True)
    if paper == "paper1":
        from paper1_cyclegan_srn import srn, train_srn
        return train_srn.restore_fn(srn.build_srn(variant, image_size=64))
    if paper == "paper2":
        from paper2_identity_cgan import models
        nets = models.build_networks(variant)
        hg, g_bl = nets["hg"], nets["g_bl"]
        # one trace per size: the HG's bilinear upsampling needs static shapes
        return tf.function(lambda x: models.deblur(hg, g_bl, x))
    raise ValueError(f"--paper={paper}: choose paper1, paper2 or paper3")


def measure_train(a):
    step, data = build_train(a.paper, a.variant, a.batch, a.size, a.remat, a.fused_norm)
    t = time.perf_counter()
    out = step(data)
    float(out["loss"] if "loss" in out else next(iter(out.values())))
    first_s = time.perf_counter() - t
    rss_after_first = _machine.peak_rss_mb()
    flop = step_flops(step.get_concrete_function(data)) if a.flops else None
    live = live_conv_flops(step.get_concrete_function(data))
    times = []
    for _ in range(a.steps):
        t = time.perf_counter()
        out = step(data)
        float(next(iter(out.values())))
        times.append(time.perf_counter() - t)
    res = {"first_step_s": round(first_s, 2), "peak_rss_mb_after_first_step": rss_after_first,
           "live_conv_tflop_per_step": round(live / 1e12, 4)}
    if times:
        med = statistics.median(times)
        res.update(step_s=[round(x, 3) for x in times], median_step_s=round(med, 3),
                   steps_per_sec=round(1.0 / med, 5), images_per_sec=round(a.batch / med, 4),
                   live_conv_tflops=round(live / med / 1e12, 5))
        if a.peak_tflops:  # executed convolutions (with --remat: including the recomputation)
            res["live_conv_fraction_of_peak"] = round(live / med / 1e12 / a.peak_tflops, 3)
        if flop:
            res["tflop_per_step"] = round(flop / 1e12, 4)
            res["achieved_tflops"] = round(flop / med / 1e12, 5)
            if a.peak_tflops:
                res["fraction_of_peak"] = round(flop / med / 1e12 / a.peak_tflops, 3)
    elif flop:
        res["tflop_per_step"] = round(flop / 1e12, 4)
    return res


def kept_for_backprop(concrete_fn):
    """Where a train step's activation memory goes: the forward tensors that its backward pass
    reads (inputs of `gradient_tape/...` ops produced by forward ops; weights and constants
    excluded), in GB by producing op type, dtype and network scope. Their sum is an upper bound
    of the activations alive when backprop starts (TensorFlow frees each after its last use)."""
    import collections  # pylint: disable=import-outside-toplevel
    kept = {}
    for op in concrete_fn.graph.get_operations():
        if not op.name.startswith("gradient_tape"):
            continue
        for t in op.inputs:
            if t.op.name.startswith("gradient_tape") or t.op.type in (
                    "ReadVariableOp", "Const", "Placeholder", "Identity"):
                continue
            if t.shape.is_fully_defined():
                kept[t.name] = (int(np.prod(t.shape.as_list())) * t.dtype.size, t.op.type,
                                t.dtype.name, "/".join(t.op.name.split("/")[:2]))
    groups = [collections.Counter() for _ in range(3)]
    for nbytes, *keys in kept.values():
        for counter, key in zip(groups, keys):
            counter[key] += nbytes
    gb = lambda c, n: {k: round(v / 1e9, 3) for k, v in c.most_common(n)}  # noqa: E731
    return {"kept_for_backprop_gb": round(sum(v[0] for v in kept.values()) / 1e9, 3),
            "kept_tensors": len(kept), "kept_gb_by_op_type": gb(groups[0], 8),
            "kept_gb_by_dtype": gb(groups[1], 4), "kept_gb_by_scope": gb(groups[2], 8)}


def measure_flops(a):
    """Traces the train step (no execution): its FLOPs (profiler and live convolutions) and the
    activations its backward pass keeps; paper 3 also FLOPs per network."""
    step, data = build_train(a.paper, a.variant, a.batch, a.size, a.remat, a.fused_norm)
    concrete = step.get_concrete_function(data)
    res = {"tflop_per_step": round(step_flops(concrete) / 1e12, 4),
           "live_conv_tflop_per_step": round(live_conv_flops(concrete) / 1e12, 4),
           **kept_for_backprop(concrete)}
    if a.paper == "paper3":
        from paper3_umsn import models
        sn, umsn = models.build_sn(a.variant), models.build_umsn(a.variant, "umsn")
        x = tf.TensorSpec((1, a.size, a.size, 3), tf.float32)
        m = tf.TensorSpec((1, a.size, a.size, 4), tf.float32)
        res["gflop_per_image_sn_forward"] = round(step_flops(
            tf.function(lambda y: sn(y)).get_concrete_function(x)) / 1e9, 2)
        res["gflop_per_image_umsn_forward"] = round(step_flops(
            tf.function(lambda y, mm: umsn([y, mm])["x_hat"]).get_concrete_function(x, m)) / 1e9, 2)
    return res


def _xplane_op_times(logdir):
    """{node name: (op type, total ps, events)} of the TensorFlow ops the profiler trace under `logdir`
    recorded on the executor threads (events named "node:Type"; python-thread spans left out)."""
    import glob  # pylint: disable=import-outside-toplevel
    try:
        from tsl.profiler.protobuf import xplane_pb2  # pylint: disable=import-outside-toplevel
    except ImportError:
        from tensorflow.tsl.profiler.protobuf import xplane_pb2  # pylint: disable=import-outside-toplevel
    times = {}
    for path in glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True):
        space = xplane_pb2.XSpace()
        with open(path, "rb") as f:
            space.ParseFromString(f.read())
        for plane in space.planes:
            meta = plane.event_metadata
            for line in plane.lines:
                if line.name == "python":
                    continue
                for e in line.events:
                    full = meta[e.metadata_id].name
                    name, _, op_type = full.rpartition(":")
                    if name and op_type and "::" not in full:
                        _, ps, count = times.get(name, (op_type, 0, 0))
                        times[name] = (op_type, ps + e.duration_ps, count + 1)
    return times


def measure_profile(a):
    """Where one train step's time goes: TensorFlow profiler op times (executor threads, so two
    ops running at once both count) by op type, and per convolution kind its time beside its FLOPs
    among the traced graph's live ops (`conv_flops`, `live_op_names`): the TFLOP/s each kind
    achieves; per step over `--steps`."""
    import collections  # pylint: disable=import-outside-toplevel
    import tempfile  # pylint: disable=import-outside-toplevel
    step, data = build_train(a.paper, a.variant, a.batch, a.size, a.remat, a.fused_norm)
    for _ in range(2):  # trace, then one warm step
        float(next(iter(step(data).values())))
    concrete = step.get_concrete_function(data)
    live = live_op_names(concrete)  # paper 3's graph also holds convolutions that never run
    conv_flop = collections.Counter()
    for op in concrete.graph.get_operations():
        if op.name in live and op.type.startswith("Conv2D"):
            conv_flop[op.type] += conv_flops(op)
    n = max(1, a.steps)
    with tempfile.TemporaryDirectory() as logdir:
        t = time.perf_counter()
        tf.profiler.experimental.start(logdir)
        for _ in range(n):
            float(next(iter(step(data).values())))
        tf.profiler.experimental.stop()
        wall = (time.perf_counter() - t) / n
        times = _xplane_op_times(logdir)
    by_type, calls = collections.Counter(), collections.Counter()
    for op_type, ps, count in times.values():
        by_type[op_type] += ps
        calls[op_type] += count
    total = sum(by_type.values()) or 1
    # Convolution kinds by the runtime op type (oneDNN renames and fuses them: _MklNativeFusedConv2D,
    # ..BackpropFilterWithBias), their FLOPs from the traced graph's live convolutions of that kind.
    kind_of = lambda t: ("Conv2DBackpropFilter" if "BackpropFilter" in t else  # noqa: E731
                         "Conv2DBackpropInput" if "BackpropInput" in t else "Conv2D")
    conv_time = collections.Counter()
    for op_type, ps in by_type.items():
        if "Conv2D" in op_type:
            conv_time[kind_of(op_type)] += ps
    ms = lambda ps: round(ps / 1e9 / n, 2)  # noqa: E731
    return {
        "profiled_steps": n, "wall_s_per_step_under_profiler": round(wall, 3),
        "op_time_s_per_step": round(total / 1e12 / n, 3),
        "by_op_type": {k: {"share": round(v / total, 3), "ms_per_step": ms(v),
                           "calls_per_step": round(calls[k] / n, 1)}
                       for k, v in by_type.most_common(16)},
        "conv_by_kind": {k: {"gflop_per_step": round(conv_flop[k] / 1e9, 2),
                             "ms_per_step": ms(conv_time[k]),
                             "tflops": round(conv_flop[k] / (conv_time[k] / 1e12 / n) / 1e12 / n, 4)
                             if conv_time[k] else None}
                         for k in sorted(conv_flop)},
        "conv_share_of_op_time": round(sum(conv_time.values()) / total, 3)}


def measure_infer(a):
    fn = build_infer(a.paper, a.variant)
    rng = np.random.default_rng(0)
    res = {}
    for s in [int(v) for v in a.infer_sizes.split(",")]:
        x = _rand(rng, (1, s, s, 3))
        fn(x).numpy()
        times = []
        for _ in range(max(1, a.steps)):
            t = time.perf_counter()
            fn(x).numpy()
            times.append(time.perf_counter() - t)
        res[str(s)] = round(1000 * statistics.median(times), 1)
    return {"inference_ms": res}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--paper", required=True, choices=sorted(PAPER_SETTINGS))
    p.add_argument("--variant", default="paper")
    p.add_argument("--batch", type=int, default=0, help="0: the paper's batch")
    p.add_argument("--size", type=int, default=0, help="0: the paper's crop")
    p.add_argument("--precision", default="mixed_bfloat16", choices=["float32", "mixed_bfloat16"])
    p.add_argument("--mode", default="train", choices=["train", "infer", "flops", "profile"])
    p.add_argument("--steps", type=int, default=2, help="timed steps / inference calls")
    p.add_argument("--flops", type=int, default=1, help="1: count the step's FLOPs (profiler)")
    p.add_argument("--peak_tflops", type=float, default=0.0,
                   help="machine_peak.py's peak for this precision (for fraction_of_peak)")
    p.add_argument("--remat", default="", help="papers 1 and 3: the trainer's --remat (paper 3: "
                   "blocks, units; paper 1: blocks)")
    p.add_argument("--infer_sizes", default="128,256,512")
    p.add_argument("--fused_norm", type=int, default=1, help="1: instance norms as fused kernels "
                   "(the trainers' default --fused_norm); 0: Keras's GroupNormalization")
    p.add_argument("--intra_op_threads", type=int, default=0,
                   help="the trainers' --intra_op_threads (0: TensorFlow's default)")
    p.add_argument("--inter_op_threads", type=int, default=0,
                   help="the trainers' --inter_op_threads (0: TensorFlow's default)")
    a = p.parse_args()
    threads = distribute.set_cpu_threads(a.intra_op_threads, a.inter_op_threads)
    b, s = PAPER_SETTINGS[a.paper]
    a.batch, a.size = a.batch or b, a.size or s
    distribute.set_precision("none" if a.precision == "float32" else a.precision)
    result = {"paper": a.paper, "variant": a.variant, "mode": a.mode, "precision": a.precision,
              "batch": a.batch, "size": a.size, "remat": a.remat or "none",
              "fused_norm": bool(a.fused_norm), "intra_op_threads": threads[0],
              "inter_op_threads": threads[1],
              "machine": _machine.machine_info(), "tf": tf.__version__}
    result.update({"train": measure_train, "infer": measure_infer, "flops": measure_flops,
                   "profile": measure_profile}[a.mode](a))
    result["peak_rss_mb"] = _machine.peak_rss_mb()
    result["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
