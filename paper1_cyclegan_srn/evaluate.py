"""Tables 1 and 2 of Nahli et al., our numbers beside the paper's.

    python -m paper1_cyclegan_srn.evaluate --srn_workdir=runs/p1_srn \
        --test_data='records/p1/pairs/test-*.tfrecord' [--gopro_data='records/gopro/test-*.tfrecord'] \
        [--tao=paper1:runs/p1_tao] [--yuan=paper1:runs/p1_yuan] [--zhu=paper1:runs/p1_zhu] \
        --detector=mtcnn --output_dir=runs/p1_eval

Table 1 (PSNR / SSIM on our generated test set and on GoPro): one row per method, each given as a
method spec of the evaluation core (`common.evaluation.methods`: paper1:WORKDIR, a .keras file, a
SavedModel, shipped:PACKAGE/NAME, module:function; a CycleGAN workdir means its F, blurred ->
clear). `configs/run_table1.sh` trains every row and runs this.
  Blurred input        the inputs themselves (reference line, not in the paper)
  Tao et al. [7]       --tao: SRN trained on GoPro pairs (configs/table1_tao_srn.flags)
  Yuan et al. [13]     --yuan: CycleGAN trained on unpaired GoPro (configs/table1_yuan_cyclegan.flags)
  Zhu et al. [6]       --zhu: a second CycleGAN trained on our generated pairs taken as unpaired
                       domains (configs/table1_zhu_cyclegan.flags), not stage 1's F
  Ours                 --ours, or --srn_workdir=DIR (= --ours=paper1:DIR): SRN on the CycleGAN-
                       labelled pairs
  NAME (measured)      --compare=NAME=SPEC: extra rows (classical baselines, the other papers'
                       models, stage 1's F: --compare="stage-1 F=paper1:runs/p1_cyclegan")
Every row is scored by `common.evaluation.runner.evaluate` (one image at a time, padded to the
method's stride, restored image rounded to 8 bits, PSNR/SSIM of `common.metrics`) on fixed test
sets (`common.evaluation.stored_sets.load_test_set`): --test_data / --gopro_data are pair records or a
stored-blur folder DIR/blurred + DIR/sharp (`python -m data.build --source=gopro --mode=paired`
writes either), used as stored, never re-blurred.
Table 2 (face-detection success rate: ground truth / blurred / restored by Ours): on our test set
and on a synthetic set = the same clear test faces blurred with real kernels (--blur_kernels, --noise_sigma).
A missing row spec or data set leaves its cells "–". Writes tables.md, tables.json and a contact
sheet of examples into --output_dir.
"""
from __future__ import annotations

import json
import os

from absl import flags, logging
import numpy as np
import tensorflow as tf

from common import cli, image_io, paths, pipeline, report, shared_flags
from common.train import checkpoints, workdirs
from common.evaluation import methods as methods_lib
from common.evaluation import runner, stored_sets
from paper1_cyclegan_srn import export, inputs, train_cyclegan, train_srn

PAPER_TABLE1 = {  # (our testing set PSNR, SSIM, GoPro PSNR, SSIM)
    "Tao et al. [7]": (11.94, 0.7614, 30.26, 0.9367),
    "Yuan et al. [13]": (8.11, 0.6749, 26.55, 0.9101),
    "Zhu et al. [6]": (12.03, 0.7345, 28.81, 0.9235),
    "Ours": (17.14, 0.8509, 32.62, 0.9502),
}
PAPER_TABLE2 = {"Testing dataset": (0.87, 0.32, 0.61), "Synthetic dataset": (0.87, 0.63, 0.76)}
ROW_FLAGS = {"tao": "Tao et al. [7]", "yuan": "Yuan et al. [13]", "zhu": "Zhu et al. [6]",
             "ours": "Ours"}
