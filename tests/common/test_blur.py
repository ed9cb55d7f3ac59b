"""Tests for common.blur against scipy / NumPy references."""
import os
import types

from absl import flags
import numpy as np
import pytest
import scipy.ndimage
import scipy.signal
import tensorflow as tf

from common import blur, shared_flags
from common.paths import SHARED_DATA
from tests.kernel_reference import centroid_offset


def _ref_convolve(images, kernels, border):
    mode = "reflect" if border == "reflect" else "constant"
    out = np.empty_like(images, dtype=np.float64)
    for b in range(images.shape[0]):
        for c in range(images.shape[-1]):
            out[b, ..., c] = scipy.ndimage.convolve(images[b, ..., c].astype(np.float64),
                                                    kernels[b].astype(np.float64),
                                                    mode=mode, cval=0.0)
    return out


def _random_kernels(rng, num, size):
    k = rng.random((num, size, size)) ** 4  # asymmetric, so a missing flip would show
    return (k / k.sum(axis=(1, 2), keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("method", ["direct", "fft"])
@pytest.mark.parametrize("border", ["reflect", "constant"])
@pytest.mark.parametrize("size", [3, 13, 29])
def test_apply_kernels_matches_scipy_ndimage(border, size, method):
    rng = np.random.default_rng(size)
    images = rng.random((3, 37, 30, 3)).astype(np.float32)  # odd, non-square sizes
    kernels = _random_kernels(rng, 3, size)
    got = blur.apply_kernels(images, kernels, border=border, method=method).numpy()
    want = _ref_convolve(images, kernels, border)
    assert got.shape == images.shape
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_apply_kernels_matches_scipy_signal_symm():
    rng = np.random.default_rng(0)
    image = rng.random((33, 41, 1)).astype(np.float32)
    kernel = _random_kernels(rng, 1, 15)[0]
    got = blur.apply_kernels(image, kernel).numpy()  # unbatched [H,W,C] + [k,k]
    want = scipy.signal.convolve2d(image[..., 0], kernel, mode="same", boundary="symm")
    np.testing.assert_allclose(got[..., 0], want, atol=1e-5)
    got0 = blur.apply_kernels(image, kernel, border="constant").numpy()
    want0 = scipy.signal.convolve2d(image[..., 0], kernel, mode="same", boundary="fill")
    np.testing.assert_allclose(got0[..., 0], want0, atol=1e-5)


def test_apply_kernels_is_convolution_not_correlation():
    image = np.zeros((1, 15, 15, 1), np.float32)
    image[0, 7, 7, 0] = 1.0
    kernel = np.zeros((1, 5, 5), np.float32)
    kernel[0, 0, 1] = 1.0  # off-centre tap at (-2, -1)
    out = blur.apply_kernels(image, kernel).numpy()[0, ..., 0]
    # Convolving a delta reproduces the kernel around the delta's position.
    assert out[5, 6] == pytest.approx(1.0)
    assert out.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("method", ["direct", "fft"])
def test_apply_kernels_inside_tf_data_unknown_batch(method):
    rng = np.random.default_rng(1)
    images = rng.random((5, 24, 24, 3)).astype(np.float32)
    kernels = _random_kernels(rng, 5, 13)
    ds = tf.data.Dataset.from_tensor_slices((images, kernels)).batch(2)  # batch dim None, last 1
    ds = ds.map(lambda x, k: blur.apply_kernels(x, k, method=method))
    assert ds.element_spec.shape.as_list() == [None, 24, 24, 3]
    got = np.concatenate(list(ds.as_numpy_iterator()))
    np.testing.assert_allclose(got, _ref_convolve(images, kernels, "reflect"), atol=1e-5)
    # Per-example (unbatched) map as well.
    ds1 = tf.data.Dataset.from_tensor_slices((images, kernels)).map(blur.apply_kernels)
    got1 = np.stack(list(ds1.as_numpy_iterator()))
    np.testing.assert_allclose(got1, got, atol=1e-6)


def test_apply_kernels_rejects_bad_input():
    with pytest.raises(ValueError, match="odd"):
        blur.apply_kernels(np.zeros((1, 8, 8, 1), np.float32), np.ones((1, 4, 4), np.float32))
    with pytest.raises(ValueError, match="border"):
        blur.apply_kernels(np.zeros((1, 8, 8, 1), np.float32), np.ones((1, 3, 3)), border="wrap")


def test_add_noise_sigma_and_seed():
    x = tf.fill([4, 64, 64, 3], 0.5)
    for sigma in (0.01, 0.03, 0.1):
        noisy = blur.add_noise(x, sigma, seed=3).numpy()
        measured = (noisy - 0.5).std()
        assert measured == pytest.approx(sigma, rel=0.03)
        assert abs((noisy - 0.5).mean()) < sigma * 0.02
    a = blur.add_noise(x, 0.03, seed=7).numpy()
    b = blur.add_noise(x, 0.03, seed=7).numpy()
    c = blur.add_noise(x, 0.03, seed=8).numpy()
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 0
    clipped = blur.add_noise(tf.zeros([1000]), 0.1).numpy()
    assert clipped.min() == 0.0 and (clipped == 0).mean() > 0.4


def test_quantize_uint8():
    x = np.array([-0.2, 0.0, 0.1, 0.5, 0.99, 1.3], np.float32)
    got = blur.quantize_uint8(x).numpy()
    want = np.round(np.clip(x, 0, 1) * 255) / 255
    np.testing.assert_allclose(got, want, atol=1e-7)
    np.testing.assert_allclose(got * 255, np.round(got * 255), atol=1e-4)


def test_gaussian_kernel_matches_formula():
    k = blur.gaussian_kernel(15, 2.0)
    r = np.arange(15) - 7
    g = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / 8.0)
    np.testing.assert_allclose(k, g / g.sum(), atol=1e-7)
    assert k.dtype == np.float32 and k.shape == (15, 15)
    with pytest.raises(ValueError):
        blur.gaussian_kernel(14, 2.0)


def test_pad_kernels_centres_and_sizes():
    ks = [np.ones((3, 3)), np.ones((5, 5)), np.ones((4, 4))]
    out = blur.pad_kernels(ks)
    assert out.shape == (3, 5, 5) and out.dtype == np.float32
    np.testing.assert_array_equal(out[0, 1:4, 1:4], 1)
    assert out[0].sum() == 9
    assert out[2].sum() == 16
    out9 = blur.pad_kernels(ks, size=9)
    assert out9.shape == (3, 9, 9)
    np.testing.assert_array_equal(out9[1, 2:7, 2:7], 1)
    with pytest.raises(ValueError):
        blur.pad_kernels(ks, size=3)


# ------------------------------------------------------------------ kernel synthesis
GENERATORS = [blur.camera_shake_kernel, blur.markov_kernel, blur.linear_motion_kernel,
              blur.shake_kernel]
SIZES = list(range(13, 30, 2))


@pytest.mark.parametrize("gen", GENERATORS, ids=lambda g: g.__name__)
def test_motion_kernels_are_valid_psfs(gen):
    for size in SIZES:
        for seed in range(4):
            k = gen(size, seed=seed * 100 + size)
            assert k.shape == (size, size) and k.dtype == np.float32
            assert k.min() >= 0
            assert abs(float(k.sum(dtype=np.float64)) - 1.0) < 1e-5
            dy, dx = centroid_offset(k)
            assert abs(dy) < 1.0 and abs(dx) < 1.0
            # Never the whole square (the support is a trajectory, not a blob).
            assert (k > 0).sum() < size * size


@pytest.mark.parametrize("gen", GENERATORS, ids=lambda g: g.__name__)
def test_motion_kernels_seeded(gen):
    a = gen(21, seed=5)
    np.testing.assert_array_equal(a, gen(21, seed=5))
    np.testing.assert_array_equal(a, gen(21, rng=np.random.default_rng(5)))
    assert np.abs(a - gen(21, seed=6)).max() > 1e-3
    with pytest.raises(ValueError):
        gen(21, rng=np.random.default_rng(5), seed=5)
    with pytest.raises(ValueError):
        gen(20, seed=1)


def test_camera_shake_trajectory_length_and_exposure():
    rng = np.random.default_rng(0)
    x = blur.camera_shake_trajectory(rng, num_t=2000, max_total_length=60.0)
    steps = np.abs(np.diff(x))
    np.testing.assert_allclose(steps, 60.0 / 1999, rtol=1e-9)  # speed renormalised each step
    # Longer exposure -> more spread (second moment) of the same trajectory.
    spread = []
    for exposure in (0.1, 0.5, 1.0):
        k = blur.camera_shake_kernel(25, seed=11, exposure=exposure, anxiety=0.005).astype(float)
        cy, cx = np.add(centroid_offset(k), 12)
        yy, xx = np.mgrid[:25, :25]
        spread.append((k * ((yy - cy) ** 2 + (xx - cx) ** 2)).sum())
    assert spread[0] < spread[1] < spread[2]
    # A straight trajectory (no anxiety): a line whose length is ~ max_total_length * size / canvas.
    k = blur.camera_shake_kernel(29, seed=1, anxiety=0.0, exposure=1.0, max_total_length=40)
    ys, xs = np.nonzero(k > 1e-4)
    extent = np.hypot(ys.max() - ys.min(), xs.max() - xs.min())
    assert 40 * 29 / 64 - 2 <= extent <= 40 * 29 / 64 + 2


def test_defocus_kernel_area_and_symmetry():
    k = blur.defocus_kernel(21, 6.0)
    assert k.shape == (21, 21) and abs(k.sum() - 1) < 1e-6 and k.min() >= 0
    np.testing.assert_allclose(k, k.T, atol=1e-7)
    np.testing.assert_allclose(k, k[::-1, ::-1], atol=1e-7)
    # Covered area (sum of pixel coverages = 1/max weight) approximates pi r^2.
    area = 1.0 / k.max()
    assert abs(area - np.pi * 36) / (np.pi * 36) < 0.02
    assert 0 < k[10, 16] < k.max()  # an edge pixel is partially covered (anti-aliased)
    assert k[10, 17] == 0
    with pytest.raises(ValueError):
        blur.defocus_kernel(9, 6.0)


def test_load_kernel_bank_npz_levin():
    ks = blur.load_kernel_bank(os.path.join(SHARED_DATA, "kernels/levin09.npz"))
    assert len(ks) == 8
    assert sorted(k.shape[0] for k in ks) == [13, 15, 17, 19, 21, 23, 23, 27]
    for k in ks:
        assert abs(k.sum() - 1) < 1e-5 and k.min() >= 0
    raw = np.load(os.path.join(SHARED_DATA, "kernels/levin09.npz"))
    np.testing.assert_allclose(ks[0], raw["k0"] / raw["k0"].sum(), atol=1e-7)
    bank = blur.pad_kernels(ks)
    assert bank.shape == (8, 27, 27)


def test_centre_kernel_moves_levin_kernels_onto_their_centroids():
    """Levin et al.'s kernels sit off centre (k5 by more than 4 px); centred, each keeps its
    taps, sums to 1, has its centroid within half a pixel of the centre, and blurs an image into
    the uncentred kernel's result moved by a whole-pixel shift (scipy reference, interior)."""
    raw = blur.load_kernel_bank(os.path.join(SHARED_DATA, "kernels/levin09.npz"))
    centred = blur.load_kernel_bank(os.path.join(SHARED_DATA, "kernels/levin09.npz"), centre=True)
    assert max(np.hypot(*centroid_offset(k)) for k in raw) > 4.0
    img = np.random.default_rng(0).random((80, 80))
    for k, c in zip(raw, centred):
        assert c.ndim == 2 and c.shape[0] == c.shape[1] and c.shape[0] % 2 == 1
        assert abs(c.sum() - 1) < 1e-5 and c.min() >= 0
        assert max(np.abs(centroid_offset(c))) <= 0.5 + 1e-6
        np.testing.assert_allclose(np.sort(c[c > 0]), np.sort(k[k > 0]), rtol=1e-6)
        a = scipy.ndimage.convolve(img, k.astype(np.float64), mode="constant")
        b = scipy.ndimage.convolve(img, c.astype(np.float64), mode="constant")
        dy, dx = (int(np.round(v)) for v in centroid_offset(k))
        # the uncentred kernel's output is the centred one's moved by its centroid offset
        np.testing.assert_allclose(a[20:60, 20:60], b[20 - dy:60 - dy, 20 - dx:60 - dx], atol=1e-5)
    # generated kernels are centred already: only zero borders go
    g = blur.camera_shake_kernel(21, seed=3, exposure=1.0)
    c = blur.centre_kernel(g)
    ys, xs = np.nonzero(g)
    m = min(ys.min(), xs.min(), 20 - ys.max(), 20 - xs.max())
    np.testing.assert_allclose(c, g[m:21 - m, m:21 - m], atol=1e-7)
    with pytest.raises(ValueError, match="no positive mass"):
        blur.centre_kernel(np.zeros((5, 5)))
    # centre= is for files: with a generator it is an error, not silently ignored
    with pytest.raises(ValueError, match="centred already"):
        blur.make_kernel_bank("markov+linear", num=2, centre=True)


def test_load_kernel_bank_mat_and_errors(tmp_path):
    import scipy.io
    k1 = blur.gaussian_kernel(13, 2.0).astype(np.float64) * 3.0  # un-normalised on purpose
    k2 = blur.defocus_kernel(9, 3.0)
    cell = np.empty((1, 2), dtype=object)
    cell[0, 0], cell[0, 1] = k1, k2
    path = tmp_path / "bank.mat"
    scipy.io.savemat(path, {"single": k2, "cells": cell, "label": "text", "scalar": 3.0})
    ks = blur.load_kernel_bank(path)
    assert len(ks) == 3
    np.testing.assert_allclose(ks[1], k1 / k1.sum(), atol=1e-7)
    # Bad files: missing, wrong content, wrong extension, corrupt.
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        blur.load_kernel_bank(tmp_path / "nope.npz")
    empty = tmp_path / "empty.mat"
    scipy.io.savemat(empty, {"label": "nothing", "vec": np.ones(5)})
    with pytest.raises(ValueError, match="empty.mat"):
        blur.load_kernel_bank(empty)
    bad = tmp_path / "corrupt.npz"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="corrupt.npz"):
        blur.load_kernel_bank(bad)
    txt = tmp_path / "k.txt"
    txt.write_text("1 2 3")
    with pytest.raises(ValueError, match="k.txt"):
        blur.load_kernel_bank(txt)


