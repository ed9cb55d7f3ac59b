"""Tests for common.metrics against skimage / scipy / NumPy recomputations and hand-made cases."""

import glob
import os

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage, integrate
from scipy.spatial import distance
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from common import metrics
from common.paths import SHARED_DATA

LFW = os.path.join(SHARED_DATA, "lfw")


def _sk_ssim(a, b, data_range=1.0, full=False):
    return structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                 data_range=data_range, channel_axis=-1, full=full)


def _blur(img, sigma):
    return ndimage.gaussian_filter(img.astype(np.float64), sigma=(sigma, sigma, 0))


@pytest.fixture(scope="module")
def lfw_pairs():
    """Four real LFW faces (float [0,1], 150x150x3) and Gaussian-blurred copies of them."""
    files = sorted(glob.glob(os.path.join(LFW, "A*", "*.jpg")))[:4]
    assert len(files) == 4, f"need LFW images under {LFW}"
    sharp = np.stack([np.asarray(Image.open(f).convert("RGB"), dtype=np.float64) / 255 for f in files])
    blurred = np.stack([_blur(s, sig) for s, sig in zip(sharp, (0.8, 1.5, 2.5, 4.0))])
    return sharp, blurred


# ------------------------------------------------------------------ PSNR
def test_psnr_matches_skimage_batch_and_single(lfw_pairs):
    sharp, blurred = lfw_pairs
    got = metrics.psnr(sharp, blurred)
    assert got.shape == (4,)
    want = [peak_signal_noise_ratio(s, b, data_range=1.0) for s, b in zip(sharp, blurred)]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
    assert np.all(np.diff(got) < 0), "stronger blur must give lower PSNR"
    single = metrics.psnr(sharp[0], blurred[0])
    assert isinstance(single, float) and single == pytest.approx(want[0], abs=1e-9)


def test_psnr_known_values_and_identical():
    a = np.full((8, 9, 3), 0.5)
    assert metrics.psnr(a, a + 0.1) == pytest.approx(20.0, abs=1e-9)  # MSE 0.01
    assert metrics.psnr(a, a) == np.inf
    assert metrics.psnr(a * 255, a * 255 + 25.5, data_range=255.0) == pytest.approx(20.0, abs=1e-9)


def test_uint8_and_float_give_same_answer(lfw_pairs):
    sharp, blurred = lfw_pairs
    s8 = np.round(sharp * 255).astype(np.uint8)
    b8 = np.round(blurred * 255).astype(np.uint8)
    sf, bf = s8 / 255.0, b8 / 255.0
    np.testing.assert_allclose(metrics.psnr(s8, b8), metrics.psnr(sf, bf), atol=1e-12)
    np.testing.assert_allclose(metrics.ssim(s8, b8), metrics.ssim(sf, bf), atol=1e-12)
    np.testing.assert_allclose(metrics.psnr(s8, bf), metrics.psnr(sf, bf), atol=1e-12)  # mixed
    np.testing.assert_allclose(metrics.psnr_tf(s8, b8).numpy(), metrics.psnr(sf, bf), atol=1e-3)
    np.testing.assert_allclose(metrics.ssim_tf(s8, b8).numpy(), metrics.ssim(sf, bf), atol=1e-4)
    with pytest.raises(ValueError, match="uint8"):
        metrics.psnr(s8, b8, data_range=255)


# ------------------------------------------------------------------ SSIM
def test_ssim_matches_skimage_on_real_images(lfw_pairs):
    sharp, blurred = lfw_pairs
    want = np.array([_sk_ssim(s, b) for s, b in zip(sharp, blurred)])
    assert np.all(want < 0.99) and np.all(np.diff(want) < 0), want  # a real spread of qualities
    np.testing.assert_allclose(metrics.ssim(sharp, blurred), want, rtol=0, atol=1e-4)
    np.testing.assert_allclose(metrics.ssim(sharp, blurred), want, rtol=0, atol=1e-9)  # float64 exact
    tf_got = metrics.ssim_tf(sharp.astype(np.float32), blurred.astype(np.float32)).numpy()
    np.testing.assert_allclose(tf_got, want, rtol=0, atol=1e-4)
    np.testing.assert_allclose(metrics.psnr_tf(sharp, blurred).numpy(), metrics.psnr(sharp, blurred),
                               atol=1e-4)


