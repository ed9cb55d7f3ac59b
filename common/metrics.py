"""Evaluation metrics shared by the three papers.

Image quality (all papers):
  * ``psnr`` / ``ssim``: NumPy (float64) on one image ``[H,W,C]`` or a batch ``[B,H,W,C]``.
    ``ssim`` reproduces ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=..., channel_axis=-1)`` (Wang et al. 2004: 11x11
    Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03, mean over the map with a 5-pixel border
    left out, then over channels).
  * ``psnr_tf`` / ``ssim_tf``: the same in TensorFlow (``tf.image.psnr`` / ``tf.image.ssim``), usable
    inside a ``tf.function``; they agree with the NumPy versions to float32 rounding (~1e-5).
  * ``masked_psnr`` / ``masked_ssim`` / ``per_class_psnr_ssim``: per semantic class (paper 3, UMSN,
    Table I), see ``masked_psnr`` for the two definitions offered.

Landmarks (paper 2, Sec. 5.4): ``landmark_nme`` (mean point-to-point Euclidean error divided by the
diagonal of the ground-truth bounding box, the convention of Chrysos et al. 2017), ``ced_curve``,
``auc_ced`` (area under the CED up to 0.08, divided by 0.08) and ``failure_rate`` (fraction of images
with error > 0.08; the paper prints it in percent).

Identity (paper 2, Sec. 5.4-5.5): ``cosine_similarity``, ``verification_accuracy`` (LFW-style
10-fold protocol: the threshold is chosen on the 9 other folds), ``top_k_accuracy`` (closed-set
identification, probe vs gallery).

Inputs: ``uint8`` images are converted to floats in [0, 1] (divided by 255); float images are used
as they are (not clipped), so ``data_range`` / ``max_val`` refer to the float range and default to 1.
"""

import numpy as np
from scipy import ndimage

# Wang et al. 2004 / skimage constants.
SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5  # scipy/skimage truncation: radius int(3.5 * 1.5 + 0.5) = 5 -> 11x11 window
SSIM_WIN = 11
SSIM_K1 = 0.01
SSIM_K2 = 0.03
_PAD = (SSIM_WIN - 1) // 2
_CHUNK = 16  # images per SSIM chunk: bounds the float64 temporaries (~10 arrays of [chunk,H,W,C])


# --------------------------------------------------------------------------- input handling
def _as_float_images(x, name, data_range=None):
    """Returns (float64 [B,H,W,C], single) from uint8 / float ``x`` of shape [H,W,C] or [B,H,W,C]."""
    if hasattr(x, "numpy"):  # tf.Tensor / EagerTensor
        x = x.numpy()
    x = np.asarray(x)
    if x.dtype == np.uint8:
        if data_range is not None and data_range != 1.0:
            raise ValueError(
                f"{name} is uint8, which is converted to [0, 1] floats, but data_range={data_range}; "
                "pass data_range=1.0 (the default) or convert the images yourself.")
        x = x.astype(np.float64) / 255.0
    elif np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    else:
        raise ValueError(f"{name} has dtype {x.dtype}; expected uint8 or a float dtype in [0, 1].")
    if x.ndim == 3:
        return x[None], True
    if x.ndim == 4:
        return x, False
    raise ValueError(f"{name} has shape {x.shape}; expected [H,W,C] or [B,H,W,C].")


def _pair(a, b, data_range=None):
    a, single_a = _as_float_images(a, "a", data_range)
    b, single_b = _as_float_images(b, "b", data_range)
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {a.shape} and {b.shape}.")
    return a, b, single_a and single_b


def _out(values, single):
    return float(values[0]) if single else values


def _psnr_from_mse(mse, data_range):
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10((data_range ** 2) / mse)


# --------------------------------------------------------------------------- PSNR / SSIM (NumPy)
def psnr(a, b, data_range=1.0):
    """Peak signal-to-noise ratio in dB, 10 log10(R^2 / MSE), MSE over all pixels and channels.

    Args:
      a, b: [H,W,C] or [B,H,W,C], uint8 or float.
      data_range: R, the peak value of the float images (1.0 for [0, 1]).
    Returns:
      float64 [B], or a float for one image; identical images give ``inf``.
    """
    a, b, single = _pair(a, b, data_range)
    mse = np.mean((a - b) ** 2, axis=(1, 2, 3))
    return _out(_psnr_from_mse(mse, data_range), single)


