"""common.keras_utils: layer tracking reaches tf.train.Checkpoint, instance norm against NumPy,
pad_to_multiple against numpy's reflect / symmetric padding."""
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

from common import keras_utils

RNG = np.random.default_rng(0)


class _Stack(keras.Model):
    """Dense layers kept only as tracked attributes (the paper 2 / paper 3 form)."""

    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        keras_utils.track(self, "dense", [layers.Dense(2) for _ in range(n)])

    def call(self, x):
        for layer in keras_utils.tracked(self, "dense"):
            x = layer(x)
        return x


def test_track_returns_the_list_and_sets_numbered_attributes():
    owner = _Stack(0)
    items = [layers.Dense(1), layers.Dense(2)]
    out = keras_utils.track(owner, "blk", iter(items))
    assert out == items and owner.blk_0 is items[0] and owner.blk_1 is items[1]
    assert keras_utils.tracked(owner, "blk") == items
    assert keras_utils.tracked(owner, "missing") == []


def test_tracked_layers_round_trip_through_tf_checkpoint(tmp_path):
    a, b = _Stack(3), _Stack(3)
    x = RNG.random((2, 4)).astype(np.float32)
    a(x), b(x)
    keys = [k for k, _ in tf.train.list_variables(
        tf.train.Checkpoint(net=a).write(os.path.join(tmp_path, "ck")))]
    # 3 layers x (kernel, bias) reach the checkpoint through the numbered attributes
    assert sum(k.startswith(f"net/dense_{i}/") for k in keys for i in range(3)) == 6, keys
    assert not np.allclose(a(x), b(x))
    tf.train.Checkpoint(net=b).read(os.path.join(tmp_path, "ck")).assert_consumed()
    np.testing.assert_allclose(np.asarray(b(x)), np.asarray(a(x)), atol=0)


def test_instance_norm_normalises_each_channel():
    x = (RNG.random((2, 8, 8, 4)) * 5 + 3).astype(np.float32)
    y = np.asarray(keras_utils.instance_norm()(x))
    mean, var = x.mean(axis=(1, 2), keepdims=True), x.var(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + 1e-5), atol=1e-4)


@pytest.mark.parametrize("h,w,multiple", [(5, 7, 4), (16, 16, 16), (27, 41, 16), (1, 1, 4),
                                          (2, 3, 4), (5, 2, 16), (3, 1, 8)])
def test_pad_to_multiple_matches_numpy(h, w, multiple):
    img = RNG.random((2, h, w, 3)).astype(np.float32)
    out = np.asarray(keras_utils.pad_to_multiple(img, multiple))
    ph, pw = (-h) % multiple, (-w) % multiple
    want = img
    for axis, pad, size in ((1, ph, h), (2, pw, w)):
        widths = [(0, 0)] * 4
        widths[axis] = (0, pad)
        want = np.pad(want, widths, mode="reflect" if pad < size else "symmetric")
    assert out.shape == (2, h + ph, w + pw, 3)
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(out[:, :h, :w], img)  # the crop back is the input


def test_pad_to_multiple_single_image_tiny_and_bad_arguments():
    img = RNG.random((1, 1, 3)).astype(np.float32)
    tiny = np.asarray(keras_utils.pad_to_multiple(img, 4))
    assert tiny.shape == (4, 4, 3) and np.all(tiny == img[0, 0])
    with pytest.raises(ValueError, match="multiple must be >= 1"):
        keras_utils.pad_to_multiple(img, 0)
    with pytest.raises(ValueError, match=r"\[..., H, W, C\]"):
        keras_utils.pad_to_multiple(np.zeros((4, 4)), 4)


def test_pad_to_multiple_in_a_graph_with_unknown_sizes_reflects():
    fn = tf.function(lambda x: keras_utils.pad_to_multiple(x, 4),
                     input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    img = RNG.random((1, 6, 5, 3)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(fn(img)),
                                  np.pad(img, ((0, 0), (0, 2), (0, 3), (0, 0)), mode="reflect"))
