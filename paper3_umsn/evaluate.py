"""Evaluation of trained UMSN runs in the paper's table layout (ours beside the paper's numbers).

    python -m paper3_umsn.evaluate --workdir=/tmp/umsn --test_data=FOLDER_OR_RECORDS \
        [--ablation_workdirs=/tmp/bn,/tmp/bn_sem,...] [--output_dir=/tmp/umsn_eval]

Prints Table III (PSNR/SSIM of blurred input and UMSN), Table I (per-class PSNR/SSIM, twice:
"region" = over the class's pixels only, "masked_image" = m*x vs m*x_hat over the whole frame,
the only reading under which the paper's per-class numbers can exceed its whole-image PSNR;
classes: the test set's stored masks, else SN's argmax on the sharp image) and,
with --ablation_workdirs, Table VI (one row per run). Table III prints every row of the paper's
table; --compare=NAME=SPEC adds measured rows (classical baselines, the other papers' models;
specs as in `python -m common.compare`). Blur: a test set that stores blurred images
(DIR/blurred + DIR/sharp as written by `python -m data.build --output_format=folder`, e.g.
Shen et al.'s blurred Helen/CelebA or GoPro, or records holding image/blurred) is used as
stored, never re-blurred; sharp-only faces are blurred with the run's kernel bank (seed + 1,
so not the training draw), noise as in training.
With --face_tables also Table IV (identity feature distance of restored vs sharp and of
blurred vs sharp, whole test faces) and Table V (top-1/3/5 recognition of one probe per LFW
identity against a sharp gallery, each probe blurred with --blurs_per_probe kernels of the
run's bank), through `common.face` (dlib 128-D descriptor by default; the
paper's d_VGG is VGG-Face pool5, so the two are not on the same scale).
"""
import os

import numpy as np
import tensorflow as tf
from absl import app, flags

from common import (cli, face, image_io, inference, keras_utils, metrics, paths, pipeline, report,
                    tfrecord)
from common.train import checkpoints, workdirs
from common.evaluation import methods as methods_lib
from common.evaluation import runner, stored_sets
from paper3_umsn import export, models, train

PAPER_TABLE_III = {  # Table III, every row: (PSNR, SSIM) on Helen and CelebA
    "Krishnan et al. [14]": {"helen": (19.30, 0.670), "celeba": (18.38, 0.672)},
    "Pan et al. [29]": {"helen": (20.93, 0.727), "celeba": (18.59, 0.677)},
    "Shan et al. [42]": {"helen": (19.57, 0.670), "celeba": (18.43, 0.644)},
    "Xu et al. [13]": {"helen": (20.11, 0.711), "celeba": (18.93, 0.685)},
    "Cho et al. [43]": {"helen": (16.82, 0.574), "celeba": (13.03, 0.445)},
    "Zhong et al. [44]": {"helen": (16.41, 0.614), "celeba": (17.26, 0.695)},
    "Nah et al. [7]": {"helen": (24.12, 0.823), "celeba": (22.43, 0.832)},
    "Ziyi et al. [9] w/GAN": {"helen": (25.58, 0.861), "celeba": (24.34, 0.860)},
    "Ziyi et al. [9]": {"helen": (25.99, 0.871), "celeba": (25.05, 0.879)},
    "UMSN": {"helen": (26.93, 0.897), "celeba": (25.90, 0.906)},
}
PAPER_TABLE_I = {  # Table I, UMSN rows: (PSNR, SSIM) per class 1..4
    "celeba": [(29.27, 0.91), (30.75, 0.95), (33.83, 0.96), (33.10, 0.94)],
    "helen": [(30.83, 0.87), (31.76, 0.90), (35.67, 0.93), (34.81, 0.91)],
}
PAPER_TABLE_I_ZIYI = {  # Table I, the compared row "Ziyi et al. [9]"
    "celeba": [(27.86, 0.88), (30.27, 0.93), (33.33, 0.92), (31.79, 0.91)],
    "helen": [(29.13, 0.85), (31.20, 0.88), (35.13, 0.92), (33.96, 0.88)],
}
PAPER_TABLE_VI = {  # Table VI: (PSNR, SSIM)
    "bn": {"helen": (25.12, 0.82), "celeba": (24.38, 0.81)},
    "bn_sem": {"helen": (25.55, 0.84), "celeba": (24.72, 0.82)},
    "bn_sem_nrl": {"helen": (26.08, 0.85), "celeba": (25.26, 0.84)},
    "umsn_no_lc": {"helen": (26.61, 0.87), "celeba": (25.67, 0.87)},
    "umsn": {"helen": (26.93, 0.897), "celeba": (25.90, 0.90)},
}
PAPER_TABLE_IV = {  # Table IV: d_VGG (VGG-Face pool5 L2 distance), lower is better
    "Xu et al. [13]": {"helen": 10.15, "celeba": 11.38},
    "Zhong et al. [44]": {"helen": 12.28, "celeba": 14.72},
    "Nah et al. [7]": {"helen": 7.46, "celeba": 8.92},
    "Ziyi et al. [9]": {"helen": 5.87, "celeba": 6.49},
    "UMSN": {"helen": 5.23, "celeba": 5.57},
}
PAPER_TABLE_V = {  # Table V (CelebA): top-1/3/5 recognition accuracy in %
    "Clear images": (71, 84, 89),
    "Blurred images": (31, 46, 53),
    "Pan et al. [29]": (44, 57, 64),
    "Xu et al. [13]": (43, 57, 64),
    "Zhong et al. [44]": (30, 44, 51),
    "Nah et al. [7]": (42, 59, 65),
    "Ziyi et al. [9]": (54, 68, 74),
    "UMSN": (59, 72, 80),
}
RANKS = (1, 3, 5)
ROW_NAMES = {"bn": "baseline (BN)", "bn_sem": "+ semantic maps", "bn_sem_nrl": "+ nested residuals",
             "umsn_no_lc": "UMSN without L_c", "umsn": "UMSN"}


