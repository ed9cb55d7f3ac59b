"""Face-analysis protocols that judge deblurring by what it does for face analysis.

    paper 1 (CycleGAN+SRN), Table 2   detection success rate on sharp / blurred / restored
    paper 2 (identity cGAN), T. 5-7   landmark NME (by GT box diagonal), CED, AUC@0.08, failure rate
    paper 2, Figs. 11-12              identity cosine similarity restored-vs-sharp (histogram PNG)
    paper 2, Table 8                  LFW verification over the official 10 folds (mean +- std)
    paper 3 (UMSN), Tables IV-V       identity feature distance; recognition top-1/3/5

The protocol functions take arrays / images and a backend from `common.face`; the math is in
`common.metrics`. The CLI runs them on LFW (official `pairs.txt`) with three conditions:

    sharp     the LFW images
    blurred   each image convolved with one kernel of a bank (default: Levin et al.'s 8 real
              camera-shake kernels), picked by crc32(relative path) % K so every run and every
              model sees the same blur; optional Gaussian noise; rounded to uint8
    restored  images of the same relative paths under --restored_dir (any image extension)

    python -m common.face_eval --lfw_dir=../shared/data/lfw \
        --pairs=../shared/data/lfw_pairs.txt --out_dir=/tmp/face_eval \
        --protocols=verification,landmarks,detection,identity,recognition \
        --conditions=sharp,blurred [--restored_dir=DIR]

Writes results.md (tables in the papers' layout), one CSV per protocol, results.json, PNG plots
and TensorBoard summaries (out_dir/tensorboard). Embeddings are cached in out_dir/cache so an
interrupted run resumes.

Choices to know when reading the numbers:
  * Face boxes for landmarks and identity come from the dlib HOG detector on the SHARP image and
    are reused for the other conditions (--box_source=sharp), so landmark and identity numbers
    measure the landmarker / embedding, not the detector; --box_source=detect re-detects on each
    condition. No face on the sharp image -> whole-image box (LFW crops are tight).
  * LFW has no landmark ground truth: then landmarks found on the sharp image serve as the
    ground truth (the "oracle" row is 0 by construction and is labelled so); --gt_landmarks=NPZ
    (arrays `paths` [N] and `landmarks` [N,68,2]) gives real ground truth.
  * Detection success = the detector returns at least one face in the image.
  * Recognition: identities with more than --gallery_per_id images; gallery = sharp images,
    probes = the other images of those identities under each condition.
"""
from __future__ import annotations

import dataclasses
import io
import json
import os
import sys
import time
import zlib

import numpy as np

from common import metrics
from common.report import Table
from common.paths import SHARED_DATA

CONDITIONS = ("sharp", "blurred", "restored")
PROTOCOLS = ("verification", "landmarks", "detection", "identity", "recognition")
DEFAULT_KERNELS = os.path.join(SHARED_DATA, "kernels/levin09.npz")


# ============================================================================ LFW data
@dataclasses.dataclass(frozen=True)
class Pair:
    a: str      # relative path "<Name>/<Name>_0001.jpg"
    b: str
    same: bool
    fold: int


def lfw_relpath(name: str, index: int) -> str:
    return f"{name}/{name}_{int(index):04d}.jpg"


