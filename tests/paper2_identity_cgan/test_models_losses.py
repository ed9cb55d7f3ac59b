"""Shapes of every paper-2 network, weight sharing of the decoder, and Eq. 2-6 vs NumPy."""
import numpy as np
import keras
import pytest
import tensorflow as tf

from paper2_identity_cgan import losses, models

RNG = np.random.default_rng(0)


def _img(b=2, h=128, w=128, c=3):
    return RNG.random((b, h, w, c), dtype=np.float32)


@pytest.fixture(scope="module")
def nets():
    n = models.build_networks("tiny")
    x = _img()
    hg = n["hg"](x)
    n["g_bl"](models.g_bl_input(x, hg))
    n["g_s"](x)
    n["d"](x, x)
    return n


def test_hourglass_shapes(nets):
    x = _img()
    outs = nets["hg"].call_all(x, training=False)
    assert len(outs) == models.VARIANTS["tiny"]["hg_stacks"]
    for o in outs:
        assert o.shape == (2, 128, 128, 3) and o.dtype == tf.float32
    # the paper variant (8 stacks) returns 8 intermediate outputs at any legal size
    hg = models.HourglassNet(stacks=2, features=8, depth=1)
    outs = hg.call_all(_img(1, 16, 8), training=True)
    assert len(outs) == 2 and all(o.shape == (1, 16, 8, 3) for o in outs)


def test_encoder_feature_shapes(nets):
    enc = nets["g_bl"].encoder
    feats = enc(tf.zeros((1, 128, 128, 6)), training=False)
    f = models.VARIANTS["tiny"]["enc_filters"]
    sizes = [128, 64, 32, 16, 8, 4, 2, 1]
    assert [tuple(t.shape) for t in feats] == [(1, s, s, c) for s, c in zip(sizes, f)]
    # Table 3: conv 1 and conv 8 specifics
    assert enc.blocks[0].bn is None and enc.blocks[0].conv.strides == (1, 1)
    assert enc.blocks[7].conv.kernel_size == (1, 1) and enc.blocks[7].conv.strides == (2, 2)
    assert all(b.conv.kernel_size == (4, 4) for b in enc.blocks[:7])


def test_generator_shapes_and_range(nets):
    x = _img()
    y = nets["g_bl"](models.g_bl_input(x, x), training=True)
    assert y.shape == (2, 128, 128, 3) and y.dtype == tf.float32
    assert float(tf.reduce_min(y)) >= 0.0 and float(tf.reduce_max(y)) <= 1.0
    z = nets["g_s"](x, training=False)
    assert z.shape == (2, 128, 128, 3)
    assert nets["g_bl"].encoder.blocks[0].conv.kernel.shape[2] == 6   # G_bl takes 6 channels
    assert nets["g_s"].encoder.blocks[0].conv.kernel.shape[2] == 3
    dec = nets["decoder"]
    assert [b.drop is not None for b in dec.blocks] == [True, True, True] + [False] * 4
    assert len(dec.blocks) + 1 == 8  # 7 blocks + the final F-Conv. 8


def test_discriminator_shapes(nets):
    x = _img()
    logits, feats = nets["d"](x, x, training=False)
    assert logits.shape == (2, 16, 16, 1) and logits.dtype == tf.float32
    assert feats.shape == (2, 16, 16, 8 * models.VARIANTS["tiny"]["d_filters"])
    assert len(nets["d"].convs) + 1 == 5  # 5 layers


def test_decoder_is_one_object(nets):
    assert nets["g_bl"].decoder is nets["g_s"].decoder is nets["decoder"]
    bl_ids = {id(v) for v in nets["g_bl"].trainable_variables}
    s_ids = {id(v) for v in nets["g_s"].trainable_variables}
    dec_ids = {id(v) for v in nets["decoder"].trainable_variables}
    assert dec_ids and dec_ids <= bl_ids and dec_ids <= s_ids
    enc_bl = {id(v) for v in nets["g_bl"].encoder.trainable_variables}
    enc_s = {id(v) for v in nets["g_s"].encoder.trainable_variables}
    assert not enc_bl & enc_s


@pytest.mark.parametrize("stream", ["g_s", "g_bl"])
def test_decoder_update_through_one_stream_changes_the_other(stream):
    n = models.build_networks("tiny", use_hg=False)
    x = _img(1)
    n["g_bl"](x), n["g_s"](x)
    other = "g_bl" if stream == "g_s" else "g_s"
    before = n[other](x, training=False).numpy()
    enc_before = [v.numpy().copy() for v in n[other].encoder.trainable_variables]
    opt = keras.optimizers.SGD(0.5)
    with tf.GradientTape() as tape:
        loss = losses.l1_loss(x, n[stream](x, training=True))
    vars_ = n[stream].trainable_variables
    opt.apply(tape.gradient(loss, vars_), vars_)
    after = n[other](x, training=False).numpy()
    assert np.abs(after - before).max() > 1e-6
    # the other stream's encoder was not touched, so the change came through the shared decoder
    for a, b in zip(enc_before, n[other].encoder.trainable_variables):
        np.testing.assert_array_equal(a, b.numpy())


