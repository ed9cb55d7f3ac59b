"""Blur from video by frame averaging (paper 2, Chrysos et al., Sec. 3.3 and Sec. 5.1), NumPy.

  * `average_frames` -- predefined averaging (PrAvg) of L frames, middle frame = ground truth
    (Eq. 8), with an optional camera response (gamma).
  * `vla_average` -- variable length averaging (VLA): the window grows around the centre frame
    until one of its three stop conditions fires (face boxes stop overlapping, the average stops
    resembling the centre frame, the motion reverses).
  * `box_iou`, `frame_shift` -- the two measurements VLA's stop conditions use.
  * `pravg_window`, `pravg_windows`, `vla_windows` -- which windows of a sequence become pairs:
    one PrAvg window centred on a frame (`data.build`'s clips), PrAvg windows every `stride`
    frames and VLA windows grown around every `stride`-th frame (paper 2's training pairs,
    `paper2_identity_cgan.data`).

Kernel blur (synthetic kernels applied to sharp images) is in `common.blur`.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np


def _frames_float(frames, name):
    frames = np.asarray(frames)
    if frames.ndim != 4:
        raise ValueError(f"{name}: frames must be [L, H, W, C], got shape {frames.shape}")
    if frames.dtype == np.uint8:
        return frames.astype(np.float32) / 255.0
    return frames.astype(np.float32)


def average_frames(frames, gamma=None):
    """Predefined averaging (PrAvg, paper 2 Sec. 5.1 and Eq. 8): the mean of L frames.

    Args:
      frames: [L, H, W, C] float in [0, 1] (uint8 accepted), L >= 1 consecutive frames.
      gamma: optional camera response psi(x) = x ** (1 / gamma): frames are linearised
        (x ** gamma), averaged, and the response re-applied (mean ** (1 / gamma)). None averages
        the stored intensities directly.

    Returns:
      (blurred, sharp): float32 [H, W, C] each; sharp is the middle frame, index L // 2.
    """
    frames = _frames_float(frames, "average_frames")
    if gamma is None:
        blurred = frames.mean(axis=0, dtype=np.float64)
    else:
        if gamma <= 0:
            raise ValueError(f"average_frames: gamma must be > 0, got {gamma}")
        lin = np.clip(frames, 0.0, 1.0).astype(np.float64) ** gamma
        blurred = lin.mean(axis=0) ** (1.0 / gamma)
    return blurred.astype(np.float32), frames[len(frames) // 2].copy()


class VLAResult(NamedTuple):
    """What `vla_average` returns."""
    blurred: np.ndarray  # float32 [H, W, C], the average of the accepted window
    sharp: np.ndarray    # float32 [H, W, C], the centre (ground-truth) frame
    length: int          # L, odd, number of frames averaged
    reason: str          # the stop: overlap | ssim | oscillation | max_length | sequence_end

    def __repr__(self):
        return f"VLAResult(length={self.length}, reason={self.reason!r})"


def box_iou(a, b):
    """IoU of two boxes (x0, y0, x1, y1)."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def frame_shift(a, b):
    """Global translation (dy, dx) from frame a to frame b by phase correlation (sub-pixel /10)."""
    from skimage.registration import phase_cross_correlation
    ga, gb = a.mean(axis=-1), b.mean(axis=-1)
    if ga.std() < 1e-6 or gb.std() < 1e-6:  # a flat frame has no measurable motion
        return np.zeros(2)
    shift, _, _ = phase_cross_correlation(ga, gb, upsample_factor=10)
    return -np.asarray(shift, np.float64)


def _ssim(a, b):
    from skimage.metrics import structural_similarity
    side = min(a.shape[:2])
    if side < 11:  # the 11x11 Gaussian window does not fit: a uniform odd window that does
        win = side if side % 2 else side - 1
        if win < 3:
            return 1.0 if np.allclose(a, b) else 0.0
        return structural_similarity(a, b, data_range=1.0, channel_axis=-1, win_size=win,
                                     use_sample_covariance=False)
    return structural_similarity(a, b, data_range=1.0, channel_axis=-1, gaussian_weights=True,
                                 sigma=1.5, use_sample_covariance=False)


