"""Cross-method comparison on one fixed test set: one table, methods x metrics, blurred input first.

    python -m common.compare --test_set=DIR --output_dir=OUT \
        --method=blurred --method=unsharp --method=wiener --method=rl \
        --method=umsn=paper3:/tmp/run/umsn --method=srn=paper1:/tmp/p1/srn \
        --method=cgan=/tmp/p2/cgan --method=shipped:paper3_umsn/umsn_small \
        --method=my=mymodule:deblur --method=x=model.keras --method=y=saved_model_dir

--test_set: DIR/blurred/NAME + DIR/sharp/NAME (the GoPro / RealBlur convention; `python -m
data.build ... --output_format=folder` writes it, with optional kernels/, masks/, landmarks/,
identities.txt), a folder of real blurry photos (no reference: detection rate and the contact
sheet only) or TFRecords of the shared schema. Stored blurred images are never re-blurred.
--method: NAME=SPEC or SPEC, repeatable; specs in `common/evaluation/methods.py` (classical
blurred / unsharp / wiener / rl, paper workdirs, .keras, SavedModel, shipped weights,
module:function, photo:SPEC = the network run the way `deblur` runs it by default).
--scale=N: faces and their blur kernels enlarged N x (`common.evaluation.scaled`): the 2x / 4x
face-scale test (benchmarks/README.md, "Face scale"). `blurred` is always the first row (added when not given).

Writes OUT/results.md, results.csv, results.json, contact_sheet.png (rows = images, columns =
methods, whole images, ground truth last) and TensorBoard scalars (OUT/tensorboard/<method>).
Each method's scores are saved in OUT/methods/<name>.json as soon as it finishes; a rerun skips
the methods already scored with the same spec on the same test set (--restart ignores them).
--face_metrics (default on) adds identity cosine, landmark NME/AUC/failure and detection rate
through `common.face.FaceModels` (dlib, MTCNN); without it the face region is the centre box.
"""
from __future__ import annotations

import csv
import io
import json
import os
import sys
import time

import numpy as np
from absl import app, flags

from common import image_io
from common.evaluation import methods as methods_lib
from common.evaluation import runner, stored_sets

# (summary key, column title, format, scale)
COLUMNS = [
    ("psnr", "PSNR", ".2f", 1), ("ssim", "SSIM", ".4f", 1),
    ("face_psnr", "face PSNR", ".2f", 1), ("face_ssim", "face SSIM", ".4f", 1),
    *[(f"class{k}_psnr", f"class {k} PSNR", ".2f", 1) for k in range(4)],
    *[(f"class{k}_ssim", f"class {k} SSIM", ".4f", 1) for k in range(4)],
    ("identity_cosine", "identity cos", ".4f", 1), ("nme", "NME", ".4f", 1),
    ("auc@0.08", "AUC@0.08", ".4f", 1), ("failure_rate", "failure %", ".2f", 100),
    ("detection_rate", "detection %", ".2f", 100), ("ms_per_image", "ms/image", ".1f", 1),
]


def define_flags(fv=flags.FLAGS):
    d = dict(flag_values=fv)
    flags.DEFINE_string("test_set", None, "Folder DIR/blurred + DIR/sharp, folder of blurry photos, "
                        "or TFRecords.", **d)
    flags.DEFINE_multi_string("method", [], "NAME=SPEC or SPEC (repeatable); see the module doc.", **d)
    flags.DEFINE_string("output_dir", None, "Where tables, JSON, contact sheet and TensorBoard go.", **d)
    flags.DEFINE_bool("face_metrics", True, "Identity cosine, landmarks, detection (dlib/MTCNN).", **d)
    flags.DEFINE_integer("num_images", 0, "Use the first N test images (0: all).", **d)
    flags.DEFINE_integer("contact_rows", 6, "Images (rows) in the contact sheet.", **d)
    flags.DEFINE_string("detector", "mtcnn", "Detector of the detection-rate metric.", **d)
    flags.DEFINE_string("identity_model", "dlib_resnet", "dlib_resnet | vgg_face.", **d)
    flags.DEFINE_string("vgg_face_weights", None, "Keras VGG-Face weights (vgg_face).", **d)
    flags.DEFINE_string("dlib_models_dir", None, "Folder of the dlib .dat models.", **d)
    flags.DEFINE_integer("scale", 1, "Score at N x the test set's scale: faces and their blur "
                         "kernels enlarged N x (common.evaluation.scaled; needs stored kernels).",
                         lower_bound=1, **d)
    flags.DEFINE_bool("restart", False, "Re-score every method (ignore OUT/methods/*.json).", **d)