def _check_ssim_size(a):
    if a.shape[1] < SSIM_WIN or a.shape[2] < SSIM_WIN:
        raise ValueError(
            f"SSIM needs images of at least {SSIM_WIN}x{SSIM_WIN} pixels (the Gaussian window), "
            f"got {a.shape[1]}x{a.shape[2]}.")


def _ssim_map(a, b, data_range):
    """Per-pixel, per-channel SSIM map [B,H,W,C] (float64), as skimage computes it before cropping."""
    _check_ssim_size(a)

    def filt(x):
        return ndimage.gaussian_filter(x, sigma=(0, SSIM_SIGMA, SSIM_SIGMA, 0),
                                       truncate=SSIM_TRUNCATE, mode="reflect")

    ux, uy = filt(a), filt(b)
    vx = filt(a * a) - ux * ux
    vy = filt(b * b) - uy * uy
    vxy = filt(a * b) - ux * uy
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    return ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux ** 2 + uy ** 2 + c1) * (vx + vy + c2))


def _crop(x):
    return x[:, _PAD:-_PAD, _PAD:-_PAD]


def ssim(a, b, data_range=1.0):
    """Mean structural similarity (Wang et al. 2004), equal to skimage's Gaussian-window SSIM.

    11x11 Gaussian window (sigma 1.5), K1 0.01, K2 0.03, population covariance, reflect borders;
    the map is averaged over the image with a 5-pixel border left out and over channels, exactly like
    ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=data_range, channel_axis=-1)``.

    Args:
      a, b: [H,W,C] or [B,H,W,C] (H, W >= 11), uint8 or float.
    Returns:
      float64 [B], or a float for one image.
    """
    a, b, single = _pair(a, b, data_range)
    _check_ssim_size(a)
    s = np.concatenate([_crop(_ssim_map(a[i:i + _CHUNK], b[i:i + _CHUNK], data_range)).mean(axis=(1, 2, 3))
                        for i in range(0, len(a), _CHUNK)])
    return _out(s, single)


# --------------------------------------------------------------------------- PSNR / SSIM (TF)
def _tf_images(x):
    import tensorflow as tf

    x = tf.convert_to_tensor(x)
    if x.dtype == tf.uint8:
        return tf.image.convert_image_dtype(x, tf.float32)  # / 255
    if x.dtype == tf.float64:
        return x
    if not x.dtype.is_floating:
        raise ValueError(f"expected uint8 or float images, got {x.dtype.name}.")
    return tf.cast(x, tf.float32)


def _tf_pair(a, b):
    import tensorflow as tf

    a, b = _tf_images(a), _tf_images(b)
    if a.dtype != b.dtype:
        a, b = tf.cast(a, tf.float32), tf.cast(b, tf.float32)
    return a, b


def psnr_tf(a, b, max_val=1.0):
    """PSNR with ``tf.image.psnr``; a, b [B,H,W,C] (or [H,W,C]) uint8 or float -> tf.Tensor [B] (or scalar).

    Identical images give ``inf``. Works inside ``tf.function``.
    """
    import tensorflow as tf

    a, b = _tf_pair(a, b)
    return tf.image.psnr(a, b, max_val=max_val)


def ssim_tf(a, b, max_val=1.0):
    """SSIM with ``tf.image.ssim(max_val, 11, 1.5, 0.01, 0.03)`` -> tf.Tensor [B] (or scalar).

    TF uses a 'valid' convolution, i.e. the same 5-pixel border exclusion as ``ssim``. TF computes in
    float32 (float64 input is cast down), so the variance E[x^2] - E[x]^2 loses digits on flat, bright
    areas: within 1e-4 of ``ssim`` on real faces, but up to ~5e-4 off on constant images. Use the NumPy
    ``ssim`` for reported numbers. Images must be at least 11x11.
    """
    import tensorflow as tf

    a, b = _tf_pair(a, b)
    return tf.image.ssim(a, b, max_val=max_val, filter_size=SSIM_WIN, filter_sigma=SSIM_SIGMA,
                         k1=SSIM_K1, k2=SSIM_K2)


# --------------------------------------------------------------------------- masked / per class
_MODES = ("region", "masked_image")


