"""--remat (models.set_remat) changes memory only: same weights, outputs, loss and gradients."""
import numpy as np
import pytest
import tensorflow as tf

from paper3_umsn import losses, models


def _build_all(variant, ablation, size):
    """SN, UMSN and CN of `variant`, built on a [1, size, size, 3] input."""
    sn, umsn, cn = models.build_sn(variant), models.build_umsn(variant, ablation), models.build_cn(variant)
    y = np.zeros((1, size, size, 3), np.float32)
    out = umsn([y, tf.nn.softmax(sn(y), -1)])["x_hat"]
    cn([out, out])
    return {"sn": sn, "umsn": umsn, "cn": cn}


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
    nets = _build_all("tiny", "umsn", size=16)
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


def test_umsn_step_with_sn_off_the_tape_gives_the_old_loss_and_gradients(monkeypatch, tmp_path):
    """replica_step runs the frozen SN under tape.stop_recording(); the loss and the UMSN/CN
    gradients equal the old step's, where SN ran on the tape (recomputed here, NumPy tolerance)."""
    from common import cli
    from paper3_umsn import train
    monkeypatch.setattr(train, "_init_from", lambda *a, **k: None)  # random SN/F-Nets suffice
    config = cli.parse_flags(
        [train.define_flags],
        ["prog", "--flagfile=paper3_umsn/configs/smoke.flags", f"--workdir={tmp_path}",
         "--stage=umsn", "--remat=blocks"])
    tf.keras.utils.set_random_seed(0)
    stage = train.make_stage(config, tf.distribute.get_strategy())
    for layer in (stage.umsn.head, stage.umsn.half_head):
        layer.kernel.assign(np.random.default_rng(1).normal(0, 0.1, layer.kernel.shape))
    rng = np.random.default_rng(0)
    x = tf.constant(rng.random((2, 32, 32, 3), dtype=np.float32))
    batch = {"sharp": x, "blurred": tf.constant(np.clip(x.numpy() * 0.7 + 0.1, 0, 1))}

    # The old step: SN inside the tape, no remat.
    models.set_remat(stage.umsn, "none")
    with tf.GradientTape(persistent=True) as tape:
        m_hat, m = stage._masks(batch["blurred"]), stage._masks(x)
        xh = stage.umsn([batch["blurred"], m_hat], training=True)["x_hat"]
        conf = tf.stack([stage.cn([m[..., i:i + 1] * xh, m[..., i:i + 1] * x], training=True)
                         for i in range(models.NUM_CLASSES)], -1)
        l_c = losses.confidence_loss(x, xh, m, conf, config.lambda_conf, stage.class_weights)
        old_loss = losses.total_loss(l_c, stage._perceptual(x, xh), config.lambda_1)
    old_g = tape.gradient(old_loss, stage.train_vars)
    old_cn = tape.gradient(old_loss, stage.cn.trainable_variables)
    assert stage.sn.variables and not stage.sn.trainable

    # The new step, its gradients caught before the optimizers apply them.
    models.set_remat(stage.umsn, "blocks")
    caught = {}
    monkeypatch.setattr(stage.optimizer, "apply", lambda g, v: caught.setdefault("umsn", g))
    monkeypatch.setattr(stage.cn_optimizer, "apply", lambda g, v: caught.setdefault("cn", g))
    out = stage.replica_step(batch)
    np.testing.assert_allclose(float(out["loss"]), float(old_loss), rtol=1e-6)
    for new, old in ((caught["umsn"], old_g), (caught["cn"], old_cn)):
        assert len(new) == len(old)
        for a, b in zip(new, old):
            b = np.zeros(a.shape, np.float32) if b is None else b.numpy()  # step fills None with 0
            np.testing.assert_allclose(np.asarray(a), b, rtol=1e-4, atol=1e-6)