def read_pairs(path: str) -> list[Pair]:
    """Parse an LFW pairs.txt ("<folds> <n>" header, then per fold n same + n different lines)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"LFW pairs file {path} not found (--pairs)")
    with open(path) as f:
        lines = [ln.split() for ln in f if ln.strip()]
    try:
        num_folds, n = int(lines[0][0]), int(lines[0][1])
    except (IndexError, ValueError) as e:
        raise ValueError(f"{path}: first line must be '<folds> <pairs per class>', got {lines[:1]}") from e
    body = lines[1:]
    if len(body) != num_folds * 2 * n:
        raise ValueError(f"{path}: header says {num_folds} folds x 2 x {n} pairs but the file has "
                         f"{len(body)} pair lines")
    pairs = []
    for i, p in enumerate(body):
        fold = i // (2 * n)
        if len(p) == 3:
            pairs.append(Pair(lfw_relpath(p[0], p[1]), lfw_relpath(p[0], p[2]), True, fold))
        elif len(p) == 4:
            pairs.append(Pair(lfw_relpath(p[0], p[1]), lfw_relpath(p[2], p[3]), False, fold))
        else:
            raise ValueError(f"{path}: line {i + 2} has {len(p)} fields, expected 3 or 4: {p}")
    return pairs


def subset_pairs(pairs: list[Pair], per_fold: int | None) -> list[Pair]:
    """Keep the first `per_fold` same and first `per_fold` different pairs of every fold."""
    if not per_fold:
        return list(pairs)
    out, seen = [], {}
    for p in pairs:
        key = (p.fold, p.same)
        if seen.get(key, 0) < per_fold:
            seen[key] = seen.get(key, 0) + 1
            out.append(p)
    return out


def unique_images(pairs: list[Pair]) -> list[str]:
    return sorted({p.a for p in pairs} | {p.b for p in pairs})


def balanced_image_order(pairs: list[Pair]) -> list[str]:
    """Unique images in the order in which a round-robin over (rank within fold and class, fold,
    same/different) first needs them, so that a partly filled embedding cache always covers
    `subset_pairs(pairs, n)` for some n: an interrupted full run still gives a balanced 10-fold
    result."""
    rank, seen = [], {}
    for p in pairs:
        key = (p.fold, p.same)
        rank.append(seen.get(key, 0))
        seen[key] = rank[-1] + 1
    order = sorted(range(len(pairs)), key=lambda i: (rank[i], pairs[i].fold, not pairs[i].same))
    out, have = [], set()
    for i in order:
        for rel in (pairs[i].a, pairs[i].b):
            if rel not in have:
                have.add(rel)
                out.append(rel)
    return out


# ============================================================================ image sources
class ImageSource:
    """Sharp images of a folder, addressed by relative path."""

    condition = "sharp"

    def __init__(self, root: str):
        if not os.path.isdir(root):
            raise FileNotFoundError(f"image folder {root} not found")
        self.root = root

    def path(self, rel: str) -> str:
        p = os.path.join(self.root, rel)
        if os.path.isfile(p):
            return p
        stem = os.path.splitext(p)[0]
        for ext in (".png", ".jpg", ".jpeg", ".bmp", ".PNG", ".JPG"):
            if os.path.isfile(stem + ext):
                return stem + ext
        raise FileNotFoundError(f"{self.condition} image for {rel} not found under {self.root}")

    def __call__(self, rel: str) -> np.ndarray:
        from common import image_io
        return image_io.read_image(self.path(rel))


class RestoredSource(ImageSource):
    """Restored images under a folder mirroring the LFW layout (--restored_dir)."""
    condition = "restored"


class BlurredSource:
    """Sharp images blurred with a kernel bank, deterministic per relative path.

    Kernel k = kernels[crc32(rel) % K]; convolution by `common.blur.apply_kernels` (reflect
    borders); Gaussian noise of std `noise_sigma` (seeded by the same hash); rounded to uint8.
    """

    condition = "blurred"

    def __init__(self, sharp: ImageSource, kernels: np.ndarray, noise_sigma: float = 0.0):
        self.sharp = sharp
        self.kernels = np.asarray(kernels, np.float32)
        if self.kernels.ndim != 3 or self.kernels.shape[1] != self.kernels.shape[2]:
            raise ValueError(f"kernels must be [K,S,S], got {self.kernels.shape}")
        self.noise_sigma = float(noise_sigma)

    def kernel_index(self, rel: str) -> int:
        return zlib.crc32(rel.encode()) % len(self.kernels)

    def __call__(self, rel: str) -> np.ndarray:
        from common import blur
        img = self.sharp(rel).astype(np.float32) / 255.0
        out = np.asarray(blur.apply_kernels(img, self.kernels[self.kernel_index(rel)]))
        if self.noise_sigma > 0:
            rng = np.random.default_rng(zlib.crc32(rel.encode()))
            out = out + rng.normal(0.0, self.noise_sigma, out.shape)
        return np.clip(np.round(out * 255.0), 0, 255).astype(np.uint8)


def load_kernels(spec: str, num: int = 64, seed: int = 0) -> np.ndarray:
    """Kernel bank [K,S,S] from a .npz/.mat path or a generator name (common.blur.make_kernel_bank)."""
    from common import blur
    return blur.make_kernel_bank(spec, num=None if os.path.exists(spec) else num, seed=seed)


# ============================================================================ protocols
def detection_success_rate(detector, images) -> tuple[float, np.ndarray]:
    """Paper 1 Table 2: fraction of images in which the detector finds at least one face.

    Returns (rate in [0, 1], found bool [N])."""
    images = list(images)
    if not images:
        raise ValueError("detection_success_rate: no images")
    if hasattr(detector, "detect_batch") and len({im.shape for im in images}) == 1:
        found = []
        for i in range(0, len(images), 32):
            found += [len(b) > 0 for b in detector.detect_batch(images[i:i + 32])]
    else:
        found = [len(detector.detect(im)) > 0 for im in images]
    found = np.asarray(found, bool)
    return float(found.mean()), found


def landmark_protocol(pred, gt, max_error: float = 0.08) -> dict:
    """Paper 2 Tables 5-7 from predicted and ground-truth landmarks.

    Args:
      pred: [N,P,2]; rows of NaN where the landmarker failed (they count as failures).
      gt: [N,P,2] ground truth.
    Returns:
      {"nme" [N], "mean_nme", "auc" (AUC of the CED to max_error, in [0, 1]), "failure_rate"
      (fraction with NME > max_error), "ced": (thresholds, fraction)}.
    """
    nme = metrics.landmark_nme(np.asarray(pred, np.float64), np.asarray(gt, np.float64))
    nme = np.atleast_1d(nme)
    finite = nme[np.isfinite(nme)]
    return {"nme": nme,
            "mean_nme": float(finite.mean()) if finite.size else float("inf"),
            "auc": metrics.auc_ced(nme, max_error),
            "failure_rate": metrics.failure_rate(nme, max_error),
            "ced": metrics.ced_curve(nme, max_error)}


def identity_similarity(emb_a, emb_b) -> dict:
    """Paper 2 Figs. 11-12 / paper 3 Table IV: cosine similarity (and 1 - cos distance) of
    embeddings of the same faces under two conditions (e.g. restored vs sharp)."""
    cos = np.atleast_1d(metrics.cosine_similarity(np.asarray(emb_a), np.asarray(emb_b)))
    return {"cosine": cos, "mean": float(cos.mean()), "std": float(cos.std()),
            "median": float(np.median(cos)), "mean_distance": float((1.0 - cos).mean())}


def lfw_verification(emb_a, emb_b, same, folds) -> dict:
    """Paper 2 Table 8: verification accuracy with cosine scores over the given folds."""
    scores = np.atleast_1d(metrics.cosine_similarity(np.asarray(emb_a), np.asarray(emb_b)))
    mean, std, per_fold = metrics.verification_accuracy(scores, np.asarray(same, bool), np.asarray(folds))
    return {"mean": mean, "std": std, "per_fold": per_fold, "scores": scores}


def probe_gallery_split(images_by_id: dict, num_ids: int = 100, gallery_per_id: int = 9,
                        seed: int = 0) -> tuple[list, list, list, list]:
    """Paper 3 Table V split: `num_ids` identities with more than `gallery_per_id` images
    (chosen with `seed` when more qualify); per identity a random `gallery_per_id` images form the
    gallery and the rest are probes. Returns (gallery, gallery_ids, probes, probe_ids)."""
    eligible = sorted(k for k, v in images_by_id.items() if len(v) > gallery_per_id)
    if not eligible:
        raise ValueError(f"no identity has more than {gallery_per_id} images")
    rng = np.random.default_rng(seed)
    if len(eligible) > num_ids:
        eligible = sorted(rng.choice(eligible, num_ids, replace=False).tolist())
    gallery, gallery_ids, probes, probe_ids = [], [], [], []
    for ident in eligible:
        imgs = sorted(images_by_id[ident])
        order = rng.permutation(len(imgs))
        for j, i in enumerate(order):
            (gallery if j < gallery_per_id else probes).append(imgs[i])
            (gallery_ids if j < gallery_per_id else probe_ids).append(ident)
    return gallery, gallery_ids, probes, probe_ids


def recognition_topk(probe_emb, probe_ids, gallery_emb, gallery_ids, ks=(1, 3, 5)) -> dict:
    """Paper 3 Table V: closed-set identification accuracy at ranks `ks`."""
    return metrics.top_k_accuracy(probe_emb, probe_ids, gallery_emb, gallery_ids, ks)


# ============================================================================ plots and tables
def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save_fig(fig, path: str) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    data = buf.getvalue()
    _write_bytes(path, data)
    return data


def _write_bytes(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def plot_ced(curves: dict, path: str, title: str = "CED") -> bytes:
    """curves: label -> (thresholds, fraction). Writes a PNG, returns its bytes."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 4))
    for label, (t, f) in curves.items():
        ax.plot(t, f, label=label)
    ax.set_xlabel("NME (normalised by GT box diagonal)")
    ax.set_ylabel("fraction of images")
    ax.set_ylim(0, 1.02)
    ax.set_xlim(-0.002, max(float(t[-1]) for t, _ in curves.values()))  # keep a step at 0 visible
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title(title)
    data = _save_fig(fig, path)
    plt.close(fig)
    return data