def test_make_kernel_bank_specs():
    for spec in ("camera_shake", "markov", "gaussian", "defocus"):
        bank = blur.make_kernel_bank(spec, num=12, sizes=[13, 17, 21], seed=3)
        assert bank.shape == (12, 21, 21) and bank.dtype == np.float32
        np.testing.assert_allclose(bank.sum(axis=(1, 2)), 1.0, atol=1e-5)
        np.testing.assert_array_equal(bank, blur.make_kernel_bank(spec, num=12, sizes=[13, 17, 21],
                                                                  seed=3))
        # Kernels drawn at size 13 keep a zero border inside the 21x21 bank.
    bank = blur.make_kernel_bank(os.path.join(SHARED_DATA, "kernels/levin09.npz"))
    assert bank.shape == (8, 27, 27)
    sub = blur.make_kernel_bank(os.path.join(SHARED_DATA, "kernels/levin09.npz"), num=3, seed=1)
    assert sub.shape[0] == 3
    with pytest.raises(FileNotFoundError):
        blur.make_kernel_bank("no_such_spec")


def test_apply_kernels_auto_picks_fft_for_large_kernels():
    rng = np.random.default_rng(9)
    x = rng.random((2, 40, 40, 3)).astype(np.float32)
    k = _random_kernels(rng, 2, 27)
    auto = blur.apply_kernels(x, k).numpy()
    fft = blur.apply_kernels(x, k, method="fft").numpy()
    direct = blur.apply_kernels(x, k, method="direct").numpy()
    np.testing.assert_array_equal(auto, fft)
    assert np.abs(fft - direct).max() < 1e-5
    with pytest.raises(ValueError, match="method"):
        blur.apply_kernels(x, k, method="spatial")


