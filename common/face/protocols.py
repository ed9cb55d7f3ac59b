"""The face-analysis protocols of the three papers, on arrays and a backend (math in `common.metrics`).

    paper 1 (CycleGAN+SRN), Table 2   detection_success_rate
    paper 2 (identity cGAN), T. 5-7   landmark_protocol: NME (by GT box diagonal), CED, AUC@0.08, failures
    paper 2, Figs. 11-12              identity_similarity: cosine restored-vs-sharp
    paper 2, Table 8                  lfw_verification: accuracy over the folds (mean +- std)
    paper 3 (UMSN), Tables IV-V       identity_similarity; probe_gallery_split + recognition_topk
"""
from __future__ import annotations

import numpy as np

from common import metrics


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
