"""Training for Chrysos, Favaro & Zafeiriou, *Motion deblurring of faces* (Sec. 3, 5.1).

Two stages, one trainer (``--stage``):

* ``hg``: the stacked hourglass alone, on still faces blurred on the fly with random camera-shake
  kernels (``--blur_kernels``, ``common.shared_flags.kernel_bank``), MSE with intermediate supervision.
* ``cgan``: G_bl + G_s (shared decoder) + D on frame-averaged pairs (PrAvg / VLA, forward and
  reverse, ``paper2_identity_cgan.data``), with the HG restored from ``--hg_workdir`` and frozen.
  Eq. 6: ``L = L_cGAN + lambda_ci L_ci + lambda_cg L_cg + lambda_p L_p + lambda_r L_r``.
  Table 4 variants: ``--nouse_hg`` ('identity-noHG'), ``--noidentity`` ('no-identity').

    python -m paper2_identity_cgan.train --flagfile=paper2_identity_cgan/configs/hg.flags --workdir=/tmp/p2_hg
    python -m paper2_identity_cgan.train --flagfile=paper2_identity_cgan/configs/cgan.flags \
        --workdir=/tmp/p2_cgan --hg_workdir=/tmp/p2_hg
"""
from __future__ import annotations

import glob
import math
import os

from absl import flags, logging
import numpy as np
import tensorflow as tf

from common import cli, metrics, pipeline, shared_flags
from common.train import checkpoints, distribute, flags as train_flags, trainer as training
from paper2_identity_cgan import data as p2data
from paper2_identity_cgan import losses, models, spec


def define_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
    """The common trainer flags and paper 2's (idempotent)."""
    train_flags.define_common_flags(fv)
    if "lambda_ci" in fv:
        return
    d = dict(flag_values=fv)
    flags.DEFINE_enum("stage", "cgan", ["hg", "cgan"], "hg: train the hourglass (first); cgan: "
                      "train G_bl/G_s/D with the frozen HG.", **d)
    flags.DEFINE_enum("variant", "paper", sorted(models.VARIANTS), "Network widths "
                      "(models.VARIANTS).", **d)
    shared_flags.define_crop_flag(fv, 256, "paper: 256; a multiple of 128")
    shared_flags.define_resize_flag(fv)
    flags.DEFINE_integer("epochs", 0, "If > 0, --num_steps = epochs * examples / batch_size "
                         "(paper: 60).", **d)
    # stage hg
    flags.DEFINE_string("train_data", None, "HG: folder of sharp faces or a TFRecord glob.", **d)
    # HG kernels: whole-exposure camera shake with >= 8 effective taps (most raw Boracchi-Foi
    # trajectories are nearly a delta; Hradis et al.'s set, which the paper used, holds visible
    # blurs); the held-out eval blur is the same family.
    shared_flags.define_kernel_flags(fv, blur_kernels="camera_shake", num_kernels=256,
                                     kernel_sizes="13:29", kernel_exposure=1.0,
                                     kernel_min_taps=8.0, help_extra="HG training blur")
    shared_flags.define_noise_flags(fv, 0.0)
    shared_flags.define_quantize_flag(fv)
    flags.DEFINE_float("hg_learning_rate", 2.5e-4, "HG Adam learning rate (Newell: 2.5e-4).", **d)
    # stage cgan
    flags.DEFINE_string("hg_workdir", None, "Workdir (or checkpoint prefix) of the trained HG; "
                        "needed with --use_hg.", **d)
    flags.DEFINE_string("train_pairs", "", "TFRecord glob of ready pairs (image/sharp + "
                        "image/blurred), or of sharp faces only (data.build --mode=sharp), then "
                        "blurred on the fly with the kernel flags; when empty pairs are built "
                        "from --train_videos / --train_stills into --pairs_dir.", **d)
    p2data.define_pair_flags(fv)  # --train_videos, --train_stills, --pair_modes, ...
    flags.DEFINE_string("pairs_dir", "", "Where built pairs go (default WORKDIR/pairs).", **d)
    flags.DEFINE_string("init_model", None, "cgan stage: start HG and G_bl from an exported "
                        "HG + G_bl .keras file (python -m paper2_identity_cgan.export, or "
                        "weights/cgan_small.keras) instead of --hg_workdir and random G_bl; G_s's "
                        "encoder and D start fresh. A workdir holding checkpoints resumes from "
                        "them instead.", **d)
    flags.DEFINE_bool("use_hg", True, "Condition G_bl on HG(I_bl) (6-channel input).", **d)
    flags.DEFINE_bool("identity", True, "Train the identity stream G_s (Eq. 5).", **d)
    shared_flags.define_adam_flags(fv, 2e-4, 0.5, "G and D, pix2pix")
    flags.DEFINE_float("lambda_adv", 1.0, "Weight of L_cGAN (Eq. 6).", **d)
    flags.DEFINE_float("lambda_ci", 100.0, "Eq. 3 intensity weight.", **d)
    flags.DEFINE_float("lambda_cg", 100.0, "Eq. 3 gradient weight.", **d)
    flags.DEFINE_float("lambda_p", 8.0, "Eq. 4 projection weight.", **d)
    flags.DEFINE_float("lambda_r", 100.0, "Eq. 5 reconstruction weight.", **d)
    # CPU-demo departures from the paper (all False / 0 = the paper; see README)
    flags.DEFINE_bool("global_residual", False, "G_bl/G_s predict a tanh correction added to the "
                      "input image (zero-initialised last layer: output = input at step 0). "
                      "False = Table 3 exactly (full image through tanh).", **d)
    flags.DEFINE_list("unet_skips", ["1", "2"], "Encoder levels (1 = full resolution .. 7 = "
                      "H/64) whose features the decoder concatenates (U-Net skips, Sec. 5.1: "
                      "'two U-net style skip connections', levels not given; 1,2 is our "
                      "reading). 1,2,3,4,5,6,7 = pix2pix's U-Net. An --init_model with fewer "
                      "levels starts the added inputs at zero (same function at step 0).", **d)
    flags.DEFINE_bool("hg_zero_init", False, "Zero-initialise the HG's heads so the HG starts as "
                      "the identity (Newell's init otherwise).", **d)
    flags.DEFINE_integer("adv_warmup_steps", 0, "cGAN: the first N steps use Eq. 6 without the "
                         "adversarial and projection terms (L1-only warm-up; D still trains).",
                         **d)
    flags.DEFINE_string("eval_data", "", "Folder of held-out still faces: periodic PSNR of the "
                        "deblurred vs blurred input on camera-shake blur.", **d)