ROW_HELP = {"tao": "paper1:WORKDIR of configs/table1_tao_srn.flags, SRN on GoPro pairs",
            "yuan": "paper1:WORKDIR of configs/table1_yuan_cyclegan.flags, its F",
            "zhu": "paper1:WORKDIR of configs/table1_zhu_cyclegan.flags, its F",
            "ours": "default: paper1:--srn_workdir"}
T1_COLUMNS = ["Ours-set PSNR", "Ours-set SSIM", "GoPro PSNR", "GoPro SSIM"]
T2_COLUMNS = ["Ground Truth", "Blurred", "Restored"]


def define_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
    if "srn_workdir" in fv:
        return
    d = dict(flag_values=fv)
    flags.DEFINE_string("srn_workdir", None, "Ours: SRN trained on CycleGAN-labelled pairs "
                        "(shorthand for --ours=paper1:DIR).", **d)
    for key, row in ROW_FLAGS.items():
        flags.DEFINE_string(key, None, f"Table 1 row {row!r}: a method spec of "
                            f"common.evaluation.methods ({ROW_HELP[key]}).", **d)
    flags.DEFINE_string("test_data", None, "Our generated test pairs (TFRecord glob, or a folder "
                        "DIR/blurred + DIR/sharp).", **d)
    flags.DEFINE_string("gopro_data", None, "GoPro test pairs (TFRecord glob, or the GoPro folder "
                        "layout DIR/blurred + DIR/sharp), optional; stored blur is never re-blurred.", **d)
    shared_flags.define_kernel_flags(fv, blur_kernels=None, num_kernels=16, kernel_sizes="7:15",
                                     help_extra="Table 2's synthetic set: the test faces blurred "
                                     "with these (empty: no synthetic set)")
    shared_flags.define_noise_flags(fv, 0.01)
    flags.DEFINE_string("stage1_kernels", os.path.join(paths.SHARED_DATA, "kernels", "levin09.npz"),
                        "The kernel bank stage 1 (the CycleGAN) learned to imitate (the blurred "
                        "domain of prepare_unpaired's --blur_kernels); --blur_kernels must "
                        "share no kernel with it ('' to skip the check).", **d)
    flags.DEFINE_string("detector", "mtcnn", "common.face detector for Table 2 (none: skip).", **d)
    flags.DEFINE_integer("max_images", 0, "Evaluate at most this many images per set (0: all).", **d)
    flags.DEFINE_integer("batch_size", 8, "Evaluation batch size.", **d)
    flags.DEFINE_string("output_dir", None, "Where tables.md / tables.json / examples.png go.", **d)
    flags.DEFINE_multi_string("compare", [], "Extra measured Table 1 rows, NAME=SPEC as in "
                              "`python -m common.compare --method` (unsharp, the other papers' "
                              "workdirs or .keras files).", **d)


def load_model(workdir):
    """The SRN of an SRN workdir (`export.load_deblurrer`); returns (flags, a [0,1] -> [0,1]
    function traced once per input shape: `train_srn.restore_fn`)."""
    model, config = export.load_deblurrer(workdir)
    return config, train_srn.restore_fn(model.srn)


def load_cyclegan_f(workdir):
    """F: blurred -> clear of a stage-1 run, as a [0,1] -> [0,1] function."""
    workdirs.check_workdir_kind(workdir, "paper1", ("cyclegan",))
    config = cli.load_flags([train_cyclegan.define_flags], workdir)
    f = train_cyclegan.build_generator(config, "f_net", 16)
    checkpoints.restore_for_eval(workdir, f_net=f)

    @tf.function(reduce_retracing=True)
    def run(x):
        return tf.clip_by_value(inputs.to_unit(f(inputs.to_signed(x), training=False)), 0.0, 1.0)
    return run


