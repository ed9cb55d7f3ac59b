"""common.inference's fast start: one Keras build under the inference policy, one trace for
every image size, and the traced graph kept on disk (`cached_fast_model`)."""
import os

import keras
import numpy as np

from common import inference

RNG = np.random.default_rng(0)


def _keras_file(path, seed=0):
    """A functional conv -> instance norm -> conv net (serializable without registration)."""
    keras.utils.set_random_seed(seed)
    inp = keras.Input((None, None, 3))
    h = keras.layers.Conv2D(8, 3, padding="same")(inp)
    h = keras.layers.GroupNormalization(groups=-1, epsilon=1e-3)(h)
    out = keras.layers.Conv2D(3, 3, padding="same", dtype="float32")(keras.ops.relu(h))
    model = keras.Model(inp, out)
    model.save(path)
    return model


def test_load_under_a_policy_builds_once_and_fast_model_uses_it_in_place(tmp_path):
    path = str(tmp_path / "m.keras")
    ref = _keras_file(path)
    m = inference.load_keras(path, policy="mixed_bfloat16")
    assert m.layers[1].compute_dtype == "bfloat16" and m.layers[1].kernel.dtype == "float32"
    assert keras.mixed_precision.global_policy().name == "float32"
    for a, b in zip(ref.get_weights(), m.get_weights()):
        np.testing.assert_array_equal(a, b)
    fast = inference.fast_model(m, "bfloat16", in_place=True)
    assert fast.model is m and fast.fused_norm  # no rebuild: norms fused in the loaded model
    x = RNG.random((1, 20, 12, 3)).astype(np.float32)
    got = fast(x)
    assert got.dtype == "float32"
    err = np.abs(np.asarray(got) - np.asarray(ref(x)))
    assert 0 < err.max() < 0.1
    # a float32 model asked for bfloat16 in place: still rebuilt, the given one kept float32
    f32 = inference.load_keras(path)
    fast2 = inference.fast_model(f32, "bfloat16", in_place=True)
    assert fast2.model is not f32 and fast2.model.layers[1].compute_dtype == "bfloat16"


def test_one_trace_serves_every_image_size(tmp_path):
    ref = _keras_file(str(tmp_path / "m.keras"))
    fast = inference.fast_model(ref, "float32")
    for hw in ((8, 8), (20, 12), (36, 44)):
        x = RNG.random((1, *hw, 3)).astype(np.float32)
        np.testing.assert_allclose(np.asarray(fast(x)), np.asarray(ref(x)), atol=1e-4)
    assert fast.traced.experimental_get_tracing_count() == 1
    fast(RNG.random((2, 8, 8, 3)).astype(np.float32))  # another batch size: its own graph
    assert fast.traced.experimental_get_tracing_count() == 2


def test_cached_model_is_written_once_then_loaded_without_building(tmp_path):
    path, cache = str(tmp_path / "m.keras"), str(tmp_path / "cache")
    ref = _keras_file(path)
    loads = []

    def load(policy):
        loads.append(policy)
        return inference.load_keras(path, policy=policy)
    x = RNG.random((1, 24, 16, 3)).astype(np.float32)
    first = inference.cached_fast_model(load, path, "float32", cache_dir=cache)
    assert first.cache_path and os.path.isfile(os.path.join(first.cache_path, "saved_model.pb"))
    assert loads == [None] and os.listdir(cache) == [os.path.basename(first.cache_path)]
    want = np.asarray(first(x))
    np.testing.assert_allclose(want, np.asarray(ref(x)), atol=1e-4)
    again = inference.cached_fast_model(load, path, "float32", cache_dir=cache)
    assert loads == [None] and again.cache_path == first.cache_path  # loaded, not built
    assert again.precision == "float32" and again.fused_norm
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    stored = tf.saved_model.load(first.cache_path)  # the graph and its variables, no Keras layers
    assert not hasattr(stored, "net") and len(stored.state) == len(ref.variables)
    np.testing.assert_allclose(np.asarray(again(x)), want, atol=1e-5)
    y = RNG.random((2, 40, 8, 3)).astype(np.float32)  # another size and a batch of 2
    np.testing.assert_allclose(np.asarray(again(y)), np.asarray(ref(y)), atol=1e-4)
    # other weights in the same file name: another entry, built again
    _keras_file(path, seed=1)
    other = inference.cached_fast_model(load, path, "float32", cache_dir=cache)
    assert other.cache_path != first.cache_path and len(loads) == 2
    assert np.abs(np.asarray(other(x)) - want).max() > 1e-3


def test_a_damaged_or_unwritable_cache_is_one_logged_line_and_the_model_still_runs(tmp_path):
    path, cache = str(tmp_path / "m.keras"), str(tmp_path / "cache")
    ref = _keras_file(path)
    load = lambda policy: inference.load_keras(path, policy=policy)  # noqa: E731
    x = RNG.random((1, 16, 16, 3)).astype(np.float32)
    entry = inference.cached_fast_model(load, path, "float32", cache_dir=cache).cache_path
    for name in os.listdir(os.path.join(entry, "variables")):  # damage the saved weights
        with open(os.path.join(entry, "variables", name), "wb") as f:
            f.write(b"garbage")
    logs = []
    fixed = inference.cached_fast_model(load, path, "float32", cache_dir=cache, log=logs.append)
    assert len(logs) == 1 and "unreadable" in logs[0] and entry in logs[0]
    assert fixed.cache_path == entry  # rebuilt and written again
    np.testing.assert_allclose(np.asarray(fixed(x)), np.asarray(ref(x)), atol=1e-4)
    blocked = tmp_path / "a_file"
    blocked.write_text("not a folder")
    logs = []
    fn = inference.cached_fast_model(load, path, "float32", cache_dir=str(blocked),
                                     log=logs.append)
    assert fn.cache_path is None and len(logs) == 1 and "not written" in logs[0]
    assert "\n" not in logs[0]
    np.testing.assert_allclose(np.asarray(fn(x)), np.asarray(ref(x)), atol=1e-4)
    assert blocked.read_text() == "not a folder"
    # no cache for "", or for a file that is no .keras model
    assert inference.cached_fast_model(load, path, "float32", cache_dir="").cache_path is None


def test_default_cache_dir_follows_the_environment(monkeypatch):
    monkeypatch.setenv("FACEDEBLUR_CACHE", "/x/y")
    assert inference.default_cache_dir() == "/x/y"
    monkeypatch.delenv("FACEDEBLUR_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", "/c")
    assert inference.default_cache_dir() == os.path.join("/c", "facedeblur")