def test_ssim_odd_size_and_data_range():
    rng = np.random.default_rng(0)
    a = rng.random((2, 37, 53, 3))
    b = np.clip(a + 0.1 * rng.standard_normal(a.shape), 0, 1)
    want = [_sk_ssim(x, y) for x, y in zip(a, b)]
    np.testing.assert_allclose(metrics.ssim(a, b), want, atol=1e-9)
    np.testing.assert_allclose(metrics.ssim_tf(a.astype(np.float32), b.astype(np.float32)).numpy(),
                               want, atol=1e-4)
    np.testing.assert_allclose(metrics.ssim(a * 255, b * 255, data_range=255.0), want, atol=1e-9)
    one_channel = metrics.ssim(a[0, ..., :1], b[0, ..., :1])
    assert one_channel == pytest.approx(_sk_ssim(a[0, ..., :1], b[0, ..., :1]), abs=1e-9)


def test_ssim_identical_and_constant_images():
    rng = np.random.default_rng(1)
    a = rng.random((3, 20, 24, 3))
    np.testing.assert_allclose(metrics.ssim(a, a), 1.0, atol=1e-12)
    np.testing.assert_allclose(metrics.ssim_tf(a, a).numpy(), 1.0, atol=1e-6)
    assert np.all(np.isinf(metrics.psnr_tf(a.astype(np.float32), a.astype(np.float32)).numpy()))
    # constant images: only the luminance term remains, (2 x y + C1) / (x^2 + y^2 + C1)
    x, y = np.full((16, 16, 3), 0.2), np.full((16, 16, 3), 0.7)
    c1 = (0.01 * 1.0) ** 2
    want = (2 * 0.2 * 0.7 + c1) / (0.2 ** 2 + 0.7 ** 2 + c1)
    assert metrics.ssim(x, y) == pytest.approx(want, abs=1e-12)
    assert metrics.ssim(x, y) == pytest.approx(_sk_ssim(x, y), abs=1e-12)
    assert metrics.ssim(x, x) == pytest.approx(1.0, abs=1e-12)
    # tf.image.ssim works in float32: sigma^2 = E[x^2] - E[x]^2 cancels badly on flat bright areas,
    # measured 4e-4 off here (it is ~1e-5 on real faces, see test_ssim_matches_skimage_on_real_images)
    assert float(metrics.ssim_tf(x, y)) == pytest.approx(want, abs=1e-3)


def test_large_batch_is_chunked_consistently():
    rng = np.random.default_rng(5)
    a = rng.random((19, 12, 13, 3))  # more images than one SSIM chunk (16)
    b = np.clip(a + 0.1 * rng.standard_normal(a.shape), 0, 1)
    want = [_sk_ssim(x, y) for x, y in zip(a, b)]
    np.testing.assert_allclose(metrics.ssim(a, b), want, atol=1e-9)
    cm = rng.integers(0, 4, size=(19, 12, 13))
    out = metrics.per_class_psnr_ssim(a, b, cm)
    assert out["ssim"].shape == (19, 4)
    np.testing.assert_allclose(out["ssim"][:, 2], metrics.masked_ssim(a, b, cm == 2), atol=1e-12)
    np.testing.assert_allclose(out["ssim"][17, 1], metrics.masked_ssim(a[17], b[17], cm[17] == 1), atol=1e-12)


def test_shape_errors():
    with pytest.raises(ValueError, match="same shape"):
        metrics.psnr(np.zeros((8, 8, 3)), np.zeros((8, 9, 3)))
    with pytest.raises(ValueError, match="at least 11x11"):
        metrics.ssim(np.zeros((10, 30, 3)), np.zeros((10, 30, 3)))
    with pytest.raises(ValueError, match=r"\[H,W,C\]"):
        metrics.psnr(np.zeros((8, 8)), np.zeros((8, 8)))
    with pytest.raises(ValueError, match="dtype"):
        metrics.psnr(np.zeros((8, 8, 3), np.int32), np.zeros((8, 8, 3), np.int32))


def test_tf_metrics_inside_tf_function():
    import tensorflow as tf

    rng = np.random.default_rng(2)
    a = rng.random((2, 32, 32, 3)).astype(np.float32)
    b = np.clip(a + 0.05, 0, 1).astype(np.float32)
    fn = tf.function(lambda x, y: (metrics.psnr_tf(x, y), metrics.ssim_tf(x, y)))
    p, s = fn(tf.constant(a), tf.constant(b))
    np.testing.assert_allclose(p.numpy(), metrics.psnr(a, b), atol=1e-4)
    np.testing.assert_allclose(s.numpy(), metrics.ssim(a, b), atol=1e-4)


