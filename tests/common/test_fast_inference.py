"""common.inference.fast_model (the deblur CLIs' inference path): traced, bfloat16 copy, fused
instance norms. Same outputs as the eager float32 model within float (or bfloat16) rounding."""
import os

import keras
import numpy as np
import pytest

from common import image_io, inference
from common import keras_utils
from common.keras_utils import instance_norm

RNG = np.random.default_rng(0)


@keras.saving.register_keras_serializable(package="tests_fast_inference")
class TinyNormNet(keras.Model):
    """conv -> instance norm -> relu -> conv -> instance norm (no scale) -> float32 output conv."""

    def __init__(self, width=8, **kwargs):
        super().__init__(**kwargs)
        self.width = width
        self.c1 = keras.layers.Conv2D(width, 3, padding="same")
        self.n1 = instance_norm()
        self.c2 = keras.layers.Conv2D(width, 3, padding="same")
        self.n2 = keras.layers.GroupNormalization(groups=-1, scale=False, epsilon=1e-3)
        self.out = keras.layers.Conv2D(3, 3, padding="same", dtype="float32")

    def call(self, x):
        h = keras.ops.relu(self.n1(self.c1(x)))
        return keras.ops.cast(x, "float32") + self.out(keras.ops.relu(self.n2(self.c2(h))))

    def get_config(self):
        return {**super().get_config(), "width": self.width}


def _net():
    keras.utils.set_random_seed(0)
    net = TinyNormNet()
    net(np.zeros((1, 16, 16, 3), np.float32))
    for w in (net.n1.gamma, net.n1.beta, net.n2.beta):  # non-trivial affine parameters
        w.assign(RNG.normal(0.5, 0.3, w.shape).astype(np.float32))
    return net


@pytest.mark.parametrize("batch", [1, 3])
def test_fused_instance_norm_float32_equals_the_keras_model(batch):
    net = _net()
    x = (RNG.random((batch, 24, 20, 3)) * 4).astype(np.float32)  # norms see a non-unit scale
    want = np.asarray(net(x))
    fast = inference.fast_model(net, "float32", fused_norm=True)
    assert fast.fused_norm and fast.precision == "float32"
    assert len(keras_utils.instance_norms(net)) == 2
    assert fast.model is not net  # a copy: the caller's model keeps Keras's layers
    np.testing.assert_allclose(np.asarray(fast(x)), want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(net(x)), want, rtol=0, atol=0)
    plain = inference.fast_model(net, "float32", fused_norm=False)
    assert plain.model is net
    np.testing.assert_allclose(np.asarray(plain(x)), want, rtol=1e-5, atol=1e-5)


def test_bfloat16_copy_has_the_weights_and_float32_output():
    net = _net()
    x = RNG.random((2, 16, 16, 3)).astype(np.float32)
    want = np.asarray(net(x))
    fast = inference.fast_model(net, "bfloat16", fused_norm=True)
    copy = fast.model
    assert copy.c1.compute_dtype == "bfloat16" and copy.c1.kernel.dtype == "float32"
    assert copy.out.compute_dtype == "float32"  # the layer the model makes float32 stays so
    assert net.c1.compute_dtype == "float32"  # the given model is untouched
    assert keras.mixed_precision.global_policy().name == "float32"
    for a, b in zip(net.get_weights(), copy.get_weights()):
        np.testing.assert_array_equal(a, b)
    got = fast(x)
    assert got.dtype == "float32"
    err = np.abs(np.asarray(got) - want)
    assert 0 < err.max() < 0.1 and err.mean() < 0.02, (err.max(), err.mean())