def test_apply_kernels_dynamic_shapes_and_checks():
    f = tf.function(blur.apply_kernels,
                    input_signature=[tf.TensorSpec([None, None, None, None]),
                                     tf.TensorSpec([None, None, None])])
    rng = np.random.default_rng(4)
    x = rng.random((2, 20, 21, 3)).astype(np.float32)
    k = _random_kernels(rng, 2, 7)
    np.testing.assert_allclose(f(x, k).numpy(), _ref_convolve(x, k, "reflect"), atol=1e-5)
    with pytest.raises(tf.errors.InvalidArgumentError, match="odd"):
        f(x, _random_kernels(rng, 2, 6))
    with pytest.raises(tf.errors.InvalidArgumentError, match="smaller than half"):
        f(x[:, :2, :2], k)
    with pytest.raises(ValueError, match="at least"):
        blur.apply_kernels(x[:, :2, :2], k)
    # Zero borders have no size limit.
    small = blur.apply_kernels(x[:, :2, :2], k, border="constant").numpy()
    np.testing.assert_allclose(small, _ref_convolve(x[:, :2, :2], k, "constant"), atol=1e-5)


def test_effective_taps_and_min_taps_bank():
    assert blur.effective_taps(np.pad([[1.0]], 2)) == pytest.approx(1.0)
    line = np.zeros((9, 9)); line[4, 1:8] = 1 / 7
    assert blur.effective_taps(line) == pytest.approx(7.0)
    bank = blur.make_kernel_bank("camera_shake", num=12, sizes=(17, 21), seed=3, exposure=1.0,
                                 min_taps=6)
    assert bank.shape == (12, 21, 21)
    taps = [blur.effective_taps(k) for k in bank]
    assert min(taps) >= 6
    np.testing.assert_allclose(bank.sum(axis=(1, 2)), 1.0, atol=1e-5)
    # Same seed, same bank; the literature default keeps near-delta draws, min_taps removes them.
    np.testing.assert_array_equal(bank, blur.make_kernel_bank(
        "camera_shake", num=12, sizes=(17, 21), seed=3, exposure=1.0, min_taps=6))
    raw = blur.make_kernel_bank("camera_shake", num=40, seed=0)
    assert min(blur.effective_taps(k) for k in raw) < 2
    with pytest.raises(ValueError, match="min_taps"):
        blur.make_kernel_bank("gaussian", num=2, sizes=(13,), min_taps=1e6, max_tries_per_kernel=3)