def _as_masks(mask, shape, name="mask"):
    """bool [B,H,W] from [H,W], [H,W,1], [B,H,W] or [B,H,W,1] of bool or 0/1 numbers."""
    if hasattr(mask, "numpy"):
        mask = mask.numpy()
    mask = np.asarray(mask)
    b, h, w = shape[:3]
    if mask.ndim in (3, 4) and mask.shape[-1] == 1 and mask.shape[-3:-1] == (h, w):
        mask = mask[..., 0]
    if mask.ndim == 2:
        mask = np.broadcast_to(mask, (b, h, w))
    if mask.shape != (b, h, w):
        raise ValueError(f"{name} has shape {mask.shape}; expected [H,W], [H,W,1], [B,H,W] or "
                         f"[B,H,W,1] matching images of shape {shape}.")
    if mask.dtype != bool:
        if not np.all((mask == 0) | (mask == 1)):
            raise ValueError(f"{name} must be boolean or hold only 0/1 (got values "
                             f"{np.unique(mask)[:8]}); for a class map use per_class_psnr_ssim.")
        mask = mask.astype(bool)
    return mask


def _masked_psnr_arrays(a, b, m, data_range, mode):
    """a, b float64 [B,H,W,C]; m bool [B,H,W] -> [B] (NaN where the mask is empty)."""
    count = m.sum(axis=(1, 2)).astype(np.float64)
    sq = ((a - b) ** 2) * m[..., None]
    if mode == "region":
        with np.errstate(invalid="ignore", divide="ignore"):
            mse = sq.sum(axis=(1, 2, 3)) / (count * a.shape[-1])
    else:  # masked_image: m*a vs m*b over the whole image
        mse = sq.mean(axis=(1, 2, 3))
    out = _psnr_from_mse(mse, data_range)
    out[count == 0] = np.nan
    return out


def _masked_ssim_arrays(a, b, m, data_range, mode, smap=None):
    count = m.sum(axis=(1, 2))
    if mode == "region":
        if smap is None:
            smap = _ssim_map(a, b, data_range)
        s = _crop(smap.mean(axis=-1))
        mc = _crop(m)
        n = mc.sum(axis=(1, 2)).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = (s * mc).sum(axis=(1, 2)) / n
        out[n == 0] = np.nan
    else:
        mm = m[..., None].astype(np.float64)
        out = _crop(_ssim_map(a * mm, b * mm, data_range)).mean(axis=(1, 2, 3))
    out[count == 0] = np.nan
    return out


def _check_mode(mode):
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}.")


def masked_psnr(a, b, mask, data_range=1.0, mode="region"):
    """PSNR restricted to a (class) mask, for paper 3's per-class Table I.

    mode="region" (default): MSE averaged over the pixels where ``mask`` is true (all channels),
      PSNR = 10 log10(R^2 / MSE_mask). This is the quality *of the region itself*.
    mode="masked_image": PSNR between the masked images m*a and m*b over the whole image (the
      region's squared error divided by all H*W pixels). This is always >= the region PSNR and grows
      as the region shrinks; UMSN's Table I numbers are only consistent with this convention (every
      class PSNR there exceeds the whole-image PSNR of Table III, impossible for region PSNRs, whose
      area-weighted MSEs average to the whole-image MSE). The UMSN repository holds no metric code.

    Args:
      a, b: [H,W,C] or [B,H,W,C] uint8 or float images.
      mask: bool or 0/1, [H,W], [H,W,1], [B,H,W] or [B,H,W,1].
    Returns:
      [B] float64 (float for one image); NaN where the mask is empty (class absent), inf where the
      masked pixels are identical.
    """
    _check_mode(mode)
    a, b, single = _pair(a, b, data_range)
    m = _as_masks(mask, a.shape)
    return _out(_masked_psnr_arrays(a, b, m, data_range, mode), single)


