"""Stage 3: train SRN on the CycleGAN-labelled pairs (input = G(clear), target = clear).

    python -m paper1_cyclegan_srn.train_srn \
        --flagfile=paper1_cyclegan_srn/configs/srn.flags --workdir=runs/p1_srn

Paper Sec. 3.2 / 5: the multi-scale Euclidean loss (Eq. 3), batch 16, 150 epochs. Crop 256, Adam
1e-4 with polynomial decay (power 0.3) to 0 are the SRN code's settings (Tao et al.). The same
trainer, given kernel-blurred pairs (`--train_data=<folder> --blur_kernels=...`), trains the
"SRN on synthetic (GoPro-style) pairs" baseline of Table 1.
"""
from __future__ import annotations

from absl import flags, logging
import keras
import numpy as np
import tensorflow as tf

from common import metrics, pipeline, train_utils
from paper1_cyclegan_srn import inputs, losses, srn


def define_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
    if "train_data" in fv:
        return
    d = dict(flag_values=fv)
    flags.DEFINE_string("train_data", None, "Pairs: TFRecord glob (image/sharp + image/blurred), "
                        "or a folder of sharp faces blurred on the fly with --blur_kernels.", **d)
    flags.DEFINE_string("eval_data", None, "Held-out pairs for the eval scalars (same forms).", **d)
    flags.DEFINE_string("blur_kernels", None, "Kernel banks for folder sources (comma-separated "
                        ".npz/.mat, or camera_shake/markov/gaussian).", **d)
    flags.DEFINE_float("noise_sigma", 0.0, "Noise added to on-the-fly blurred images.", **d)
    flags.DEFINE_string("resize", None, "Optional H,W resize before cropping.", **d)
    flags.DEFINE_integer("crop_size", 256, "Training crop (square).", **d)
    flags.DEFINE_integer("eval_crop", 0, "Centre crop for evaluation (0: whole images).", **d)
    flags.DEFINE_integer("eval_batches", 8, "Batches of --eval_data per evaluation (0: all).", **d)
    flags.DEFINE_enum("variant", "paper", list(srn.VARIANTS), "SRN size.", **d)
    flags.DEFINE_enum("recurrent", "lstm", list(srn.RECURRENT_MODES),
                      "Bottleneck recurrence: ConvLSTM across scales, or none.", **d)
    flags.DEFINE_string("scale_weights", "1,1,1", "k_i of Eq. 3, coarse to fine.", **d)
    flags.DEFINE_float("learning_rate", 1e-4, "Adam learning rate.", **d)
    flags.DEFINE_float("lr_power", 0.3, "Polynomial decay power (to 0 at --num_steps).", **d)


def all_define_fns():
    return [train_utils.define_common_flags, define_flags]


def build_model(config, image_size=None):
    return srn.build_srn(config.variant, recurrent=config.recurrent, image_size=image_size)


def make_train_dataset(config, seed=None, batch_size=None, shard=None):
    return inputs.paired_dataset(config.train_data, batch_size or config.batch_size,
                                 config.crop_size,
                                 kernels=inputs.load_kernels(config.blur_kernels),
                                 noise_sigma=config.noise_sigma, resize=config.resize,
                                 seed=config.seed if seed is None else seed, shard=shard)


def make_eval_dataset(config, source=None, batch_size=None):
    return inputs.paired_dataset(source or config.eval_data, batch_size or config.batch_size,
                                 config.eval_crop or None,
                                 kernels=inputs.load_kernels(config.blur_kernels),
                                 noise_sigma=config.noise_sigma, resize=config.resize,
                                 training=False, seed=config.seed, repeat=False,
                                 flag_name="--eval_data")


def restore_fn(model):
    """A tf.function returning the full-size restored image, float32 [B,H,W,3] clipped to [0,1]."""
    @tf.function(reduce_retracing=True)
    def run(blurred):
        return tf.clip_by_value(tf.cast(model(blurred, training=False)[-1], tf.float32), 0.0, 1.0)
    return run