def test_variants_and_builder_flags():
    assert {"paper", "tiny", "small"} <= set(models.VARIANTS)
    assert models.VARIANTS["paper"]["enc_filters"] == (64, 128, 256, 512, 512, 512, 512, 256)
    assert models.VARIANTS["paper"]["dec_filters"][0] == 1024
    n = models.build_networks("tiny", use_hg=False, identity=False)
    assert n["hg"] is None and n["g_s"] is None
    with pytest.raises(ValueError, match="variant"):
        models.build_networks("huge")


# ---------------------------------------------------------------------------- losses ------
def _np_softplus(x):
    return np.logaddexp(0.0, x)


def test_adversarial_losses_vs_numpy():
    real = RNG.normal(size=(3, 4, 4, 1)).astype(np.float32) * 3
    fake = RNG.normal(size=(3, 4, 4, 1)).astype(np.float32) * 3
    sig = lambda z: 1 / (1 + np.exp(-z.astype(np.float64)))  # noqa: E731
    ref_d = -np.mean(np.log(sig(real))) - np.mean(np.log(1 - sig(fake)))
    np.testing.assert_allclose(float(losses.discriminator_loss(real, fake)), ref_d, rtol=1e-5)
    ref_g = -np.mean(np.log(sig(fake)))
    np.testing.assert_allclose(float(losses.generator_adversarial_loss(fake)), ref_g, rtol=1e-5)
    # a perfect discriminator has a small loss, a fooled one a large loss
    assert float(losses.discriminator_loss(np.full((1, 2), 20.0), np.full((1, 2), -20.0))) < 1e-6
    assert float(losses.generator_adversarial_loss(np.full((1, 2), -20.0))) > 19


def test_content_losses_vs_numpy():
    a, b = _img(2, 9, 7), _img(2, 9, 7)
    np.testing.assert_allclose(float(losses.content_intensity_loss(a, b)),
                               np.mean(np.abs(a - b)), rtol=1e-6)
    ref = (np.mean(np.abs(np.diff(b, axis=1) - np.diff(a, axis=1)))
           + np.mean(np.abs(np.diff(b, axis=2) - np.diff(a, axis=2))))
    np.testing.assert_allclose(float(losses.content_gradient_loss(a, b)), ref, rtol=1e-5)
    # the gradient term ignores a constant offset, the intensity term does not
    assert float(losses.content_gradient_loss(a, a + 0.3)) < 1e-6
    np.testing.assert_allclose(float(losses.content_intensity_loss(a, a + 0.25)), 0.25, rtol=1e-5)
    dy, dx = losses.image_gradients(a)
    np.testing.assert_allclose(dy.numpy(), np.diff(a, axis=1), atol=1e-7)
    np.testing.assert_allclose(dx.numpy(), np.diff(a, axis=2), atol=1e-7)


def test_projection_reconstruction_hourglass_losses_vs_numpy():
    f1 = RNG.normal(size=(2, 4, 4, 8)).astype(np.float32)
    f2 = RNG.normal(size=(2, 4, 4, 8)).astype(np.float32)
    np.testing.assert_allclose(float(losses.projection_loss(f1, f2)), np.mean(np.abs(f1 - f2)),
                               rtol=1e-6)
    a, b = _img(2, 8, 8), _img(2, 8, 8)
    np.testing.assert_allclose(float(losses.reconstruction_loss(a, b)), np.mean(np.abs(a - b)),
                               rtol=1e-6)
    c = _img(2, 8, 8)
    ref = (np.mean((b - a) ** 2) + np.mean((c - a) ** 2)) / 2
    np.testing.assert_allclose(float(losses.hourglass_loss(a, [b, c])), ref, rtol=1e-5)
    assert float(losses.reconstruction_loss(a, a)) == 0.0


def test_total_loss_eq6():
    got = float(losses.total_generator_loss(0.7, 0.1, 0.02, 0.5, 0.03))
    np.testing.assert_allclose(got, 0.7 + 100 * 0.1 + 100 * 0.02 + 8 * 0.5 + 100 * 0.03, rtol=1e-6)
    got = float(losses.total_generator_loss(1.0, 1.0, 1.0, 1.0, 1.0, lambda_ci=2, lambda_cg=3,
                                            lambda_p=4, lambda_r=5, lambda_adv=6))
    assert got == pytest.approx(20.0)


