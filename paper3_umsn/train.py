"""Training for UMSN, one stage per run (Sec. IV-A), selected by --stage:

  sn_clean   SN on clean faces, cross-entropy, Adam 2e-4 (60k iterations in the paper)
  sn_blurry  SN fine-tuned on blurry faces, Adam 1e-5 (30k), initialised from --init_sn
  fnet       the four F-Net-i streams, each on pairs where only class i is blurred; L1 + L_p,
             Adam 2e-4 (50k); masks from the trained SN (--init_sn) on the sharp image
  umsn       the full network with L_total (Eq. 6), Adam 2e-4, batch 16, 128x128 (100k);
             SN frozen (--init_sn), streams from --init_fnets; CN trained alongside with its own
             optimizer. --ablation picks the Table VI row.

    python -m paper3_umsn.train --flagfile=paper3_umsn/configs/umsn.flags --workdir=/tmp/umsn

Masks: SN stages need ground-truth class masks: TFRecords carrying `mask/classes`, or an image
folder plus --mask_dir (`<stem>.png`, ids 0..3), converted once to a record file in the workdir.
The later stages need none: as in the paper, the masks of the clean target come from SN.
"""
import contextlib
import functools
import os
import types

import numpy as np
import tensorflow as tf
import keras
from absl import flags, logging

from common import cli, image_io, metrics, pipeline, shared_flags, tfrecord
from common.train import checkpoints, distribute, flags as train_flags, trainer as training
from paper3_umsn import losses, models, spec

STAGES = ("sn_clean", "sn_blurry", "fnet", "umsn")
# Workdirs whose checkpoint holds a trained SN for --init_sn (the SN stages; later stages keep a
# frozen copy of theirs).
SN_STAGES = STAGES


def define_flags(fv=flags.FLAGS):
    """The common trainer flags and UMSN's (idempotent)."""
    train_flags.define_common_flags(fv)
    if "ablation" in fv:
        return
    d = dict(flag_values=fv)
    flags.DEFINE_enum("stage", "umsn", STAGES, "Training stage (Sec. IV-A).", **d)
    flags.DEFINE_enum("variant", "paper", sorted(models.VARIANTS), "Network widths.", **d)
    flags.DEFINE_enum("ablation", "umsn", models.ABLATIONS, "Table VI row (umsn stage).", **d)
    flags.DEFINE_bool("bn_match_params", False, "Table VI: with --ablation=bn, widen BN's "
                      "ResBlocks (inner convs) to UMSN's parameter count, as the paper does "
                      "(models.matched_bn_inter_mult).", **d)
    flags.DEFINE_string("train_data", None, "TFRecord glob or image folder of sharp faces.", **d)
    flags.DEFINE_string("eval_data", None, "TFRecord glob or image folder for the in-training PSNR.", **d)
    flags.DEFINE_string("mask_dir", None, "Folder of <stem>.png class masks for a folder "
                        "--train_data (SN stages).", **d)
    shared_flags.define_crop_flag(fv, 128, "paper: 128")
    shared_flags.define_resize_flag(fv)
    shared_flags.define_kernel_flags(fv, blur_kernels="camera_shake", num_kernels=25000,
                                     kernel_sizes="13:29", kernel_exposure=0.0,
                                     kernel_min_taps=0.0, help_extra="paper: 25000 camera-shake "
                                     "kernels of 13..29 px, Boracchi-Foi random exposure")
    shared_flags.define_noise_flags(fv, 0.03)
    shared_flags.define_quantize_flag(fv)
    shared_flags.define_adam_flags(fv, 2e-4, 0.9, "the stage's network; paper: Adam defaults, "
                                   "authors' code beta_1 0.5")
    flags.DEFINE_float("cn_learning_rate", 2e-4, "Adam learning rate of CN (umsn stage).", **d)
    flags.DEFINE_string("init_sn", None, "Workdir or checkpoint of a trained SN.", **d)
    flags.DEFINE_string("init_fnets", None, "Workdir or checkpoint of the fnet stage.", **d)
    flags.DEFINE_string("init_model", None, "umsn stage: start SN and UMSN from an exported "
                        "SN + UMSN .keras file of the same --variant/--ablation (e.g. the shipped "
                        "paper3_umsn/weights/umsn_small.keras) instead of --init_sn/--init_fnets; "
                        "fine-tuning.", **d)
    flags.DEFINE_float("lambda_conf", 0.01, "lambda of Eq. 4 (paper: 0.01).", **d)
    flags.DEFINE_float("lambda_1", 1.0, "Perceptual weight lambda_1 of Eq. 6 (paper: 1.0).", **d)
    flags.DEFINE_string("vgg16_weights", None, "Local Keras VGG16 weights file for L_p (Eq. 5).", **d)
    flags.DEFINE_bool("allow_random_vgg", False, "Tests only: L_p on a randomly initialised VGG.", **d)
    flags.DEFINE_list("class_weights", ["1", "1", "1", "1"],
                      "Per-class factors on Eq. 4's data term (paper: 1; authors' code 1.2,1.2,3.6,1.2).", **d)
    flags.DEFINE_float("gradient_weight", 0.0, "Authors' code: gradient L1 weight (paper: 0).", **d)
    flags.DEFINE_float("half_scale_weight", 0.0, "Authors' code: half-scale output L1 weight "
                       "(paper: 0).", **d)
    flags.DEFINE_enum("remat", "none", models.REMAT_MODES, "Recompute UMSN/F-Net activations in "
                      "the backward pass instead of keeping them (models.set_remat): same maths, "
                      "less memory, more compute; blocks: per ResBlock, units: also per "
                      "IN-ReLU-Conv inside them (benchmarks/README.md).", **d)
    flags.DEFINE_float("sn_blur_fraction", 1.0, "sn_blurry: fraction of blurred inputs "
                       "(paper: all; authors' code: 0.34).", **d)