# ------------------------------------------------------------------ masked / per class
def _class_map(h, w):
    cm = np.zeros((h, w), np.int32)
    cm[8:30, 10:40] = 1
    cm[15:22, 18:30] = 2
    cm[:8, :] = 3
    return cm


def test_masked_psnr_matches_numpy_recomputation(lfw_pairs):
    sharp, blurred = lfw_pairs
    a, b = sharp[:2, :37, :53], blurred[:2, :37, :53]
    cm = _class_map(37, 53)
    for k in range(4):
        m = cm == k
        got = metrics.masked_psnr(a, b, m)
        for i in range(2):
            d = (a[i][m] - b[i][m]) ** 2  # [n_pixels, 3]
            assert got[i] == pytest.approx(10 * np.log10(1.0 / d.mean()), abs=1e-9)
            # masked-image convention = PSNR of the masked images over the whole frame
            mm = m[..., None]
            assert metrics.masked_psnr(a[i], b[i], m, mode="masked_image") == pytest.approx(
                peak_signal_noise_ratio(a[i] * mm, b[i] * mm, data_range=1.0), abs=1e-9)
    # area-weighted region MSEs average to the whole-image MSE
    mse = [10 ** (-metrics.masked_psnr(a[0], b[0], cm == k) / 10) for k in range(4)]
    frac = [np.mean(cm == k) for k in range(4)]
    assert np.dot(mse, frac) == pytest.approx(10 ** (-metrics.psnr(a[0], b[0]) / 10), rel=1e-9)


def test_masked_ssim_definition(lfw_pairs):
    sharp, blurred = lfw_pairs
    a, b = sharp[2], blurred[2]
    ones = np.ones(a.shape[:2], bool)
    assert metrics.masked_ssim(a, b, ones) == pytest.approx(metrics.ssim(a, b), abs=1e-12)
    _, smap = _sk_ssim(a, b, full=True)  # [H,W,C] map from skimage
    cm = _class_map(*a.shape[:2])
    cm[60:120, 40:110] = 2
    for k in range(4):
        m = cm == k
        s, mk = smap.mean(axis=-1)[5:-5, 5:-5], m[5:-5, 5:-5]
        assert metrics.masked_ssim(a, b, m) == pytest.approx(s[mk].mean(), abs=1e-9)
        mm = m[..., None]
        assert metrics.masked_ssim(a, b, m, mode="masked_image") == pytest.approx(
            _sk_ssim(a * mm, b * mm), abs=1e-9)


def test_per_class_consistent_and_absent_class_is_nan(lfw_pairs):
    sharp, blurred = lfw_pairs
    a, b = sharp[:2, :40, :48], blurred[:2, :40, :48]
    cm = np.stack([_class_map(40, 48), np.where(_class_map(40, 48) == 3, 0, _class_map(40, 48))])
    out = metrics.per_class_psnr_ssim(a, b, cm[..., None], num_classes=4)
    assert out["psnr"].shape == out["ssim"].shape == (2, 4)
    for k in range(4):
        for i in range(2):
            want_p = metrics.masked_psnr(a[i], b[i], cm[i] == k)
            want_s = metrics.masked_ssim(a[i], b[i], cm[i] == k)
            np.testing.assert_allclose(out["psnr"][i, k], want_p, atol=1e-12)
            np.testing.assert_allclose(out["ssim"][i, k], want_s, atol=1e-12)
    assert np.isnan(out["psnr"][1, 3]) and np.isnan(out["ssim"][1, 3])  # hair absent in image 1
    assert np.all(np.isfinite(out["psnr"][0]))
    mi = metrics.per_class_psnr_ssim(a[0], b[0], cm[0], mode="masked_image")
    assert mi["psnr"].shape == (4,) and np.all(mi["psnr"] >= out["psnr"][0] - 1e-9)
    with pytest.raises(ValueError, match="0..3"):
        metrics.per_class_psnr_ssim(a, b, cm + 1)
    with pytest.raises(ValueError, match="0/1"):
        metrics.masked_psnr(a, b, cm)
    with pytest.raises(ValueError, match="mode"):
        metrics.masked_psnr(a, b, cm == 0, mode="whole")


