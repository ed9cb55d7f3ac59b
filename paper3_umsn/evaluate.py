"""Evaluation of trained UMSN runs in the paper's table layout (ours beside the paper's numbers).

    python -m paper3_umsn.evaluate --workdir=/tmp/umsn --test_data=FOLDER_OR_RECORDS \
        [--ablation_workdirs=/tmp/bn,/tmp/bn_sem,...] [--output_dir=/tmp/umsn_eval]

Prints Table III (PSNR/SSIM of blurred input and UMSN), Table I (per-class PSNR/SSIM, twice:
"region" = over the class's pixels only, "masked_image" = m*x vs m*x_hat over the whole frame,
the only reading under which the paper's per-class numbers can exceed its whole-image PSNR;
classes from SN's argmax on the sharp image) and,
with --ablation_workdirs, Table VI (one row per run). Blur: the run's kernel bank (seed + 1,
so not the training draw) applied on the fly to the sharp test faces, noise as in training.
Tables IV/V (VGG-Face distance, recognition) need face models: see `python -m common.face_eval`.
"""
import os

import numpy as np
import tensorflow as tf
from absl import app, flags, logging

from common import image_io, metrics, pipeline, report, train_utils
from paper3_umsn import models, train

PAPER_TABLE_III = {  # Table III, CelebA and Helen columns
    "Blurred input": None,
    "Nah et al. [7]": {"celeba": (22.43, 0.832), "helen": (24.12, 0.823)},
    "Ziyi et al. [9]": {"celeba": (25.05, 0.879), "helen": (25.99, 0.871)},
    "UMSN": {"celeba": (25.90, 0.906), "helen": (26.93, 0.897)},
}
PAPER_TABLE_I = {  # Table I, UMSN rows: (PSNR, SSIM) per class 1..4
    "celeba": [(29.27, 0.91), (30.75, 0.95), (33.83, 0.96), (33.10, 0.94)],
    "helen": [(30.83, 0.87), (31.76, 0.90), (35.67, 0.93), (34.81, 0.91)],
}
PAPER_TABLE_VI = {  # Table VI: (PSNR, SSIM)
    "bn": {"helen": (25.12, 0.82), "celeba": (24.38, 0.81)},
    "bn_sem": {"helen": (25.55, 0.84), "celeba": (24.72, 0.82)},
    "bn_sem_nrl": {"helen": (26.08, 0.85), "celeba": (25.26, 0.84)},
    "umsn_no_lc": {"helen": (26.61, 0.87), "celeba": (25.67, 0.87)},
    "umsn": {"helen": (26.93, 0.897), "celeba": (25.90, 0.90)},
}
ROW_NAMES = {"bn": "baseline (BN)", "bn_sem": "+ semantic maps", "bn_sem_nrl": "+ nested residuals",
             "umsn_no_lc": "UMSN without L_c", "umsn": "UMSN"}


def define_flags(fv=flags.FLAGS):
    d = dict(flag_values=fv)
    flags.DEFINE_string("workdir", None, "umsn-stage workdir (flags.txt + checkpoints/).", **d)
    flags.DEFINE_list("ablation_workdirs", [], "umsn-stage workdirs for Table VI rows.", **d)
    flags.DEFINE_string("test_data", None, "Folder of sharp test faces or TFRecords.", **d)
    flags.DEFINE_enum("paper_set", "celeba", ["celeba", "helen"], "Which paper column to show.", **d)
    flags.DEFINE_integer("num_images", 256, "At most this many test images.", **d)
    flags.DEFINE_integer("eval_crop", 0, "Centre crop (0: the run's --crop).", **d)
    flags.DEFINE_string("output_dir", None, "Write tables (CSV/Markdown) and a contact sheet here.", **d)


def load_config(workdir):
    """The run's FlagValues from workdir/flags.txt, keeping only the trainer's own flags (a run
    started as __main__ may also have saved absl/TF global flags such as --delta_threshold)."""
    fresh = flags.FlagValues()
    train_utils.define_common_flags(fresh)
    train.define_flags(fresh)
    path = os.path.join(workdir, "flags.txt")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: --workdir must be a umsn-stage training workdir")
    with open(path, encoding="utf-8") as f:
        lines = [ln.strip() for ln in f if ln.strip().startswith("--")]
    known = [ln for ln in lines if ln[2:].split("=", 1)[0].removeprefix("no") in fresh
             or ln[2:].split("=", 1)[0] in fresh]
    fresh(["prog", *known])
    return fresh


def load_run(workdir):
    """Rebuilds SN + UMSN from workdir/flags.txt and restores the newest checkpoint."""
    config = load_config(workdir)
    sn = models.build_sn(config.variant)
    umsn = models.build_umsn(config.variant, config.ablation)
    c = config.crop
    sn(np.zeros((1, c, c, 3), np.float32))
    umsn([np.zeros((1, c, c, 3), np.float32), np.full((1, c, c, 4), 0.25, np.float32)])
    path = train_utils.restore_for_eval(workdir, sn=sn, umsn=umsn)
    logging.info("restored %s", path)
    model = models.UMSNDeblurrer(sn, umsn)
    model(np.zeros((1, c, c, 3), np.float32))  # build (needed by export)
    return config, model