def make_kernel_bank(config):
    """The run's kernel bank (`common.shared_flags.kernel_bank` of the kernel flags; the paper's
    25,000 camera-shake kernels take ~45 CPU-s to draw), drawn once per process for the same
    flags, so stages run in one process (tests, the demo) share it."""
    return _kernel_bank(config.blur_kernels, config.num_kernels, config.kernel_sizes,
                        int(config.seed), config.kernel_exposure, config.kernel_min_taps,
                        getattr(config, "kernel_min_extent", 0))


@functools.lru_cache(maxsize=2)
def _kernel_bank(blur_kernels, num_kernels, kernel_sizes, seed, kernel_exposure, kernel_min_taps,
                 kernel_min_extent=0):
    bank = shared_flags.kernel_bank(types.SimpleNamespace(
        blur_kernels=blur_kernels, num_kernels=num_kernels, kernel_sizes=kernel_sizes, seed=seed,
        kernel_exposure=kernel_exposure, kernel_min_taps=kernel_min_taps,
        kernel_min_extent=kernel_min_extent))
    if bank is not None:
        bank.setflags(write=False)  # shared between callers
    return bank


def records_with_masks(image_dir, mask_dir, out_dir):
    """Converts a folder of faces + `<stem>.png` class masks into one TFRecord file (once).

    Images without a mask are left out (listed in the log); none at all raises an error.
    Returns the record path.
    """
    if not mask_dir:
        raise ValueError(f"training SN on the image folder {image_dir} needs class masks: pass "
                         "--mask_dir=FOLDER of <stem>.png masks (ids 0..3), or TFRecords with "
                         "mask/classes as --train_data (python -m data.build --mask_dir=...)")
    if not os.path.isdir(mask_dir):
        raise FileNotFoundError(f"--mask_dir: folder not found: {mask_dir}")
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, tfrecord.shard_name("masked", 0, 1))
    if os.path.exists(path):
        return path
    missing, n = [], 0
    with tfrecord.ShardedWriter(out_dir, "masked", 1) as writer:
        for f in image_io.list_images(image_dir):
            stem = os.path.splitext(os.path.basename(f))[0]
            mpath = os.path.join(mask_dir, stem + ".png")
            if not os.path.exists(mpath):
                missing.append(stem)
                continue
            from PIL import Image
            mask = np.asarray(Image.open(mpath))
            img = image_io.read_image(f)
            if mask.ndim != 2 or mask.shape != img.shape[:2] or mask.max() > 3:
                raise ValueError(f"mask {mpath}: expected a 1-channel class map 0..3 of size "
                                 f"{img.shape[:2]}, got shape {mask.shape} max {mask.max()}")
            writer.write(tfrecord.make_example(sharp=img, mask=mask[..., None]))
            n += 1
    if missing:
        logging.warning("%d images in %s have no mask in %s and are left out: %s", len(missing),
                        image_dir, mask_dir, ", ".join(missing[:10]))
    if n == 0:
        os.remove(path)
        raise ValueError(f"no image in {image_dir} has a mask <stem>.png in {mask_dir}")
    return path