def evaluate_pairs(run, dataset, max_batches=0):
    """Mean PSNR/SSIM of restored and of blurred inputs against the sharp targets."""
    sums = {"psnr": [], "ssim": [], "blurred_psnr": [], "blurred_ssim": []}
    for i, batch in enumerate(dataset):
        if max_batches and i >= max_batches:
            break
        restored = run(batch["blurred"])
        sharp, blurred = batch["sharp"], batch["blurred"]
        sums["psnr"].extend(np.asarray(metrics.psnr_tf(sharp, restored)).tolist())
        sums["ssim"].extend(np.asarray(metrics.ssim_tf(sharp, restored)).tolist())
        sums["blurred_psnr"].extend(np.asarray(metrics.psnr_tf(sharp, blurred)).tolist())
        sums["blurred_ssim"].extend(np.asarray(metrics.ssim_tf(sharp, blurred)).tolist())
    if not sums["psnr"]:
        raise ValueError("evaluation data yielded no batch")
    out = {k: float(np.mean(v)) for k, v in sums.items()}
    out["num_images"] = len(sums["psnr"])
    return out


class SRNTrainer:
    def __init__(self, config, strategy=None):
        self.config = config
        self.strategy = strategy or tf.distribute.get_strategy()
        self.weights = inputs.parse_floats(config.scale_weights,
                                           srn.VARIANTS[config.variant]["num_scales"])
        with self.strategy.scope():
            self.model = build_model(config, image_size=config.crop_size)
            schedule = keras.optimizers.schedules.PolynomialDecay(
                config.learning_rate, max(config.num_steps, 1), end_learning_rate=0.0,
                power=config.lr_power)
            self.optimizer = train_utils.make_optimizer(schedule)
            self.optimizer.build(self.model.trainable_variables)
        self.step_fn = train_utils.make_distributed_step(self.strategy, self.replica_step)

    def trackables(self):
        return dict(srn=self.model, optimizer=self.optimizer)

    def replica_step(self, batch):
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            preds = self.model(batch["blurred"], training=True)
            total, per_scale = losses.multiscale_euclidean_loss(batch["sharp"], preds, self.weights)
            scaled = self.optimizer.scale_loss(train_utils.replica_loss(total))
        lr = tf.cast(self.optimizer.learning_rate, tf.float32)
        grads = tape.gradient(scaled, variables)
        self.optimizer.apply(grads, variables)
        out = {"loss": total, "learning_rate": lr}
        for i, v in enumerate(per_scale):
            out[f"mse_scale{len(per_scale) - 1 - i}"] = v  # scale0 = full resolution
        return out


def train_and_evaluate(workdir: str, config) -> int:
    strategy, policy = train_utils.start_run(config, workdir, validate=lambda c: (
        pipeline.check_crop(c.train_data, c.crop_size, inputs._pair(c.resize), "--crop_size")))
    logging.info("SRN: strategy %s, precision %s", type(strategy).__name__, policy)
    trainer = SRNTrainer(config, strategy)
    checkpointer = train_utils.Checkpointer(workdir, config.keep_checkpoints, **trainer.trackables())
    start = checkpointer.restore_latest()

    def worker_dataset(per_replica_batch, pipeline_id, num_pipelines):
        # each worker: its own shard, its own seed (one worker: the whole data, seed + start)
        return make_train_dataset(config, seed=(config.seed + start) * num_pipelines + pipeline_id,
                                  batch_size=per_replica_batch,
                                  shard=(num_pipelines, pipeline_id) if num_pipelines > 1 else None)

    iterator = iter(train_utils.distribute_per_worker(strategy, config.batch_size, worker_dataset))
    writers = train_utils.SummaryWriters(workdir)
    run = restore_fn(trainer.model)
    eval_source = config.eval_data
    fixed = next(iter(make_eval_dataset(config, source=eval_source or config.train_data,
                                        batch_size=4)))

    def image_fn(step):
        return {"blurred | restored | sharp": inputs.side_by_side(
            fixed["blurred"], run(fixed["blurred"]), fixed["sharp"])}

    eval_fn = None
    if eval_source:
        def eval_fn(step):
            res = evaluate_pairs(run, make_eval_dataset(config), config.eval_batches)
            logging.info("eval at step %d: %s", step, res)
            return res

    step = train_utils.run_train_loop(
        train_step=trainer.step_fn, iterator=iterator, checkpointer=checkpointer, writers=writers,
        image_fn=image_fn, eval_fn=eval_fn, **train_utils.loop_intervals(config))
    writers.close()
    return step


if __name__ == "__main__":
    train_utils.run_main(train_and_evaluate, all_define_fns())
