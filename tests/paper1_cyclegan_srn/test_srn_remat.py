"""SRN's --remat=blocks (each ResBlock recomputed in backprop) changes memory only: same weights,
outputs, loss and gradients; train_srn's flag sets it."""
import numpy as np
import tensorflow as tf
from absl import flags

from common import cli
from paper1_cyclegan_srn import losses, srn, train_srn


def _loss_and_grads(model, blurred, sharp):
    variables = model.trainable_variables

    @tf.function
    def step(b, s):
        with tf.GradientTape() as tape:
            preds = model(b, training=True)
            total, _ = losses.multiscale_euclidean_loss(s, preds, [1.0, 1.0, 1.0])
        return total, preds[-1], tape.gradient(total, variables)

    loss, out, grads = step(blurred, sharp)
    return float(loss), out.numpy(), [g.numpy() for g in grads]


def test_srn_remat_keeps_weights_outputs_loss_and_gradients():
    tf.keras.utils.set_random_seed(0)
    model = srn.build_srn("tiny", image_size=16)
    names = [(w.path, tuple(w.shape)) for w in model.weights]
    rng = np.random.default_rng(0)
    sharp = tf.constant(rng.random((2, 16, 16, 3), dtype=np.float32))
    blurred = tf.constant(np.clip(sharp.numpy() * 0.8 + 0.1, 0, 1).astype(np.float32))
    loss0, out0, g0 = _loss_and_grads(model, blurred, sharp)
    model.remat = True
    loss1, out1, g1 = _loss_and_grads(model, blurred, sharp)
    assert [(w.path, tuple(w.shape)) for w in model.weights] == names
    assert "remat" not in model.get_config()
    np.testing.assert_allclose(out1, out0, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(loss1, loss0, rtol=1e-6)
    assert len(g0) == len(g1) == len(model.trainable_variables)
    for a, b in zip(g0, g1):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)
    assert any(np.abs(a).max() > 0 for a in g0)


def test_train_srn_remat_flag_sets_the_model():
    def config(*extra):
        return cli.parse_flags([train_srn.define_flags], [
            "p", "--variant=tiny", "--crop_size=16", "--batch_size=2", "--num_steps=10",
            "--workdir=/tmp/unused", *extra], fv=flags.FlagValues())
    assert config().remat == "none"
    assert train_srn.SRNTrainer(config("--remat=blocks")).model.remat is True