def plot_similarity(dists: dict, path: str, title: str = "identity cosine similarity") -> bytes:
    """dists: label -> cosine values [N]. Histogram PNG."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 4))
    lo = min(float(np.min(v)) for v in dists.values())
    lo = max(-1.0, np.floor(lo * 20) / 20)  # common range for all histograms, 0.05 steps
    for label, v in dists.items():
        ax.hist(np.asarray(v), bins=40, range=(lo, 1.0), alpha=0.5, label=label)
    ax.set_xlabel("cosine similarity to the sharp image's embedding")
    ax.set_ylabel("images")
    ax.legend()
    ax.set_title(title)
    data = _save_fig(fig, path)
    plt.close(fig)
    return data


# ============================================================================ CLI driver
class _EmbeddingCache:
    """relpath -> embedding for one (condition, model); saved to an .npz to resume."""

    def __init__(self, path: str | None):
        self.path, self.data = path, {}
        if path and os.path.isfile(path):
            with np.load(path) as z:
                self.data = dict(zip(z["paths"].tolist(), z["emb"]))

    def save(self):
        if self.path and self.data:
            keys = sorted(self.data)
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            tmp = self.path + ".tmp.npz"
            np.savez(tmp, paths=np.array(keys), emb=np.stack([self.data[k] for k in keys]))
            os.replace(tmp, self.path)


class Evaluator:
    """Runs the protocols for the CLI; holds the sources, backends and caches."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.sources = {"sharp": ImageSource(cfg.lfw_dir)}
        if "blurred" in cfg.conditions:
            self.sources["blurred"] = BlurredSource(self.sources["sharp"], load_kernels(cfg.kernels),
                                                    cfg.noise_sigma)
        if "restored" in cfg.conditions:
            if not cfg.restored_dir:
                raise ValueError("condition 'restored' needs --restored_dir (a folder mirroring the LFW layout)")
            self.sources["restored"] = RestoredSource(cfg.restored_dir)
        from common.face import FaceModels
        # the one face-model holder (common.face.FaceModels): dlib HOG boxes, dlib68, identity
        self.face = FaceModels(identity_model=cfg.identity_model, landmarker="dlib68", detector="",
                               box_detector="dlib", vgg_face_weights=cfg.vgg_face_weights,
                               dlib_models_dir=cfg.dlib_models_dir)
        self.log = print

    # ---------------------------------------------------------------- backends
    @property
    def box_detector(self):
        return self.face.box_detector

    def box(self, rel: str, condition: str, image: np.ndarray):
        """Face box used for landmarks/identity (see module docstring: --box_source)."""
        if self.cfg.box_source == "sharp":
            key = rel
            img = image if condition == "sharp" else self.sources["sharp"](rel)
        else:
            key, img = (rel, condition), image
        return self.face.box(key, img)

    @property
    def identity(self):
        return self.face.identity

    def _cache(self, condition: str) -> _EmbeddingCache:
        return _EmbeddingCache(os.path.join(self.cfg.cache_dir or os.path.join(self.cfg.out_dir, "cache"),
                                            f"emb_{self.cfg.identity_model}_{condition}_{self._blur_tag(condition)}.npz"))

    def largest_cached_subset(self, pairs: list[Pair], conditions: list[str]) -> int:
        """Largest n such that subset_pairs(pairs, n) has every image cached for every condition."""
        have = None
        for c in conditions:
            keys = set(self._cache(c).data)
            have = keys if have is None else have & keys
        n = 0
        per_class = min(sum(1 for p in pairs if p.fold == pairs[0].fold and p.same == s) for s in (True, False))
        while n < per_class and set(unique_images(subset_pairs(pairs, n + 1))) <= have:
            n += 1
        return n

    def embeddings(self, rels: list[str], condition: str) -> np.ndarray:
        cache = self._cache(condition)
        todo = [r for r in rels if r not in cache.data]
        src = self.sources[condition]
        t0, last_save = time.time(), time.time()
        for i, rel in enumerate(todo):
            img = src(rel)
            cache.data[rel] = self.identity.embed(img, self.box(rel, condition, img))
            if time.time() - last_save > 60:
                cache.save()
                last_save = time.time()
                self.log(f"  {condition}: {i + 1}/{len(todo)} embedded, "
                         f"{(time.time() - t0) / (i + 1):.3f} s/image")
        if todo:
            cache.save()
            self.log(f"  {condition}: embedded {len(todo)} images in {time.time() - t0:.1f} s "
                     f"({(time.time() - t0) / len(todo):.3f} s/image)")
        return np.stack([cache.data[r] for r in rels])

    def _blur_tag(self, condition):
        if condition != "blurred":
            return "x"
        return f"{os.path.splitext(os.path.basename(self.cfg.kernels))[0]}_n{self.cfg.noise_sigma:g}"