def run_eval(workdir, test_data, num_images=256, crop=0):
    """Returns dict with blurred/restored/sharp arrays, class maps and PSNR/SSIM arrays."""
    config, model = load_run(workdir)
    crop = crop or config.crop
    bank = train.make_kernel_bank(config)
    keys = ("sharp", "blurred")
    ds = pipeline.make_dataset(test_data, 8, crop=crop, training=False, keys=keys,
                               kernel_bank=bank, noise_sigma=config.noise_sigma,
                               seed=config.seed + 1, repeat=False)
    sharp, blurred, restored, cmaps = [], [], [], []
    for batch in ds:
        y = batch["blurred"]
        restored.append(model(y).numpy())
        sharp.append(batch["sharp"].numpy())
        blurred.append(y.numpy())
        cmaps.append(tf.argmax(model.sn(batch["sharp"]), -1).numpy().astype(np.int32))
        if sum(len(s) for s in sharp) >= num_images:
            break
    out = {k: np.concatenate(v)[:num_images] for k, v in
           dict(sharp=sharp, blurred=blurred, restored=restored, classes=cmaps).items()}
    out["psnr_restored"] = metrics.psnr(out["restored"], out["sharp"])
    out["psnr_blurred"] = metrics.psnr(out["blurred"], out["sharp"])
    out["ssim_restored"] = metrics.ssim(out["restored"], out["sharp"])
    out["ssim_blurred"] = metrics.ssim(out["blurred"], out["sharp"])
    out["config"] = config
    return out


def tables(result, paper_set="celeba", ablation_results=()):
    fmt = {"PSNR": ".2f", "SSIM": ".3f"}
    n = len(result["sharp"])
    t3 = report.Table(f"Table III: PSNR/SSIM (ours: {n} test faces; paper: {paper_set})",
                      ["PSNR", "SSIM"], formats=fmt)
    t3.add("Blurred input", ours=[float(np.mean(result["psnr_blurred"])),
                                  float(np.mean(result["ssim_blurred"]))])
    for name, vals in PAPER_TABLE_III.items():
        if name in ("Blurred input", "UMSN") or vals is None:
            continue
        t3.add(name, paper=list(vals[paper_set]))
    t3.add(f"UMSN ({result['config'].ablation}, {result['config'].variant})",
           ours=[float(np.mean(result["psnr_restored"])), float(np.mean(result["ssim_restored"]))],
           paper=list(PAPER_TABLE_III["UMSN"][paper_set]))
    cols = [f"class-{i + 1} {m}" for i in range(4) for m in ("PSNR", "SSIM")]
    flat = lambda pc: [float(np.nanmean(pc[m][:, i])) for i in range(4) for m in ("psnr", "ssim")]
    paper_t1 = [v for pair in PAPER_TABLE_I[paper_set] for v in pair]
    t1s = []
    for mode, what in (("region", "region only: pixels of the class"),
                       ("masked_image", "masked image: m*x vs m*x_hat over the whole frame")):
        t = report.Table(f"Table I ({mode}): per-class PSNR/SSIM, {what} (classes: SN argmax on "
                         "the sharp face)", cols,
                         formats={c: (".2f" if "PSNR" in c else ".3f") for c in cols})
        pc_b = metrics.per_class_psnr_ssim(result["blurred"], result["sharp"], result["classes"],
                                           mode=mode)
        pc_r = metrics.per_class_psnr_ssim(result["restored"], result["sharp"], result["classes"],
                                           mode=mode)
        t.add("Blurred input", ours=flat(pc_b))
        # the paper's per-class numbers exceed its whole-image PSNR: only the masked-image mode can
        # do that, so the paper's row sits in that table
        t.add("UMSN", ours=flat(pc_r), paper=paper_t1 if mode == "masked_image" else None)
        t1s.append(t)
    out = [t3, *t1s]
    if ablation_results:
        t6 = report.Table("Table VI: ablation", ["PSNR", "SSIM"], formats=fmt)
        for r in ablation_results:
            ab = r["config"].ablation
            t6.add(ROW_NAMES[ab], ours=[float(np.mean(r["psnr_restored"])), float(np.mean(r["ssim_restored"]))],
                   paper=list(PAPER_TABLE_VI[ab][paper_set]))
        out.append(t6)
    return out


def main(argv):
    del argv
    fv = flags.FLAGS
    if not fv.workdir or not fv.test_data:
        raise app.UsageError("--workdir and --test_data are required")
    result = run_eval(fv.workdir, fv.test_data, fv.num_images, fv.eval_crop)
    abl = [run_eval(w, fv.test_data, fv.num_images, fv.eval_crop) for w in fv.ablation_workdirs]
    tabs = tables(result, fv.paper_set, abl)
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


if __name__ == "__main__":
    define_flags(flags.FLAGS)
    app.run(main, flags_parser=train_utils.flags_parser)
