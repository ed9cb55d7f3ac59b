"""Stage 1: train the CycleGAN (G: clear -> blurred, F: blurred -> clear) on unpaired faces.

    python -m paper1_cyclegan_srn.train_cyclegan \
        --flagfile=paper1_cyclegan_srn/configs/cyclegan.flags --workdir=runs/p1_cyclegan

Paper Sec. 3.1 / 5: adversarial (Eq. 1) + cycle consistency (Eq. 2, lambda 10 each way) losses,
batch 4, 70 epochs, Adam 2e-4 (beta1 0.5), a 50-image history pool; the rate is constant and
then decays linearly to 0 (CycleGAN reference schedule). One step = one update of G and F together
and one update of D_X and D_Y together (on pooled fakes), as in the reference implementation.
"""
from __future__ import annotations

from absl import flags, logging
import keras
import tensorflow as tf

from common import cli, metrics, pipeline, shared_flags
from common.train import distribute, flags as train_flags, trainer as training
from paper1_cyclegan_srn import cyclegan, inputs, losses, spec
from paper1_cyclegan_srn.image_pool import ImagePool


def define_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
    """The common trainer flags and stage 1's (idempotent)."""
    train_flags.define_common_flags(fv)
    if "clear_data" in fv:
        return
    d = dict(flag_values=fv)
    flags.DEFINE_string("clear_data", None, "Domain X (clear faces): TFRecord glob with image/sharp "
                        "or a folder of images.", **d)
    flags.DEFINE_string("blurred_data", None, "Domain Y (blurred faces): TFRecord glob with "
                        "image/blurred, or a folder of sharp faces blurred with --blur_kernels.", **d)
    shared_flags.define_kernel_flags(fv, blur_kernels=None, num_kernels=16, kernel_sizes="7:15",
                                     help_extra="used when --blurred_data is a folder")
    shared_flags.define_noise_flags(fv, 0.0)
    shared_flags.define_quantize_flag(fv)
    shared_flags.define_resize_flag(fv)
    shared_flags.define_crop_flag(fv, 256)
    flags.DEFINE_enum("generator", "resnet_9blocks", list(cyclegan.GENERATOR_VARIANTS),
                      "Generator variant (9 residual blocks at 256 px, 6 at 128 px).", **d)
    flags.DEFINE_enum("discriminator", "patchgan_70", list(cyclegan.DISCRIMINATOR_VARIANTS),
                      "Discriminator variant.", **d)
    flags.DEFINE_enum("generator_upsample", "transpose", list(cyclegan.UPSAMPLE_MODES),
                      "The generators' u-layers: transpose (the paper's stride-2 transposed "
                      "convolutions) or resize (x2 nearest + 3x3 conv: no checkerboard texture; "
                      "our option, see cyclegan.py).", **d)
    flags.DEFINE_enum("gan_mode", "lsgan", list(losses.GAN_MODES),
                      "Adversarial loss: lsgan (reference code) or bce (Eq. 1 as written).", **d)
    flags.DEFINE_float("lambda_cycle", 10.0, "Weight of each direction of the cycle loss (Eq. 2).", **d)
    flags.DEFINE_float("lambda_identity", 0.0, "Identity loss weight, relative to lambda_cycle "
                       "(CycleGAN's 0.5; the paper uses Eq. 1 + 2 only, so 0).", **d)
    flags.DEFINE_float("cycle_noise_sigma", 0.0, "Std of Gaussian noise (in [-1, 1] units) added to "
                       "G(x) and F(y) before the other generator reconstructs them in the cycle "
                       "loss: blocks the low-amplitude code CycleGAN otherwise hides in its "
                       "outputs (Chu et al. 2017, 'CycleGAN, a Master of Steganography'). The "
                       "adversarial losses see the clean outputs. 0 (the paper): none.", **d)
    flags.DEFINE_integer("pool_size", 50, "History pool of generated images (0 disables).", **d)
    shared_flags.define_adam_flags(fv, 2e-4, 0.5)
    flags.DEFINE_integer("decay_start_step", 0, "Constant rate until this step, then linear decay "
                         "to 0 at --num_steps (0: half of --num_steps).", **d)
    flags.DEFINE_integer("eval_images", 4, "Images in the fixed batch used for TensorBoard grids "
                         "and the cycle-PSNR eval scalar.", **d)


