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
import functools
import os
import time

import numpy as np
import tensorflow as tf
import keras
from absl import flags, logging

from common import blur, image_io, pipeline, tfrecord, train_utils
from paper3_umsn import losses, models

STAGES = ("sn_clean", "sn_blurry", "fnet", "umsn")
# Workdirs whose checkpoint holds a trained SN for --init_sn (the SN stages; later stages keep a
# frozen copy of theirs).
SN_STAGES = STAGES


def define_flags(fv=flags.FLAGS):
    if "stage" in fv:
        return
    d = dict(flag_values=fv)
    flags.DEFINE_enum("stage", "umsn", STAGES, "Training stage (Sec. IV-A).", **d)
    flags.DEFINE_enum("variant", "paper", sorted(models.VARIANTS), "Network widths.", **d)
    flags.DEFINE_enum("ablation", "umsn", models.ABLATIONS, "Table VI row (umsn stage).", **d)
    flags.DEFINE_string("train_data", None, "TFRecord glob or image folder of sharp faces.", **d)
    flags.DEFINE_string("eval_data", None, "TFRecord glob or image folder for the in-training PSNR.", **d)
    flags.DEFINE_string("mask_dir", None, "Folder of <stem>.png class masks for a folder "
                        "--train_data (SN stages).", **d)
    flags.DEFINE_integer("crop", 128, "Training patch size (paper: 128).", **d)
    flags.DEFINE_string("resize", None, "'HxW': resize every image before cropping.", **d)
    flags.DEFINE_string("kernels", "camera_shake", "common.blur.make_kernel_bank spec or .npz/.mat.", **d)
    flags.DEFINE_integer("num_kernels", 25000, "Kernels in the bank (paper: 25000).", **d)
    flags.DEFINE_integer("kernel_min", 13, "Smallest kernel size (paper: 13).", **d)
    flags.DEFINE_integer("kernel_max", 29, "Largest kernel size (paper: 29).", **d)
    flags.DEFINE_float("kernel_exposure", 0.0, "camera_shake: trajectory fraction integrated; 0 = "
                       "Boracchi-Foi random exposure (paper/literature behaviour), 1 = whole "
                       "trajectory.", **d)
    flags.DEFINE_float("kernel_min_taps", 0.0, "Redraw kernels with fewer effective taps "
                       "(common.blur.effective_taps); 0 keeps every draw (paper).", **d)
    flags.DEFINE_float("noise_sigma", 0.03, "Gaussian noise on the blurred image (paper: 0.03).", **d)
    flags.DEFINE_float("noise_sigma_min", None, "If set, each example's noise level is drawn "
                       "uniformly in [noise_sigma_min, noise_sigma] (paper: fixed).", **d)
    flags.DEFINE_float("learning_rate", 2e-4, "Adam learning rate of the stage's network.", **d)
    flags.DEFINE_float("cn_learning_rate", 2e-4, "Adam learning rate of CN (umsn stage).", **d)
    flags.DEFINE_float("beta_1", 0.9, "Adam beta_1 (paper: default; authors' code: 0.5).", **d)
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
    flags.DEFINE_float("sn_blur_fraction", 1.0, "sn_blurry: fraction of blurred inputs "
                       "(paper: all; authors' code: 0.34).", **d)


def _resize(config):
    if not config.resize:
        return None
    h, w = (int(v) for v in config.resize.lower().split("x"))
    return (h, w)


def noise_level(config):
    """--noise_sigma, or the (min, max) range when --noise_sigma_min is set."""
    if config.noise_sigma_min is None:
        return config.noise_sigma
    return (config.noise_sigma_min, config.noise_sigma)


def make_kernel_bank(config):
    """The run's kernel bank (the paper's: 25,000 camera-shake kernels 13..29, ~45 CPU-s to
    draw), drawn once per process for the same flags, so stages run in one process (tests, the
    demo) share it."""
    return _kernel_bank(config.kernels, config.num_kernels, config.kernel_min, config.kernel_max,
                        config.seed, config.kernel_exposure or None, config.kernel_min_taps)


@functools.lru_cache(maxsize=2)
def _kernel_bank(kernels, num, kernel_min, kernel_max, seed, exposure, min_taps):
    bank = blur.make_kernel_bank(kernels, num=num, sizes=range(kernel_min, kernel_max + 1, 2),
                                 seed=seed, exposure=exposure, min_taps=min_taps)
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
    ds = pipeline.make_dataset(source, batch_size or config.batch_size, crop=config.crop,
                               training=True, keys=tuple(keys), resize=_resize(config),
                               kernel_bank=bank if "blurred" in keys else None,
                               noise_sigma=noise_level(config),
                               seed=config.seed if seed is None else seed, shard=shard)
    return ds


def _init_from(path, flag, stages, **trackables):
    if not path:
        raise ValueError(f"this stage needs {flag}=<workdir of the earlier stage> "
                         "(see paper3_umsn/README.md for the stage order)")
    return train_utils.restore_init(path, flag, paper="paper3", stages=stages, **trackables)