# ----------------------------------------------------------------------------------- data ----
def build_cgan_pairs(config, workdir) -> list[str]:
    """TFRecord files of training pairs: --train_pairs, or built once into the pairs dir."""
    if config.train_pairs:
        files = sorted(glob.glob(config.train_pairs))
        if not files:
            raise FileNotFoundError(f"--train_pairs={config.train_pairs!r} matches no file")
        return files
    if not (config.train_videos or config.train_stills):
        raise ValueError("stage cgan needs --train_pairs, --train_videos or --train_stills")
    out_dir = config.pairs_dir or os.path.join(workdir, "pairs")
    existing = sorted(glob.glob(os.path.join(out_dir, "train-*-of-*.tfrecord")))
    if existing:
        return existing
    pairs = p2data.pairs_from_flags(config)
    if not pairs:
        raise ValueError("no training pair could be made from --train_videos/--train_stills "
                         "(sequences too short for the averaging windows?)")
    logging.info("built %d pairs (mean L %.1f) into %s", len(pairs),
                 np.mean([p["length"] for p in pairs]), out_dir)
    return p2data.write_pairs(out_dir, "train", pairs)


def num_examples(files) -> int:
    return sum(1 for _ in tf.data.TFRecordDataset(files))


def hg_dataset(config, seed, batch_size=None, shard=None, bank_seed=None):
    """``shard``/``batch_size``: one worker's pipeline
    (``common.train.distribute.distribute_per_worker``); the kernel bank is drawn from ``bank_seed`` (default ``seed``), the same on every worker."""
    bank = shared_flags.kernel_bank(config, seed if bank_seed is None else bank_seed)
    if not config.train_data:
        raise ValueError("stage hg needs --train_data (a folder of sharp faces or records)")
    return pipeline.make_dataset(config.train_data, batch_size or config.batch_size,
                                 crop=config.crop_size, training=True, keys=("sharp", "blurred"),
                                 resize=shared_flags.parse_resize(config.resize), kernel_bank=bank,
                                 noise_sigma=shared_flags.noise_level(config), seed=seed,
                                 shard=shard, quantize=config.quantize_blur)