def test_kernel_extent_and_min_extent_bank():
    delta = np.pad([[1.0]], 4)
    assert blur.kernel_extent(delta) == 1
    line = np.zeros((21, 21)); line[10, 3:18] = 1 / 15
    assert blur.kernel_extent(line) == 15 and blur.kernel_extent(line.T) == 15
    # Diagonal: the longer side of the bounding box; taps under 5 % of the peak do not count.
    diag = np.eye(11) / 11; diag[0, 10] = 0.01 * diag.max()
    assert blur.kernel_extent(diag) == 11
    assert blur.kernel_extent(np.pad(np.eye(5) / 5, 3)) == 5
    bank = blur.make_kernel_bank("camera_shake+markov+linear", num=24, sizes=(15, 29), seed=4,
                                 exposure=1.0, min_taps=12, min_extent=13)
    assert bank.shape == (24, 29, 29)
    ext = [blur.kernel_extent(k) for k in bank]
    assert min(ext) >= 13 and min(blur.effective_taps(k) for k in bank) >= 12
    # Without the filter the same draw keeps shorter motions.
    loose = blur.make_kernel_bank("camera_shake+markov+linear", num=24, sizes=(15, 29), seed=4,
                                  exposure=1.0, min_taps=12)
    assert min(blur.kernel_extent(k) for k in loose) < 13
    with pytest.raises(ValueError, match="min_extent=40"):
        blur.make_kernel_bank("linear", num=2, sizes=(13,), min_extent=40, max_tries_per_kernel=3)