def vla_average(frames, center, boxes=None, *, iou_threshold=0.25, ssim_threshold=0.6,
                reversal_cos=0.0, min_shift=0.5, max_length=None, gamma=None):
    """Variable length averaging (VLA, paper 2 Sec. 3.3): grow L around `center` until a stop fires.

    The window [center - h, center + h] (L = 2h + 1) grows by one frame on each side per step.
    A candidate window is rejected -- and the previous one returned -- when:
      * "overlap": IoU of the face boxes of its first and last frames < iou_threshold (needs
        `boxes`; the paper asks for at least partial overlap of the facial parts);
      * "ssim": SSIM (11x11 Gaussian, sigma 1.5) of its running average to the middle frame <
        ssim_threshold (the blurred frame must stay related to the sharp one content-wise);
      * "oscillation": a newly added frame-to-frame motion (phase correlation, an optical-flow
        free proxy of the paper's motion-flow test) points against the accumulated motion of
        the window: cos(angle) < reversal_cos, both motions longer than min_shift pixels.
    Growth also ends, keeping the last window, at "max_length" or "sequence_end" (the window
    would leave the sequence). Any threshold set to None disables its condition. The paper
    gives no threshold values; the defaults here are ours.

    Args:
      frames: [N, H, W, C] float [0, 1] (uint8 accepted), consecutive video frames.
      center: index of the ground-truth (middle) frame.
      boxes: optional [N, 4] face boxes (x0, y0, x1, y1) per frame.
      gamma: camera response used for the averaging (see `average_frames`).

    Returns:
      VLAResult(blurred float32 [H,W,C], sharp float32 [H,W,C], length L (odd), reason).
    """
    frames = _frames_float(frames, "vla_average")
    n = len(frames)
    if not 0 <= center < n:
        raise ValueError(f"vla_average: center {center} outside the {n} frames")
    if boxes is not None:
        boxes = np.asarray(boxes, np.float64)
        if boxes.shape != (n, 4):
            raise ValueError(f"vla_average: boxes must be [{n}, 4], got {boxes.shape}")
    sharp = frames[center]
    total = frames[center].astype(np.float64)
    motion = np.zeros(2)  # accumulated frame-to-frame shift inside the accepted window
    h, reason = 0, None
    while True:
        nh = h + 1
        lo, hi = center - nh, center + nh
        if max_length is not None and 2 * nh + 1 > max_length:
            reason = "max_length"
            break
        if lo < 0 or hi >= n:
            reason = "sequence_end"
            break
        if iou_threshold is not None and boxes is not None:
            if box_iou(boxes[lo], boxes[hi]) < iou_threshold:
                reason = "overlap"
                break
        new_steps = []
        if reversal_cos is not None:
            new_steps = [frame_shift(frames[lo], frames[lo + 1]),
                         frame_shift(frames[hi - 1], frames[hi])]
            if h == 0:  # the first growth step defines the motion; compare the two new steps
                ref = new_steps[0]
                cands = new_steps[1:]
            else:
                ref, cands = motion, new_steps
            if np.linalg.norm(ref) > min_shift:
                stop = False
                for d in cands:
                    nd = np.linalg.norm(d)
                    if nd > min_shift and ref @ d / (np.linalg.norm(ref) * nd) < reversal_cos:
                        stop = True
                if stop:
                    reason = "oscillation"
                    break
        cand_total = total + frames[lo] + frames[hi]
        if ssim_threshold is not None:
            avg, _ = average_frames(frames[lo:hi + 1], gamma) if gamma is not None else (
                (cand_total / (2 * nh + 1)).astype(np.float32), None)
            if _ssim(avg, sharp) < ssim_threshold:
                reason = "ssim"
                break
        # Accept the candidate window.
        h, total = nh, cand_total
        for d in new_steps:
            motion = motion + d
    blurred, _ = average_frames(frames[center - h:center + h + 1], gamma)
    return VLAResult(blurred, sharp.copy(), 2 * h + 1, reason)


def pravg_window(frames, centre, length, gamma=None):
    """PrAvg of the `length` (odd) frames centred on frame `centre`: `average_frames` of
    frames[centre - length // 2 : centre + length // 2 + 1]. Returns (blurred, sharp), sharp =
    frames[centre]; ValueError when the window leaves the sequence."""
    if length < 1 or length % 2 == 0:
        raise ValueError(f"PrAvg length must be odd and >= 1, got {length}")
    start = centre - length // 2
    if start < 0 or start + length > len(frames):
        raise ValueError(f"PrAvg window of {length} frames around frame {centre} leaves the "
                         f"{len(frames)}-frame sequence")
    return average_frames(frames[start:start + length], gamma=gamma)


def pravg_windows(frames, length, stride=None, gamma=None):
    """PrAvg windows of `length` (odd) frames every `stride` frames (default `length`: disjoint),
    from the first frame on. Yields (centre index, blurred, sharp), float32 [H, W, C]."""
    if length < 1 or length % 2 == 0:
        raise ValueError(f"PrAvg length must be odd and >= 1, got {length}")
    stride = stride or length
    for start in range(0, len(frames) - length + 1, stride):
        centre = start + length // 2
        blurred, sharp = pravg_window(frames, centre, length, gamma)
        yield centre, blurred, sharp


def vla_windows(frames, stride=3, max_length=21, min_length=3, boxes=None, **thresholds):
    """VLA windows grown around every `stride`-th frame (`vla_average`); windows shorter than
    `min_length` (nothing averaged) are dropped. `boxes` [N, 4] per-frame face boxes turn on
    the overlap stop. Yields (centre, blurred, sharp, length)."""
    for c in range(0, len(frames), stride):
        res = vla_average(frames, c, boxes=boxes, max_length=max_length, **thresholds)
        if res.length >= min_length:
            yield c, res.blurred, res.sharp, res.length