def define_flags(fv=flags.FLAGS):
    d = dict(flag_values=fv)
    flags.DEFINE_string("workdir", None, "umsn-stage workdir (flags.txt + checkpoints/).", **d)
    flags.DEFINE_list("ablation_workdirs", [], "umsn-stage workdirs for Table VI rows.", **d)
    flags.DEFINE_string("test_data", None, "Test set: a stored-blur set (DIR/blurred + DIR/sharp, "
                        "e.g. Shen et al.'s blurred Helen/CelebA or GoPro, or TFRecords holding "
                        "image/blurred: never re-blurred), or sharp faces (folder / records) blurred "
                        "with the run's kernel bank.", **d)
    flags.DEFINE_multi_string("compare", [], "Extra measured Table III rows, NAME=SPEC as in "
                              "`python -m common.compare --method` (unsharp, wiener/rl when the "
                              "test set stores kernels, the other papers' workdirs or .keras).", **d)
    flags.DEFINE_enum("paper_set", "celeba", ["celeba", "helen"], "Which paper column to show.", **d)
    flags.DEFINE_integer("num_images", 256, "At most this many test images.", **d)
    flags.DEFINE_integer("eval_crop", 0, "Centre crop (0: the run's --crop).", **d)
    flags.DEFINE_string("output_dir", None, "Write tables (CSV/Markdown) and a contact sheet here.", **d)
    flags.DEFINE_bool("face_tables", False, "Also Tables IV (identity distance) and V "
                      "(recognition); needs the face extra (dlib).", **d)
    flags.DEFINE_string("lfw_dir", os.path.join(paths.SHARED_DATA, "lfw"),
                        "LFW folder (<name>/<name>_NNNN.jpg) for Table V.", **d)
    flags.DEFINE_enum("identity_model", "dlib_resnet", ["dlib_resnet", "vgg_face"],
                      "Identity descriptor for Tables IV/V (vgg_face needs --vgg_face_weights).", **d)
    flags.DEFINE_string("vgg_face_weights", None, "Keras VGG-Face weights file (vgg_face).", **d)
    flags.DEFINE_string("dlib_models_dir", None, "Folder of the dlib .dat models (default: the "
                        "face_recognition_models package).", **d)
    flags.DEFINE_integer("recognition_ids", 100, "Table V: at most this many identities "
                         "(paper: 100).", **d)
    flags.DEFINE_integer("gallery_per_id", 9, "Table V: sharp gallery images per identity "
                         "(paper: 9).", **d)
    flags.DEFINE_integer("blurs_per_probe", 4, "Table V: blurred versions of each probe (paper: "
                         "8000 for 100 probes = 80).", **d)
    flags.DEFINE_string("sn_clean_workdir", None, "Table II: sn_clean-stage workdir (SN trained "
                        "on clean faces). With --sn_blurry_workdir prints Table II; --workdir is "
                        "then optional.", **d)
    flags.DEFINE_string("sn_blurry_workdir", None, "Table II: sn_blurry-stage workdir (SN "
                        "fine-tuned on blurry faces; its kernel bank blurs sharp test faces).", **d)
    flags.DEFINE_string("mask_dir", None, "Table II ground truth for a folder of sharp faces: "
                        "<stem>.png class masks (e.g. data/sample/masks). Stored-blur sets use "
                        "their own masks/.", **d)
    flags.DEFINE_string("no_reference_data", None, "A folder of real blurry faces without ground "
                        "truth (the paper's PubFig, Fig. 13): restored and written as a contact "
                        "sheet to --output_dir (qualitative only).", **d)
    flags.DEFINE_integer("face_crop", 150, "Centre crop of every face image for Tables IV/V "
                         "(150: the scale of data/sample/faces and the held-out test faces).", **d)


def load_config(workdir):
    """The run's FlagValues from workdir/flags.txt (FileNotFoundError naming --workdir if absent)."""
    return cli.load_flags([train.define_flags], workdir)


def load_model(workdir, checkpoint=None):
    """(flags, `models.UMSNDeblurrer`) of a umsn-stage workdir (`export.load_deblurrer`)."""
    model, config = export.load_deblurrer(workdir, checkpoint)
    return config, model


def load_method(workdir):
    """The run of a umsn-stage workdir as a `common.evaluation.Method` (for `common.compare`)."""
    config, model = load_model(workdir)
    return methods_lib.Method(f"UMSN ({config.ablation}, {config.variant})", model, "paper3", workdir,
                              methods_lib.count_params(model), models.UMSN_STRIDE,
                              description=f"paper3_umsn workdir {workdir}")


