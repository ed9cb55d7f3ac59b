"""common.frame_averaging: PrAvg against NumPy means and real frame-averaged blur; VLA's stop
conditions on hand-made sequences whose stopping length is known."""
import glob
import os

import numpy as np
import pytest

from common import frame_averaging, image_io
from common.paths import SHARED_DATA


def test_average_frames_identical_and_mean():
    rng = np.random.default_rng(0)
    frame = rng.random((16, 20, 3)).astype(np.float32)
    for gamma in (None, 2.2):
        blurred, sharp = frame_averaging.average_frames(np.stack([frame] * 7), gamma=gamma)
        np.testing.assert_allclose(blurred, frame, atol=1e-6)
        np.testing.assert_array_equal(sharp, frame)
    frames = rng.random((5, 8, 8, 3)).astype(np.float32)
    blurred, sharp = frame_averaging.average_frames(frames)
    np.testing.assert_allclose(blurred, frames.mean(0), atol=1e-6)
    np.testing.assert_array_equal(sharp, frames[2])
    blurred_g, _ = frame_averaging.average_frames(frames, gamma=2.2)
    want = (frames.astype(np.float64) ** 2.2).mean(0) ** (1 / 2.2)
    np.testing.assert_allclose(blurred_g, want, atol=1e-6)
    # Linearising before averaging brightens the mean of a dark/bright pair (Jensen).
    pair = np.stack([np.zeros((2, 2, 3)), np.ones((2, 2, 3))]).astype(np.float32)
    assert frame_averaging.average_frames(pair, gamma=2.2)[0].min() > 0.7
    u8 = (frames * 255).round().astype(np.uint8)
    np.testing.assert_allclose(frame_averaging.average_frames(u8)[0], (u8 / 255.0).mean(0), atol=1e-6)


def _texture(rng, h=48, w=48):
    import scipy.ndimage as ndi
    t = ndi.gaussian_filter(rng.random((h, w, 3)), (1.5, 1.5, 0))
    return ((t - t.min()) / (t.max() - t.min())).astype(np.float32)


def _shifted(base, xs):
    return np.stack([np.roll(base, int(x), axis=1) for x in xs])


def test_vla_stops_on_face_overlap():
    rng = np.random.default_rng(1)
    frames = np.stack([_texture(rng)] * 11)  # static content: only the boxes move
    boxes = np.array([[4 * t, 0, 4 * t + 40, 40] for t in range(11)], np.float64)
    # Window half-width h: first/last boxes 8h apart -> IoU = (40-8h)/(40+8h): .67, .43, .25
    res = frame_averaging.vla_average(frames, 5, boxes=boxes, iou_threshold=0.3)
    assert (res.length, res.reason) == (5, "overlap")
    np.testing.assert_allclose(res.blurred, frames[5], atol=1e-6)
    res = frame_averaging.vla_average(frames, 5, boxes=boxes, iou_threshold=0.2)
    assert (res.length, res.reason) == (7, "overlap")
    res = frame_averaging.vla_average(frames, 5, boxes=boxes, iou_threshold=None)
    assert (res.length, res.reason) == (11, "sequence_end")


def test_vla_stops_on_ssim():
    from skimage.metrics import structural_similarity
    rng = np.random.default_rng(2)
    base = _texture(rng)
    frames = _shifted(base, np.arange(13))  # steady 1 px/frame pan, no reversal
    center = 6
    scores = {}
    for h in range(1, 7):
        avg = frames[center - h:center + h + 1].mean(0)
        scores[2 * h + 1] = structural_similarity(avg, frames[center], data_range=1.0,
                                                  channel_axis=-1, gaussian_weights=True,
                                                  sigma=1.5, use_sample_covariance=False)
    assert scores[3] > scores[5] > scores[7]
    thr = (scores[5] + scores[7]) / 2
    res = frame_averaging.vla_average(frames, center, ssim_threshold=thr)
    assert (res.length, res.reason) == (5, "ssim")
    np.testing.assert_allclose(res.blurred, frames[4:9].mean(0), atol=1e-6)
    np.testing.assert_array_equal(res.sharp, frames[center])
    res = frame_averaging.vla_average(frames, center, ssim_threshold=None, max_length=9)
    assert (res.length, res.reason) == (9, "max_length")