def make_train_dataset(config, bank, seed=None, batch_size=None, shard=None):
    """``seed``/``batch_size``/``shard``: one worker's pipeline (``distribute_per_worker``);
    defaults: --seed, --batch_size, all the data."""
    stage = config.stage
    source = config.train_data
    if not source:
        raise ValueError("--train_data is required (an image folder or a TFRecord glob)")
    keys = ["sharp"]
    if stage in ("sn_clean", "sn_blurry"):
        keys.append("mask")
        if os.path.isdir(source):
            source = records_with_masks(source, config.mask_dir, os.path.join(config.workdir, "data"))
    if stage != "sn_clean":
        keys.append("blurred")
    ds = pipeline.make_dataset(source, batch_size or config.batch_size, crop=config.crop_size,
                               training=True, keys=tuple(keys),
                               resize=shared_flags.parse_resize(config.resize),
                               kernel_bank=bank if "blurred" in keys else None,
                               noise_sigma=shared_flags.noise_level(config),
                               quantize=config.quantize_blur,
                               seed=config.seed if seed is None else seed, shard=shard)
    return ds


def _init_from(path, flag, stages, **trackables):
    if not path:
        raise ValueError(f"this stage needs {flag}=<workdir of the earlier stage> "
                         "(see paper3_umsn/README.md for the stage order)")
    return checkpoints.restore_init(path, flag, paper="paper3", stages=stages, **trackables)


def _load_init_model(config):
    """--init_model's SN + UMSN (a `models.UMSNDeblurrer` .keras file), or None."""
    if not config.init_model:
        return None
    return checkpoints.load_init_model(config.init_model, models.UMSNDeblurrer,
                                       "a paper-3 SN + UMSN model", "python -m paper3_umsn.export")


def _copy_init_weights(src, dst, config):
    """Copies a network of --init_model into the run's (built) one, or a one-line error."""
    checkpoints.copy_init_weights(src, dst, config.init_model, f"--variant={config.variant} "
                                  f"--ablation={config.ablation}")


