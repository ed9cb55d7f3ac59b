"""The LFW face evaluation behind `python -m common.face`: every protocol on every condition.

`run(cfg)` reads the pairs, builds one `Evaluator` (image sources, face models, embedding
caches) and one `Outputs` (results.md, a CSV per protocol, results.json, PNG plots, TensorBoard
under output_dir/tensorboard), then runs each requested protocol:

    verification  all pairs' images, embeddings cached in cache_dir (a stopped run resumes;
                  --pairs_per_fold=-1 reports the largest balanced subset already cached)
    identity      cosine of each condition's embedding to the sharp one (--num_images images)
    landmarks     dlib 68 points in the face box; ground truth from --gt_landmarks or, without it,
                  the landmarks found on the sharp image (the "oracle" row is 0 by construction)
    detection     success rate of each --detectors on each condition
    recognition   gallery = sharp images of identities with more than --gallery_per_id images,
                  probes = their other images under each condition

Face boxes for landmarks and identity come from the dlib HOG detector on the SHARP image and are
reused for the other conditions (--box_source=sharp), so the numbers measure the landmarker /
embedding, not the detector; --box_source=detect re-detects on each condition. No face on the
sharp image -> whole-image box (LFW crops are tight).
"""
from __future__ import annotations

import json
import os
import time

import numpy as np
from tqdm import tqdm

from common.face import lfw, plots, protocols
from common.face.cache import EmbeddingCache
from common.face.config import EvalConfig
from common.face.sources import BlurredSource, ImageSource, RestoredSource, load_kernels
from common.report import Table


def progress(items, desc: str, **kwargs):
    """A tqdm progress bar on stderr (shown on a terminal, silent in logs and tests)."""
    return tqdm(items, desc=desc, unit="img", disable=None, leave=False, **kwargs)


class Evaluator:
    """The image sources, face models and embedding caches of one evaluation."""

    def __init__(self, cfg: EvalConfig, log=print):
        self.cfg, self.log = cfg, log
        self.sources = {"sharp": ImageSource(cfg.lfw_dir)}
        if "blurred" in cfg.conditions:
            self.sources["blurred"] = BlurredSource(
                self.sources["sharp"], load_kernels(cfg.blur_kernels, centre=cfg.centre_kernels),
                cfg.noise_sigma)
        if "restored" in cfg.conditions:
            self.sources["restored"] = RestoredSource(cfg.restored_dir)
        from common.face.holder import FaceModels
        # dlib HOG boxes, dlib 68 landmarks, the identity model; built on first use
        self.face = FaceModels(identity_model=cfg.identity_model, landmarker="dlib68", detector="",
                               box_detector="dlib", vgg_face_weights=cfg.vgg_face_weights,
                               dlib_models_dir=cfg.dlib_models_dir)

    def box(self, rel: str, condition: str, image: np.ndarray):
        """Face box used for landmarks/identity (see the module docstring: --box_source)."""
        if self.cfg.box_source == "sharp":
            return self.face.box(rel, image if condition == "sharp" else self.sources["sharp"](rel))
        return self.face.box((rel, condition), image)

    def cache(self, condition: str) -> EmbeddingCache:
        tag = "x"
        if condition == "blurred":
            tag = f"{os.path.splitext(os.path.basename(self.cfg.blur_kernels))[0]}_n{self.cfg.noise_sigma:g}"
            tag += "_centred" if self.cfg.centre_kernels else ""  # other images, other embeddings
        return EmbeddingCache(os.path.join(self.cfg.cache_folder,
                                           f"emb_{self.cfg.identity_model}_{condition}_{tag}.npz"))

    def largest_cached_subset(self, pairs: list[lfw.Pair], conditions: list[str]) -> int:
        """Largest n such that subset_pairs(pairs, n) has every image cached for every condition."""
        have = set.intersection(*(set(self.cache(c).data) for c in conditions))
        n, most = 0, lfw.pairs_per_class(pairs)
        while n < most and set(lfw.unique_images(lfw.subset_pairs(pairs, n + 1))) <= have:
            n += 1
        return n

    def embeddings(self, rels: list[str], condition: str) -> np.ndarray:
        """[N, D] identity embeddings of `rels` under `condition`, through the cache (saved each minute)."""
        cache = self.cache(condition)
        todo = [r for r in rels if r not in cache.data]
        src = self.sources[condition]
        t0 = last_save = time.time()
        for rel in progress(todo, f"embed {condition}"):
            img = src(rel)
            cache.data[rel] = self.face.identity.embed(img, self.box(rel, condition, img))
            if time.time() - last_save > 60:
                cache.save()
                last_save = time.time()
        if todo:
            cache.save()
            self.log(f"  {condition}: embedded {len(todo)} images in {time.time() - t0:.1f} s "
                     f"({(time.time() - t0) / len(todo):.3f} s/image)")
        return np.stack([cache.data[r] for r in rels])

    def landmarks(self, rels: list[str], condition: str) -> np.ndarray:
        """[N, 68, 2] float64 landmarks (NaN rows where the landmarker found none)."""
        src, out = self.sources[condition], []
        for rel in progress(rels, f"landmarks {condition}"):
            img = src(rel)
            out.append(self.face.landmarks(img, self.box(rel, condition, img)))
        return np.stack(out).astype(np.float64)

    def images(self, rels: list[str], condition: str) -> list[np.ndarray]:
        return [self.sources[condition](r) for r in progress(rels, f"read {condition}")]