def test_min_extent_per_item_of_the_shared_kernel_flags():
    # --blur_kernels=M,M --kernel_min_extent=0,13: half the bank as drawn, half long motions;
    # the second item draws with seed + 1, so it is not the first item's long kernels again.
    spec = "camera_shake+markov+linear"
    fv = flags.FlagValues()
    shared_flags.define_kernel_flags(fv, blur_kernels="camera_shake", num_kernels=4,
                                     kernel_sizes="13:29", kernel_exposure=1.0)
    fv(["prog", f"--blur_kernels={spec},{spec}", "--num_kernels=40", "--kernel_min_extent=0,13",
        "--kernel_min_taps=12"])
    config = types.SimpleNamespace(**{k: fv[k].value for k in fv}, seed=4)
    bank = shared_flags.kernel_bank(config)
    assert bank.shape == (80, 29, 29)
    first = [blur.kernel_extent(k) for k in bank[:40]]
    second = [blur.kernel_extent(k) for k in bank[40:]]
    assert min(first) < 13 <= min(second)
    alone = blur.make_kernel_bank(spec, num=40, sizes=range(13, 30, 2), seed=4, exposure=1.0,
                                  min_taps=12, min_extent=13)
    assert not any(np.array_equal(a, b) for a in alone for b in bank[40:])
    np.testing.assert_array_equal(bank[40:], blur.make_kernel_bank(
        spec, num=40, sizes=range(13, 30, 2), seed=5, exposure=1.0, min_taps=12, min_extent=13))
    # One value applies to every generator and leaves a kernel file whole.
    levin = os.path.join(SHARED_DATA, "kernels/levin09.npz")
    assert shared_flags.parse_min_extents("13", ["linear", levin]) == [13, 0]
    assert shared_flags.parse_min_extents("", ["linear"]) == [0]
    for text, items, match in [("0,13", ["linear"], "one per item"),
                               ("-2", ["linear"], "non-negative"),
                               ("long", ["linear"], "whole number"),
                               ("0,9", ["linear", levin], "must be 0")]:
        with pytest.raises(ValueError, match=match):
            shared_flags.parse_min_extents(text, items)
    # At parse time a bad value is an absl flags error, before any work.
    with pytest.raises(flags.IllegalFlagValueError, match="--kernel_min_extent='0,13,2'"):
        fv(["prog", "--blur_kernels=linear,markov", "--kernel_min_extent=0,13,2"])