# ------------------------------------------------------------------------------ trainers ----
class HGTrainer(training.Trainer):
    """Stage 1: HG on kernel-blurred faces (``hourglass_loss``)."""

    def __init__(self, config, strategy=None):
        super().__init__(config, strategy)
        with self.strategy.scope():
            self.hg = models.build_hg(config.variant, zero_init=config.hg_zero_init)
            s = config.crop_size
            self.hg(tf.zeros((1, s, s, 3)))
            self.optimizer = distribute.make_optimizer(config.hg_learning_rate)
            self.optimizer.build(self.hg.trainable_variables)

    def trackables(self):
        return {"hg": self.hg, "hg_optimizer": self.optimizer}

    def replica_step(self, batch):
        with tf.GradientTape() as tape:
            outs = self.hg.call_all(batch["blurred"], training=True)
            loss = losses.hourglass_loss(batch["sharp"], outs)
            scaled = self.optimizer.scale_loss(distribute.replica_loss(loss))
        grads = tape.gradient(scaled, self.hg.trainable_variables)
        self.optimizer.apply(grads, self.hg.trainable_variables)
        return {"hg_loss": loss,
                "psnr_hg": tf.reduce_mean(tf.image.psnr(tf.clip_by_value(outs[-1], 0, 1),
                                                        batch["sharp"], 1.0)),
                "psnr_blurred": tf.reduce_mean(tf.image.psnr(batch["blurred"], batch["sharp"],
                                                             1.0))}

    def deblur(self, blurred):
        return self.hg(blurred, training=False)

    def samples(self, batch):
        return {"blurry | HG | sharp": training.side_by_side(
            batch["blurred"], self.deblur(batch["blurred"]), batch["sharp"])}


