"""Shapes of every UMSN network and every loss against a NumPy recomputation."""
import numpy as np
import pytest
import keras

from paper3_umsn import losses as L
from paper3_umsn import models as M

RNG = np.random.default_rng(0)


def _img(b=2, h=16, w=16, c=3):
    return RNG.random((b, h, w, c)).astype(np.float32)


def _masks(b=2, h=16, w=16, soft=False):
    if soft:
        z = RNG.normal(size=(b, h, w, 4))
        e = np.exp(z)
        return (e / e.sum(-1, keepdims=True)).astype(np.float32)
    ids = RNG.integers(0, 4, size=(b, h, w))
    return np.eye(4, dtype=np.float32)[ids]


# ---------------------------------------------------------------- networks
def test_shared_smoothing_starts_as_identity_and_shares_one_kernel():
    layer = M.SharedSmoothing(3)
    x = _img(1, 8, 8, 5)
    np.testing.assert_allclose(np.asarray(layer(x)), x, atol=1e-6)
    assert [tuple(w.shape) for w in layer.weights] == [(3, 3, 1, 1)]
    k = np.zeros((3, 3, 1, 1), np.float32)
    k[1, 2] = 1.0  # shift: out[i, j] = x[i, j + 1]
    layer.kernel.assign(k)
    out = np.asarray(layer(x))
    np.testing.assert_allclose(out[:, :, :-1], x[:, :, 1:], atol=1e-6)  # same kernel on every channel


def test_resblock_widths_and_dilation():
    block = M.ResBlock(16, inter_mult=3)
    out = block(_img(1, 12, 12, 7))
    assert out.shape == (1, 12, 12, 16)
    assert block.c1.conv.filters == 48 and block.c1.conv.kernel_size == (1, 1)
    assert block.c2.conv.kernel_size == (3, 3) and block.c2.conv.dilation_rate == (1, 1)
    assert block.c3.conv.dilation_rate == (2, 2) and block.c4.conv.dilation_rate == (2, 2)
    assert block.c4.smooth is not None and block.c3.smooth is None
    assert block.shortcut.kernel_size == (1, 1)
    assert isinstance(block.c1.norm, keras.layers.GroupNormalization) and block.c1.norm.groups == 7  # groups=-1 -> one per channel
    # dense connection: the transition sees input (7) + block output (16) channels
    assert block.transition.conv.kernel.shape == (1, 1, 23, 16)


def test_umsn_ablation_shapes():
    sn = M.build_sn("tiny")
    y = _img(1, 4, 8)
    logits = sn(y)
    assert logits.shape == (1, 4, 8, 4) and logits.dtype == "float32"
    m_hat = keras.ops.softmax(logits)
    counts = {}
    for ablation in M.ABLATIONS:
        umsn = M.build_umsn("tiny", ablation)
        out = umsn([y, m_hat])
        assert out["x_hat"].shape == (1, 4, 8, 3) and out["x_hat"].dtype == "float32"
        assert out["x_hat_half"].shape == (1, 2, 4, 3)
        # residual learning: zero-initialised heads, so the untrained network returns y itself
        np.testing.assert_allclose(np.asarray(out["x_hat"]), y, atol=1e-6)
        assert umsn.use_fnets == (ablation in ("umsn", "umsn_no_lc"))
        assert umsn.use_nrl == (ablation not in ("bn", "bn_sem"))
        counts[ablation] = umsn.count_params()
    assert counts["bn"] < counts["bn_sem"] < counts["bn_sem_nrl"] < counts["umsn"]
    assert counts["umsn"] == counts["umsn_no_lc"]


def test_fnet_and_cn_shapes():
    f = M.FNet(4, 4, 1, 1)
    y, m = _img(2, 16, 16), _masks(2, 16, 16)[..., :1]
    assert f([y, m]).shape == (2, 16, 16, 3)
    assert f.features(y, m).shape == (2, 8, 8, 4)
    cn = M.build_cn("tiny")
    c = np.asarray(cn([y, y]))
    assert c.shape == (2,) and np.all((c > 0) & (c < 1))


def test_paper_variant_widths_follow_appendix_a():
    umsn = M.build_umsn("paper", "umsn")
    assert umsn.first.filters == 64 and umsn.last.filters == 16 and len(umsn.mid) == 5
    assert [f.width for f in umsn.fnets] == [16] * 4 and umsn.fnets[0].out_width == 8
    assert len(umsn.fnets[0].mid) == 3


def test_odd_size_rejected_with_hint():
    with pytest.raises(ValueError, match="multiples of 4"):
        M.build_sn("tiny")(_img(1, 18, 16))