def _stored_pairs(test_data, num_images, crop):
    """(blurred, sharp, masks or None, kernels or None, TestSet) of a stored-blur test set."""
    ts = stored_sets.load_test_set(test_data, num_images)
    if not ts.has_reference:
        raise ValueError(f"--test_data={test_data} stores no sharp images: Tables III/I need ground "
                         "truth; score a no-reference set with `python -m common.compare`")
    cut = lambda im: centre_crop(im, crop) if crop else im
    blurred = [cut(s.blurred) for s in ts.samples]
    if len({b.shape for b in blurred}) > 1:
        raise ValueError(f"--test_data={test_data}: images of different sizes "
                         f"{sorted({b.shape for b in blurred})[:3]}; pass --eval_crop=N to centre-crop them")
    sharp = np.stack([cut(s.sharp) for s in ts.samples])
    masks = np.stack([cut(s.mask) for s in ts.samples]).astype(np.int32) if ts.has_masks else None
    kernels = [s.kernel for s in ts.samples] if ts.has_kernels else None
    return (image_io.to_float32(np.stack(blurred)), image_io.to_float32(sharp), masks, kernels, ts)


def measure(workdir, test_data, num_images=256, crop=0, run=None, compare=()):
    """Returns dict with blurred/restored/sharp arrays, class maps and PSNR/SSIM arrays (and the
    run's config and model). run: `load_model(workdir)`'s (config, model) when already loaded.

    A test set that stores blurred images (`common.evaluation.stored_sets.stores_blurred`: the folder
    layout DIR/blurred + DIR/sharp, or records with image/blurred) is used as stored, never
    re-blurred (crop: centre crop, 0 = whole images); its masks (when stored) are Table I's
    classes. Otherwise the sharp faces are blurred with the run's kernel bank (seed + 1) at
    `crop` (0: the run's --crop) and the classes are SN's argmax on the sharp face.
    compare: `--compare` specs, measured as extra rows (`common.evaluation.runner.compare_rows`)."""
    config, model = run if run is not None else load_model(workdir)
    kernels = None
    if stored_sets.stores_blurred(test_data):
        blurred, sharp, masks, kernels, ts = _stored_pairs(test_data, num_images, crop)
        restored = np.concatenate([
            np.stack([inference.deblur_image(model, y, stride=models.UMSN_STRIDE) for y in blurred[i:i + 8]])
            for i in report.progress(range(0, len(blurred), 8), desc="UMSN on the test set (batches of 8)")])
        if masks is None:
            masks = np.concatenate([tf.argmax(model.sn(sharp[i:i + 8]), -1).numpy().astype(np.int32)
                                    for i in range(0, len(sharp), 8)])
            class_source = "SN argmax on the sharp face"
        else:
            class_source = f"the masks stored with {test_data}"
        out = dict(sharp=sharp, blurred=blurred, restored=restored, classes=masks)
        out["blur"] = f"stored blurred images of {ts.describe()} (not re-blurred)"
    else:
        crop = crop or config.crop_size
        bank = train.make_kernel_bank(config)
        keys = ("sharp", "blurred")
        ds = pipeline.make_dataset(test_data, 8, crop=crop, training=False, keys=keys,
                                   kernel_bank=bank, noise_sigma=config.noise_sigma,
                                   quantize=False,  # the on-the-fly test set as it always was
                                   seed=config.seed + 1, repeat=False)
        sharp, blurred, restored, cmaps = [], [], [], []
        for batch in report.progress(ds, desc="UMSN on the test set (batches of 8)"):
            y = batch["blurred"]
            restored.append(model(y).numpy())
            sharp.append(batch["sharp"].numpy())
            blurred.append(y.numpy())
            cmaps.append(tf.argmax(model.sn(batch["sharp"]), -1).numpy().astype(np.int32))
            if sum(len(s) for s in sharp) >= num_images:
                break
        out = {k: np.concatenate(v)[:num_images] for k, v in
               dict(sharp=sharp, blurred=blurred, restored=restored, classes=cmaps).items()}
        out["blur"] = (f"sharp faces of {test_data} blurred with the run's kernel bank ({config.blur_kernels}, "
                       f"seed {config.seed + 1}), noise sigma {config.noise_sigma:g}")
        class_source = "SN argmax on the sharp face"
    out["class_source"] = class_source
    out["psnr_restored"] = metrics.psnr(out["restored"], out["sharp"])
    out["psnr_blurred"] = metrics.psnr(out["blurred"], out["sharp"])
    out["ssim_restored"] = metrics.ssim(out["restored"], out["sharp"])
    out["ssim_blurred"] = metrics.ssim(out["blurred"], out["sharp"])
    out["compare"] = runner.compare_rows(compare, out["blurred"], out["sharp"], kernels) if compare else {}
    out["config"] = config
    out["model"] = model
    return out


