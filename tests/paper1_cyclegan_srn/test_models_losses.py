"""Network shapes, losses against NumPy, and the CycleGAN image pool (paper 1)."""
import numpy as np
import pytest
import tensorflow as tf

from paper1_cyclegan_srn import cyclegan, losses, srn
from paper1_cyclegan_srn.image_pool import ImagePool

RNG = np.random.default_rng(0)


def _rand(*shape):
    return RNG.uniform(-1, 1, size=shape).astype("float32")


# ---------------------------------------------------------------- networks
@pytest.mark.parametrize("hw", [(32, 32), (37, 50)])
def test_generator_shape_range_any_size(hw):
    g = cyclegan.build_generator("tiny")
    y = np.asarray(g(_rand(2, *hw, 3)))
    assert y.shape == (2, *hw, 3) and y.dtype == np.float32
    assert np.all(np.abs(y) <= 1.0)


def test_generator_architecture_counts():
    g = cyclegan.ResnetGenerator(filters=4, num_res_blocks=6)
    g(np.zeros((1, 16, 16, 3), "float32"))
    assert len(g.blocks) == 6
    # c7s1-f, d2f, d4f, R4f..., u2f, uf, c7s1-3
    assert g.c7s1_in[1].filters == 4 and [c.filters for c in g.down_convs] == [8, 16]
    assert [c.filters for c in g.up_convs] == [8, 4] and g.c7s1_out[1].filters == 3
    assert g.c7s1_in[1].kernel_size == (7, 7)
    assert cyclegan.GENERATOR_VARIANTS["resnet_9blocks"]["num_res_blocks"] == 9
    assert cyclegan.GENERATOR_VARIANTS["resnet_6blocks"]["num_res_blocks"] == 6


def test_resize_upsampling_generator_has_no_transposed_conv_and_round_trips():
    g = cyclegan.build_generator("tiny", upsample="resize")
    x = _rand(2, 37, 50, 3)
    y = np.asarray(g(x))
    assert y.shape == (2, 37, 50, 3) and np.all(np.abs(y) <= 1.0)
    kinds = {type(layer).__name__ for layer in g._flatten_layers()}
    assert "Conv2DTranspose" not in kinds and "UpSampling2D" in kinds
    assert "Conv2DTranspose" in {type(layer).__name__
                                 for layer in cyclegan.build_generator("tiny", image_size=16)._flatten_layers()}
    twin = cyclegan.ResnetGenerator.from_config(g.get_config())
    twin(x)
    twin.set_weights(g.get_weights())
    np.testing.assert_allclose(np.asarray(twin(x)), y, atol=1e-6)
    with pytest.raises(ValueError, match="upsample"):
        cyclegan.ResnetGenerator(upsample="bilinear")


def test_patchgan_output_size_matches_70x70_patchgan():
    # paper variant: 256 -> 30x30 patches (64 -> 6x6 with the same layers)
    d = cyclegan.build_discriminator("patchgan_70")
    assert tuple(d(_rand(1, 64, 64, 3)).shape) == (1, 6, 6, 1)
    dt = cyclegan.build_discriminator("tiny")
    assert tuple(dt(_rand(2, 32, 32, 3)).shape) == (2, 6, 6, 1)


def test_reflection_pad_matches_numpy():
    x = _rand(1, 5, 6, 2)
    y = np.asarray(cyclegan.ReflectionPad2D(2)(x))
    np.testing.assert_array_equal(y, np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="reflect"))