class Stage(training.Trainer):
    """What every stage shares: the SN (trained by the SN stages, frozen after), the stage's
    optimizer over `train_vars`, the VGG of L_p (Eq. 5) and the class weights."""

    def __init__(self, config, strategy=None):
        super().__init__(config, strategy)
        size = config.crop_size
        self.dummy = np.zeros((1, size, size, 3), np.float32)
        self.vgg = None
        self.class_weights = [float(w) for w in config.class_weights]
        if len(self.class_weights) != models.NUM_CLASSES:
            raise ValueError(f"--class_weights needs 4 values, got {config.class_weights}")
        with self.strategy.scope():
            self.sn = models.build_sn(config.variant)
            self.sn(self.dummy)
            self.train_vars = self.build()
            if config.stage in ("fnet", "umsn") and config.lambda_1 > 0:
                self.vgg = losses.load_vgg16_relu12(config.vgg16_weights, config.allow_random_vgg)
            self.optimizer = distribute.make_optimizer(config.learning_rate,
                                                        beta_1=config.beta_1)
            self.optimizer.build(self.train_vars)

    def build(self) -> list:
        """Builds (and initialises) the stage's networks; returns the variables it trains."""
        raise NotImplementedError

    def nets(self) -> dict:
        return {"sn": self.sn}

    def trackables(self):
        return {**self.nets(), "optimizer": self.optimizer}

    def losses(self, batch) -> tuple[tf.Tensor, dict]:
        """(loss, {name: scalar}) of one replica's batch, inside the tape."""
        raise NotImplementedError

    def replica_step(self, batch):
        with tf.GradientTape() as tape, self._recording(tape):
            loss, out = self.losses(batch)
            out["loss"] = loss
            scaled = self.optimizer.scale_loss(distribute.replica_loss(loss))
        grads = tape.gradient(scaled, self.train_vars)
        self.optimizer.apply([g if g is not None else tf.zeros_like(v)
                              for g, v in zip(grads, self.train_vars)], self.train_vars)
        return out

    def _perceptual(self, x, xh):
        if self.vgg is None:
            return tf.constant(0.0)
        return losses.perceptual_loss(x, xh, self.vgg)

    @contextlib.contextmanager
    def _recording(self, tape):
        """Makes `tape` the one `_masks` keeps a frozen SN off, for the `with` block."""
        self._tape = tape
        try:
            yield tape
        finally:
            self._tape = None

    def _masks(self, images):
        """SN's softmax class masks. A frozen SN (fnet, umsn) runs off the step's tape: Keras'
        trainable=False does not stop a tape from watching its tf.Variables, so the tape would
        keep SN's activations for a backward pass that never uses them (memory, issue 15)."""
        tape = getattr(self, "_tape", None)
        if tape is not None and not self.sn.trainable:
            with tape.stop_recording():
                return tf.nn.softmax(tf.cast(self.sn(images, training=False), tf.float32), axis=-1)
        return tf.nn.softmax(tf.cast(self.sn(images, training=False), tf.float32), axis=-1)


class SNStage(Stage):
    """sn_clean: SN on clean faces; sn_blurry: SN fine-tuned (from --init_sn) on blurry ones."""

    def build(self):
        if self.config.stage == "sn_blurry":
            _init_from(self.config.init_sn, "--init_sn", SN_STAGES, sn=self.sn)
        return self.sn.trainable_variables

    def losses(self, batch):
        x = batch["sharp"]
        y = x
        if self.config.stage == "sn_blurry":
            pick = tf.random.uniform([tf.shape(x)[0], 1, 1, 1]) < self.config.sn_blur_fraction
            y = tf.where(pick, batch["blurred"], x)
        loss = losses.segmentation_cross_entropy(batch["mask"], self.sn(y, training=True))
        return loss, {"sn_ce": loss}

    def samples(self, batch):
        classes = tf.cast(tf.argmax(self._masks(batch["sharp"]), -1)[..., None], tf.float32) / 3.0
        return {"face | SN classes / 3": training.side_by_side(batch["sharp"], classes)}


class FNetStage(Stage):
    """fnet: the four F-Net-i streams, each on faces where only class i is blurred (L1 + L_p)."""

    def build(self):
        _init_from(self.config.init_sn, "--init_sn", SN_STAGES, sn=self.sn)
        self.sn.trainable = False
        self.fnets = models.build_fnets(self.config.variant)
        for f in self.fnets:
            f([self.dummy, self.dummy[..., :1]])
            models.set_remat(f, self.config.remat)
        return [w for f in self.fnets for w in f.trainable_variables]

    def nets(self):
        return {"sn": self.sn, **{f"fnet{i + 1}": f for i, f in enumerate(self.fnets)}}

    def losses(self, batch):
        x, out, loss = batch["sharp"], {}, 0.0
        m = self._masks(x)
        for i, f in enumerate(self.fnets):
            mi = m[..., i:i + 1]
            yi = mi * batch["blurred"] + (1.0 - mi) * x   # only class i blurred
            xi = f([yi, mi], training=True)
            li = losses.l1_loss(x, xi) + self.config.lambda_1 * self._perceptual(x, xi)
            out[f"fnet{i + 1}_loss"] = li
            loss += li
        return loss, out