def _image_subset(cfg, pairs) -> list[str]:
    rels = unique_images(pairs)
    if cfg.num_images and len(rels) > cfg.num_images:
        rng = np.random.default_rng(cfg.seed)
        rels = sorted(rng.choice(rels, cfg.num_images, replace=False).tolist())
    return rels


def run(cfg) -> dict:
    """Run the requested protocols; write tables, plots, JSON and TensorBoard; return results."""
    import tensorflow as tf

    os.makedirs(cfg.out_dir, exist_ok=True)
    ev = Evaluator(cfg)
    all_pairs = read_pairs(cfg.pairs)
    if cfg.pairs_per_fold < 0:
        # Largest balanced subset whose images are all in the embedding cache (a partial full run).
        n = ev.largest_cached_subset(all_pairs, list(cfg.conditions))
        if n == 0:
            raise ValueError("--pairs_per_fold=-1: the embedding cache "
                             f"({cfg.cache_dir or os.path.join(cfg.out_dir, 'cache')}) covers no whole "
                             "balanced subset of pairs yet; run without -1 first")
        ev.log(f"--pairs_per_fold=-1: using the first {n} same + {n} different pairs of every fold (cached)")
        cfg.pairs_per_fold = n
    pairs = subset_pairs(all_pairs, cfg.pairs_per_fold)
    conditions = list(cfg.conditions)
    results, md = {"config": {k: (list(v) if isinstance(v, (list, tuple)) else v)
                              for k, v in vars(cfg).items()}}, []
    md.append(f"# Face-analysis evaluation\n\nLFW: `{cfg.lfw_dir}`, pairs `{cfg.pairs}` "
              f"({len(pairs)} pairs). Blur: kernels `{cfg.kernels}`, noise sigma {cfg.noise_sigma}, "
              f"kernel per image = crc32(path) % K. Boxes: `--box_source={cfg.box_source}`.\n")
    writer = tf.summary.create_file_writer(os.path.join(cfg.out_dir, "tensorboard"))
    timings = {}

    def scalar(name, value):
        with writer.as_default():
            tf.summary.scalar(name, float(value), step=0)

    tables = {}

    def _emit(table, name):
        tables[name] = table
        md.append(table.to_markdown())
        table.to_csv(os.path.join(cfg.out_dir, f"{name}.csv"))

    def png_summary(name, data):
        with writer.as_default():
            tf.summary.image(name, tf.image.decode_png(data)[None], step=0)

    if "verification" in cfg.protocols:
        t0 = time.time()
        rels = balanced_image_order(pairs)
        ev.log(f"verification: {len(pairs)} pairs, {len(rels)} images x {conditions}")
        res = {}
        n_folds = len(set(p.fold for p in pairs))
        table = Table(f"LFW verification accuracy % (paper 2 Table 8), {cfg.identity_model}, cosine",
                      ["accuracy %"], formats=".2f",
                      notes=[f"mean ± std over {n_folds} folds, {len(pairs)} pairs; threshold chosen on the other folds"])
        for c in conditions:
            emb = dict(zip(rels, ev.embeddings(rels, c)))
            r = lfw_verification([emb[p.a] for p in pairs], [emb[p.b] for p in pairs],
                                 [p.same for p in pairs], [p.fold for p in pairs])
            res[c] = {"mean": r["mean"], "std": r["std"], "per_fold": r["per_fold"].tolist()}
            table.add(c, ours=[(100 * r["mean"], 100 * r["std"])])
            scalar(f"verification/{c}/accuracy_mean", r["mean"])
            scalar(f"verification/{c}/accuracy_std", r["std"])
        _emit(table, "verification")
        results["verification"] = res
        timings["verification_s"] = time.time() - t0

    if "identity" in cfg.protocols and len(conditions) > 1:
        t0 = time.time()
        rels = _image_subset(cfg, pairs)
        sharp = ev.embeddings(rels, "sharp")
        label = ("VGG-Face" if cfg.identity_model == "vgg_face" else
                 f"{cfg.identity_model} features, not VGG-Face (no --vgg_face_weights given)")
        table = Table(f"Identity cosine similarity to the sharp image (paper 2 Figs. 11-12, paper 3 Table IV); {label}",
                      ["cosine mean", "cosine std", "cosine median", "1 - cos mean"], formats=".4f",
                      notes=[f"{len(rels)} images; histogram: identity_similarity.png"])
        res, dists = {}, {}
        for c in conditions:
            if c == "sharp":
                continue
            r = identity_similarity(ev.embeddings(rels, c), sharp)
            dists[f"{c} vs sharp"] = r["cosine"]
            res[c] = {k: r[k] for k in ("mean", "std", "median", "mean_distance")}
            table.add(f"{c} vs sharp", ours=[r["mean"], r["std"], r["median"], r["mean_distance"]])
            scalar(f"identity/{c}/cosine_mean", r["mean"])
        _emit(table, "identity")
        png_summary("identity/similarity", plot_similarity(dists, os.path.join(cfg.out_dir, "identity_similarity.png")))
        results["identity"] = res
        timings["identity_s"] = time.time() - t0

    if "landmarks" in cfg.protocols:
        t0 = time.time()
        lm = ev.face.landmarker
        rels = _image_subset(cfg, pairs)
        gt_note = "pseudo-GT: dlib 68 landmarks on the sharp image (oracle row is 0 by construction)"
        gt = None
        if cfg.gt_landmarks:
            with np.load(cfg.gt_landmarks) as z:
                table = dict(zip(z["paths"].tolist(), z["landmarks"]))
            rels = [r for r in rels if r in table]
            if not rels:
                raise ValueError(f"--gt_landmarks={cfg.gt_landmarks} covers none of the evaluated images")
            gt = np.stack([table[r] for r in rels]).astype(np.float64)
            gt_note = f"ground truth from {cfg.gt_landmarks}"
        preds = {}
        for c in conditions:
            out = []
            for rel in rels:
                img = ev.sources[c](rel)
                p = lm.landmarks(img, ev.box(rel, c, img))
                out.append(np.full((68, 2), np.nan) if p is None else p)
            preds[c] = np.stack(out).astype(np.float64)
        if gt is None:
            gt = preds["sharp"]
            keep = np.all(np.isfinite(gt), axis=(1, 2))
            if not keep.all():  # no pseudo-GT for these images: leave them out everywhere
                gt, rels = gt[keep], [r for r, k in zip(rels, keep) if k]
                preds = {c: v[keep] for c, v in preds.items()}
        fail_col = f"failure % (NME > {cfg.max_error})"
        table = Table(f"Landmark localisation, dlib 68 points (paper 2 Tables 5-7)",
                      [f"AUC@{cfg.max_error}", fail_col, "mean NME"],
                      formats={f"AUC@{cfg.max_error}": ".4f", fail_col: ".2f", "mean NME": ".4f"},
                      notes=[f"{len(rels)} images; NME normalised by the GT box diagonal; {gt_note}; CED: ced.png"])
        res, curves = {}, {}
        for c in conditions:
            r = landmark_protocol(preds[c], gt, cfg.max_error)
            name = "oracle (sharp)" if c == "sharp" else c
            curves[name] = r["ced"]
            res[c] = {k: r[k] for k in ("mean_nme", "auc", "failure_rate")}
            table.add(name, ours=[r["auc"], 100 * r["failure_rate"], r["mean_nme"]])
            scalar(f"landmarks/{c}/auc", r["auc"])
            scalar(f"landmarks/{c}/failure_rate", r["failure_rate"])
        _emit(table, "landmarks")
        png_summary("landmarks/ced", plot_ced(curves, os.path.join(cfg.out_dir, "ced.png")))
        results["landmarks"] = {"gt": gt_note, **res}
        timings["landmarks_s"] = time.time() - t0

    if "detection" in cfg.protocols:
        t0 = time.time()
        from common import face
        rels = _image_subset(cfg, pairs)
        res = {}
        for dname in cfg.detectors:
            det = face.get_detector(dname)
            res[dname] = {}
            for c in conditions:
                imgs = [ev.sources[c](r) for r in rels]
                rate, _ = detection_success_rate(det, imgs)
                res[dname][c] = rate
                scalar(f"detection/{dname}/{c}/success_rate", rate)
        table = Table("Face detection success rate % (paper 1 Table 2)", [f"{d} %" for d in cfg.detectors],
                      formats=".2f", notes=[f"{len(rels)} images; success = at least one face detected"])
        for c in conditions:
            table.add(c, ours=[100 * res[d][c] for d in cfg.detectors])
        _emit(table, "detection")
        results["detection"] = res
        timings["detection_s"] = time.time() - t0

    if "recognition" in cfg.protocols:
        t0 = time.time()
        by_id = {}
        for name in sorted(os.listdir(cfg.lfw_dir)):
            d = os.path.join(cfg.lfw_dir, name)
            if os.path.isdir(d):
                by_id[name] = [f"{name}/{f}" for f in sorted(os.listdir(d))
                               if f.lower().endswith((".jpg", ".jpeg", ".png"))]
        gallery, gids, probes, pids = probe_gallery_split(by_id, cfg.num_ids, cfg.gallery_per_id, cfg.seed)
        g_emb = ev.embeddings(gallery, "sharp")
        table = Table(f"Face recognition % (paper 3 Table V), {cfg.identity_model}",
                      ["top-1 %", "top-3 %", "top-5 %"], formats=".2f",
                      notes=[f"gallery: {cfg.gallery_per_id} sharp images for each of {len(set(gids))} identities "
                             f"(asked {cfg.num_ids}); {len(probes)} probe images per row"])
        res = {}
        for c in conditions:
            r = recognition_topk(ev.embeddings(probes, c), pids, g_emb, gids)
            res[c] = r
            table.add(c, ours=[100 * r[k] for k in (1, 3, 5)])
            for k in (1, 3, 5):
                scalar(f"recognition/{c}/top{k}", r[k])
        _emit(table, "recognition")
        results["recognition"] = {c: {str(k): v for k, v in r.items()} for c, r in res.items()}
        timings["recognition_s"] = time.time() - t0

    writer.flush()
    results["timings"] = timings
    _write_bytes(os.path.join(cfg.out_dir, "results.md"), "\n".join(md).encode())
    _write_bytes(os.path.join(cfg.out_dir, "results.json"), json.dumps(results, indent=1).encode())
    results["tables"] = tables  # common.report.Table per protocol: add the paper's rows and re-render
    return results