@keras.saving.register_keras_serializable(package="paper1")
class ConstantThenLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """lr(step) = base for step < decay_start, then base * (total - step) / (total - decay_start)."""

    def __init__(self, base, decay_start, total):
        self.base, self.decay_start, self.total = float(base), int(decay_start), int(total)

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        span = max(self.total - self.decay_start, 1)
        frac = keras.ops.clip((self.total - step) / span, 0.0, 1.0)
        return self.base * keras.ops.where(step < self.decay_start, 1.0, frac)

    def get_config(self):
        return {"base": self.base, "decay_start": self.decay_start, "total": self.total}


def build_generator(config, name, image_size=None):
    """G ("g_net") or F ("f_net") as a stage-1 run's flags (or its flags.txt) describe it."""
    return cyclegan.build_generator(
        config.generator, name=name, image_size=image_size,
        upsample=getattr(config, "generator_upsample", "transpose"))  # older workdirs: the paper's


def build_models(config, image_size=None):
    """(G, F, D_X, D_Y) from the parsed flags."""
    g = build_generator(config, "g_net", image_size)
    f = build_generator(config, "f_net", image_size)
    d_x = cyclegan.build_discriminator(config.discriminator, name="d_x", image_size=image_size)
    d_y = cyclegan.build_discriminator(config.discriminator, name="d_y", image_size=image_size)
    return g, f, d_x, d_y


def make_unpaired_dataset(config, training=True, batch_size=None, seed=None, shard=None):
    """Zipped {"x": clear, "y": blurred} batches in [0,1]; ``shard``: (num_shards, index) of
    both domains (one worker's pipeline)."""
    batch = batch_size or config.batch_size
    seed = config.seed if seed is None else seed
    kernels = shared_flags.kernel_bank(config)
    dx = inputs.domain_dataset(config.clear_data, "sharp", batch, config.crop_size,
                               resize=config.resize, training=training, seed=seed,
                               flag_name="--clear_data", shard=shard)
    dy = inputs.domain_dataset(config.blurred_data, "blurred", batch, config.crop_size,
                               kernels=kernels, noise_sigma=config.noise_sigma,
                               resize=config.resize, training=training, seed=seed + 1,
                               flag_name="--blurred_data", shard=shard,
                               quantize=config.quantize_blur)
    return tf.data.Dataset.zip((dx, dy)).map(lambda x, y: {"x": x, "y": y})