# ------------------------------------------------------------------ landmarks
def test_landmark_nme_hand_made():
    gt = np.array([[0, 0], [3, 0], [3, 4], [0, 4]], np.float64)  # box 3 x 4 -> diagonal 5
    pred = gt + np.array([0.3, 0.4])  # every point off by 0.5
    assert metrics.landmark_nme(pred, gt) == pytest.approx(0.1)
    pred2 = gt.copy()
    pred2[0] += [1.0, 0.0]  # one of four points off by 1 -> mean 0.25 -> /5 = 0.05
    failed = np.full_like(gt, np.nan)
    got = metrics.landmark_nme(np.stack([pred, pred2, failed]), np.stack([gt, gt, gt * 2]))
    np.testing.assert_allclose(got, [0.1, 0.05, np.inf])
    assert metrics.failure_rate(got) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="zero diagonal"):
        metrics.landmark_nme(np.zeros((1, 3, 2)), np.zeros((1, 3, 2)))


def test_ced_auc_failure_rate_uniform_errors():
    n = 1000
    e = (np.arange(n) + 0.5) / n * 0.16  # uniform on [0, 0.16]: CED(t) = t / 0.16 on [0, 0.08]
    assert metrics.auc_ced(e) == pytest.approx(0.25, abs=1e-12)  # (0.08^2 / 0.32) / 0.08
    assert metrics.failure_rate(e) == pytest.approx(0.5)
    t, f = metrics.ced_curve(e)
    assert t[0] == 0 and t[-1] == pytest.approx(0.08) and len(t) == 801
    assert np.all(np.diff(f) >= 0) and f[-1] == pytest.approx(1 - metrics.failure_rate(e))
    np.testing.assert_allclose(f, t / 0.16, atol=1.01 / n)
    # menpo convention (Simpson on the 1e-4-spaced CED) agrees to ~ bin width / 0.08
    assert integrate.simpson(f, x=t) / 0.08 == pytest.approx(metrics.auc_ced(e), abs=2e-3)


def test_auc_extremes_and_single_error():
    assert metrics.auc_ced(np.zeros(5)) == 1.0 and metrics.failure_rate(np.zeros(5)) == 0.0
    assert metrics.auc_ced([0.1, np.inf]) == 0.0 and metrics.failure_rate([0.1, np.inf]) == 1.0
    assert metrics.auc_ced([0.02]) == pytest.approx(0.75)  # CED is 1 on [0.02, 0.08]
    assert metrics.failure_rate([0.08]) == 0.0  # at the cut-off is not a failure
    with pytest.raises(ValueError):
        metrics.auc_ced([np.nan])


# ------------------------------------------------------------------ identity
def test_cosine_similarity_vs_scipy():
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((5, 16)), rng.standard_normal((5, 16))
    want = [1 - distance.cosine(x, y) for x, y in zip(a, b)]
    np.testing.assert_allclose(metrics.cosine_similarity(a, b), want, atol=1e-12)
    assert metrics.cosine_similarity(a[0], 3 * a[0]) == pytest.approx(1.0)
    assert metrics.cosine_similarity(np.zeros(4), np.ones(4)) == 0.0


def test_verification_separable_scores():
    rng = np.random.default_rng(4)
    same = np.tile(np.repeat([True, False], 30), 10)  # 10 folds of 60 pairs
    scores = np.where(same, rng.uniform(0.6, 1.0, same.size), rng.uniform(-0.2, 0.4, same.size))
    mean, std, per_fold = metrics.verification_accuracy(scores, same, folds=10)
    assert mean == 1.0 and std == 0.0 and per_fold.shape == (10,)
    # distances instead of similarities
    mean_d, _, _ = metrics.verification_accuracy(1 - scores, same, folds=10, higher_is_same=False)
    assert mean_d == 1.0
    # swap labels in fold 3 only: a threshold learnt on the other folds gets fold 3 all wrong
    flipped = same.copy()
    flipped[180:240] = ~flipped[180:240]
    mean, std, per_fold = metrics.verification_accuracy(scores, flipped, folds=10)
    np.testing.assert_allclose(per_fold, [1] * 3 + [0] + [1] * 6)
    assert mean == pytest.approx(0.9) and std == pytest.approx(0.3)