def tables(result, paper_set="celeba", ablation_results=()):
    fmt = {"PSNR": ".2f", "SSIM": ".3f"}
    n = len(result["sharp"])
    t3 = report.Table(f"Table III: PSNR/SSIM (ours: {n} test faces; paper: {paper_set})",
                      ["PSNR", "SSIM"], formats=fmt,
                      notes=[f"ours: {result.get('blur', '')}",
                             "rows with only the paper's numbers: methods we cannot run here"])
    t3.add("Blurred input", ours=[float(np.mean(result["psnr_blurred"])),
                                  float(np.mean(result["ssim_blurred"]))])
    for name, vals in PAPER_TABLE_III.items():
        if name != "UMSN":
            t3.add(name, paper=list(vals[paper_set]))
    for name, r in result.get("compare", {}).items():
        t3.add(f"{name} (measured)", ours=[r["psnr"], r["ssim"]])
    t3.add(f"UMSN ({result['config'].ablation}, {result['config'].variant})",
           ours=[float(np.mean(result["psnr_restored"])), float(np.mean(result["ssim_restored"]))],
           paper=list(PAPER_TABLE_III["UMSN"][paper_set]))
    cols = [f"class-{i + 1} {m}" for i in range(4) for m in ("PSNR", "SSIM")]
    flat = lambda pc: [float(np.nanmean(pc[m][:, i])) for i in range(4) for m in ("psnr", "ssim")]
    paper_t1 = [v for pair in PAPER_TABLE_I[paper_set] for v in pair]
    t1s = []
    for mode, what in (("region", "region only: pixels of the class"),
                       ("masked_image", "masked image: m*x vs m*x_hat over the whole frame")):
        t = report.Table(f"Table I ({mode}): per-class PSNR/SSIM, {what} (classes: "
                         f"{result.get('class_source', 'SN argmax on the sharp face')})", cols,
                         formats={c: (".2f" if "PSNR" in c else ".3f") for c in cols})
        pc_b = metrics.per_class_psnr_ssim(result["blurred"], result["sharp"], result["classes"],
                                           mode=mode)
        pc_r = metrics.per_class_psnr_ssim(result["restored"], result["sharp"], result["classes"],
                                           mode=mode)
        t.add("Blurred input", ours=flat(pc_b))
        # the paper's per-class numbers exceed its whole-image PSNR: only the masked-image mode can
        # do that, so the paper's rows sit in that table
        ziyi = [v for pair in PAPER_TABLE_I_ZIYI[paper_set] for v in pair]
        t.add("Ziyi et al. [9]", paper=ziyi if mode == "masked_image" else None)
        for name, r in result.get("compare", {}).items():
            t.add(f"{name} (measured)", ours=flat(metrics.per_class_psnr_ssim(
                r["restored"], result["sharp"], result["classes"], mode=mode)))
        t.add("UMSN", ours=flat(pc_r), paper=paper_t1 if mode == "masked_image" else None)
        t1s.append(t)
    out = [t3, *t1s]
    if ablation_results:
        out.append(table_vi(ablation_results, paper_set))
    return out


# ============================================================== Table VI (ablation)
def run_step(workdir):
    """The training step of a workdir's newest checkpoint (checkpoints are numbered by step)."""
    path = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
    return int(path.rsplit("-", 1)[-1]) if path else None


def ablation_protocol(configs):
    """'equal iterations (N steps)' or 'equal time (M min)' or 'mixed' from the rows' configs."""
    minutes = {float(c.max_train_minutes) for c in configs}
    steps = {int(c.num_steps) for c in configs}
    if minutes == {0.0} and len(steps) == 1:
        return f"equal iterations ({steps.pop()} steps each)"
    if len(minutes) == 1 and 0.0 not in minutes:
        return f"equal time ({minutes.pop():g} min each, --num_steps as a cap)"
    return "mixed (rows trained with different step counts / time budgets)"


def table_vi(ablation_results, paper_set="celeba"):
    """Table VI from `run_eval` results of the ablation runs: PSNR/SSIM beside the paper's, and
    each row's parameter count (UMSN network, SN excluded) and training steps. The title names
    the protocol (configs/table_vi.flags: equal iterations, the default; equal time: an option)."""
    configs = [r["config"] for r in ablation_results]
    t6 = report.Table(f"Table VI: ablation ({ablation_protocol(configs)}; paper: {paper_set})",
                      ["PSNR", "SSIM", "params", "steps"],
                      formats={"PSNR": ".2f", "SSIM": ".3f"},
                      notes=["params: weights of the deblurring network (BN/UMSN incl. F-Nets, "
                             "without SN); the paper widens BN to UMSN's count "
                             "(--bn_match_params)"])
    for r in ablation_results:
        ab = r["config"].ablation
        name = ROW_NAMES[ab] + (" (widened)" if getattr(r["config"], "bn_match_params", False)
                                and ab == "bn" else "")
        t6.add(name, ours=[float(np.mean(r["psnr_restored"])), float(np.mean(r["ssim_restored"])),
                           int(r["model"].umsn.count_params()), r.get("step")],
               paper=list(PAPER_TABLE_VI[ab][paper_set]) + [None, None])
    return t6


# ============================================================== Table II (SN segmentation)
PAPER_TABLE_II = {  # Table II (Helen): F-score per class
    # (clean images, SN trained on clean; blurry images, SN trained on clean; blurry, SN fine-tuned)
    "class-1": (0.910, 0.889, 0.901), "class-2": (0.903, 0.877, 0.884),
    "class-3": (0.856, 0.775, 0.814), "class-4": (0.625, 0.538, 0.566),
}
TABLE_II_COLUMNS = ("clean: SN clean", "blurry: SN clean", "blurry: SN fine-tuned")


def load_sn(workdir):
    """(config, SN) of an sn_clean / sn_blurry workdir, newest checkpoint restored."""
    workdirs.check_workdir_kind(workdir, "paper3", ("sn_clean", "sn_blurry"))
    config = load_config(workdir)
    sn = models.build_sn(config.variant)
    sn(np.zeros((1, 8, 8, 3), np.float32))
    checkpoints.restore_for_eval(workdir, sn=sn)
    return config, sn


