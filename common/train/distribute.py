"""Devices, data per worker, seeds and precision: what a step runs on.

* `get_strategy` (`--strategy`, `--cpu_devices`), `is_chief` (the process that writes, from
  TF_CONFIG), `set_cpu_threads` (`--intra_op_threads`, `--inter_op_threads`).
* `distribute_per_worker`, `pipeline_seed`, `reseeded_dataset`: one input pipeline per worker,
  reseeded at a resume.
* `set_precision` (Keras mixed precision policy: float16 on GPU, bfloat16 on a CPU with bfloat16
  instructions under `auto`), `make_optimizer` (Adam, wrapped in a loss-scale optimizer only for
  float16), `make_distributed_step` / `replica_loss` (a replica step as a `tf.function` over
  `strategy.run`), `set_seed`.
"""
from __future__ import annotations

import json
import os
from typing import Callable, Mapping

from absl import logging
import keras
import tensorflow as tf

from common import hardware
from common.train.flags import PRECISIONS, STRATEGIES


def get_strategy(name: str = "default", cpu_devices: int = 0) -> tf.distribute.Strategy:
    """Returns the tf.distribute strategy named by `--strategy`.

    `cpu_devices > 1` splits the (first) physical CPU into that many logical devices before the
    runtime starts; `mirrored` then mirrors over them when no GPU is present.
    """
    if name not in STRATEGIES:
        raise ValueError(f"--strategy={name!r}: choose one of {STRATEGIES}")
    if cpu_devices and cpu_devices > 1:
        cpus = tf.config.list_physical_devices("CPU")
        try:
            tf.config.set_logical_device_configuration(
                cpus[0], [tf.config.LogicalDeviceConfiguration()] * cpu_devices)
        except RuntimeError:
            have = len(tf.config.list_logical_devices("CPU"))
            if have != cpu_devices:
                raise RuntimeError(
                    f"--cpu_devices={cpu_devices}: TensorFlow was already initialised with {have} "
                    f"logical CPU device(s); call get_strategy before any other TensorFlow op.")
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        if tf.config.list_logical_devices("GPU"):
            return tf.distribute.MirroredStrategy()
        devices = [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices)
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def set_cpu_threads(intra_op: int = 0, inter_op: int = 0) -> tuple[int, int]:
    """Sets TensorFlow's thread pools (`--intra_op_threads`, `--inter_op_threads`; 0 leaves
    TensorFlow's choice, one thread per core in each pool). Takes effect only before the runtime
    starts (the first op); a process where TensorFlow already runs with other values (a test, a
    notebook) keeps them, with a warning. Returns the (intra, inter) values now in force.

    Why it is a flag: on a 2-core CPU, a narrow network's ops are too small to share two threads
    each, and one thread per op with two ops at a time is faster: the paper-2 campaign's cGAN
    `small` step at batch 4 goes from 26 to 33-34 images/s with 1 / 2, while the UMSN and SRN
    `small` steps are slower so (benchmarks/README.md, "Issue 31", thread pools)."""
    threading = tf.config.threading
    for name, value, setter, getter in (
            ("intra_op_threads", intra_op, threading.set_intra_op_parallelism_threads,
             threading.get_intra_op_parallelism_threads),
            ("inter_op_threads", inter_op, threading.set_inter_op_parallelism_threads,
             threading.get_inter_op_parallelism_threads)):
        if value < 0:
            raise ValueError(f"--{name}={value}: give a thread count, or 0 for TensorFlow's "
                             f"default")
        if not value or getter() == value:
            continue
        try:
            setter(value)
        except RuntimeError:
            logging.warning("--%s=%d ignored: TensorFlow already runs in this process with %d "
                            "(set it before the first TensorFlow op, e.g. on the command line)",
                            name, value, getter())
    return (threading.get_intra_op_parallelism_threads(),
            threading.get_inter_op_parallelism_threads())


