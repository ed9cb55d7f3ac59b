"""--remat (models.set_remat) changes memory only: same weights, outputs, loss and gradients."""
import numpy as np
import pytest
import tensorflow as tf

from paper3_umsn import losses, models


def _loss_and_grads(nets, y, x, mode):
    sn, umsn, cn = nets["sn"], nets["umsn"], nets["cn"]
    models.set_remat(umsn, mode)
    variables = umsn.trainable_variables + cn.trainable_variables

    @tf.function
    def step(y, x):
        m_hat = tf.nn.softmax(sn(y), -1)
        m = tf.nn.softmax(sn(x), -1)
        with tf.GradientTape() as tape:
            xh = umsn([y, m_hat], training=True)["x_hat"]
            conf = tf.stack([cn([m[..., i:i + 1] * xh, m[..., i:i + 1] * x])
                             for i in range(models.NUM_CLASSES)], -1)
            loss = losses.confidence_loss(x, xh, m, conf, 0.01)
        return loss, xh, tape.gradient(loss, variables)

    loss, xh, grads = step(y, x)
    return float(loss), xh.numpy(), [None if g is None else g.numpy() for g in grads]


@pytest.mark.parametrize("mode", ["blocks", "units"])
def test_remat_keeps_weights_outputs_loss_and_gradients(mode):
    tf.keras.utils.set_random_seed(0)
    nets = models.build_all("tiny", "umsn", size=16)
    # Non-zero residual heads, so the gradients reach every block.
    for layer in (nets["umsn"].head, nets["umsn"].half_head):
        layer.kernel.assign(np.random.default_rng(1).normal(0, 0.1, layer.kernel.shape))
    names = [(w.path, tuple(w.shape)) for w in nets["umsn"].weights]
    rng = np.random.default_rng(0)
    x = tf.constant(rng.random((2, 16, 16, 3), dtype=np.float32))
    y = tf.constant(np.clip(x.numpy() * 0.7 + 0.1 + rng.normal(0, 0.05, x.shape), 0, 1)
                    .astype(np.float32))
    loss0, xh0, g0 = _loss_and_grads(nets, y, x, "none")
    loss1, xh1, g1 = _loss_and_grads(nets, y, x, mode)
    assert nets["umsn"].remat and all(f.remat for f in nets["umsn"].fnets)
    assert nets["umsn"].first.remat == (mode == "units")
    assert nets["umsn"].fnets[0].mid[0].remat == (mode == "units")
    assert [(w.path, tuple(w.shape)) for w in nets["umsn"].weights] == names
    np.testing.assert_allclose(xh1, xh0, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(loss1, loss0, rtol=1e-6)
    # Only the half-scale head (x_hat_half is not in this loss) gets no gradient, either way.
    assert [g is None for g in g0] == [g is None for g in g1]
    assert sum(g is None for g in g0) == len(nets["umsn"].half_head.trainable_variables)
    used = [(a, b) for a, b in zip(g0, g1) if a is not None]
    assert sum(float(np.abs(a).sum()) > 0 for a, _ in used) > len(used) // 2
    for a, b in used:
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)