def predict_classes(sn, image):
    """SN's argmax class map int32 [H,W] of one uint8/float image [H,W,3] (reflect-padded to a
    multiple of 4, cropped back)."""
    x = image_io.to_float32(image)
    h, w = x.shape[:2]
    padded = np.asarray(keras_utils.pad_to_multiple(x, 4), np.float32)
    logits = np.asarray(sn(padded[None]))
    return np.argmax(logits[0, :h, :w], -1).astype(np.int32)


def segmentation_set(test_data, mask_dir=None, num_images=256, crop=0, blur_config=None):
    """Ground truth for Table II: dict names, sharp, blurred (uint8 [H,W,3] lists), masks (uint8
    [H,W] class ids), blur (text), skipped (faces without a mask).

    A stored-blur test set (DIR/blurred + DIR/sharp + DIR/masks, or the Shen et al. layout with
    masks/) is used as stored; a folder of sharp faces takes its masks from `mask_dir`
    (<stem>.png, e.g. data/sample/masks) and is blurred with `blur_config`'s kernel bank and noise
    (one fixed kernel per face, seed + 1: not the training draw). Faces without a mask are
    skipped (counted)."""
    cut = lambda im: centre_crop(im, crop) if crop else im
    if stored_sets.stores_blurred(test_data):
        ts = stored_sets.load_test_set(test_data, num_images)
        if not ts.has_masks:
            raise ValueError(f"--test_data={test_data} stores no masks (DIR/masks/NAME.png or "
                             "mask/classes): Table II needs ground-truth class masks")
        return dict(names=[s.name for s in ts.samples], sharp=[cut(s.sharp) for s in ts.samples],
                    blurred=[cut(s.blurred) for s in ts.samples],
                    masks=[cut(s.mask) for s in ts.samples], skipped=0,
                    blur=f"stored blurred images of {ts.describe()} (not re-blurred)")
    if not os.path.isdir(test_data or "") or not mask_dir:
        raise ValueError("Table II needs ground-truth masks: --test_data=a stored-blur set with "
                         "masks/, or a folder of sharp faces with --mask_dir=<stem>.png masks "
                         "(e.g. data/sample/test_faces + data/sample/masks)")
    if blur_config is None:
        raise ValueError("Table II on sharp faces needs a run's kernel bank to blur them")
    names, sharp, masks, skipped = [], [], [], 0
    for path in image_io.list_images(test_data)[:num_images]:
        stem = os.path.splitext(os.path.basename(path))[0]
        m = os.path.join(mask_dir, stem + ".png")
        if not os.path.isfile(m):
            skipped += 1
            continue
        img = image_io.read_image(path)
        names.append(stem)
        sharp.append(cut(img))
        masks.append(cut(stored_sets._read_mask(m, img.shape)))  # pylint: disable=protected-access
    if not names:
        raise ValueError(f"no face of {test_data} has a mask <stem>.png in --mask_dir={mask_dir}")
    kernels = train.make_kernel_bank(blur_config)
    by_name = dict(zip(names, sharp))
    blur = make_blur(kernels, blur_config.noise_sigma, by_name.__getitem__, blur_config.seed + 1)
    return dict(names=names, sharp=sharp, blurred=[blur(n) for n in names], masks=masks,
                skipped=skipped,
                blur=(f"sharp faces of {test_data} blurred with the SN run's bank ({len(kernels)} "
                      f"{blur_config.blur_kernels} kernels of {blur_config.kernel_sizes}"
                      f" px, seed {blur_config.seed + 1}), noise sigma {blur_config.noise_sigma:g}"))


def run_table_ii(sn_clean_workdir, sn_blurry_workdir, test_data, mask_dir=None, num_images=256,
                 crop=0, sn_runs=None):
    """Table II: per-class F-scores (`common.evaluation.segmentation`, pooled over the set) of
    SN trained on clean faces on the clean and the blurred faces, and of SN fine-tuned on blurry
    faces on the blurred faces. sn_runs: (clean, blurry) `load_sn` results when already loaded.
    Returns dict fscores {column: [4]}, n, skipped, blur."""
    from common.evaluation import segmentation
    clean, blurry = sn_runs or (load_sn(sn_clean_workdir), load_sn(sn_blurry_workdir))
    data = segmentation_set(test_data, mask_dir, num_images, crop, blur_config=blurry[0])
    f = lambda sn, images: segmentation.class_fscores(
        [predict_classes(sn, im) for im in images], data["masks"], models.NUM_CLASSES)
    scores = {TABLE_II_COLUMNS[0]: f(clean[1], data["sharp"]),
              TABLE_II_COLUMNS[1]: f(clean[1], data["blurred"]),
              TABLE_II_COLUMNS[2]: f(blurry[1], data["blurred"])}
    return dict(fscores=scores, n=len(data["names"]), skipped=data["skipped"], blur=data["blur"])


def table_ii(result):
    """report.Table in Table II's layout: rows class-1..4, columns clean/blurry x SN."""
    t = report.Table(f"Table II: F-scores of SN's class maps (ours: {result['n']} faces; paper: "
                     "Helen, 330 clean + 8000 blurry test images)", list(TABLE_II_COLUMNS),
                     formats=".3f",
                     notes=[f"ours: {result['blur']}; F pooled over all pixels of the set "
                            "(common.evaluation.segmentation)"]
                     + ([f"{result['skipped']} faces without a mask skipped"] if result["skipped"] else []))
    for i, (row, paper) in enumerate(PAPER_TABLE_II.items()):
        t.add(row, ours=[float(result["fscores"][c][i]) for c in TABLE_II_COLUMNS], paper=list(paper))
    return t