def test_verification_threshold_never_chosen_on_test_fold():
    #   fold 0: same {0.6, 0.7}, different {0.1, 0.2};  fold 1: same {0.3, 0.35}, different {0.0, 0.05}
    scores = np.array([0.6, 0.7, 0.1, 0.2, 0.3, 0.35, 0.0, 0.05])
    same = np.array([1, 1, 0, 0, 1, 1, 0, 0], bool)
    mean, std, per_fold = metrics.verification_accuracy(scores, same, folds=2)
    # trained on fold 1 -> t in (0.05, 0.3) -> fold 0: 0.2 called "same" -> 3/4
    # trained on fold 0 -> t in (0.2, 0.6), i.e. 0.4 -> fold 1: both same pairs missed -> 2/4
    np.testing.assert_allclose(per_fold, [0.75, 0.5])
    assert mean == pytest.approx(0.625) and std == pytest.approx(0.125)
    # a threshold chosen on all the data (0.25) would score 100 % on both folds
    assert np.mean((scores >= 0.25) == same) == 1.0
    # explicit fold ids give the same result, whatever order the pairs come in
    order = np.array([4, 0, 5, 1, 6, 2, 7, 3])
    _, _, pf = metrics.verification_accuracy(scores[order], same[order], folds=np.array([1, 0] * 4))
    np.testing.assert_allclose(pf, [0.75, 0.5])


def _brute_force_verification(scores, same, k):
    """Plain re-implementation: try every candidate threshold on the training folds (O(N^2))."""
    fold = np.repeat(np.arange(k), len(scores) // k)
    accs = []
    for f in range(k):
        tr, te = fold != f, fold == f
        u = np.unique(scores[tr])
        cand = np.concatenate([[u[0] - 1], (u[:-1] + u[1:]) / 2, [u[-1] + 1]])
        train_acc = np.array([np.mean((scores[tr] >= t) == same[tr]) for t in cand])
        best = cand[np.flatnonzero(train_acc == train_acc.max())]
        t = best[len(best) // 2]
        accs.append(np.mean((scores[te] >= t) == same[te]))
    return np.array(accs)


def test_verification_matches_brute_force_with_overlap_and_ties():
    rng = np.random.default_rng(6)
    same = rng.random(400) < 0.5
    scores = np.round(np.where(same, rng.normal(0.6, 0.2, 400), rng.normal(0.3, 0.2, 400)), 2)  # ties
    mean, std, per_fold = metrics.verification_accuracy(scores, same, folds=10)
    want = _brute_force_verification(scores, same, 10)
    np.testing.assert_allclose(per_fold, want)
    assert 0.6 < mean < 0.9 and std == pytest.approx(np.std(want))


def test_top_k_hand_made_gallery():
    angles = np.deg2rad([0, 30, 60, 90, 120])
    gallery = np.stack([np.cos(angles), np.sin(angles)], 1)  # identities 10..14 on the unit circle
    gids = np.array([10, 11, 12, 13, 14])
    probes = np.stack([np.cos(np.deg2rad([2, 40, 64, 118])), np.sin(np.deg2rad([2, 40, 64, 118]))], 1)
    # true ids: probe 0 nearest -> rank 1; probe 1 (40 deg) labelled 12 (60 deg): 30 deg is closer -> rank 2
    # probe 2 (64 deg) labelled 10 (0 deg): 60, 90, 30, 120 are closer -> rank 5; probe 3 -> rank 1
    pids = np.array([10, 12, 10, 14])
    got = metrics.top_k_accuracy(probes, pids, gallery, gids, ks=(1, 2, 3, 5))
    assert got == {1: 0.5, 2: 0.75, 3: 0.75, 5: 1.0}
    # two gallery images per identity: ranked by the best one
    got2 = metrics.top_k_accuracy(probes, pids, np.concatenate([gallery, -gallery]),
                                  np.concatenate([gids, gids]), ks=(1, 2, 3, 5))
    assert got2 == got
    with pytest.raises(ValueError, match="not in the gallery"):
        metrics.top_k_accuracy(probes, [99, 10, 10, 10], gallery, gids)


def test_restoration_scalars_known_values_and_empty_input():
    """The scalars every trainer's in-training evaluation logs (--best_metric names them)."""
    sharp = np.full((2, 16, 16, 3), 0.5, np.float32)
    restored = sharp + 0.01   # MSE 1e-4 -> 40 dB
    blurred = sharp + 0.1     # MSE 1e-2 -> 20 dB
    out = metrics.restoration_scalars([(sharp, restored, blurred), (sharp, restored, blurred)])
    assert set(out) == {"psnr", "ssim", "blurred_psnr", "blurred_ssim", "num_images"}
    assert out["psnr"] == pytest.approx(40.0, abs=1e-3)
    assert out["blurred_psnr"] == pytest.approx(20.0, abs=1e-3)
    assert out["num_images"] == 4
    with pytest.raises(ValueError, match="no batch"):
        metrics.restoration_scalars([])