def test_linear_motion_kernel_is_a_line():
    # Horizontal: all mass on the centre row, spread over about `length` pixels.
    k = blur.linear_motion_kernel(21, length=15, angle=0.0)
    assert k.dtype == np.float32 and k.min() >= 0
    assert abs(float(k.sum(dtype=np.float64)) - 1.0) < 1e-5
    assert np.allclose(np.delete(k, 10, axis=0), 0.0)
    assert 13 <= blur.effective_taps(k) <= 17
    # Vertical: the transpose.
    np.testing.assert_allclose(blur.linear_motion_kernel(21, length=15, angle=np.pi / 2), k.T,
                               atol=1e-6)
    # Seeded draws stay inside the size and keep the centroid at the centre.
    for seed in range(5):
        r = blur.linear_motion_kernel(17, seed=seed)
        dy, dx = centroid_offset(r)
        assert abs(dy) < 1.0 and abs(dx) < 1.0


def test_make_kernel_bank_mixture():
    spec = "camera_shake+markov+linear+gaussian"
    bank = blur.make_kernel_bank(spec, num=40, sizes=[13, 21], seed=0, exposure=1.0, min_taps=4)
    assert bank.shape == (40, 21, 21)
    np.testing.assert_allclose(bank.sum(axis=(1, 2)), 1.0, atol=1e-5)
    assert min(blur.effective_taps(k) for k in bank) >= 4
    np.testing.assert_array_equal(bank, blur.make_kernel_bank(spec, num=40, sizes=[13, 21], seed=0,
                                                              exposure=1.0, min_taps=4))
    # Gaussians fill their square (>= 13x13 taps); motion kernels are thin: both kinds are drawn.
    full = [(k > 0).sum() >= 13 * 13 for k in bank]
    assert any(full) and not all(full)
    with pytest.raises(ValueError, match="unknown kernel families"):
        blur.make_kernel_bank("camera_shake+blobs", num=2)