def test_zero_init_hg_and_global_residual_start_as_identity():
    """--hg_zero_init / --global_residual: at step 0 HG(x) == x and G_bl(x, HG(x)) == x, G_s(s) == s;
    the paper configuration (both off) does not copy its input."""
    nets = models.build_networks("tiny", global_residual=True, hg_zero_init=True)
    x = tf.constant(_img())
    s = tf.constant(_img(b=1))
    for out in nets["hg"].call_all(x, training=False):
        np.testing.assert_allclose(out.numpy(), np.asarray(x), atol=1e-6)
    h = nets["hg"](x, training=False)
    y = nets["g_bl"](models.g_bl_input(x, h), training=False)
    np.testing.assert_allclose(y.numpy(), np.asarray(x), atol=1e-6)
    np.testing.assert_allclose(nets["g_s"](s, training=True).numpy(), np.asarray(s), atol=1e-6)
    paper = models.build_networks("tiny")
    hp = paper["hg"](x, training=False)
    assert np.abs(hp.numpy() - np.asarray(x)).max() > 1e-3
    yp = paper["g_bl"](models.g_bl_input(x, hp), training=False)
    assert np.abs(yp.numpy() - np.asarray(x)).mean() > 0.05


def test_global_residual_output_is_clipped_input_plus_tanh_correction():
    """With a non-zero last layer the residual generator returns clip(x[..., :3] + tanh(z))."""
    nets = models.build_networks("tiny", use_hg=False, identity=False, global_residual=True)
    g = nets["g_bl"]
    x = tf.constant(_img())
    g(x)
    dec = nets["decoder"]
    rng = np.random.default_rng(0)
    dec.last.kernel.assign(rng.normal(0, 0.05, dec.last.kernel.shape).astype("float32"))
    corr = dec(g.encoder(models._to_signed(x), training=False), training=False).numpy()
    assert corr.min() >= -1.0 and corr.max() <= 1.0 and np.abs(corr).max() > 1e-3
    np.testing.assert_allclose(g(x, training=False).numpy(),
                               np.clip(np.asarray(x) + corr, 0.0, 1.0), atol=1e-6)
    assert models.Decoder(residual=True).get_config()["residual"] is True


def test_unet_skips_concatenate_encoder_levels_and_widen_from_fewer():
    """--unet_skips: level k feeds F-Conv. 9-k (e1 -> F-Conv. 8), the default (1, 2) builds the
    Table 3 reading the shipped files use; copy_init_weights(widen_last_axis=True) from a (1, 2)
    decoder zero-fills the added inputs, so the wider generator computes the same image."""
    from common.train import checkpoints
    x = tf.constant(_img(b=1))
    narrow = models.build_networks("tiny", use_hg=False, identity=False, global_residual=True)
    wide = models.build_networks("tiny", use_hg=False, identity=False, global_residual=True,
                                 unet_skips=("7", "3", "1", "2"))
    narrow["g_bl"](x), wide["g_bl"](x)
    dec_n, dec_w = narrow["decoder"], wide["decoder"]
    assert dec_n.skips == (1, 2) and dec_w.skips == (1, 2, 3, 7)
    enc = models.VARIANTS["tiny"]["enc_filters"]
    dec = models.VARIANTS["tiny"]["dec_filters"]
    # transposed-conv kernels are [kh, kw, out, in]: F-Conv. 2 gains e7, F-Conv. 6 gains e3
    assert dec_w.blocks[1].conv.kernel.shape[-1] == dec[0] + enc[6]
    assert dec_n.blocks[1].conv.kernel.shape[-1] == dec[0]
    assert dec_w.blocks[5].conv.kernel.shape[-1] == dec[4] + enc[2]
    assert dec_w.last.kernel.shape[-1] == dec_n.last.kernel.shape[-1] == dec[6] + enc[0]
    rng = np.random.default_rng(3)
    for w in narrow["g_bl"].weights:  # a trained-looking narrow net (last layer non-zero too)
        w.assign(rng.normal(0, 0.05, w.shape).astype("float32") + (1.0 if "variance" in w.path
                                                                   else 0.0))
    with pytest.raises(ValueError, match="different weight shapes"):
        checkpoints.copy_init_weights(narrow["g_bl"], wide["g_bl"], "n.keras", "--unet_skips")
    checkpoints.copy_init_weights(narrow["g_bl"], wide["g_bl"], "n.keras", "--unet_skips",
                                  widen_last_axis=True)
    y_n = narrow["g_bl"](x, training=False).numpy()
    np.testing.assert_allclose(wide["g_bl"](x, training=False).numpy(), y_n, atol=1e-5)
    assert np.abs(y_n - np.asarray(x)).max() > 1e-3   # the copy is not the trivial identity
    # the added inputs are zero, and they train: their gradient is non-zero
    k = dec_w.blocks[1].conv.kernel
    assert np.all(k.numpy()[..., dec[0]:] == 0)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.abs(wide["g_bl"](x, training=True) - 0.5))
    grad = tape.gradient(loss, k)
    assert np.abs(grad.numpy()[..., dec[0]:]).max() > 0
    assert models.Decoder(skips=(1, 5)).get_config()["skips"] == [1, 5]
    with pytest.raises(ValueError, match="--unet_skips=0,2: give encoder levels in 1..7"):
        models.parse_skips(["0", "2"])
    with pytest.raises(ValueError, match="--unet_skips"):
        models.parse_skips(["a"])