def define_flags(fv):
    from absl import flags
    flags.DEFINE_string("lfw_dir", os.path.join(SHARED_DATA, "lfw"), "LFW folder (<Name>/<Name>_0001.jpg)", flag_values=fv)
    flags.DEFINE_string("pairs", os.path.join(SHARED_DATA, "lfw_pairs.txt"), "LFW pairs.txt", flag_values=fv)
    flags.DEFINE_string("out_dir", None, "where tables, plots, JSON and TensorBoard go", flag_values=fv)
    flags.DEFINE_list("protocols", ["verification", "landmarks", "detection"], f"any of {PROTOCOLS}", flag_values=fv)
    flags.DEFINE_list("conditions", ["sharp", "blurred"], f"any of {CONDITIONS}", flag_values=fv)
    flags.DEFINE_string("restored_dir", None, "restored images mirroring the LFW layout", flag_values=fv)
    flags.DEFINE_string("kernels", DEFAULT_KERNELS,
                        "blur kernel bank: .npz/.mat path or camera_shake|markov|gaussian|defocus", flag_values=fv)
    flags.DEFINE_float("noise_sigma", 0.0, "Gaussian noise std added after blurring ([0,1] scale)", flag_values=fv)
    flags.DEFINE_integer("pairs_per_fold", 0, "use only the first N same + N different pairs per fold (0 = all; -1 = the largest "
                         "subset already in the embedding cache, to report a partial full run)", flag_values=fv)
    flags.DEFINE_integer("num_images", 1000, "images (from the pairs) for landmarks/detection/identity (0 = all)", flag_values=fv)
    flags.DEFINE_list("detectors", ["mtcnn", "haar"], "detectors for the detection protocol", flag_values=fv)
    flags.DEFINE_enum("identity_model", "dlib_resnet", ["dlib_resnet", "vgg_face"], "identity embedding", flag_values=fv)
    flags.DEFINE_string("vgg_face_weights", None, "Keras weights file for VGG-Face (not shipped)", flag_values=fv)
    flags.DEFINE_string("dlib_models_dir", None, "folder with dlib .dat models (default: face_recognition_models)", flag_values=fv)
    flags.DEFINE_string("gt_landmarks", None, "npz with `paths` [N] and `landmarks` [N,68,2] ground truth", flag_values=fv)
    flags.DEFINE_enum("box_source", "sharp", ["sharp", "detect"], "face boxes for landmarks/identity", flag_values=fv)
    flags.DEFINE_float("max_error", 0.08, "CED/AUC upper limit and failure threshold", flag_values=fv)
    flags.DEFINE_integer("num_ids", 100, "recognition: identities", flag_values=fv)
    flags.DEFINE_integer("gallery_per_id", 9, "recognition: gallery images per identity", flag_values=fv)
    flags.DEFINE_integer("seed", 0, "seed of image subsets and splits", flag_values=fv)
    flags.DEFINE_string("cache_dir", None, "embedding cache (default out_dir/cache); runs sharing it resume "
                        "each other's work", flag_values=fv)
    return fv