class CGANTrainer(training.Trainer):
    """Stage 2: G_bl, G_s (shared decoder) and D with the frozen HG (Eq. 2-6)."""

    def __init__(self, config, strategy=None, restore_hg=True):
        super().__init__(config, strategy)
        s = config.crop_size
        with self.strategy.scope():
            nets = models.build_networks(config.variant, use_hg=config.use_hg,
                                         identity=config.identity,
                                         global_residual=config.global_residual,
                                         hg_zero_init=config.hg_zero_init,
                                         unet_skips=config.unet_skips)
            self.hg, self.g_bl, self.g_s, self.d = nets["hg"], nets["g_bl"], nets["g_s"], nets["d"]
            x = tf.zeros((1, s, s, 3))
            h = self.hg(x) if self.hg is not None else None
            self.g_bl(models.g_bl_input(x, h))
            if self.g_s is not None:
                self.g_s(x)
            self.d(x, x)
            self.g_vars = _unique(self.g_bl.trainable_variables
                                  + (self.g_s.encoder.trainable_variables if self.g_s else []))
            self.d_vars = self.d.trainable_variables
            self.g_optimizer = distribute.make_optimizer(config.learning_rate,
                                                          beta_1=config.beta_1)
            self.d_optimizer = distribute.make_optimizer(config.learning_rate,
                                                          beta_1=config.beta_1)
            self.g_optimizer.build(self.g_vars)
            self.d_optimizer.build(self.d_vars)
        init = None
        if getattr(config, "init_model", None):
            init = checkpoints.load_init_model(config.init_model, models.CGANDeblurrer,
                                               "a paper-2 HG + G_bl model",
                                               "python -m paper2_identity_cgan.export")
            skips = self.g_bl.decoder.skips
            settings = (f"--variant={config.variant} --use_hg={config.use_hg} "
                        f"--global_residual={config.global_residual} "
                        f"--unet_skips={','.join(map(str, skips))}")
            if init.use_hg != bool(config.use_hg):
                raise ValueError(f"--init_model={config.init_model} was trained with use_hg="
                                 f"{init.use_hg}: pass --use_hg={init.use_hg}")
            if init.global_residual != bool(config.global_residual):
                raise ValueError(f"--init_model={config.init_model} was trained with "
                                 f"global_residual={init.global_residual}: pass "
                                 f"--global_residual={init.global_residual}")
            if not set(init.unet_skips) <= set(skips):
                raise ValueError(f"--init_model={config.init_model} has U-Net skips at levels "
                                 f"{','.join(map(str, init.unet_skips))}: pass --unet_skips= "
                                 f"those levels or more")
            # added skip levels widen decoder inputs: their weights start at zero
            checkpoints.copy_init_weights(init.g_bl, self.g_bl, config.init_model, settings,
                                          widen_last_axis=init.unet_skips != skips)
            if self.hg is not None:
                checkpoints.copy_init_weights(init.hg, self.hg, config.init_model, settings)
            logging.info("HG and G_bl initialised from %s", config.init_model)
        if self.hg is not None:
            self.hg.trainable = False
            if restore_hg and init is None:
                if not config.hg_workdir:
                    raise ValueError("--use_hg needs --hg_workdir (the stage-1 workdir); or pass "
                                     "--nouse_hg for the 'identity-noHG' variant")
                path = checkpoints.restore_init(config.hg_workdir, "--hg_workdir",
                                                paper="paper2", stages=("hg",), hg=self.hg)
                logging.info("HG restored from %s (frozen)", path)

    def trackables(self):
        out = {"g_bl": self.g_bl, "d": self.d, "g_optimizer": self.g_optimizer,
               "d_optimizer": self.d_optimizer}
        if self.g_s is not None:
            out["g_s"] = self.g_s
        if self.hg is not None:
            out["hg"] = self.hg
        return out

    def _g_input(self, blurred):
        h = self.hg(blurred, training=False) if self.hg is not None else None
        return models.g_bl_input(blurred, h), h

    def replica_step(self, batch):
        c = self.config
        blurred, sharp = batch["blurred"], batch["sharp"]
        x, _ = self._g_input(blurred)
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            fake = self.g_bl(x, training=True)
            real_logits, real_feat = self.d(blurred, sharp, training=True)
            fake_logits, fake_feat = self.d(blurred, fake, training=True)
            d_loss = losses.discriminator_loss(real_logits, fake_logits)
            adv = losses.generator_adversarial_loss(fake_logits)
            ci = losses.content_intensity_loss(sharp, fake)
            cg = losses.content_gradient_loss(sharp, fake)
            proj = losses.projection_loss(fake_feat, tf.stop_gradient(real_feat))
            if self.g_s is not None:
                recon = losses.reconstruction_loss(sharp, self.g_s(sharp, training=True))
            else:
                recon = tf.constant(0.0)
            # L1-only warm-up (--adv_warmup_steps): adversarial and projection weights are 0
            warm = tf.cast(self.g_optimizer.iterations >= c.adv_warmup_steps, tf.float32)
            g_total = losses.total_generator_loss(  # Eq. 6, the one place the weights apply
                adv, ci, cg, proj, recon, lambda_ci=c.lambda_ci, lambda_cg=c.lambda_cg,
                lambda_p=c.lambda_p * warm, lambda_r=c.lambda_r,
                lambda_adv=c.lambda_adv * warm)
            g_scaled = self.g_optimizer.scale_loss(distribute.replica_loss(g_total))
            d_scaled = self.d_optimizer.scale_loss(distribute.replica_loss(d_loss))
        self.g_optimizer.apply(g_tape.gradient(g_scaled, self.g_vars), self.g_vars)
        self.d_optimizer.apply(d_tape.gradient(d_scaled, self.d_vars), self.d_vars)
        return {"g_total": g_total, "g_adv": adv, "g_content_i": ci, "g_content_g": cg,
                "g_projection": proj, "g_reconstruction": recon, "d_total": d_loss,
                "psnr_g_bl": tf.reduce_mean(tf.image.psnr(fake, sharp, 1.0)),
                "psnr_blurred": tf.reduce_mean(tf.image.psnr(blurred, sharp, 1.0))}

    def deblur(self, blurred):
        x, _ = self._g_input(blurred)
        return self.g_bl(x, training=False)

    def samples(self, batch):
        blurred = batch["blurred"]
        x, h = self._g_input(blurred)
        if h is None:
            return {"blurry | G_bl | sharp": training.side_by_side(
                blurred, self.g_bl(x, training=False), batch["sharp"])}
        return {"blurry | HG | G_bl | sharp": training.side_by_side(
            blurred, h, self.g_bl(x, training=False), batch["sharp"])}


def _unique(variables):
    seen, out = set(), []
    for v in variables:
        if id(v) not in seen:
            seen.add(id(v))
            out.append(v)
    return out


def build_trainer(config, strategy, restore_hg=True):
    if config.stage == "hg":
        return HGTrainer(config, strategy)
    return CGANTrainer(config, strategy, restore_hg=restore_hg)