def load_method(workdir):
    """An SRN workdir (or a CycleGAN workdir: its F, blurred -> clear) as a
    `common.evaluation.Method`, for `common.compare`."""
    kind = workdirs.workdir_kind(workdir)  # flags.txt's `# stage:` line (or an old one's flags)
    if kind is None and not os.path.isfile(os.path.join(workdir, cli.FLAGS_FILENAME)):
        raise FileNotFoundError(f"{os.path.join(workdir, cli.FLAGS_FILENAME)} not found: give a "
                                f"paper-1 training workdir (flags.txt + checkpoints/)")
    cyclegan_run = kind == ("paper1", "cyclegan")
    probe = np.zeros((1, 16, 16, 3), np.float32)
    if cyclegan_run:  # parameter count: an unrestored twin built from the same flags
        config = cli.load_flags([train_cyclegan.define_flags], workdir)
        n = methods_lib.count_params(train_cyclegan.build_generator(config, "f_net", 16), probe)
        return methods_lib.Method("CycleGAN F (paper 1)", load_cyclegan_f(workdir), "paper1",
                                  workdir, n, 4, description=f"paper1_cyclegan_srn CycleGAN F of {workdir}")
    config = cli.load_flags([train_srn.define_flags], workdir)
    n = methods_lib.count_params(train_srn.build_model(config, image_size=16), probe)
    return methods_lib.Method("SRN (paper 1)", load_model(workdir)[1], "paper1", workdir, n, 16,
                              description=f"paper1_cyclegan_srn SRN workdir {workdir}")


def load_pairs(pattern, batch_size, max_images=0, kernels=None, noise=0.0, seed=0):
    """(sharp, blurred) float32 [N,H,W,3] arrays from pair records (or kernel-blurred sharp).

    pattern may also be a stored-blur folder (DIR/blurred + DIR/sharp, e.g. GoPro written by
    `python -m data.build --output_format=folder`): its blurred images are used as stored; with
    `kernels` (Table 2's synthetic set) its sharp/ faces are blurred instead."""
    if os.path.isdir(pattern) and stored_sets.stores_blurred(pattern):
        if kernels is not None:
            pattern = os.path.join(pattern, "sharp")
        else:
            ts = stored_sets.load_test_set(pattern, max_images)
            if not ts.has_reference or len({s.blurred.shape for s in ts.samples}) > 1:
                raise ValueError(f"test set {pattern}: Table 1 needs sharp/ images of one size "
                                 "beside blurred/")
            return (image_io.to_float32(np.stack([s.sharp for s in ts.samples])),
                    image_io.to_float32(np.stack([s.blurred for s in ts.samples])))
    ds = pipeline.make_dataset(pattern, batch_size, training=False, keys=("sharp", "blurred"),
                               kernel_bank=kernels, noise_sigma=noise, quantize=kernels is not None,
                               seed=seed, repeat=False)
    sharp, blurred = [], []
    for batch in ds:
        sharp.append(batch["sharp"].numpy())
        blurred.append(batch["blurred"].numpy())
        if max_images and sum(len(s) for s in sharp) >= max_images:
            break
    sharp, blurred = np.concatenate(sharp), np.concatenate(blurred)
    if max_images:
        sharp, blurred = sharp[:max_images], blurred[:max_images]
    return sharp, blurred


def row_methods(config) -> dict:
    """Table 1's rows -> `common.evaluation.Method` (None where no spec is given)."""
    specs = {row: getattr(config, key) for key, row in ROW_FLAGS.items()}
    if config.srn_workdir:
        if specs["Ours"]:
            raise ValueError(f"give --srn_workdir={config.srn_workdir} or --ours={specs['Ours']}, "
                             "not both (--srn_workdir=DIR means --ours=paper1:DIR)")
        specs["Ours"] = f"paper1:{config.srn_workdir}"
    return {row: methods_lib.resolve_method(spec, name=row) if spec else None
            for row, spec in specs.items()}