# ============================================================== PubFig (no reference, qualitative)
def run_no_reference(model, test_data, num_images=0, output_dir=None):
    """Restores a folder of real blurry faces without ground truth (the paper's PubFig, Fig. 13:
    192 images, qualitative only) through `common.evaluation` (no-reference test-set kind) and
    writes blurred | UMSN contact sheets. Returns (TestSet, restored uint8 list, sheet path)."""
    ts = stored_sets.load_test_set(test_data, num_images)
    if ts.has_reference:
        raise ValueError(f"--no_reference_data={test_data} has ground truth; use --test_data")
    method = methods_lib.Method("UMSN", model, "paper3", stride=models.UMSN_STRIDE)
    restored = [img for _, img, _ in runner.restore_all(method, ts)]
    path = None
    if output_dir:
        os.makedirs(output_dir, exist_ok=True)
        path = os.path.join(output_dir, "no_reference_sheet.png")
        rows = [[image_io.to_float32(s.blurred), image_io.to_float32(r)]
                for s, r in list(zip(ts.samples, restored))[:8]]
        image_io.contact_sheet(rows, labels=["blurred (real)", "UMSN"], path=path)
    return ts, restored, path


# ============================================================== Tables IV and V (face models)
IDENTITY_LABELS = {"dlib_resnet": "dlib ResNet 128-D descriptor, L2-normalised",
                   "vgg_face": "VGG-Face fc7 4096-D, L2-normalised"}


def centre_crop(img, size):
    """The centre size x size window of img (each side capped at the image's own)."""
    h, w = img.shape[:2]
    if not size or (h <= size and w <= size):
        return img
    ch, cw = min(size, h), min(size, w)
    t, l = (h - ch) // 2, (w - cw) // 2
    return img[t:t + ch, l:l + cw]


def load_faces(source, num_images, crop=0):
    """{name: uint8 [H,W,3]}: the first num_images whole faces of an image folder or TFRecords,
    centre-cropped to `crop` (0: as stored)."""
    out = {}
    if os.path.isdir(source):
        for path in image_io.list_images(source)[:num_images]:
            out[os.path.relpath(path, source)] = centre_crop(image_io.read_image(path), crop)
    else:
        ds = tf.data.TFRecordDataset(tfrecord.list_files(source)).take(num_images)
        for i, rec in enumerate(ds):
            img = tfrecord.parse_example(rec, (tfrecord.SHARP,))[tfrecord.SHARP].numpy()
            out[f"record_{i:06d}"] = centre_crop(img, crop)
    return out


class _Keyed:
    """Sharp image of a key 'name' or 'name#tag' (the tag only selects the blur)."""

    def __init__(self, load):
        self.load = load

    def __call__(self, key):
        return self.load(key.split("#", 1)[0])


def make_blur(kernels, noise_sigma, load, seed):
    """blur(name, j=0) -> uint8 blurred image: `common.face.BlurredSource` over `load(name)`
    (kernel kernels[crc32(key) % K], Gaussian noise seeded by the same key, rounded to uint8) with
    key = 'name#s<seed>#<j>', so each image and blur index j gets its own fixed kernel."""
    src = face.BlurredSource(_Keyed(load), kernels, noise_sigma)
    return lambda name, j=0: src(f"{name}#s{seed}#{j}")


def build_face_models(identity_model="dlib_resnet", vgg_face_weights=None, dlib_models_dir=None):
    """`common.face.FaceModels` with the identity model and dlib HOG boxes found on the SHARP
    image (reused for every condition; the whole image when none is found)."""
    from common.face import FaceModels
    return FaceModels(identity_model=identity_model, landmarker="", detector="", box_detector="dlib",
                      vgg_face_weights=vgg_face_weights, dlib_models_dir=dlib_models_dir)


def _restore(model, y, stride):
    return image_io.to_uint8(inference.deblur_image(model, y, stride=stride))


def identity_distances(model, faces, blur, fm, stride=models.UMSN_STRIDE):
    """Table IV: per face, the L2 distance between identity descriptors of (blurred, sharp) and of
    (restored, sharp); restored = `common.inference.deblur_image` on the whole blurred face.
    Returns dict d_blurred [N], d_restored [N], names, embeddings (sharp/blurred/restored [N,D])."""
    emb = {"sharp": [], "blurred": [], "restored": []}
    for name, sharp in faces.items():
        y = blur(name)
        for cond, img in (("sharp", sharp), ("blurred", y), ("restored", _restore(model, y, stride))):
            emb[cond].append(fm.embed(img, fm.box(name, sharp)))
    emb = {k: np.stack(v) for k, v in emb.items()}
    return {"names": list(faces),
            "d_blurred": np.linalg.norm(emb["blurred"] - emb["sharp"], axis=1),
            "d_restored": np.linalg.norm(emb["restored"] - emb["sharp"], axis=1),
            "embeddings": emb}


def lfw_identities(lfw_dir):
    """{identity: [relative image paths]} of an LFW folder (<name>/<name>_NNNN.jpg)."""
    out = {}
    for ident in sorted(os.listdir(lfw_dir)):
        d = os.path.join(lfw_dir, ident)
        if os.path.isdir(d):
            out[ident] = [os.path.join(ident, f) for f in sorted(os.listdir(d))
                          if f.lower().endswith(image_io.IMAGE_EXTENSIONS)]
    return out