# ------------------------------------------------------------------------------ formatting
def _fmt(v, spec, scale=1):
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "–"
    if isinstance(v, float) and np.isinf(v):
        return "inf"
    return format(v * scale, spec)


def table_rows(results) -> tuple[list, list]:
    """(header, rows of strings) with the columns some method has; params and stride last."""
    cols = [c for c in COLUMNS if any(c[0] in r.summary for r in results)]
    header = ["method"] + [c[1] for c in cols] + ["params", "stride"]
    rows = []
    for r in results:
        p = r.method.get("num_params")
        rows.append([r.method["name"]] + [_fmt(r.summary.get(k), f, s) for k, _, f, s in cols]
                    + ["?" if p is None else f"{p:,}", str(r.method.get("stride", 1))])
    return header, rows


def to_text(header, rows) -> str:
    w = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    line = lambda cells: "  ".join(c.ljust(w[0]) if i == 0 else c.rjust(w[i]) for i, c in enumerate(cells))
    return "\n".join([line(header), "  ".join("-" * x for x in w)] + [line(r) for r in rows])


def to_markdown(header, rows) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out) + "\n"


def _write_text(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def _json_safe(x):
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    if isinstance(x, (np.floating, float)):
        x = float(x)
        return None if np.isnan(x) else ("inf" if np.isinf(x) else x)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def _from_json(x):
    if isinstance(x, dict):
        return {k: _from_json(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_from_json(v) for v in x]
    if x == "inf":
        return float("inf")
    return float("nan") if x is None else x


# ------------------------------------------------------------------------------ running
def ordered_methods(values) -> list:
    """[(name, spec)] from --method values, `blurred` first (added when missing); names unique."""
    items = [methods_lib.parse_method_flag(v) for v in values]
    names = [n for n, _ in items]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"--method: duplicate method names {dup}; give each a name: --method=NAME=SPEC")
    blurred = [it for it in items if it[1] == "blurred"] or [("blurred", "blurred")]
    return blurred[:1] + [it for it in items if it[1] != "blurred"]


def _saved(path, spec, fingerprint, face_metrics):
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        d = json.load(f)
    if (d.get("method", {}).get("spec") != spec or d.get("fingerprint") != fingerprint
            or d.get("face_metrics") != face_metrics):
        return None
    return d


def run(cfg, log=print) -> list:
    """Scores every method; writes the outputs; returns the list of runner.MethodResult."""
    if not cfg.output_dir:
        raise ValueError("--output_dir is required")
    ts = stored_sets.load_test_set(cfg.test_set, cfg.num_images)
    if getattr(cfg, "scale", 1) > 1:
        from common.evaluation import scaled
        ts = scaled.scale_test_set(ts, cfg.scale)
    log(f"[compare] {ts.describe()}")
    items = ordered_methods(cfg.method)
    for name, spec in items:
        base = spec.split(",", 1)[0]
        if base in ("wiener", "rl") and not ts.has_kernels:
            raise ValueError(f"--method {name}={spec} needs the blur kernel of every image, but "
                             f"{cfg.test_set} stores none (DIR/kernels/NAME.npy); drop it")
    out = cfg.output_dir
    os.makedirs(os.path.join(out, "methods"), exist_ok=True)
    face = None
    if cfg.face_metrics:
        from common.face import FaceModels
        face = FaceModels(identity_model=cfg.identity_model, detector=cfg.detector,
                          vgg_face_weights=cfg.vgg_face_weights, dlib_models_dir=cfg.dlib_models_dir)
    keep = cfg.contact_rows
    results = []
    for name, spec in items:
        jpath = os.path.join(out, "methods", f"{name}.json")
        rdir = os.path.join(out, "restored", name)
        saved = None if cfg.restart else _saved(jpath, spec, ts.fingerprint(), bool(cfg.face_metrics))
        if saved is not None:
            kept = [image_io.read_image(os.path.join(rdir, f"{s.name}.png")) for s in ts.samples[:keep]
                    if os.path.isfile(os.path.join(rdir, f"{s.name}.png"))]
            results.append(runner.MethodResult(saved["method"], saved["test_set"], saved["fingerprint"],
                                               _from_json(saved["per_image"]), _from_json(saved["summary"]), kept))
            log(f"[compare] {name}: scored before ({jpath}), skipped")
            continue
        t0 = time.time()
        method = methods_lib.resolve_method(spec, name)
        r = runner.evaluate(method, ts, face=face, keep_images=keep, log=log)
        for s, img in zip(ts.samples, r.restored):
            image_io.write_image(os.path.join(rdir, f"{s.name}.png"), img)
        _write_text(jpath, json.dumps(_json_safe({**r.to_json(), "face_metrics": bool(cfg.face_metrics)}),
                                      indent=1))
        log(f"[compare] {name}: {len(ts)} images in {time.time() - t0:.1f} s")
        results.append(r)
    write_outputs(results, ts, out)
    return results


def write_outputs(results, ts, out):
    header, rows = table_rows(results)
    title = f"Benchmark on {ts.describe()}"
    text = to_text(header, rows)
    print(f"{title}\n{text}")
    notes = []
    s0 = results[0].summary
    if "landmarks_gt" in s0:
        notes.append(f"Landmark ground truth: {s0['landmarks_gt']}; NME by the ground-truth box diagonal.")
    if "face_boxes_detected" in s0:
        notes.append(f"Face region: the detected face on the sharp image for {s0['face_boxes_detected']} "
                     f"of {s0['num_images']} images, the centre half of the image otherwise.")
    notes.append("ms/image: mean wall time per image after the first (warm-up), this machine.")
    _write_text(os.path.join(out, "results.md"),
                f"**{title}**\n\n" + to_markdown(header, rows) + "\n" + "\n".join(notes) + "\n")
    buf = io.StringIO()
    keys = sorted({k for r in results for k, v in r.summary.items() if isinstance(v, (int, float))})
    w = csv.writer(buf)
    w.writerow(["method", "spec", "num_params", "stride"] + keys)
    for r in results:
        w.writerow([r.method["name"], r.method.get("spec"), r.method.get("num_params"),
                    r.method.get("stride")] + [r.summary.get(k, "") for k in keys])
    _write_text(os.path.join(out, "results.csv"), buf.getvalue())
    _write_text(os.path.join(out, "results.json"), json.dumps(_json_safe(
        {"test_set": {"source": ts.source, "kind": ts.kind, "num_images": len(ts), "meta": ts.meta,
                      "fingerprint": ts.fingerprint(), "description": ts.describe()},
         "methods": [{"method": r.method, "summary": r.summary} for r in results]}), indent=1))
    # contact sheet: rows = images, columns = methods (+ ground truth), whole images
    n = min(len(r.restored) for r in results) if results else 0
    if n:
        has_gt = ts.has_reference
        sheet_rows = [[r.restored[i] for r in results] + ([ts.samples[i].sharp] if has_gt else [])
                      for i in range(n)]
        labels = [r.method["name"] for r in results] + (["ground truth"] if has_gt else [])
        image_io.contact_sheet(sheet_rows, labels=labels, path=os.path.join(out, "contact_sheet.png"))
    import tensorflow as tf
    for r in results:
        writer = tf.summary.create_file_writer(os.path.join(out, "tensorboard", r.method["name"]))
        with writer.as_default():
            for k, v in r.summary.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v):
                    tf.summary.scalar(f"benchmark/{k}", float(v), step=0)
        writer.flush()
        writer.close()


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    fv = flags.FLAGS
    if not fv.test_set or not fv.output_dir:
        raise app.UsageError("--test_set and --output_dir are required")
    try:
        run(fv)
    except (ValueError, FileNotFoundError) as e:  # one line, no traceback
        sys.exit(f"common.compare: error: {e}")
    print(f"[compare] outputs in {fv.output_dir}")


if __name__ == "__main__":
    define_flags(flags.FLAGS)
    app.run(main)