def masked_ssim(a, b, mask, data_range=1.0, mode="region"):
    """SSIM restricted to a (class) mask, for paper 3's per-class Table I.

    mode="region" (default): the SSIM map of the whole image (as in ``ssim``: Gaussian window,
      statistics computed from the full image, channels averaged per pixel) is averaged over the mask
      pixels, leaving out the same 5-pixel border as ``ssim``. With an all-true mask it equals ``ssim``.
    mode="masked_image": ``ssim(m*a, m*b)`` over the whole image (see ``masked_psnr``).

    Returns:
      [B] float64 (float for one image); NaN where the mask is empty (in region mode also when the
      mask lies only in the 5-pixel border).
    """
    _check_mode(mode)
    a, b, single = _pair(a, b, data_range)
    m = _as_masks(mask, a.shape)
    _check_ssim_size(a)
    out = np.concatenate([
        _masked_ssim_arrays(a[i:i + _CHUNK], b[i:i + _CHUNK], m[i:i + _CHUNK], data_range, mode)
        for i in range(0, len(a), _CHUNK)])
    return _out(out, single)


def per_class_psnr_ssim(a, b, class_map, num_classes=4, data_range=1.0, mode="region"):
    """PSNR and SSIM per semantic class (paper 3, UMSN Table I: classes m1..m4 = background, face
    skin, brows+eyes+nose+lips+mouth, hair = ids 0..3 of the ``mask/classes`` record key).

    Args:
      a, b: [H,W,C] or [B,H,W,C] images.
      class_map: integer ids 0..num_classes-1, [H,W], [H,W,1], [B,H,W] or [B,H,W,1].
      mode: "region" or "masked_image", see ``masked_psnr``.
    Returns:
      {"psnr": [B,K], "ssim": [B,K]} float64 ([K] for one image); NaN where a class is absent
      (average over images with ``np.nanmean(..., axis=0)``).
    """
    _check_mode(mode)
    a, b, single = _pair(a, b, data_range)
    if hasattr(class_map, "numpy"):
        class_map = class_map.numpy()
    cm = np.asarray(class_map)
    if not np.issubdtype(cm.dtype, np.integer):
        raise ValueError(f"class_map must hold integer class ids, got dtype {cm.dtype}.")
    if cm.size and (cm.min() < 0 or cm.max() >= num_classes):
        raise ValueError(f"class_map ids must lie in 0..{num_classes - 1}, got {cm.min()}..{cm.max()}.")
    _check_ssim_size(a)
    masks = [_as_masks(cm == k, a.shape, name="class_map") for k in range(num_classes)]
    ps = [_masked_psnr_arrays(a, b, m, data_range, mode) for m in masks]
    ss = []
    for i in range(0, len(a), _CHUNK):  # one SSIM map per chunk, shared by all classes
        ac, bc = a[i:i + _CHUNK], b[i:i + _CHUNK]
        smap = _ssim_map(ac, bc, data_range) if mode == "region" else None
        ss.append(np.stack([_masked_ssim_arrays(ac, bc, m[i:i + _CHUNK], data_range, mode, smap=smap)
                            for m in masks], axis=1))
    out = {"psnr": np.stack(ps, axis=1), "ssim": np.concatenate(ss, axis=0)}
    if single:
        out = {k: v[0] for k, v in out.items()}
    return out


# --------------------------------------------------------------------------- landmarks (paper 2)
def landmark_nme(pred, gt):
    """Normalised mean error per image (paper 2 Sec. 5.4, convention of Chrysos et al. 2017).

    error = mean_p ||pred_p - gt_p||_2 / sqrt(w^2 + h^2), with w, h the width and height of the
    ground-truth points' bounding box.

    Args:
      pred, gt: [N,P,2] (or [P,2]) point coordinates (x, y) in pixels. A prediction holding NaN (the
        landmarker failed on that image) gets error ``inf``, i.e. counts as a failure.
    Returns:
      float64 [N] (float for [P,2] input).
    """
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    single = gt.ndim == 2
    if single:
        pred, gt = pred[None], gt[None]
    if gt.ndim != 3 or gt.shape[-1] != 2 or pred.shape != gt.shape:
        raise ValueError(f"pred and gt must both be [N,P,2] (or [P,2]), got {pred.shape} and {gt.shape}.")
    if not np.all(np.isfinite(gt)):
        raise ValueError("gt landmarks contain NaN/inf.")
    extent = gt.max(axis=1) - gt.min(axis=1)  # [N,2] = (w, h)
    diag = np.sqrt((extent ** 2).sum(axis=-1))
    if np.any(diag <= 0):
        raise ValueError(f"ground-truth box has zero diagonal for images {np.flatnonzero(diag <= 0)[:10]}.")
    err = np.sqrt(((pred - gt) ** 2).sum(axis=-1)).mean(axis=1) / diag
    err[~np.all(np.isfinite(pred), axis=(1, 2))] = np.inf
    return float(err[0]) if single else err