def test_vla_stops_on_motion_reversal():
    rng = np.random.default_rng(3)
    base = _texture(rng)
    # Positions: steady +2 px/frame from frame 0 to 8, then the motion turns back.
    xs = [0, 2, 4, 6, 8, 10, 12, 14, 16, 14, 12]
    frames = _shifted(base, xs)
    res = frame_averaging.vla_average(frames, 5, ssim_threshold=None)
    # h=1: [4,6], h=2: [3,7], h=3: [2,8] all forward; h=4 adds 8->9, a reversal.
    assert (res.length, res.reason) == (7, "oscillation")
    res = frame_averaging.vla_average(frames, 5, ssim_threshold=None, reversal_cos=None)
    assert (res.length, res.reason) == (11, "sequence_end")


def test_vla_single_frame_and_errors():
    frames = np.zeros((3, 8, 8, 3), np.float32)
    res = frame_averaging.vla_average(frames, 0)
    assert (res.length, res.reason) == (1, "sequence_end")
    assert res._fields == ("blurred", "sharp", "length", "reason")
    res = frame_averaging.vla_average(frames, 1)  # frames smaller than the 11x11 SSIM window
    assert (res.length, res.reason) == (3, "sequence_end")
    with pytest.raises(ValueError):
        frame_averaging.vla_average(frames, 3)
    with pytest.raises(ValueError):
        frame_averaging.vla_average(frames, 1, boxes=np.zeros((2, 4)))


def test_average_frames_matches_real_frame_averaged_blur():
    """face_video_toy: each blurred.png is a real 7-frame average; PrAvg must reproduce it."""
    seqs = sorted(glob.glob(os.path.join(SHARED_DATA, "face_video_toy/*/")))
    assert len(seqs) == 4
    for seq in seqs:
        paths = sorted(glob.glob(seq + "frames/*.png"))
        frames = np.stack([image_io.to_float32(image_io.read_image(p)) for p in paths])
        real = image_io.to_float32(image_io.read_image(seq + "blurred.png"))
        blurred, sharp = frame_averaging.average_frames(frames)
        err = np.abs(blurred - real).mean()
        assert err < 0.02, (seq, err)
        assert err < np.abs(sharp - real).mean()
        res = frame_averaging.vla_average(frames, len(frames) // 2, ssim_threshold=None, reversal_cos=None)
        assert res.length == 7 and res.reason == "sequence_end"
        np.testing.assert_allclose(res.blurred, blurred, atol=1e-6)


def test_window_selection_shared_by_data_build_and_paper2():
    rng = np.random.default_rng(0)
    frames = rng.random((9, 4, 4, 3)).astype(np.float32)
    blurred, sharp = frame_averaging.pravg_window(frames, 4, 5)
    np.testing.assert_allclose(blurred, frames[2:7].mean(axis=0), atol=1e-6)
    np.testing.assert_array_equal(sharp, frames[4])
    for centre, length in ((1, 5), (7, 5)):
        with pytest.raises(ValueError, match="leaves"):
            frame_averaging.pravg_window(frames, centre, length)
    with pytest.raises(ValueError, match="odd"):
        frame_averaging.pravg_window(frames, 4, 4)
    got = list(frame_averaging.pravg_windows(frames, 3, stride=2))
    assert [c for c, _, _ in got] == [1, 3, 5, 7]
    np.testing.assert_allclose(got[1][1], frames[2:5].mean(axis=0), atol=1e-6)
    vla = list(frame_averaging.vla_windows(frames, stride=4, max_length=5, min_length=1))
    assert [c for c, *_ in vla] == [0, 4, 8]
    for c, b, s, length in vla:
        r = frame_averaging.vla_average(frames, c, max_length=5)
        np.testing.assert_array_equal(b, r.blurred)
        assert length == r.length