class UMSNStage(Stage):
    """umsn: the full network with L_total (Eq. 6); SN frozen; streams from --init_fnets (or
    SN + UMSN from --init_model); with --ablation=umsn the CN trains alongside on its own Adam."""

    def build(self):
        c, v = self.config, self.config.variant
        init_model = _load_init_model(c)
        if init_model is not None:
            _copy_init_weights(init_model.sn, self.sn, c)
        else:
            _init_from(c.init_sn, "--init_sn", SN_STAGES, sn=self.sn)
        self.sn.trainable = False
        self.umsn = build_umsn(c)
        size = c.crop_size
        self.umsn([self.dummy, np.full((1, size, size, 4), 0.25, np.float32)])
        if init_model is not None:
            _copy_init_weights(init_model.umsn, self.umsn, c)
        elif self.umsn.use_fnets:
            if c.init_fnets:
                fn = {f"fnet{i + 1}": f for i, f in enumerate(self.umsn.fnets)}
                _init_from(c.init_fnets, "--init_fnets", ("fnet",), **fn)
            else:
                logging.warning("--init_fnets not given: F-Net streams start from scratch")
        models.set_remat(self.umsn, c.remat)
        self.cn = None
        if c.ablation == "umsn":
            self.cn = models.build_cn(v)
            self.cn([self.dummy, self.dummy])
            self.cn_optimizer = distribute.make_optimizer(c.cn_learning_rate, beta_1=c.beta_1)
            self.cn_optimizer.build(self.cn.trainable_variables)
        return self.umsn.trainable_variables

    def nets(self):
        out = {"sn": self.sn, "umsn": self.umsn}
        if self.cn is not None:
            out.update(cn=self.cn, cn_optimizer=self.cn_optimizer)
        return out

    def losses(self, batch):
        c, x, y = self.config, batch["sharp"], batch["blurred"]
        m_hat = self._masks(y)          # input masks: SN on the blurry image
        m = self._masks(x)              # loss masks: SN on the clean target (Sec. IV-A-2-b)
        res = self.umsn([y, m_hat], training=True)
        xh, out = res["x_hat"], {}
        if self.cn is not None:
            conf = tf.stack([self.cn([m[..., i:i + 1] * xh, m[..., i:i + 1] * x], training=True)
                             for i in range(models.NUM_CLASSES)], -1)
            l_c = losses.confidence_loss(x, xh, m, conf, c.lambda_conf, self.class_weights)
            for i in range(models.NUM_CLASSES):
                out[f"confidence_c{i + 1}"] = tf.reduce_mean(conf[:, i])
        else:
            l_c = losses.class_reconstruction_loss(x, xh, m, self.class_weights)
        l_p = self._perceptual(x, xh)
        loss = losses.total_loss(l_c, l_p, c.lambda_1)
        out.update(l_c=l_c, l_p=l_p)
        if c.gradient_weight:
            out["l_grad"] = losses.gradient_l1_loss(x, xh)
            loss += c.gradient_weight * out["l_grad"]
        if c.half_scale_weight:
            x_half = tf.nn.avg_pool2d(x, 2, 2, "VALID")
            out["l_half"] = losses.l1_loss(x_half, res["x_hat_half"])
            loss += c.half_scale_weight * out["l_half"]
        out["psnr"] = tf.reduce_mean(tf.image.psnr(tf.clip_by_value(xh, 0.0, 1.0), x, 1.0))
        return loss, out

    def replica_step(self, batch):
        if self.cn is None:
            return super().replica_step(batch)
        with tf.GradientTape(persistent=True) as tape, self._recording(tape):  # UMSN + CN
            loss, out = self.losses(batch)
            out["loss"] = loss
            scaled = self.optimizer.scale_loss(distribute.replica_loss(loss))
            cn_scaled = self.cn_optimizer.scale_loss(distribute.replica_loss(loss))
        cn_vars = self.cn.trainable_variables
        if any(isinstance(o, keras.optimizers.LossScaleOptimizer)
               for o in (self.optimizer, self.cn_optimizer)):  # float16: each its own scale
            grads = tape.gradient(scaled, self.train_vars)
            cn_grads = tape.gradient(cn_scaled, cn_vars)
        else:  # the same loss: one backward pass (a second tape.gradient would build UMSN's
            # backward again, a dead branch the runtime prunes but tracing and the graph pay for)
            both = tape.gradient(scaled, self.train_vars + cn_vars)
            grads, cn_grads = both[:len(self.train_vars)], both[len(self.train_vars):]
        self.optimizer.apply([g if g is not None else tf.zeros_like(v)
                              for g, v in zip(grads, self.train_vars)], self.train_vars)
        self.cn_optimizer.apply(cn_grads, cn_vars)
        del tape
        return out

    def deblur(self, blurred):
        """The current networks' restoration, float32 [B,H,W,3] in [0, 1]."""
        return tf.clip_by_value(self.umsn([blurred, self._masks(blurred)],
                                          training=False)["x_hat"], 0.0, 1.0)

    def samples(self, batch):
        return {"blurred | restored | sharp": training.side_by_side(
            batch["blurred"], self.deblur(batch["blurred"]), batch["sharp"])}