def _errors(errors):
    e = np.asarray(errors, dtype=np.float64).ravel()
    if e.size == 0:
        raise ValueError("errors is empty.")
    if np.any(np.isnan(e)) or np.any(e < 0):
        raise ValueError("errors must be non-negative numbers (inf allowed for failed images), no NaN.")
    return e


def ced_curve(errors, max_error=0.08, num_points=801):
    """Cumulative error distribution: fraction of images with error <= t, for t in [0, max_error].

    Returns:
      (thresholds [num_points], fraction [num_points]); the default spacing is 1e-4 for 0.08.
    """
    e = _errors(errors)
    t = np.linspace(0.0, max_error, num_points)
    frac = (e[None, :] <= t[:, None]).mean(axis=1)
    return t, frac


def auc_ced(errors, max_error=0.08):
    """Area under the CED curve from 0 to ``max_error``, divided by ``max_error`` (in [0, 1]).

    Computed exactly: with F(t) the fraction of errors <= t,
    (1/T) * integral_0^T F(t) dt = mean_i max(0, T - e_i) / T.
    The menpo convention (Simpson's rule on the CED sampled every 1e-4) approximates this to within
    about the bin width divided by T (~1e-3 at T = 0.08).
    """
    e = _errors(errors)
    return float(np.mean(np.clip(max_error - e, 0.0, None)) / max_error)


def failure_rate(errors, threshold=0.08):
    """Fraction (in [0, 1]) of images whose error is larger than ``threshold``; paper 2 prints x100."""
    e = _errors(errors)
    return float(np.mean(e > threshold))


# --------------------------------------------------------------------------- identity (paper 2)
def cosine_similarity(a, b, eps=1e-12):
    """Row-wise cosine similarity of embeddings a, b [N,D] -> [N] (or [D] -> float). Zero vectors -> 0."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim not in (1, 2):
        raise ValueError(f"a and b must both be [N,D] or [D], got {a.shape} and {b.shape}.")
    num = (a * b).sum(axis=-1)
    den = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    out = num / np.maximum(den, eps)
    return float(out) if a.ndim == 1 else out


def _best_threshold(scores, same):
    """Threshold maximising accuracy of (score >= t) == same; candidates are the midpoints between
    consecutive distinct scores plus one below the minimum and one above the maximum. Ties: the
    middle one of the best candidates (in sorted order). O(N log N)."""
    u = np.unique(scores)
    cand = np.concatenate([[u[0] - 1.0], (u[:-1] + u[1:]) / 2.0, [u[-1] + 1.0]])
    pos = np.sort(scores[same])
    neg = np.sort(scores[~same])
    # correct = same pairs with score >= t  +  different pairs with score < t
    correct = (len(pos) - np.searchsorted(pos, cand, side="left")) + np.searchsorted(neg, cand, side="left")
    best = np.flatnonzero(correct == correct.max())
    return cand[best[len(best) // 2]]


def verification_accuracy(scores, same, folds=10, higher_is_same=True):
    """Face verification accuracy with the LFW k-fold protocol (paper 2 Sec. 5.5: mean and std).

    For each fold, the decision threshold is the one that maximises accuracy on the *other* folds;
    accuracy is then measured on the held-out fold with that threshold (pair declared "same" when
    score >= threshold).

    Args:
      scores: [N] similarity (e.g. cosine) of each pair; pass ``higher_is_same=False`` for distances.
      same: [N] bool, True for same-identity pairs.
      folds: int k (pairs split into k consecutive chunks, as in LFW pairs.txt: fold i = lines
        600i..600i+599) or an array [N] of fold ids.
    Returns:
      (mean, std, per_fold): mean and population std (ddof=0) of the per-fold accuracies, and the
      per-fold accuracies [k].
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(same).astype(bool).ravel()
    if s.shape != y.shape or s.size == 0:
        raise ValueError(f"scores and same must be non-empty and the same length, got {s.shape}, {y.shape}.")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores contain NaN/inf.")
    if not higher_is_same:
        s = -s
    if np.isscalar(folds) or np.ndim(folds) == 0:
        k = int(folds)
        if k < 2 or k > s.size:
            raise ValueError(f"folds={k} must be between 2 and the number of pairs ({s.size}).")
        fold_id = np.concatenate([np.full(len(c), i) for i, c in enumerate(np.array_split(np.arange(s.size), k))])
    else:
        fold_id = np.asarray(folds).ravel()
        if fold_id.shape != s.shape:
            raise ValueError(f"folds has shape {fold_id.shape}; expected an int or [N] = {s.shape}.")
    ids = np.unique(fold_id)
    if len(ids) < 2:
        raise ValueError("need at least 2 folds.")
    per_fold = []
    for f in ids:
        test = fold_id == f
        t = _best_threshold(s[~test], y[~test])
        per_fold.append(np.mean((s[test] >= t) == y[test]))
    per_fold = np.asarray(per_fold)
    return float(per_fold.mean()), float(per_fold.std()), per_fold


