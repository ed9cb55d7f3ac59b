"""Stage 3: train SRN on the CycleGAN-labelled pairs (input = G(clear), target = clear).

    python -m paper1_cyclegan_srn.train_srn \
        --flagfile=paper1_cyclegan_srn/configs/srn.flags --workdir=runs/p1_srn

Paper Sec. 3.2 / 5: the multi-scale Euclidean loss (Eq. 3), batch 16, 150 epochs. Crop 256, Adam
1e-4 with polynomial decay (power 0.3) to 0 are the SRN code's settings (Tao et al.). The same
trainer on GoPro pairs is Table 1's "Tao et al." row (`configs/table1_tao_srn.flags`); given a
folder of sharp faces and `--blur_kernels`, it trains on pairs blurred on the fly.
"""
from __future__ import annotations

from absl import flags, logging
import keras
import tensorflow as tf

from common import cli, metrics, pipeline, shared_flags
from common.train import checkpoints, distribute, flags as train_flags, trainer as training
from paper1_cyclegan_srn import inputs, losses, spec, srn


def define_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
    """The common trainer flags and SRN's (idempotent)."""
    train_flags.define_common_flags(fv)
    if "train_data" in fv:
        return
    d = dict(flag_values=fv)
    flags.DEFINE_string("train_data", None, "Pairs: TFRecord glob (image/sharp + image/blurred), "
                        "or a folder of sharp faces blurred on the fly with --blur_kernels.", **d)
    flags.DEFINE_string("eval_data", None, "Held-out pairs for the eval scalars (same forms).", **d)
    shared_flags.define_kernel_flags(fv, blur_kernels=None, num_kernels=16, kernel_sizes="7:15",
                                     help_extra="for folder sources")
    shared_flags.define_noise_flags(fv, 0.0)
    shared_flags.define_quantize_flag(fv)
    shared_flags.define_resize_flag(fv)
    shared_flags.define_crop_flag(fv, 256)
    flags.DEFINE_integer("eval_crop", 0, "Centre crop for evaluation (0: whole images).", **d)
    flags.DEFINE_integer("eval_batches", 8, "Batches of --eval_data per evaluation (0: all).", **d)
    flags.DEFINE_enum("variant", "paper", list(srn.VARIANTS), "SRN size.", **d)
    flags.DEFINE_enum("recurrent", "lstm", list(srn.RECURRENT_MODES),
                      "Bottleneck recurrence: ConvLSTM across scales, or none.", **d)
    flags.DEFINE_bool("global_residual", False, "Each scale outputs its blurred input plus a "
                      "zero-initialised correction (our CPU departure; the paper's SRN: false).",
                      **d)
    flags.DEFINE_string("scale_weights", "1,1,1", "k_i of Eq. 3, coarse to fine.", **d)
    train_flags.define_remat_flag(fv, ("none", "blocks"), "SRN: blocks = each ResBlock keeps "
                                  "only its input and is recomputed in backprop")
    shared_flags.define_adam_flags(fv, 1e-4, 0.9, "decays polynomially to 0 at --num_steps")
    flags.DEFINE_float("lr_power", 0.3, "Polynomial decay power (to 0 at --num_steps; with "
                       "--lr_schedule=cosine the shared schedule replaces it).", **d)
    flags.DEFINE_string("init_model", None, "Start the SRN from an exported SRN .keras file "
                        "(python -m paper1_cyclegan_srn.export, or weights/srn_small.keras) "
                        "instead of random weights; a workdir holding checkpoints resumes from "
                        "them instead.", **d)


def build_model(config, image_size=None):
    return srn.build_srn(config.variant, recurrent=config.recurrent, image_size=image_size,
                         global_residual=bool(getattr(config, "global_residual", False)))


def load_init_model(path, model, config):
    """Copies the SRN of an exported `srn.SRNDeblurrer` file (--init_model) into the built
    `model`, or a one-line error."""
    src = checkpoints.load_init_model(path, srn.SRNDeblurrer, "a paper-1 SRN",
                                      "python -m paper1_cyclegan_srn.export")
    if src.global_residual != bool(getattr(config, "global_residual", False)):
        raise ValueError(f"--init_model={path} was trained with global_residual="
                         f"{src.global_residual}: pass --global_residual={src.global_residual}")
    checkpoints.copy_init_weights(src.srn, model, path, f"--variant={config.variant} "
                                  f"--recurrent={config.recurrent}")
    logging.info("SRN initialised from %s", path)


def make_train_dataset(config, seed=None, batch_size=None, shard=None):
    return inputs.paired_dataset(config.train_data, batch_size or config.batch_size,
                                 config.crop_size, kernels=shared_flags.kernel_bank(config),
                                 noise_sigma=shared_flags.noise_level(config), resize=config.resize,
                                 seed=config.seed if seed is None else seed, shard=shard,
                                 quantize=config.quantize_blur)