def _check(cfg):
    from absl import flags as _f  # noqa: F401
    if not cfg.out_dir:
        raise ValueError("--out_dir is required")
    bad = set(cfg.protocols) - set(PROTOCOLS)
    if bad:
        raise ValueError(f"--protocols: unknown {sorted(bad)}; choose from {PROTOCOLS}")
    bad = set(cfg.conditions) - set(CONDITIONS)
    if bad:
        raise ValueError(f"--conditions: unknown {sorted(bad)}; choose from {CONDITIONS}")
    if "sharp" not in cfg.conditions and ({"identity", "landmarks"} & set(cfg.protocols)):
        raise ValueError("--conditions must include 'sharp' for the identity and landmark protocols "
                         "(the sharp image is their reference)")


class _Cfg:
    """Plain attribute view of parsed flags (so `run` also accepts a SimpleNamespace)."""

    def __init__(self, fv):
        for name in fv:
            if name in _FLAG_NAMES:
                setattr(self, name, fv[name].value)


_FLAG_NAMES = ("lfw_dir", "pairs", "out_dir", "protocols", "conditions", "restored_dir", "kernels",
               "noise_sigma", "pairs_per_fold", "num_images", "detectors", "identity_model",
               "vgg_face_weights", "dlib_models_dir", "gt_landmarks", "box_source", "max_error",
               "num_ids", "gallery_per_id", "seed", "cache_dir")


def default_config(**overrides) -> "_Cfg":
    """The CLI's defaults as an attribute object, with overrides; for paper `evaluate.py` scripts:

        face_eval.run(face_eval.default_config(out_dir=..., conditions=["sharp", "blurred",
                      "restored"], restored_dir=..., protocols=["verification"]))
    """
    from absl import flags
    fv = define_flags(flags.FlagValues())
    fv(["face_eval"])
    cfg = _Cfg(fv)
    for k, v in overrides.items():
        if k not in _FLAG_NAMES:
            raise ValueError(f"default_config: unknown option {k!r}; known: {sorted(_FLAG_NAMES)}")
        setattr(cfg, k, v)
    _check(cfg)
    return cfg


def main(argv=None) -> int:
    from absl import flags
    fv = define_flags(flags.FlagValues())
    fv(list(argv if argv is not None else sys.argv))
    cfg = _Cfg(fv)
    _check(cfg)
    t0 = time.time()
    run(cfg)
    with open(os.path.join(cfg.out_dir, "results.md")) as f:
        print(f.read())
    print(f"[face_eval] done in {time.time() - t0:.1f} s; outputs in {cfg.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