class Outputs:
    """Collects the tables (results.md, one CSV each), scalars and PNGs (TensorBoard) of a run."""

    def __init__(self, output_dir: str, header: str):
        import tensorflow as tf
        self.dir, self.md, self.tables = output_dir, [header], {}
        self._tf = tf
        self.writer = tf.summary.create_file_writer(os.path.join(output_dir, "tensorboard"))

    def table(self, name: str, table: Table) -> None:
        self.tables[name] = table
        self.md.append(table.to_markdown())
        table.to_csv(os.path.join(self.dir, f"{name}.csv"))

    def scalar(self, name: str, value) -> None:
        with self.writer.as_default():
            self._tf.summary.scalar(name, float(value), step=0)

    def png(self, name: str, data: bytes) -> None:
        with self.writer.as_default():
            self._tf.summary.image(name, self._tf.image.decode_png(data)[None], step=0)

    def close(self, results: dict) -> None:
        from common import image_io
        self.writer.flush()
        image_io.atomic_write(os.path.join(self.dir, "results.md"), "\n".join(self.md))
        image_io.atomic_write(os.path.join(self.dir, "results.json"), json.dumps(results, indent=1))


# ------------------------------------------------------------------------------ protocols
def run_verification(ev: Evaluator, out: Outputs, pairs, conditions) -> dict:
    """Paper 2 Table 8 on the pairs, per condition."""
    rels = lfw.balanced_image_order(pairs)
    ev.log(f"verification: {len(pairs)} pairs, {len(rels)} images x {conditions}")
    n_folds = len({p.fold for p in pairs})
    table = Table(f"LFW verification accuracy % (paper 2 Table 8), {ev.cfg.identity_model}, cosine",
                  ["accuracy %"], formats=".2f",
                  notes=[f"mean ± std over {n_folds} folds, {len(pairs)} pairs; threshold chosen on "
                         "the other folds"])
    res = {}
    for c in conditions:
        emb = dict(zip(rels, ev.embeddings(rels, c)))
        r = protocols.lfw_verification([emb[p.a] for p in pairs], [emb[p.b] for p in pairs],
                                       [p.same for p in pairs], [p.fold for p in pairs])
        res[c] = {"mean": r["mean"], "std": r["std"], "per_fold": r["per_fold"].tolist()}
        table.add(c, ours=[(100 * r["mean"], 100 * r["std"])])
        out.scalar(f"verification/{c}/accuracy_mean", r["mean"])
        out.scalar(f"verification/{c}/accuracy_std", r["std"])
    out.table("verification", table)
    return res