def make_eval_dataset(config, source=None, batch_size=None):
    return inputs.paired_dataset(source or config.eval_data, batch_size or config.batch_size,
                                 config.eval_crop or None,
                                 kernels=shared_flags.kernel_bank(config),
                                 noise_sigma=shared_flags.noise_level(config), resize=config.resize,
                                 training=False, seed=config.seed, repeat=False,
                                 flag_name="--eval_data", quantize=config.quantize_blur)


def restore_fn(model):
    """A tf.function returning the full-size restored image, float32 [B,H,W,3] clipped to [0,1].

    Traced once per input shape: SRN's scale pyramid needs a static H and W (reduce_retracing
    would turn a second image size into [B, H, None, 3])."""
    @tf.function(reduce_retracing=False)
    def run(blurred):
        return tf.clip_by_value(tf.cast(model(blurred, training=False)[-1], tf.float32), 0.0, 1.0)
    return run


def evaluate_pairs(run, dataset, max_batches=0):
    """Mean PSNR/SSIM of restored and of blurred inputs against the sharp targets."""
    def batches():
        for i, batch in enumerate(dataset):
            if max_batches and i >= max_batches:
                break
            yield batch["sharp"], run(batch["blurred"]), batch["blurred"]
    return metrics.restoration_scalars(batches())


class SRNTrainer(training.Trainer):
    """SRN and its Adam (polynomial decay) on {"blurred", "sharp"} pairs, Eq. 3."""

    def __init__(self, config, strategy=None):
        super().__init__(config, strategy)
        self.weights = shared_flags.parse_floats(config.scale_weights,
                                                 srn.VARIANTS[config.variant]["num_scales"])
        with self.strategy.scope():
            self.model = build_model(config, image_size=config.crop_size)
            self.model.remat = getattr(config, "remat", "none") == "blocks"
            if getattr(config, "init_model", None):
                load_init_model(config.init_model, self.model, config)
            schedule = train_flags.paper_schedule_or_rate(
                config, keras.optimizers.schedules.PolynomialDecay(
                    config.learning_rate, max(config.num_steps, 1), end_learning_rate=0.0,
                    power=config.lr_power), config.learning_rate)
            self.optimizer = distribute.make_optimizer(schedule, beta_1=config.beta_1)
            self.optimizer.build(self.model.trainable_variables)
        self.restore = restore_fn(self.model)

    def trackables(self):
        return dict(srn=self.model, optimizer=self.optimizer)

    def replica_step(self, batch):
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            preds = self.model(batch["blurred"], training=True)
            total, per_scale = losses.multiscale_euclidean_loss(batch["sharp"], preds, self.weights)
            scaled = self.optimizer.scale_loss(distribute.replica_loss(total))
        grads = tape.gradient(scaled, variables)
        self.optimizer.apply(grads, variables)
        out = {"loss": total}
        for i, v in enumerate(per_scale):
            out[f"mse_scale{len(per_scale) - 1 - i}"] = v  # scale0 = full resolution
        return out

    def samples(self, batch):
        return {"blurred | restored | sharp": training.side_by_side(
            batch["blurred"], self.restore(batch["blurred"]), batch["sharp"])}


def validate_flags(config):
    """Checks run before the workdir is written (`common.train.trainer.start_run`)."""
    pipeline.check_crop(config.train_data, config.crop_size,
                        shared_flags.parse_resize(config.resize), "--crop_size")


def train_and_evaluate(workdir: str, config) -> int:
    """Trains SRN into `workdir`; returns the final step."""
    strategy, policy = training.start_run(config, workdir, validate=validate_flags,
                                          paper=spec.NAME, stage="srn")
    logging.info("SRN: strategy %s, precision %s", type(strategy).__name__, policy)
    trainer = SRNTrainer(config, strategy)

    dataset = distribute.reseeded_dataset(  # one input pipeline per worker: own shard and seed
        strategy, config, lambda batch, seed, shard: make_train_dataset(
            config, seed=seed, batch_size=batch, shard=shard))

    fixed = next(iter(make_eval_dataset(config, source=config.eval_data or config.train_data,
                                        batch_size=4)))
    eval_fn = None
    if config.eval_data:
        def eval_fn(step):
            res = evaluate_pairs(trainer.restore, make_eval_dataset(config), config.eval_batches)
            logging.info("eval at step %d: %s", step, res)
            return res

    return training.train(workdir, config, trainer, dataset, sample_batch=fixed,
                             eval_batch=fixed if config.eval_data else None, eval_fn=eval_fn)


if __name__ == "__main__":
    cli.run_main(train_and_evaluate, define_flags)