def _load_init_model(config):
    """--init_model's SN + UMSN (a `models.UMSNDeblurrer` .keras file), or None."""
    if not config.init_model:
        return None
    from common import inference  # pylint: disable=import-outside-toplevel
    model = inference.load_keras(config.init_model)
    if not isinstance(model, models.UMSNDeblurrer):
        raise ValueError(f"--init_model={config.init_model} holds a {type(model).__name__}, not "
                         "a paper-3 SN + UMSN model (python -m paper3_umsn.export writes one)")
    return model


def _copy_init_weights(src, dst, config):
    """Copies a network of --init_model into the run's (built) one, or a one-line error."""
    if [w.shape for w in src.weights] != [w.shape for w in dst.weights]:
        raise ValueError(f"--init_model={config.init_model} does not match --variant="
                         f"{config.variant} --ablation={config.ablation} (different weight shapes)")
    dst.set_weights(src.get_weights())


class Stage:
    """Networks, optimizers and the per-replica step of one training stage."""

    def __init__(self, config, strategy):
        self.config = config
        stage, v = config.stage, config.variant
        size = config.crop
        dummy = np.zeros((1, size, size, 3), np.float32)
        self.trackables = {}
        self.vgg = None
        with strategy.scope():
            self.sn = models.build_sn(v)
            self.sn(dummy)
            self.trackables["sn"] = self.sn
            init_model = _load_init_model(config) if stage == "umsn" else None
            if init_model is not None:
                _copy_init_weights(init_model.sn, self.sn, config)
                self.sn.trainable = False
            elif stage in ("fnet", "umsn"):
                _init_from(config.init_sn, "--init_sn", SN_STAGES, sn=self.sn)
                self.sn.trainable = False
            if stage == "sn_blurry":
                _init_from(config.init_sn, "--init_sn", SN_STAGES, sn=self.sn)
            if stage in ("sn_clean", "sn_blurry"):
                self.train_vars = self.sn.trainable_variables
            elif stage == "fnet":
                self.fnets = models.build_fnets(v)
                for i, f in enumerate(self.fnets):
                    f([dummy, dummy[..., :1]])
                    self.trackables[f"fnet{i + 1}"] = f
                self.train_vars = [w for f in self.fnets for w in f.trainable_variables]
            else:
                self.umsn = models.build_umsn(v, config.ablation)
                m = np.full((1, size, size, 4), 0.25, np.float32)
                self.umsn([dummy, m])
                self.trackables["umsn"] = self.umsn
                if init_model is not None:
                    _copy_init_weights(init_model.umsn, self.umsn, config)
                elif self.umsn.use_fnets:
                    if config.init_fnets:
                        fn = {f"fnet{i + 1}": f for i, f in enumerate(self.umsn.fnets)}
                        _init_from(config.init_fnets, "--init_fnets", ("fnet",), **fn)
                    else:
                        logging.warning("--init_fnets not given: F-Net streams start from scratch")
                self.train_vars = self.umsn.trainable_variables
                if config.ablation == "umsn":
                    self.cn = models.build_cn(v)
                    self.cn([dummy, dummy])
                    self.trackables["cn"] = self.cn
                    self.cn_optimizer = train_utils.make_optimizer(config.cn_learning_rate,
                                                                   beta_1=config.beta_1)
                    self.cn_optimizer.build(self.cn.trainable_variables)
                    self.trackables["cn_optimizer"] = self.cn_optimizer
            if stage in ("fnet", "umsn") and config.lambda_1 > 0:
                self.vgg = losses.load_vgg16_relu12(config.vgg16_weights, config.allow_random_vgg)
            self.optimizer = train_utils.make_optimizer(config.learning_rate, beta_1=config.beta_1)
            self.optimizer.build(self.train_vars)
            self.trackables["optimizer"] = self.optimizer
        self.class_weights = [float(w) for w in config.class_weights]
        if len(self.class_weights) != models.NUM_CLASSES:
            raise ValueError(f"--class_weights needs 4 values, got {config.class_weights}")

    # ------------------------------------------------------------------ losses per stage
    def _perceptual(self, x, xh):
        if self.vgg is None:
            return tf.constant(0.0)
        return losses.perceptual_loss(x, xh, self.vgg)

    def _masks(self, images):
        return tf.nn.softmax(tf.cast(self.sn(images, training=False), tf.float32), axis=-1)

    def replica_step(self, batch):
        c = self.config
        x = batch["sharp"]
        out = {}
        with tf.GradientTape(persistent=True) as tape:
            if c.stage in ("sn_clean", "sn_blurry"):
                y = x
                if c.stage == "sn_blurry":
                    pick = tf.random.uniform([tf.shape(x)[0], 1, 1, 1]) < c.sn_blur_fraction
                    y = tf.where(pick, batch["blurred"], x)
                loss = losses.segmentation_cross_entropy(batch["mask"], self.sn(y, training=True))
                out["sn_ce"] = loss
            elif c.stage == "fnet":
                m = self._masks(x)
                loss = 0.0
                for i, f in enumerate(self.fnets):
                    mi = m[..., i:i + 1]
                    yi = mi * batch["blurred"] + (1.0 - mi) * x   # only class i blurred
                    xi = f([yi, mi], training=True)
                    li = losses.l1_loss(x, xi) + c.lambda_1 * self._perceptual(x, xi)
                    out[f"fnet{i + 1}_loss"] = li
                    loss += li
            else:
                y = batch["blurred"]
                m_hat = self._masks(y)          # input masks: SN on the blurry image
                m = self._masks(x)              # loss masks: SN on the clean target (Sec. IV-A-2-b)
                res = self.umsn([y, m_hat], training=True)
                xh = res["x_hat"]
                if c.ablation == "umsn":
                    conf = tf.stack([self.cn([m[..., i:i + 1] * xh, m[..., i:i + 1] * x],
                                             training=True) for i in range(models.NUM_CLASSES)], -1)
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
            out["loss"] = loss
            scaled = self.optimizer.scale_loss(train_utils.replica_loss(loss))
            if c.stage == "umsn" and c.ablation == "umsn":
                cn_scaled = self.cn_optimizer.scale_loss(train_utils.replica_loss(loss))
        grads = tape.gradient(scaled, self.train_vars)
        self.optimizer.apply([g if g is not None else tf.zeros_like(v)
                              for g, v in zip(grads, self.train_vars)], self.train_vars)
        if c.stage == "umsn" and c.ablation == "umsn":
            cn_vars = self.cn.trainable_variables
            cn_grads = tape.gradient(cn_scaled, cn_vars)
            self.cn_optimizer.apply(cn_grads, cn_vars)
        del tape
        return out

    def restore_model(self, x):
        """Deblurs x with the current networks (umsn stage) or returns None."""
        if self.config.stage != "umsn":
            return None
        return tf.clip_by_value(self.umsn([x, self._masks(x)], training=False)["x_hat"], 0.0, 1.0)