def run_identity(ev: Evaluator, out: Outputs, pairs, conditions) -> dict:
    """Paper 2 Figs. 11-12 / paper 3 Table IV: cosine of each condition to the sharp image."""
    cfg = ev.cfg
    rels = lfw.image_subset(pairs, cfg.num_images, cfg.seed)
    sharp = ev.embeddings(rels, "sharp")
    label = ("VGG-Face" if cfg.identity_model == "vgg_face" else
             f"{cfg.identity_model} features, not VGG-Face (no --vgg_face_weights given)")
    table = Table(f"Identity cosine similarity to the sharp image (paper 2 Figs. 11-12, paper 3 "
                  f"Table IV); {label}",
                  ["cosine mean", "cosine std", "cosine median", "1 - cos mean"], formats=".4f",
                  notes=[f"{len(rels)} images; histogram: identity_similarity.png"])
    res, dists = {}, {}
    for c in (c for c in conditions if c != "sharp"):
        r = protocols.identity_similarity(ev.embeddings(rels, c), sharp)
        dists[f"{c} vs sharp"] = r["cosine"]
        res[c] = {k: r[k] for k in ("mean", "std", "median", "mean_distance")}
        table.add(f"{c} vs sharp", ours=[r["mean"], r["std"], r["median"], r["mean_distance"]])
        out.scalar(f"identity/{c}/cosine_mean", r["mean"])
    out.table("identity", table)
    out.png("identity/similarity",
            plots.plot_similarity(dists, os.path.join(out.dir, "identity_similarity.png")))
    return res


def _ground_truth_landmarks(path: str, rels: list[str]):
    """(rels covered by the npz, their [N,68,2] landmarks)."""
    with np.load(path) as z:
        table = dict(zip(z["paths"].tolist(), z["landmarks"]))
    rels = [r for r in rels if r in table]
    if not rels:
        raise ValueError(f"--gt_landmarks={path} covers none of the evaluated images")
    return rels, np.stack([table[r] for r in rels]).astype(np.float64)


def run_landmarks(ev: Evaluator, out: Outputs, pairs, conditions) -> dict:
    """Paper 2 Tables 5-7: AUC@max_error, failure rate and mean NME per condition; CED plot."""
    cfg = ev.cfg
    rels = lfw.image_subset(pairs, cfg.num_images, cfg.seed)
    gt_note = "pseudo-GT: dlib 68 landmarks on the sharp image (oracle row is 0 by construction)"
    gt = None
    if cfg.gt_landmarks:
        rels, gt = _ground_truth_landmarks(cfg.gt_landmarks, rels)
        gt_note = f"ground truth from {cfg.gt_landmarks}"
    preds = {c: ev.landmarks(rels, c) for c in conditions}
    if gt is None:
        gt = preds["sharp"]
        keep = np.all(np.isfinite(gt), axis=(1, 2))
        if not keep.all():  # no pseudo-GT for these images: leave them out everywhere
            gt, rels = gt[keep], [r for r, k in zip(rels, keep) if k]
            preds = {c: v[keep] for c, v in preds.items()}
    auc_col, fail_col = f"AUC@{cfg.max_error}", f"failure % (NME > {cfg.max_error})"
    table = Table("Landmark localisation, dlib 68 points (paper 2 Tables 5-7)",
                  [auc_col, fail_col, "mean NME"],
                  formats={auc_col: ".4f", fail_col: ".2f", "mean NME": ".4f"},
                  notes=[f"{len(rels)} images; NME normalised by the GT box diagonal; {gt_note}; "
                         "CED: ced.png"])
    res, curves = {"gt": gt_note}, {}
    for c in conditions:
        r = protocols.landmark_protocol(preds[c], gt, cfg.max_error)
        name = "oracle (sharp)" if c == "sharp" else c
        curves[name] = r["ced"]
        res[c] = {k: r[k] for k in ("mean_nme", "auc", "failure_rate")}
        table.add(name, ours=[r["auc"], 100 * r["failure_rate"], r["mean_nme"]])
        out.scalar(f"landmarks/{c}/auc", r["auc"])
        out.scalar(f"landmarks/{c}/failure_rate", r["failure_rate"])
    out.table("landmarks", table)
    out.png("landmarks/ced", plots.plot_ced(curves, os.path.join(out.dir, "ced.png")))
    return res


