"""Segmentation scores: per-class F-score of predicted class maps against ground-truth masks
(paper 3, UMSN, Table II: SN on clean vs blurred Helen faces).

The F-score of class c is the harmonic mean of precision and recall of the pixels labelled c,
    F_c = 2 P R / (P + R) = 2 TP_c / (2 TP_c + FP_c + FN_c),
with TP/FP/FN counted over ALL pixels of ALL test images pooled (the Helen face-parsing
convention of Smith et al. 2013, which paper 3's Table II follows), not averaged per image, so a
class absent from one face does not give that face an undefined score. A class absent from both
prediction and ground truth of the whole set has F = NaN.
"""
from __future__ import annotations

import numpy as np


def confusion_counts(pred, gt, num_classes: int = 4, valid=None) -> dict:
    """Pixel counts tp/fp/fn [C] (int64) of integer class maps pred, gt (same shape, any rank).
    valid: optional bool mask of the pixels to count (e.g. to ignore unlabelled pixels)."""
    pred, gt = np.asarray(pred), np.asarray(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"predicted class map {pred.shape} and ground-truth mask {gt.shape} "
                         "differ in shape; crop/resize them to the same size")
    for what, a in (("predicted class map", pred), ("ground-truth mask", gt)):
        if a.size and (a.min() < 0 or a.max() >= num_classes):
            raise ValueError(f"{what} holds class ids {int(a.min())}..{int(a.max())}; expected "
                             f"0..{num_classes - 1}")
    if valid is not None:
        valid = np.asarray(valid, bool)
        pred, gt = pred[valid], gt[valid]
    pred, gt = pred.ravel().astype(np.int64), gt.ravel().astype(np.int64)
    cm = np.bincount(gt * num_classes + pred, minlength=num_classes * num_classes)
    cm = cm.reshape(num_classes, num_classes)          # rows: ground truth, columns: prediction
    tp = np.diag(cm).astype(np.int64)
    return {"tp": tp, "fp": cm.sum(0) - tp, "fn": cm.sum(1) - tp}


def add_counts(a: dict | None, b: dict) -> dict:
    """Sum of two `confusion_counts` (a may be None)."""
    return dict(b) if a is None else {k: a[k] + b[k] for k in ("tp", "fp", "fn")}


def fscores_from_counts(counts: dict) -> np.ndarray:
    """F_c = 2 TP / (2 TP + FP + FN) per class, float64 [C]; NaN where the denominator is 0."""
    tp, fp, fn = (np.asarray(counts[k], np.float64) for k in ("tp", "fp", "fn"))
    den = 2 * tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, 2 * tp / np.where(den > 0, den, 1), np.nan)


def class_fscores(preds, gts, num_classes: int = 4) -> np.ndarray:
    """Per-class F-scores [C] pooled over a set: preds, gts sequences of [H,W] class maps (sizes
    may differ between images) or arrays [N,H,W]."""
    counts = None
    for p, g in zip(preds, gts):
        counts = add_counts(counts, confusion_counts(p, g, num_classes))
    if counts is None:
        raise ValueError("class_fscores: no images")
    return fscores_from_counts(counts)