def load_test_sets(config) -> dict:
    """"ours" / "gopro" -> `common.evaluation.TestSet` with ground truth (None: not given)."""
    out = {}
    for key, flag in (("ours", "test_data"), ("gopro", "gopro_data")):
        source = getattr(config, flag)
        if not source:
            out[key] = None
            continue
        ts = stored_sets.load_test_set(source, config.max_images)
        if not ts.has_reference:
            raise ValueError(f"--{flag}={source}: Table 1 needs a sharp image beside every blurred "
                             "one (records with image/sharp, or DIR/sharp/ beside DIR/blurred/)")
        out[key] = ts
    return out


def table1(methods, sets, compare=(), examples=None, keep_images=6):
    """Table 1 through the evaluation core.

    methods: row name -> `common.evaluation.Method` or None; sets: "ours"/"gopro" -> TestSet or
    None; compare: `--compare` specs, measured as extra rows. examples: a dict filled with
    row -> the first `keep_images` restored uint8 images of the "ours" set (for the contact sheet).
    Returns (report.Table, {row: [ours PSNR, SSIM, GoPro PSNR, SSIM]})."""
    t = report.Table("Table 1: PSNR / SSIM on our generated test set and the GoPro test set",
                     T1_COLUMNS, formats={c: (".2f" if "PSNR" in c else ".4f") for c in T1_COLUMNS})
    rows = [("Blurred input", methods_lib.classical("blurred"), None)]
    rows += [(name, methods.get(name), PAPER_TABLE1[name]) for name in PAPER_TABLE1]
    rows += [(f"{m.name} (measured)", m, None)
             for m in (methods_lib.resolve_method(spec) for spec in compare)]
    results = {}
    for name, method, paper in rows:
        ours = [None] * 4
        for j, set_name in enumerate(("ours", "gopro")):
            ts = sets.get(set_name)
            if ts is None or method is None:
                continue
            logging.info("Table 1: %s on %s", name, ts.describe())
            keep = keep_images if examples is not None and set_name == "ours" else 0
            r = runner.evaluate(method, ts, keep_images=keep)
            ours[2 * j], ours[2 * j + 1] = r.summary["psnr"], r.summary["ssim"]
            if keep:
                examples[name] = r.restored
        results[name] = ours
        t.add(name, ours=ours, paper=paper)
    return t, results


def table2(detector, ours_method, sets):
    """sets: row name -> (sharp, blurred) float arrays or None; ours_method: the "Ours"
    `common.evaluation.Method` or None. Success rate of `detector` per condition."""
    from common import face
    t = report.Table("Table 2: face-detection success rate (ground truth / blurred / restored)",
                     T2_COLUMNS, formats=".2f")
    results = {}
    for row, data in sets.items():
        ours = [None] * 3
        if data is not None and detector is not None:
            sharp, blurred = data
            conds = [sharp, blurred]
            if ours_method is not None:
                conds.append(runner.restore_images(ours_method, blurred))
            for j, imgs in enumerate(conds):
                rate, _ = face.detection_success_rate(
                    detector, [image_io.to_uint8(im) for im in imgs])
                ours[j] = rate
        results[row] = ours
        t.add(row, ours=ours, paper=PAPER_TABLE2[row])
    return t, results