def recognition_split(images_by_id, num_ids=100, gallery_per_id=9, seed=0):
    """`common.face.probe_gallery_split`, then ONE probe per identity (the paper: 100 probes,
    each blurred many times). Returns (gallery, gallery_ids, probes, probe_ids)."""
    gallery, gallery_ids, probes, probe_ids = face.probe_gallery_split(
        images_by_id, num_ids, gallery_per_id, seed)
    first = {}
    for p, ident in zip(probes, probe_ids):
        first.setdefault(ident, p)
    return gallery, gallery_ids, list(first.values()), list(first)


def recognition(model, load, split, blur, fm, blurs_per_probe=4, stride=models.UMSN_STRIDE,
                ks=RANKS):
    """Table V: closed-set top-k accuracy (`common.face.recognition_topk`) of the probes as
    they are ("clear"), blurred `blurs_per_probe` times ("blurred") and each blurred version
    restored by `model` ("restored"), against the sharp gallery. Returns {"accuracy": {cond: {k:
    acc}}, "embeddings": {cond: [P,D], "gallery": [G,D]}, "ids": {cond: [P]}, "gallery_ids"}."""
    gallery, gallery_ids, probes, probe_ids = split
    g_emb = np.stack([fm.embed(load(r), fm.box(r, load(r))) for r in gallery])
    emb = {"clear": [], "blurred": [], "restored": []}
    ids = {"clear": list(probe_ids), "blurred": [], "restored": []}
    for rel, ident in zip(probes, probe_ids):
        sharp = load(rel)
        box = fm.box(rel, sharp)
        emb["clear"].append(fm.embed(sharp, box))
        for j in range(blurs_per_probe):
            y = blur(rel, j)
            emb["blurred"].append(fm.embed(y, box))
            emb["restored"].append(fm.embed(_restore(model, y, stride), box))
            ids["blurred"].append(ident)
            ids["restored"].append(ident)
    emb = {k: np.stack(v) for k, v in emb.items()}
    acc = {k: face.recognition_topk(emb[k], ids[k], g_emb, gallery_ids, ks) for k in emb}
    return {"accuracy": acc, "embeddings": {**emb, "gallery": g_emb}, "ids": ids,
            "gallery_ids": list(gallery_ids)}


def face_tables(iv, v, paper_set="celeba", identity_model="dlib_resnet", notes_iv=(), notes_v=()):
    """Tables IV and V (report.Table) from `identity_distances` and `recognition` results."""
    label = IDENTITY_LABELS[identity_model]
    n = len(iv["names"])
    t4 = report.Table(f"Table IV: identity feature distance d, lower is better (ours: {n} test "
                      f"faces, {label}; paper: d_VGG, {paper_set})", ["d"], formats=".3f",
                      notes=[f"ours: mean L2 distance to the sharp face's descriptor ({label}: "
                             "range 0..2); paper: L2 distance of VGG-Face pool5 features: NOT the "
                             "same scale, compare rows within one column only", *notes_iv])
    t4.add("Blurred input", ours=[float(np.mean(iv["d_blurred"]))])
    for name, vals in PAPER_TABLE_IV.items():
        if name != "UMSN":
            t4.add(name, paper=[vals[paper_set]])
    t4.add("UMSN (ours)", ours=[float(np.mean(iv["d_restored"]))],
           paper=[PAPER_TABLE_IV["UMSN"][paper_set]])
    cols = [f"Top-{k}" for k in RANKS]
    acc = v["accuracy"]
    pct = lambda cond: [100.0 * acc[cond][k] for k in RANKS]
    n_ids = len(set(v["gallery_ids"]))
    t5 = report.Table(f"Table V: top-1/3/5 recognition accuracy, % (ours: {len(v['ids']['clear'])} "
                      f"probes, one per identity, x {len(v['ids']['blurred']) // max(len(v['ids']['clear']), 1)} "
                      f"blurs = {len(v['ids']['blurred'])} blurred probes, gallery "
                      f"{len(v['gallery_ids'])} sharp images of {n_ids} LFW identities, {label}; "
                      "paper: CelebA, 100 identities x 9 gallery, 8000 blurred probes, OpenFace)",
                      cols, formats=".1f", notes=list(notes_v))
    t5.add("Clear images", ours=pct("clear"), paper=list(PAPER_TABLE_V["Clear images"]))
    t5.add("Blurred images", ours=pct("blurred"), paper=list(PAPER_TABLE_V["Blurred images"]))
    for name, vals in PAPER_TABLE_V.items():
        if name not in ("Clear images", "Blurred images", "UMSN"):
            t5.add(name, paper=list(vals))
    t5.add("UMSN (ours)", ours=pct("restored"), paper=list(PAPER_TABLE_V["UMSN"]))
    return [t4, t5]