STAGE_CLASSES = {"sn_clean": SNStage, "sn_blurry": SNStage, "fnet": FNetStage, "umsn": UMSNStage}


def make_stage(config, strategy=None) -> Stage:
    """The `Stage` of --stage."""
    return STAGE_CLASSES[config.stage](config, strategy)


def build_umsn(config):
    """The run's UMSN: --variant, --ablation, and BN widened by --bn_match_params (Table VI)."""
    return models.build_umsn(config.variant, config.ablation, models.bn_inter_mult_for(
        config.variant, config.ablation, getattr(config, "bn_match_params", False)))


def validate_flags(config):
    """Checks run before the workdir is written (`common.train.trainer.start_run`)."""
    shared_flags.parse_kernel_sizes(config.kernel_sizes)
    pipeline.check_crop(config.train_data, config.crop_size,
                        shared_flags.parse_resize(config.resize), "--crop_size")


def eval_batch(config, bank):
    """One held-out batch of 8 (--eval_data, the run's blur, seed + 1) for the umsn stage, or
    None."""
    if config.stage != "umsn" or not config.eval_data:
        return None
    return next(iter(pipeline.make_dataset(
        config.eval_data, 8, crop=config.crop_size, training=False, keys=("sharp", "blurred"),
        resize=shared_flags.parse_resize(config.resize), kernel_bank=bank,
        noise_sigma=config.noise_sigma, quantize=config.quantize_blur, seed=config.seed + 1)))


def train_and_evaluate(workdir, config):
    """Runs one stage from `config` (parsed FlagValues) in `workdir`; returns the final step."""
    strategy, policy = training.start_run(config, workdir, validate=validate_flags,
                                          paper=spec.NAME, stage=config.stage)
    logging.info("stage %s, variant %s, ablation %s, precision %s", config.stage, config.variant,
                 config.ablation, policy)
    bank = make_kernel_bank(config) if config.stage != "sn_clean" else None
    stage = make_stage(config, strategy)

    def worker_dataset(per_replica_batch, seed, shard):
        # each worker: its own shard, and a seed that moves on at a resume (reseeded_dataset)
        return make_train_dataset(config, bank, seed=seed, batch_size=per_replica_batch,
                                  shard=shard)

    held_out = eval_batch(config, bank)
    eval_fn = None
    if held_out is not None:
        deblur = tf.function(stage.deblur)

        def eval_fn(step):
            return metrics.restoration_scalars(
                [(held_out["sharp"], deblur(held_out["blurred"]), held_out["blurred"])])

    return training.train(
        workdir, config, stage,
        distribute.reseeded_dataset(strategy, config, worker_dataset),
        sample_batch=next(iter(worker_dataset(config.batch_size, config.seed, None))),
        eval_batch=held_out, eval_fn=eval_fn)


if __name__ == "__main__":
    cli.run_main(train_and_evaluate, define_flags)