def test_models_without_instance_norm_and_plain_functions():
    inp = keras.Input((None, None, 3))
    model = keras.Model(inp, keras.layers.Conv2D(3, 3, padding="same")(inp))
    fast = inference.fast_model(model, "float32", fused_norm=True)
    assert fast.model is model and not fast.fused_norm  # nothing to fuse: no copy
    x = RNG.random((1, 8, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(fast(x)), np.asarray(model(x)), atol=1e-6)
    fn = lambda images: 1.0 - images  # noqa: E731
    assert inference.fast_model(fn, "auto") is fn and inference.fast_model(fn, "float32") is fn
    with pytest.raises(ValueError, match="needs a Keras model"):
        inference.fast_model(fn, "bfloat16")
    with pytest.raises(ValueError, match="choose one of"):
        inference.resolve_precision("float16")
    assert inference.resolve_precision("float32") == "float32"
    assert inference.resolve_precision("auto") in ("float32", "bfloat16")


def test_run_deblur_uses_the_fast_path_of_a_keras_model(tmp_path):
    net = _net()
    img = (RNG.random((13, 11, 3)) * 255).astype(np.uint8)
    image_io.write_image(str(tmp_path / "a.png"), img)
    want = inference.deblur_image(net, img, stride=4)
    outs = {}
    for prec in ("float32", "bfloat16"):
        (path,) = inference.run_deblur(lambda c: net, None, [str(tmp_path / "a.png")],
                                       str(tmp_path / prec), stride=4, precision=prec)
        outs[prec] = image_io.read_image(path).astype(int)
        assert os.path.basename(path) == "a.png"
    ref = image_io.to_uint8(want).astype(int)
    assert np.abs(outs["float32"] - ref).max() <= 1
    assert np.abs(outs["bfloat16"] - ref).max() <= 12


@pytest.mark.parametrize("batch,static", [(1, True), (3, True), (3, False)])
def test_fused_instance_norm_training_gradients_equal_keras(batch, static):
    """--fused_norm in training: the same loss and the same gradients (weights and input), with
    a static batch and one known only at run time (both: these small maps fold the batch into
    channels; the per-sample path: test_fused_instance_norm_modes_equal_numpy)."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    net, fused = _net(), _net()
    fused.set_weights(net.get_weights())
    assert keras_utils.fuse_instance_norms(fused) == 2
    x = tf.constant((RNG.random((batch, 20, 24, 3)) * 4).astype(np.float32))
    r = tf.constant(RNG.normal(size=(batch, 20, 24, 3)).astype(np.float32))

    def grads(model):
        def fn(xx):
            with tf.GradientTape() as tape:
                tape.watch(xx)
                loss = tf.reduce_sum(model(xx, training=True) * r)
            return loss, tape.gradient(loss, [xx] + model.trainable_variables)
        if static:
            return fn(x)
        traced = tf.function(fn, input_signature=[tf.TensorSpec([None, 20, 24, 3], tf.float32)])
        ops = {op.type for op in traced.get_concrete_function().graph.get_operations()}
        assert ("Transpose" in ops) == (model is fused)  # the folded path
        return traced(x)

    (l_ref, g_ref), (l_fused, g_fused) = grads(net), grads(fused)
    np.testing.assert_allclose(float(l_fused), float(l_ref), rtol=1e-4)
    assert len(g_ref) == len(g_fused) == 1 + len(net.trainable_variables)
    for a, b in zip(g_fused, g_ref):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-3, atol=1e-3)
    assert float(tf.reduce_max(tf.abs(g_ref[0]))) > 1e-3  # a real gradient, not all zeros


@pytest.mark.parametrize("shape", [(3, 6, 5, 4), (2, 64, 64, 33), (2, 96, 96, 12)])
def test_fused_instance_norm_modes_equal_numpy(shape):
    """keras_utils.fused_instance_norm, per sample ("split") and batch folded into channels
    ("fold"): the instance-norm formula of NumPy, and the same input gradients; "auto" folds
    maps of <= FOLD_MAX_ELEMENTS per sample or <= FOLD_MAX_CHANNELS channels, splits others."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    x = (RNG.normal(size=shape) * 3 + 1).astype(np.float32)
    scale = RNG.normal(1.0, 0.3, shape[-1]).astype(np.float32)
    offset = RNG.normal(0.0, 0.3, shape[-1]).astype(np.float32)
    r = RNG.normal(size=shape).astype(np.float32)
    mean, var = x.mean(axis=(1, 2), keepdims=True), x.var(axis=(1, 2), keepdims=True)
    want = (x - mean) / np.sqrt(var + 1e-5) * scale + offset
    grads = {}
    for mode in ("split", "fold", "auto"):
        xt = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            y = keras_utils.fused_instance_norm(xt, tf.constant(scale), tf.constant(offset), 1e-5, mode)
            loss = tf.reduce_sum(y * r)
        np.testing.assert_allclose(y.numpy(), want, rtol=1e-4, atol=1e-4)
        grads[mode] = tape.gradient(loss, xt).numpy()
    np.testing.assert_allclose(grads["fold"], grads["split"], rtol=1e-4, atol=1e-4)
    assert float(np.abs(grads["split"]).max()) > 1e-3
    traced = tf.function(lambda t: keras_utils.fused_instance_norm(
        t, tf.constant(scale), tf.constant(offset), 1e-5)).get_concrete_function(
        tf.TensorSpec(shape, tf.float32))
    folded = "Transpose" in {op.type for op in traced.graph.get_operations()}
    assert folded == (shape != (2, 64, 64, 33))  # small map / few channels fold; 64x64x33 splits
    assert folded == keras_utils.folds_batch(*shape[1:])