def eval_batches(config, seed):
    """4 held-out batches of 8 (--eval_data, camera-shake blur, fixed seed), or None."""
    if not config.eval_data:
        return None
    bank = shared_flags.kernel_bank(config, seed + 1, spec="camera_shake", num=32)
    # held-out faces at the training size: the shorter side resized to the crop (aspect kept,
    # as hg.flags' --resize=312,256 keeps CelebA's), then the centre crop. Not --resize: it
    # sizes the training images (the HG's CelebA faces), not these (e.g. square LFW faces).
    ds = pipeline.make_dataset(config.eval_data, 8, crop=config.crop_size, training=False,
                               resize_short=config.crop_size,
                               kernel_bank=bank, quantize=config.quantize_blur,
                               noise_sigma=config.noise_sigma, seed=seed + 1)
    return list(ds.take(4))


def eval_psnr_fn(trainer, batches):
    """Held-out scalars over `batches` (`metrics.restoration_scalars`: psnr, ssim, blurred_psnr,
    ... as every trainer logs them)."""
    if not batches:
        return None

    def fn(step):
        return metrics.restoration_scalars(
            (b["sharp"], tf.clip_by_value(trainer.deblur(b["blurred"]), 0, 1), b["blurred"])
            for b in batches)
    return fn


# ---------------------------------------------------------------------------------- main ----
def stage_dataset(config, workdir):
    """(worker_dataset, number of steps) of the stage: ``worker_dataset(per_replica_batch, seed,
    shard)`` is one worker's input pipeline (``common.train.distribute.reseeded_dataset`` picks
    the seed from --seed and the resume step, and the shard); steps: --num_steps,
    or --epochs over the stage's examples (HG: --train_data; cGAN: the frame-averaged pairs,
    built once)."""
    if config.stage == "hg":
        n_examples = _count_source(config.train_data) if config.epochs else None
    else:
        files = build_cgan_pairs(config, workdir)
        n_examples = num_examples(files) if config.epochs else None
        # sharp-only records: blurred on the fly by the kernel flags (one bank on every worker)
        bank = None if pipeline.stores_blurred(files) else shared_flags.kernel_bank(config,
                                                                                    config.seed)

    def worker_dataset(per_replica_batch, seed, shard):
        if config.stage == "hg":
            return hg_dataset(config, seed, per_replica_batch, shard, bank_seed=config.seed)
        return pipeline.make_dataset(files, per_replica_batch, crop=config.crop_size,
                                     training=True, keys=("sharp", "blurred"),
                                     resize=shared_flags.parse_resize(config.resize),
                                     seed=seed, shard=shard, kernel_bank=bank,
                                     noise_sigma=shared_flags.noise_level(config),
                                     quantize=config.quantize_blur)

    num_steps = config.num_steps
    if config.epochs and n_examples:
        num_steps = max(1, math.ceil(config.epochs * n_examples / config.batch_size))
        logging.info("--epochs=%d over %d examples -> %d steps", config.epochs, n_examples,
                     num_steps)
    return worker_dataset, num_steps


def validate_flags(config):
    """Checks run before the workdir is written (`common.train.trainer.start_run`)."""
    if config.crop_size % models.GEN_DIVISOR and config.stage == "cgan":
        raise ValueError(f"--crop_size={config.crop_size} must be a multiple of "
                         f"{models.GEN_DIVISOR} (Table 3 has seven stride-2 layers)")
    shared_flags.parse_resize(config.resize)


def train_and_evaluate(workdir: str, config) -> int:
    """Trains the stage named by ``config.stage`` in ``workdir``; returns the final step."""
    strategy, _ = training.start_run(config, workdir, validate=validate_flags,
                                     paper=spec.NAME, stage=config.stage)
    worker_dataset, num_steps = stage_dataset(config, workdir)
    trainer = build_trainer(config, strategy)
    held_out = eval_batches(config, config.seed)
    return training.train(
        workdir, config, trainer,
        distribute.reseeded_dataset(strategy, config, worker_dataset),
        sample_batch=next(iter(worker_dataset(config.batch_size, config.seed, None))),
        eval_batch=held_out[0] if held_out else None,
        eval_fn=eval_psnr_fn(trainer, held_out), num_steps=num_steps)


def _count_source(source) -> int:
    """Examples in an image folder or a TFRecord glob."""
    if os.path.isdir(source):
        from common import image_io  # pylint: disable=import-outside-toplevel
        return len(image_io.list_images(source))
    return num_examples(sorted(glob.glob(source)))


if __name__ == "__main__":
    cli.run_main(train_and_evaluate, define_flags)