def run_eval(config) -> dict:
    """Tables 1 and 2 from the parsed flags (printed, and written under --output_dir)."""
    if not config.test_data:
        raise ValueError("--test_data is required (the test pairs written by generate_pairs)")
    methods = row_methods(config)
    sets = load_test_sets(config)
    examples = {} if config.output_dir else None
    t1, r1 = table1(methods, sets, config.compare, examples=examples)
    t1.notes.append(f"Our test set: {len(sets['ours'])} CycleGAN-labelled pairs ({config.test_data}).")
    if sets["gopro"] is None:
        t1.notes.append("GoPro: not given (--gopro_data), so its columns are empty.")
    else:
        t1.notes.append(f"GoPro: {len(sets['gopro'])} test pairs ({config.gopro_data}).")
    for key, row in ROW_FLAGS.items():
        if methods[row] is not None:
            t1.notes.append(f"{row}: {methods[row].spec} ({methods[row].description})")
    print(t1)

    kernels = shared_flags.kernel_bank(config, seed=0)
    if kernels is not None and config.stage1_kernels:
        check_disjoint_kernels(kernels, shared_flags.kernel_bank(config, seed=0,
                                                                 spec=config.stage1_kernels,
                                                                 flag="--stage1_kernels"),
                               config.blur_kernels, config.stage1_kernels)
    ours_set = load_pairs(config.test_data, config.batch_size, config.max_images)
    synth_set = None
    if kernels is not None:
        synth_set = load_pairs(config.test_data, config.batch_size, config.max_images,
                               kernels=kernels, noise=shared_flags.noise_level(config), seed=1)
    detector = None
    if config.detector and config.detector != "none":
        from common.face import get_detector
        detector = get_detector(config.detector)
    t2, r2 = table2(detector, methods["Ours"], {"Testing dataset": ours_set,
                                                "Synthetic dataset": synth_set})
    t2.notes.append(f"Detector: {config.detector} (the paper: FaceBoxes). Synthetic set: our test "
                    f"faces blurred with {config.blur_kernels}.")
    print(t2)
    out = {"table1": r1, "table2": r2, "num_test_images": len(sets["ours"]),
           "num_gopro_images": len(sets["gopro"]) if sets["gopro"] is not None else 0,
           "specs": {row: m.spec for row, m in methods.items() if m is not None}}
    if config.output_dir:
        os.makedirs(config.output_dir, exist_ok=True)
        with open(os.path.join(config.output_dir, "tables.md"), "w") as f:
            f.write(t1.to_markdown() + "\n\n" + t2.to_markdown() + "\n")
        with open(os.path.join(config.output_dir, "tables.json"), "w") as f:
            json.dump(out, f, indent=1)
        shown = [n for n in PAPER_TABLE1 if n in examples]
        samples = sets["ours"].samples[:6]
        rows = [[s.blurred] + [examples[n][i] for n in shown] + [s.sharp]
                for i, s in enumerate(samples)]
        image_io.contact_sheet(rows, labels=["blurred"] + shown + ["ground truth"],
                               path=os.path.join(config.output_dir, "examples.png"))
        logging.info("wrote %s", config.output_dir)
    return out


def kernel_similarity(a, b):
    """Max normalised cross-correlation of two kernels over all shifts and a 180-degree turn
    (1.0: the same kernel up to translation / point reflection)."""
    from scipy.signal import correlate  # pylint: disable=import-outside-toplevel
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    norm = np.sqrt((a ** 2).sum() * (b ** 2).sum())
    if norm == 0:
        return 0.0
    return float(max(correlate(a, b, mode="full").max(),
                     correlate(a, b[::-1, ::-1], mode="full").max()) / norm)


def check_disjoint_kernels(synthetic, stage1, synthetic_spec="", stage1_spec="", threshold=0.99):
    """Table 2's synthetic set must not use the blur stage 1 learned to imitate (else it is not
    "a blur SRN never saw"). Raises ValueError naming the flags and the shared kernels when any
    synthetic kernel matches a stage-1 kernel (`kernel_similarity` >= threshold)."""
    shared = [(i, j) for i, k in enumerate(synthetic) for j, s in enumerate(stage1)
              if kernel_similarity(k, s) >= threshold]
    if shared:
        raise ValueError(
            f"--blur_kernels={synthetic_spec} shares {len({i for i, _ in shared})} kernel(s) with "
            f"--stage1_kernels={stage1_spec} (synthetic, stage-1 index pairs {shared[:4]}): Table 2's "
            "synthetic set needs a kernel family stage 1 never imitated, e.g. "
            "--blur_kernels=markov (random Markov trajectories)")
    return True


def main(argv):
    del argv
    run_eval(flags.FLAGS)


if __name__ == "__main__":
    define_flags(flags.FLAGS)
    cli.run_app(main)