def validate_flags(config):
    """Checks run before the workdir is written (`train_utils.start_run`)."""
    for name in ("crop", "num_kernels"):
        train_utils.check_min(config, name, 1)
    if config.kernel_min > config.kernel_max:
        raise ValueError(f"--kernel_min={config.kernel_min} is larger than "
                         f"--kernel_max={config.kernel_max}.")
    pipeline.check_crop(config.train_data, config.crop, _resize(config))


def train_and_evaluate(workdir, config):
    """Runs one stage from `config` (parsed FlagValues) in `workdir`; returns the final step."""
    strategy, policy = train_utils.start_run(config, workdir, validate=validate_flags)
    logging.info("stage %s, variant %s, ablation %s, precision %s", config.stage, config.variant,
                 config.ablation, policy)
    bank = make_kernel_bank(config) if config.stage != "sn_clean" else None
    stage = Stage(config, strategy)
    checkpointer = train_utils.Checkpointer(workdir, config.keep_checkpoints, **stage.trackables)
    checkpointer.restore_latest()
    writers = train_utils.SummaryWriters(workdir)
    def worker_dataset(per_replica_batch, pipeline_id, num_pipelines):
        # each worker: its own shard and seed (one worker: all the data, --seed)
        return make_train_dataset(config, bank, seed=config.seed * num_pipelines + pipeline_id,
                                  batch_size=per_replica_batch,
                                  shard=(num_pipelines, pipeline_id) if num_pipelines > 1 else None)

    iterator = iter(train_utils.distribute_per_worker(strategy, config.batch_size, worker_dataset))
    step_fn = train_utils.make_distributed_step(strategy, stage.replica_step)

    eval_batch = None
    restore_fn = tf.function(stage.restore_model)
    if config.stage == "umsn" and config.eval_data:
        eval_ds = pipeline.make_dataset(config.eval_data, 8, crop=config.crop, training=False,
                                        keys=("sharp", "blurred"), resize=_resize(config),
                                        kernel_bank=bank, noise_sigma=config.noise_sigma,
                                        seed=config.seed + 1)
        eval_batch = next(iter(eval_ds))

    def eval_fn(step):
        if eval_batch is None:
            return {}
        restored = restore_fn(eval_batch["blurred"])
        return {"psnr_restored": float(tf.reduce_mean(tf.image.psnr(restored, eval_batch["sharp"], 1.0))),
                "psnr_blurred": float(tf.reduce_mean(tf.image.psnr(eval_batch["blurred"],
                                                                   eval_batch["sharp"], 1.0)))}

    def image_fn(step):
        if eval_batch is None:
            return {}
        restored = restore_fn(eval_batch["blurred"])
        return {"blurred_restored_sharp": tf.concat(
            [eval_batch["blurred"], restored, eval_batch["sharp"]], axis=2)}

    start = time.time()
    final = train_utils.run_train_loop(
        train_step=step_fn, iterator=iterator, checkpointer=checkpointer, writers=writers,
        image_fn=image_fn if eval_batch is not None else None,
        eval_fn=eval_fn if eval_batch is not None else None, **train_utils.loop_intervals(config))
    writers.close()
    logging.info("stage %s finished at step %d in %.1f s", config.stage, final, time.time() - start)
    return final


if __name__ == "__main__":
    train_utils.run_main(train_and_evaluate, [define_flags, train_utils.define_common_flags])
