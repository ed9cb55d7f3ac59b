"""Tests for common.blur against scipy / NumPy references."""
import numpy as np
import pytest
import scipy.ndimage
import scipy.signal
import tensorflow as tf

from common import blur


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


@pytest.mark.parametrize("border", ["reflect", "constant"])
@pytest.mark.parametrize("size", [3, 13, 29])
def test_apply_kernels_matches_scipy_ndimage(border, size):
    rng = np.random.default_rng(size)
    images = rng.random((3, 37, 30, 3)).astype(np.float32)  # odd, non-square sizes
    kernels = _random_kernels(rng, 3, size)
    got = blur.apply_kernels(images, kernels, border=border).numpy()
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


def test_apply_kernels_inside_tf_data_unknown_batch():
    rng = np.random.default_rng(1)
    images = rng.random((5, 24, 24, 3)).astype(np.float32)
    kernels = _random_kernels(rng, 5, 13)
    ds = tf.data.Dataset.from_tensor_slices((images, kernels)).batch(2)  # batch dim None, last 1
    ds = ds.map(lambda x, k: blur.apply_kernels(x, k))
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