def top_k_accuracy(probe_emb, probe_ids, gallery_emb, gallery_ids, ks=(1, 3, 5)):
    """Closed-set identification accuracy at rank k (CMC points), cosine similarity.

    Gallery identities are ranked per probe by their best-matching gallery embedding (max cosine over
    that identity's images; with one image per identity this is the usual image ranking). A probe is
    correct at k when its identity is among the k top-ranked identities.

    Args:
      probe_emb [P,D], probe_ids [P]; gallery_emb [G,D], gallery_ids [G]. Every probe identity must
      be in the gallery (closed set).
    Returns:
      {k: accuracy in [0, 1]}.
    """
    pe = np.asarray(probe_emb, dtype=np.float64)
    ge = np.asarray(gallery_emb, dtype=np.float64)
    pid = np.asarray(probe_ids).ravel()
    gid = np.asarray(gallery_ids).ravel()
    if pe.ndim != 2 or ge.ndim != 2 or pe.shape[1] != ge.shape[1]:
        raise ValueError(f"embeddings must be [P,D] and [G,D], got {pe.shape} and {ge.shape}.")
    if len(pid) != len(pe) or len(gid) != len(ge):
        raise ValueError("ids must have one entry per embedding.")
    classes, g_idx = np.unique(gid, return_inverse=True)
    missing = ~np.isin(pid, classes)
    if np.any(missing):
        raise ValueError(f"{missing.sum()} probe identities are not in the gallery "
                         f"(e.g. {pid[missing][:5]}); top-k is closed-set.")
    pn = pe / np.maximum(np.linalg.norm(pe, axis=1, keepdims=True), 1e-12)
    gn = ge / np.maximum(np.linalg.norm(ge, axis=1, keepdims=True), 1e-12)
    sim = pn @ gn.T  # [P,G]
    per_class = np.full((len(pe), len(classes)), -np.inf)
    for c in range(len(classes)):
        per_class[:, c] = sim[:, g_idx == c].max(axis=1)
    true_c = np.searchsorted(classes, pid)
    true_sim = per_class[np.arange(len(pe)), true_c]
    # rank (0-based) of the true identity: number of identities strictly more similar (ties are
    # resolved in the probe's favour)
    rank = (per_class > true_sim[:, None]).sum(axis=1)
    return {int(k): float(np.mean(rank < k)) for k in ks}


def restoration_scalars(batches) -> dict:
    """The in-training evaluation scalars every trainer logs (and `--best_metric` names): mean
    ``psnr``/``ssim`` of the restored images and ``blurred_psnr``/``blurred_ssim`` of the inputs
    against the sharp targets, and ``num_images``. ``batches``: (sharp, restored, blurred)
    [B,H,W,C] tensors in [0, 1]."""
    sums = {"psnr": [], "ssim": [], "blurred_psnr": [], "blurred_ssim": []}
    for sharp, restored, blurred in batches:
        sums["psnr"].extend(np.asarray(psnr_tf(sharp, restored)).tolist())
        sums["ssim"].extend(np.asarray(ssim_tf(sharp, restored)).tolist())
        sums["blurred_psnr"].extend(np.asarray(psnr_tf(sharp, blurred)).tolist())
        sums["blurred_ssim"].extend(np.asarray(ssim_tf(sharp, blurred)).tolist())
    if not sums["psnr"]:
        raise ValueError("evaluation data yielded no batch")
    out = {k: float(np.mean(v)) for k, v in sums.items()}
    out["num_images"] = len(sums["psnr"])
    return out