def run_detection(ev: Evaluator, out: Outputs, pairs, conditions) -> dict:
    """Paper 1 Table 2: detection success rate of each detector on each condition."""
    from common.face import get_detector
    cfg = ev.cfg
    rels = lfw.image_subset(pairs, cfg.num_images, cfg.seed)
    detectors = {d: get_detector(d) for d in cfg.detectors}
    res = {d: {} for d in cfg.detectors}
    for c in conditions:
        imgs = ev.images(rels, c)
        for d, det in detectors.items():
            res[d][c], _ = protocols.detection_success_rate(det, imgs)
            out.scalar(f"detection/{d}/{c}/success_rate", res[d][c])
    table = Table("Face detection success rate % (paper 1 Table 2)", [f"{d} %" for d in cfg.detectors],
                  formats=".2f", notes=[f"{len(rels)} images; success = at least one face detected"])
    for c in conditions:
        table.add(c, ours=[100 * res[d][c] for d in cfg.detectors])
    out.table("detection", table)
    return res


def run_recognition(ev: Evaluator, out: Outputs, pairs, conditions) -> dict:
    """Paper 3 Table V: closed-set top-1/3/5 of each condition's probes against a sharp gallery."""
    cfg = ev.cfg
    gallery, gids, probes, pids = protocols.probe_gallery_split(
        lfw.images_by_identity(cfg.lfw_dir), cfg.num_ids, cfg.gallery_per_id, cfg.seed)
    g_emb = ev.embeddings(gallery, "sharp")
    table = Table(f"Face recognition % (paper 3 Table V), {cfg.identity_model}",
                  ["top-1 %", "top-3 %", "top-5 %"], formats=".2f",
                  notes=[f"gallery: {cfg.gallery_per_id} sharp images for each of {len(set(gids))} "
                         f"identities (asked {cfg.num_ids}); {len(probes)} probe images per row"])
    res = {}
    for c in conditions:
        r = protocols.recognition_topk(ev.embeddings(probes, c), pids, g_emb, gids)
        res[c] = {str(k): v for k, v in r.items()}
        table.add(c, ours=[100 * r[k] for k in (1, 3, 5)])
        for k in (1, 3, 5):
            out.scalar(f"recognition/{c}/top{k}", r[k])
    out.table("recognition", table)
    return res


RUNNERS = {"verification": run_verification, "identity": run_identity, "landmarks": run_landmarks,
           "detection": run_detection, "recognition": run_recognition}
ORDER = ("verification", "identity", "landmarks", "detection", "recognition")


def run(cfg: EvalConfig, log=print) -> dict:
    """Run the requested protocols; write tables, plots, JSON and TensorBoard; return the results
    (plus "tables": a `common.report.Table` per protocol, to add the paper's rows and re-render)."""
    cfg.check()
    os.makedirs(cfg.output_dir, exist_ok=True)
    ev = Evaluator(cfg, log)
    all_pairs = lfw.read_pairs(cfg.pairs)
    if cfg.pairs_per_fold < 0:  # the largest balanced subset already in the embedding cache
        n = ev.largest_cached_subset(all_pairs, cfg.conditions)
        if n == 0:
            raise ValueError(f"--pairs_per_fold=-1: the embedding cache ({cfg.cache_folder}) covers "
                             "no whole balanced subset of pairs yet; run without -1 first")
        log(f"--pairs_per_fold=-1: using the first {n} same + {n} different pairs of every fold (cached)")
        cfg.pairs_per_fold = n
    pairs = lfw.subset_pairs(all_pairs, cfg.pairs_per_fold)
    out = Outputs(cfg.output_dir, f"# Face-analysis evaluation\n\nLFW: `{cfg.lfw_dir}`, pairs "
                  f"`{cfg.pairs}` ({len(pairs)} pairs). Blur: kernels `{cfg.blur_kernels}`"
                  f"{' moved onto their centroids' if cfg.centre_kernels else ''}, noise sigma "
                  f"{cfg.noise_sigma}, kernel per image = crc32(path) % K. Boxes: "
                  f"`--box_source={cfg.box_source}`.\n")
    results, timings = {"config": cfg.as_dict()}, {}
    for name in ORDER:
        if name in cfg.protocols and not (name == "identity" and len(cfg.conditions) < 2):
            t0 = time.time()
            results[name] = RUNNERS[name](ev, out, pairs, cfg.conditions)
            timings[f"{name}_s"] = time.time() - t0
    results["timings"] = timings
    out.close(results)
    results["tables"] = out.tables
    return results