def is_chief(tf_config: str | None = None) -> bool:
    """Whether this process is the one that writes checkpoints, TensorBoard events and flags.txt.

    Read from `TF_CONFIG` (the JSON `MultiWorkerMirroredStrategy` reads): the `chief` task, or
    worker 0 when the cluster has no chief. Without a cluster (one machine, `mirrored`, `tpu`)
    the process is the chief.
    """
    raw = os.environ.get("TF_CONFIG", "") if tf_config is None else tf_config
    if not raw:
        return True
    try:
        spec = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ValueError(f"TF_CONFIG is not JSON ({e}): set it to "
                         f'{{"cluster": {{"worker": ["host:port", ...]}}, '
                         f'"task": {{"type": "worker", "index": 0}}}}') from e
    cluster, task = spec.get("cluster") or {}, spec.get("task") or {}
    if not cluster or not task:
        return True
    if task.get("type") == "chief":
        return True
    return task.get("type") == "worker" and int(task.get("index", 0)) == 0 and "chief" not in cluster


def distribute_per_worker(strategy: tf.distribute.Strategy, global_batch: int,
                          make_dataset: Callable[[int, int, int], tf.data.Dataset]):
    """`strategy.distribute_datasets_from_function`: each worker builds its own input pipeline.

    `make_dataset(per_replica_batch, pipeline_id, num_pipelines)` must return a dataset batched
    per replica that reads shard `pipeline_id` of `num_pipelines` (e.g. `make_dataset(...,
    shard=(num_pipelines, pipeline_id))`) with a seed that differs per pipeline, so workers see
    different examples. With one worker this is one pipeline over all the data; the global batch
    (`--batch_size`) is always split evenly over all replicas of all workers.
    """
    replicas = strategy.num_replicas_in_sync
    if global_batch % replicas:
        raise ValueError(f"--batch_size={global_batch} is not divisible by the {replicas} replicas "
                         f"of the strategy: use a multiple of {replicas}")

    def fn(ctx: tf.distribute.InputContext):
        return make_dataset(ctx.get_per_replica_batch_size(global_batch), ctx.input_pipeline_id,
                            ctx.num_input_pipelines)

    return strategy.distribute_datasets_from_function(fn)


def pipeline_seed(seed: int, start: int, pipeline_id: int = 0, num_pipelines: int = 1,
                  seeds_per_pipeline: int = 1) -> int:
    """The seed of input pipeline `pipeline_id` of `num_pipelines` for a run (re)started at step
    `start`: `(seed + start) * num_pipelines + seeds_per_pipeline * pipeline_id`. A resumed run
    (start > 0) draws new crops, kernels and noise instead of replaying its first batches; a
    pipeline that uses several seeds (paper 1's CycleGAN: one per domain) takes
    `seeds_per_pipeline` of them."""
    return (int(seed) + int(start)) * int(num_pipelines) + int(seeds_per_pipeline) * int(pipeline_id)


def reseeded_dataset(strategy: tf.distribute.Strategy, config,
                     make_dataset: Callable[[int, int, tuple | None], tf.data.Dataset], *,
                     seeds_per_pipeline: int = 1) -> Callable[[int], object]:
    """The `dataset` argument of `train` every trainer shares: a function of the restored step
    `start` returning `distribute_per_worker(strategy, --batch_size, ...)` whose workers build
    `make_dataset(per_replica_batch, seed, shard)` with `seed = pipeline_seed(--seed, start,
    ...)` and `shard` (num_pipelines, pipeline_id), None with one pipeline."""
    def dataset(start):
        def worker_dataset(per_replica_batch, pipeline_id, num_pipelines):
            return make_dataset(
                per_replica_batch,
                pipeline_seed(config.seed, start, pipeline_id, num_pipelines, seeds_per_pipeline),
                (num_pipelines, pipeline_id) if num_pipelines > 1 else None)
        return distribute_per_worker(strategy, config.batch_size, worker_dataset)
    return dataset