# ---------------------------------------------------------------- losses
def test_class_l1_matches_numpy():
    x, xh, m = _img(), _img(), _masks(soft=True)
    per = np.stack([[np.mean(np.abs(m[b, ..., i:i + 1] * xh[b] - m[b, ..., i:i + 1] * x[b]))
                     for i in range(4)] for b in range(2)])
    np.testing.assert_allclose(np.asarray(L.per_sample_class_l1(x, xh, m)), per, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(L.class_l1_losses(x, xh, m)), per.mean(0), rtol=1e-5)
    w = [1.2, 1.2, 3.6, 1.2]
    np.testing.assert_allclose(float(L.class_reconstruction_loss(x, xh, m)), per.mean(0).sum(), rtol=1e-5)
    np.testing.assert_allclose(float(L.class_reconstruction_loss(x, xh, m, w)),
                               (per.mean(0) * w).sum(), rtol=1e-5)


def test_eq3_equals_plain_l1_for_hard_partition():
    # With a one-hot partition, sum_i mean|m_i*(a-b)| = mean|a-b| (Eq. 1 == Eq. 3).
    x, xh, m = _img(), _img(), _masks()
    np.testing.assert_allclose(float(L.class_reconstruction_loss(x, xh, m)),
                               np.mean(np.abs(x - xh)), rtol=1e-5)


def test_confidence_loss_matches_numpy():
    x, xh, m = _img(), _img(), _masks(soft=True)
    c = RNG.uniform(0.1, 1.0, size=(2, 4)).astype(np.float32)
    per = np.stack([[np.mean(np.abs(m[b, ..., i:i + 1] * (xh[b] - x[b]))) for i in range(4)]
                    for b in range(2)])
    want = np.mean(np.sum(c * per - 0.01 * np.log(c + 1e-8), -1))
    np.testing.assert_allclose(float(L.confidence_loss(x, xh, m, c, lam=0.01)), want, rtol=1e-5)
    # identical images: only the regulariser remains
    np.testing.assert_allclose(float(L.confidence_loss(x, x, m, c, lam=0.5)),
                               np.mean(np.sum(-0.5 * np.log(c + 1e-8), -1)), rtol=1e-5)


def test_perceptual_and_total_loss_match_numpy():
    x, xh = _img(), _img()
    phi = lambda a: keras.ops.concatenate([a * 2.0, a ** 2], -1)
    want = np.mean((np.concatenate([xh * 2, xh ** 2], -1) - np.concatenate([x * 2, x ** 2], -1)) ** 2)
    lp = L.perceptual_loss(x, xh, phi)
    np.testing.assert_allclose(float(lp), want, rtol=1e-5)
    np.testing.assert_allclose(float(L.total_loss(0.3, lp, 1.0)), 0.3 + want, rtol=1e-5)
    np.testing.assert_allclose(float(L.total_loss(0.3, lp, 0.5)), 0.3 + 0.5 * want, rtol=1e-5)


def test_vgg_relu12_matches_numpy_conv():
    vgg = L.load_vgg16_relu12(allow_random=True)
    x = _img(1, 6, 6)
    out = np.asarray(vgg(x))
    k1, b1 = vgg.conv1.get_weights()
    k2, b2 = vgg.conv2.get_weights()
    bgr = x[..., ::-1] * 255.0 - np.array([103.939, 116.779, 123.68], np.float32)

    def conv(a, k, b):
        p = np.pad(a, ((0, 0), (1, 1), (1, 1), (0, 0)))
        o = np.zeros(a.shape[:3] + (k.shape[-1],), np.float64)
        for i in range(3):
            for j in range(3):
                o += np.einsum("bhwc,cd->bhwd", p[:, i:i + a.shape[1], j:j + a.shape[2]], k[i, j])
        return np.maximum(o + b, 0)

    np.testing.assert_allclose(out, conv(conv(bgr, k1, b1), k2, b2), rtol=1e-3, atol=1e-2)


def test_vgg_without_weights_names_the_flag(tmp_path):
    with pytest.raises(ValueError, match="--vgg16_weights"):
        L.load_vgg16_relu12(None)
    with pytest.raises(FileNotFoundError, match="--vgg16_weights"):
        L.load_vgg16_relu12(str(tmp_path / "missing.h5"))


def test_gradient_l1_and_ce_match_numpy():
    x, xh = _img(), _img()
    gh = lambda a: np.abs(a[:, :, 1:] - a[:, :, :-1])
    gv = lambda a: np.abs(a[:, 1:] - a[:, :-1])
    want = np.mean(np.abs(gh(xh) - gh(x))) + np.mean(np.abs(gv(xh) - gv(x)))
    np.testing.assert_allclose(float(L.gradient_l1_loss(x, xh)), want, rtol=1e-5)
    assert float(L.gradient_l1_loss(x, x)) == 0.0
    logits = RNG.normal(size=(2, 4, 4, 4)).astype(np.float32)
    ids = RNG.integers(0, 4, size=(2, 4, 4, 1))
    lse = np.log(np.exp(logits).sum(-1))
    picked = np.take_along_axis(logits, ids, -1)[..., 0]
    np.testing.assert_allclose(float(L.segmentation_cross_entropy(ids, logits)),
                               np.mean(lse - picked), rtol=1e-5)