@pytest.mark.parametrize("recurrent", ["lstm", "none"])
@pytest.mark.parametrize("hw", [(32, 32), (27, 41)])
def test_srn_multiscale_shapes_any_size(recurrent, hw):
    model = srn.build_srn("tiny", recurrent=recurrent)
    outs = model(np.abs(_rand(2, *hw, 3)))
    h, w = hw
    sizes = [tuple(o.shape) for o in outs]
    assert sizes[-1] == (2, h, w, 3)
    assert sizes[1] == (2, (h + 1) // 2, (w + 1) // 2, 3)
    assert sizes[0] == (2, (h + 2) // 4, (w + 2) // 4, 3)
    assert all(o.dtype == "float32" for o in outs)


def test_srn_weights_shared_across_scales_and_lstm_flag():
    a = srn.build_srn("tiny", recurrent="lstm", image_size=32)
    b = srn.build_srn("tiny", recurrent="none", image_size=32)
    # one encoder-decoder for all three scales: parameter count does not depend on the scale count
    c = srn.build_srn("tiny", recurrent="none", image_size=32, num_scales=2)
    assert b.count_params() == c.count_params()
    c3 = srn.VARIANTS["tiny"]["channels"][-1]
    lstm_params = (3 * 3 * 2 * c3 + 1) * 4 * c3
    assert a.count_params() - b.count_params() == lstm_params
    with pytest.raises(ValueError, match="recurrent"):
        srn.SRN(recurrent="gru")


def test_srn_paper_variant_layout():
    v = srn.VARIANTS["paper"]
    assert v["channels"] == (32, 64, 128) and v["kernel_size"] == 5
    assert v["blocks_per_stage"] == 3 and v["num_scales"] == 3
    m = srn.build_srn("paper", image_size=16)
    assert len(m.enc1) == 4 and len(m.dec3) == 3 and m.lstm.filters == 128


def test_convlstm_cell_matches_numpy():
    cell = srn.ConvLSTMCell(2, kernel_size=1)
    x, h, c = _rand(1, 3, 3, 2), _rand(1, 3, 3, 2), _rand(1, 3, 3, 2)
    h_new, (_, c_new) = cell(x, (h, c))
    kernel, bias = [np.asarray(v) for v in cell.conv.weights]
    gates = np.concatenate([x, h], -1) @ kernel[0, 0] + bias
    i, j, f, o = np.split(gates, 4, axis=-1)
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    c_ref = sig(f + 1.0) * c + sig(i) * np.tanh(j)
    np.testing.assert_allclose(np.asarray(c_new), c_ref, atol=1e-5)
    np.testing.assert_allclose(np.asarray(h_new), sig(o) * np.tanh(c_ref), atol=1e-5)


# ---------------------------------------------------------------- losses
def test_discriminator_and_generator_losses_match_numpy():
    real, fake = _rand(2, 4, 4, 1) * 3, _rand(2, 4, 4, 1) * 3
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    ref_d_bce = 0.5 * (-np.mean(np.log(sig(real))) - np.mean(np.log(1 - sig(fake))))
    ref_g_bce = -np.mean(np.log(sig(fake)))
    np.testing.assert_allclose(float(losses.discriminator_loss(real, fake, "bce")), ref_d_bce, rtol=1e-5)
    np.testing.assert_allclose(float(losses.generator_adversarial_loss(fake, "bce")), ref_g_bce, rtol=1e-5)
    ref_d_ls = 0.5 * (np.mean((real - 1) ** 2) + np.mean(fake ** 2))
    np.testing.assert_allclose(float(losses.discriminator_loss(real, fake, "lsgan")), ref_d_ls, rtol=1e-5)
    np.testing.assert_allclose(float(losses.generator_adversarial_loss(fake, "lsgan")),
                               np.mean((fake - 1) ** 2), rtol=1e-5)
    # a perfect LSGAN discriminator has zero loss
    assert float(losses.discriminator_loss(np.ones((1, 2, 2, 1)), np.zeros((1, 2, 2, 1)))) == 0.0
    with pytest.raises(ValueError, match="gan_mode"):
        losses.discriminator_loss(real, fake, "wgan")


def test_bce_loss_stable_for_large_logits():
    big = np.full((1, 2, 2, 1), 200.0, "float32")
    assert np.isfinite(float(losses.discriminator_loss(big, -big, "bce")))
    np.testing.assert_allclose(float(losses.generator_adversarial_loss(-big, "bce")), 200.0, rtol=1e-5)


def test_cycle_and_identity_losses_are_l1():
    a, b = _rand(2, 5, 5, 3), _rand(2, 5, 5, 3)
    np.testing.assert_allclose(float(losses.cycle_loss(a, b)), np.mean(np.abs(a - b)), rtol=1e-6)
    np.testing.assert_allclose(float(losses.identity_loss(a, b)), np.mean(np.abs(a - b)), rtol=1e-6)
    assert float(losses.cycle_loss(a, a)) == 0.0


def test_multiscale_euclidean_loss_eq3():
    targets = [_rand(2, s, s, 3) for s in (4, 8, 16)]
    preds = [_rand(2, s, s, 3) for s in (4, 8, 16)]
    k = [0.5, 1.0, 2.0]
    total, per = losses.multiscale_euclidean_loss(targets, preds, k)
    ref_per = [np.sum((p - t) ** 2) / p.size for p, t in zip(preds, targets)]
    np.testing.assert_allclose([float(v) for v in per], ref_per, rtol=1e-5)
    np.testing.assert_allclose(float(total), sum(w * v for w, v in zip(k, ref_per)), rtol=1e-5)
    # a single full-size target is resized bilinearly (as tf.image.resize, no antialias) per scale
    full = targets[-1]
    total2, per2 = losses.multiscale_euclidean_loss(full, preds)
    ref2 = [np.mean((p - tf.image.resize(full, p.shape[1:3]).numpy()) ** 2) for p in preds]
    np.testing.assert_allclose([float(v) for v in per2], ref2, rtol=1e-5)
    with pytest.raises(ValueError, match="scale weights"):
        losses.multiscale_euclidean_loss(targets, preds, [1.0])


# ---------------------------------------------------------------- image pool
def test_image_pool_fills_then_mixes_history():
    pool = ImagePool(size=4, image_shape=(2, 2, 1), seed=3)
    first = np.arange(4, dtype="float32").reshape(4, 1, 1, 1) * np.ones((4, 2, 2, 1), "float32")
    np.testing.assert_array_equal(pool.query(first).numpy(), first)  # filling: returned as is
    assert int(pool.count) == 4
    history = {float(v) for v in range(4)}
    returned_old = 0
    for step in range(1, 30):
        new = np.full((2, 2, 2, 1), 100.0 + step, "float32")
        out = pool.query(new).numpy()
        for img in out:
            v = float(img[0, 0, 0])
            assert np.all(img == v)
            assert v == 100.0 + step or v in history  # either the new image or an older one
            returned_old += v != 100.0 + step
        history.add(100.0 + step)
        assert set(pool.buffer.numpy()[:, 0, 0, 0].tolist()) <= history
    # p = 0.5 per image: 58 draws, expect ~29 old images returned
    assert 15 < returned_old < 45


def test_image_pool_size_zero_is_passthrough_and_checks_shape():
    pool = ImagePool(size=0, image_shape=(2, 2, 1))
    x = _rand(3, 2, 2, 1)
    np.testing.assert_array_equal(pool.query(x), x)
    pool2 = ImagePool(size=2, image_shape=(2, 2, 1))
    with pytest.raises(ValueError, match="shape"):
        pool2.query(_rand(1, 3, 3, 1))


def test_image_pool_in_tf_function():
    pool = ImagePool(size=2, image_shape=(1, 1, 1), seed=0)
    fn = tf.function(pool.query)
    for i in range(5):
        fn(tf.fill((1, 1, 1, 1), float(i)))
    assert int(pool.count) == 2
    assert set(pool.buffer.numpy().ravel().tolist()) <= {0.0, 1.0, 2.0, 3.0, 4.0}


def test_checkpoint_graph_reaches_every_weight(tmp_path):
    """Every variable of each network is saved/restored through the model object itself."""
    for model in (cyclegan.build_generator("tiny", image_size=16),
                  cyclegan.build_discriminator("tiny", image_size=16),
                  srn.build_srn("tiny", image_size=16)):
        path = tf.train.Checkpoint(net=model).save(str(tmp_path / model.name))
        saved = tf.train.list_variables(path)
        n_saved = sum(1 for name, _ in saved if name.startswith("net/"))
        assert n_saved == len(model.weights), model.name