def set_precision(policy: str = "none") -> str:
    """Sets Keras's global dtype policy; returns the resolved name ("float32" for none).

    `auto`: mixed_float16 on a GPU; on a CPU mixed_bfloat16 where it computes bfloat16 natively
    (`common.hardware.cpu_bfloat16_support`), else float32. An explicit mixed_bfloat16 on a CPU without bfloat16
    instructions is kept but warned about: it runs several times slower than float32.
    """
    if policy not in PRECISIONS:
        raise ValueError(f"--mixed_precision={policy!r}: choose one of {PRECISIONS}")
    gpu = bool(tf.config.list_physical_devices("GPU"))
    native_bf16 = None if gpu else hardware.cpu_bfloat16_support()
    if policy == "auto":
        policy = "mixed_float16" if gpu else ("none" if native_bf16 is False else "mixed_bfloat16")
        build = ("this TensorFlow is a CPU-only build (tensorflow-cpu): install the GPU one with "
                 "pip install -e \".[gpu]\"" if not tf.test.is_built_with_cuda() else
                 "TensorFlow has CUDA but sees no GPU: check nvidia-smi and "
                 "CUDA_VISIBLE_DEVICES")
        if policy == "mixed_bfloat16":
            logging.warning("--mixed_precision=auto found no GPU: training in mixed_bfloat16 on "
                            "the CPU; %s.", build)
        elif not gpu:
            logging.warning("--mixed_precision=auto found no GPU and a CPU without bfloat16 "
                            "instructions (no amx_bf16/avx512_bf16 in /proc/cpuinfo): training in "
                            "float32; %s.", build)
    elif policy == "mixed_bfloat16" and native_bf16 is False:
        logging.warning("--mixed_precision=mixed_bfloat16 on a CPU without bfloat16 instructions "
                        "(no amx_bf16/avx512_bf16 in /proc/cpuinfo): TensorFlow emulates them, "
                        "several times slower than float32. Use --mixed_precision=auto (float32 "
                        "here) or none.")
    resolved = "float32" if policy == "none" else policy
    keras.mixed_precision.set_global_policy(resolved)
    return resolved


def make_optimizer(learning_rate, policy: str | None = None, **adam_kwargs) -> keras.optimizers.Optimizer:
    """Adam; under mixed_float16 wrapped in a LossScaleOptimizer (float16 needs loss scaling).

    In the train step use `optimizer.scale_loss(loss)` before taking gradients: it is the identity
    for plain optimizers and scales for the loss-scale optimizer, whose `apply` unscales.
    """
    policy = policy or keras.mixed_precision.global_policy().name
    optimizer = keras.optimizers.Adam(learning_rate=learning_rate, **adam_kwargs)
    if policy == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def make_distributed_step(strategy: tf.distribute.Strategy,
                          replica_step: Callable[[Mapping], Mapping[str, tf.Tensor]]):
    """Wraps a per-replica step into a `tf.function` returning replica-averaged scalars.

    `replica_step(batch)` runs on each replica on its share of the global batch. Gradients applied
    through an optimizer created in `strategy.scope()` are summed over replicas, so the loss used for
    gradients must be the replica's mean loss divided by `num_replicas_in_sync` (see
    `replica_loss`); the returned logging values are the replica means of what it returns.
    """

    @tf.function
    def step(batch):
        per_replica = strategy.run(replica_step, args=(batch,))
        return {k: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None)
                for k, v in per_replica.items()}

    return step


def replica_loss(loss: tf.Tensor) -> tf.Tensor:
    """Scales a replica's mean loss so that summed gradients over replicas equal the global mean.

    Call it inside the `GradientTape` block: the division must be recorded to be differentiated.
    """
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return loss / tf.cast(replicas, loss.dtype)


def set_seed(seed: int) -> None:
    """Seeds Python, NumPy, TensorFlow and Keras."""
    keras.utils.set_random_seed(int(seed))