def run_face_tables(model, config, test_data, num_images=256, paper_set="celeba", lfw_dir=None,
                    identity_model="dlib_resnet", vgg_face_weights=None, dlib_models_dir=None,
                    recognition_ids=100, gallery_per_id=9, blurs_per_probe=4, face_crop=150):
    """Tables IV and V for a restored run (`load_model`'s model and config); see the flags."""
    fm = build_face_models(identity_model, vgg_face_weights, dlib_models_dir)
    kernels = train.make_kernel_bank(config)
    seed = config.seed + 1   # not the training draw (as run_eval)
    net = tf.function(lambda x: model(x), reduce_retracing=True)
    blur_desc = (f"blur: the run's bank ({len(kernels)} {config.blur_kernels} kernels "
                 f"of {config.kernel_sizes} px), noise sigma {config.noise_sigma:g}, "
                 "kernel and noise fixed per image by crc32 of its name (common.face.BlurredSource)")
    if stored_sets.stores_blurred(test_data):   # stored blurred faces: never re-blurred
        ts = stored_sets.load_test_set(test_data, num_images)
        faces = {s.name: s.sharp for s in ts.samples}
        stored = {s.name: s.blurred for s in ts.samples}
        face_blur = lambda name, j=0: stored[name]
        blur_desc_iv = f"blur: stored in {test_data} (not re-blurred)"
    else:
        faces = load_faces(test_data, num_images, face_crop)
        face_blur = make_blur(kernels, config.noise_sigma, faces.__getitem__, seed)
        blur_desc_iv = blur_desc
    iv = identity_distances(net, faces, face_blur, fm)
    fb_iv = fm.fallbacks
    lfw_dir = lfw_dir or os.path.join(paths.SHARED_DATA, "lfw")
    by_id = lfw_identities(lfw_dir)
    split = recognition_split(by_id, recognition_ids, gallery_per_id, seed=config.seed)
    cache = {}

    def load(rel):
        if rel not in cache:
            cache[rel] = centre_crop(image_io.read_image(os.path.join(lfw_dir, rel)), face_crop)
        return cache[rel]

    v = recognition(net, load, split, make_blur(kernels, config.noise_sigma, load, seed), fm,
                    blurs_per_probe)
    n_ids = len(set(split[1]))
    eligible = sum(len(x) > gallery_per_id for x in by_id.values())
    return face_tables(
        iv, v, paper_set, identity_model,
        notes_iv=[f"whole {face_crop}-px faces of {test_data}; face box: dlib HOG on the sharp "
                  f"face, reused for blurred/restored (whole image for {fb_iv} of {len(faces)})",
                  blur_desc_iv],
        notes_v=[f"only {eligible} identities of {lfw_dir} have more than {gallery_per_id} images "
                 f"(paper: 100), {n_ids} used: chance top-1 = {100.0 / n_ids:.1f} %",
                 f"face boxes on the sharp images (whole image for {fm.fallbacks - fb_iv} of "
                 f"{len(split[0]) + len(split[2])}); {blur_desc}"])


def run_eval(fv):
    """Tables III, I, VI (and II with the SN workdirs, IV, V with --face_tables) from the parsed
    flags: printed, and written under --output_dir with a contact sheet."""
    table_ii_only = bool(fv.sn_clean_workdir or fv.sn_blurry_workdir) and not fv.workdir
    if not fv.workdir and not table_ii_only:
        raise app.UsageError("--workdir is required (--test_data with --sn_clean_workdir/"
                             "--sn_blurry_workdir alone gives Table II)")
    if bool(fv.sn_clean_workdir) != bool(fv.sn_blurry_workdir):
        raise app.UsageError("Table II needs both --sn_clean_workdir and --sn_blurry_workdir")
    tabs, result = [], None
    try:
        if fv.sn_clean_workdir:
            tabs.append(table_ii(run_table_ii(fv.sn_clean_workdir, fv.sn_blurry_workdir,
                                              fv.test_data, fv.mask_dir, fv.num_images, fv.eval_crop)))
        if fv.workdir:
            result = measure(fv.workdir, fv.test_data, fv.num_images, fv.eval_crop, compare=fv.compare)
    except (ValueError, FileNotFoundError) as e:  # one line naming the flag, no traceback
        raise app.UsageError(str(e)) from e
    if result is None:
        for t in tabs:
            print(t)
        if fv.output_dir:
            os.makedirs(fv.output_dir, exist_ok=True)
            tabs[0].to_csv(os.path.join(fv.output_dir, "table_ii.csv"))
        return
    abl = []
    for w in fv.ablation_workdirs:
        abl.append(measure(w, fv.test_data, fv.num_images, fv.eval_crop))
        abl[-1]["step"] = run_step(w)
    tabs = tables(result, fv.paper_set, abl) + tabs
    if fv.no_reference_data:
        ts, _, sheet = run_no_reference(result["model"], fv.no_reference_data, 0, fv.output_dir)
        print(f"No-reference set (PubFig-style, qualitative): {ts.describe()}; "
              + (f"contact sheet {sheet}" if sheet else "pass --output_dir for the contact sheet"))
    if fv.face_tables:
        tabs += run_face_tables(
            result["model"], result["config"], fv.test_data, fv.num_images, fv.paper_set,
            fv.lfw_dir, fv.identity_model, fv.vgg_face_weights, fv.dlib_models_dir,
            fv.recognition_ids, fv.gallery_per_id, fv.blurs_per_probe, fv.face_crop)
    for t in tabs:
        print(t)
        print()
    if fv.output_dir:
        os.makedirs(fv.output_dir, exist_ok=True)
        for i, t in enumerate(tabs):
            t.to_csv(os.path.join(fv.output_dir, f"table_{i}.csv"))
        rows = [[result["blurred"][i], result["restored"][i], result["sharp"][i]] for i in range(min(6, len(result["sharp"])))]
        image_io.contact_sheet(rows, labels=["blurred", "UMSN", "sharp"],
                               path=os.path.join(fv.output_dir, "contact_sheet.png"))


def main(argv):
    del argv
    run_eval(flags.FLAGS)


if __name__ == "__main__":
    define_flags(flags.FLAGS)
    cli.run_app(main, required=("test_data",))