class CycleGANTrainer(training.Trainer):
    """G, F, D_X, D_Y, their two optimizers and the history pools (Eq. 1 + 2)."""

    def __init__(self, config, strategy=None):
        super().__init__(config, strategy)
        size = config.crop_size
        with self.strategy.scope():
            self.g, self.f, self.d_x, self.d_y = build_models(config, image_size=size)
            decay_start = config.decay_start_step or config.num_steps // 2
            schedule = train_flags.paper_schedule_or_rate(
                config, ConstantThenLinearDecay(config.learning_rate, decay_start,
                                                config.num_steps), config.learning_rate)
            self.gen_optimizer = distribute.make_optimizer(schedule, beta_1=config.beta_1)
            self.disc_optimizer = distribute.make_optimizer(schedule, beta_1=config.beta_1)
            self.gen_vars = self.g.trainable_variables + self.f.trainable_variables
            self.disc_vars = self.d_x.trainable_variables + self.d_y.trainable_variables
            self.gen_optimizer.build(self.gen_vars)
            self.disc_optimizer.build(self.disc_vars)
        pool_size = config.pool_size
        if self.strategy.num_replicas_in_sync > 1 and pool_size:
            logging.warning("The image pool is per process; with %d replicas it is disabled.",
                            self.strategy.num_replicas_in_sync)
            pool_size = 0
        self.pool_x = ImagePool(pool_size, (size, size, 3), seed=config.seed)
        self.pool_y = ImagePool(pool_size, (size, size, 3), seed=config.seed + 1)

    def trackables(self):
        return dict(g_net=self.g, f_net=self.f, d_x=self.d_x, d_y=self.d_y,
                    gen_optimizer=self.gen_optimizer, disc_optimizer=self.disc_optimizer,
                    pool_x=self.pool_x, pool_y=self.pool_y)

    def _cycle_noise(self, image):
        sigma = self.config.cycle_noise_sigma
        if sigma <= 0:
            return image
        return image + tf.random.normal(tf.shape(image), stddev=sigma, dtype=image.dtype)

    def replica_step(self, batch):
        c = self.config
        x, y = inputs.to_signed(batch["x"]), inputs.to_signed(batch["y"])
        with tf.GradientTape() as tape:
            fake_y = self.g(x, training=True)          # G(x): clear -> blurred
            fake_x = self.f(y, training=True)          # F(y): blurred -> clear
            cycled_x = self.f(self._cycle_noise(fake_y), training=True)   # F(G(x))
            cycled_y = self.g(self._cycle_noise(fake_x), training=True)   # G(F(y))
            g_adv = losses.generator_adversarial_loss(self.d_y(fake_y), c.gan_mode)
            f_adv = losses.generator_adversarial_loss(self.d_x(fake_x), c.gan_mode)
            cyc_x = losses.cycle_loss(x, cycled_x)
            cyc_y = losses.cycle_loss(y, cycled_y)
            total = g_adv + f_adv + c.lambda_cycle * (cyc_x + cyc_y)
            idt = tf.constant(0.0)
            if c.lambda_identity > 0:
                idt = (losses.identity_loss(y, self.g(y, training=True))
                       + losses.identity_loss(x, self.f(x, training=True)))
                total = total + c.lambda_cycle * c.lambda_identity * idt
            scaled = self.gen_optimizer.scale_loss(distribute.replica_loss(total))
        grads = tape.gradient(scaled, self.gen_vars)
        self.gen_optimizer.apply(grads, self.gen_vars)

        pooled_y = tf.stop_gradient(self.pool_y.query(fake_y))
        pooled_x = tf.stop_gradient(self.pool_x.query(fake_x))
        with tf.GradientTape() as tape:
            d_y_loss = losses.discriminator_loss(self.d_y(y, training=True),
                                                 self.d_y(pooled_y, training=True), c.gan_mode)
            d_x_loss = losses.discriminator_loss(self.d_x(x, training=True),
                                                 self.d_x(pooled_x, training=True), c.gan_mode)
            d_total = d_x_loss + d_y_loss
            scaled = self.disc_optimizer.scale_loss(distribute.replica_loss(d_total))
        grads = tape.gradient(scaled, self.disc_vars)
        self.disc_optimizer.apply(grads, self.disc_vars)
        return {"g_total": total, "g_adv": g_adv, "f_adv": f_adv, "cycle_x": cyc_x,
                "cycle_y": cyc_y, "identity": idt, "d_total": d_total, "d_x": d_x_loss,
                "d_y": d_y_loss}

    def translate(self, x01, y01):
        """Fixed-batch outputs in [0,1]: G(X), F(G(X)), F(Y), G(F(Y))."""
        x, y = inputs.to_signed(x01), inputs.to_signed(y01)
        gx = self.g(x, training=False)
        fy = self.f(y, training=False)
        return (inputs.to_unit(gx), inputs.to_unit(self.f(gx, training=False)),
                inputs.to_unit(fy), inputs.to_unit(self.g(fy, training=False)))

    def samples(self, batch):
        gx, fgx, fy, gfy = self.translate(batch["x"], batch["y"])
        return {"X | G(X) | F(G(X))": training.side_by_side(batch["x"], gx, fgx),
                "Y | F(Y) | G(F(Y))": training.side_by_side(batch["y"], fy, gfy)}


def validate_flags(config):
    """Checks run before the workdir is written (`common.train.trainer.start_run`)."""
    for source, flag in ((config.clear_data, "--clear_data"),
                         (config.blurred_data, "--blurred_data")):
        pipeline.check_crop(source, config.crop_size, shared_flags.parse_resize(config.resize),
                            "--crop_size", flag)


def train_and_evaluate(workdir: str, config) -> int:
    """Trains stage 1 into `workdir`; returns the final step."""
    strategy, policy = training.start_run(config, workdir, validate=validate_flags,
                                          paper=spec.NAME, stage="cyclegan")
    logging.info("CycleGAN: strategy %s, precision %s", type(strategy).__name__, policy)
    trainer = CycleGANTrainer(config, strategy)
    fixed = next(iter(make_unpaired_dataset(config, training=False, batch_size=config.eval_images,
                                            seed=config.seed)))

    def eval_fn(step):
        gx, fgx, fy, gfy = trainer.translate(fixed["x"], fixed["y"])
        return {"cycle_psnr_x": float(tf.reduce_mean(metrics.psnr_tf(fixed["x"], fgx))),
                "cycle_psnr_y": float(tf.reduce_mean(metrics.psnr_tf(fixed["y"], gfy))),
                "psnr_x_vs_gx": float(tf.reduce_mean(metrics.psnr_tf(fixed["x"], gx)))}

    dataset = distribute.reseeded_dataset(  # per worker: own shard of both domains, two seeds
        strategy, config, lambda batch, seed, shard: make_unpaired_dataset(
            config, batch_size=batch, seed=seed, shard=shard), seeds_per_pipeline=2)

    return training.train(workdir, config, trainer, dataset, sample_batch=fixed,
                             eval_fn=eval_fn)


if __name__ == "__main__":
    cli.run_main(train_and_evaluate, define_flags)
