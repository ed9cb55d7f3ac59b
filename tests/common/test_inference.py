"""common.inference: padding, tiling, face paste-back, safe output paths, export/load."""
import os

import numpy as np
import pytest

from common import image_io, inference

RNG = np.random.default_rng(0)


def _stride_model(stride):
    """A model that only accepts multiples of `stride` and returns 1 - x."""
    def model(batch):
        assert batch.shape[1] % stride == 0 and batch.shape[2] % stride == 0, batch.shape
        return 1.0 - np.asarray(batch)
    return model


@pytest.mark.parametrize("shape", [(13, 17, 3), (32, 32, 3), (1, 3, 3)])
def test_deblur_image_any_size_crops_back(shape):
    img = RNG.random(shape).astype(np.float32)
    out = inference.deblur_image(_stride_model(8), img, stride=8)
    assert out.shape == shape and out.dtype == np.float32
    np.testing.assert_allclose(out, 1.0 - img, atol=1e-6)


def test_tiling_matches_whole_image_for_a_pointwise_model():
    img = RNG.random((70, 90, 3)).astype(np.float32)
    calls = []

    def model(b):
        calls.append(b.shape)
        return _stride_model(4)(b)
    out = inference.deblur_image(model, img, stride=4, tile=32, overlap=8)
    np.testing.assert_allclose(out, 1.0 - img, atol=1e-5)
    assert len(calls) > 4 and all(s[1] <= 32 and s[2] <= 32 for s in calls)
    with pytest.raises(ValueError, match="multiple of the network stride"):
        inference.deblur_image(model, img, stride=4, tile=30)


def test_model_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="returned shape"):
        inference.deblur_image(lambda b: b[:, :2], RNG.random((8, 8, 3)), stride=1)


class _FakeDetector:
    def __init__(self, boxes):
        self.boxes = boxes

    def detect(self, image):
        assert image.dtype == np.uint8
        return self.boxes


def test_faces_are_pasted_back_only_inside_the_enlarged_box():
    img = RNG.random((40, 50, 3)).astype(np.float32)
    box = type("B", (), dict(left=10, top=8, right=20, bottom=18))()
    out = inference.deblur_faces(_stride_model(4), img, _FakeDetector([box]), stride=4, margin=0.2)
    inside = np.zeros((40, 50), bool)
    inside[6:20, 8:22] = True
    np.testing.assert_allclose(out[inside], 1.0 - img[inside], atol=1e-6)
    np.testing.assert_array_equal(out[~inside], img[~inside])
    # no face -> the whole image
    out = inference.deblur_faces(_stride_model(4), img, _FakeDetector([]), stride=4)
    np.testing.assert_allclose(out, 1.0 - img, atol=1e-6)


def test_files_never_overwrite_inputs(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    img = (RNG.random((9, 11, 3)) * 255).astype(np.uint8)
    image_io.write_image(str(src / "a.png"), img)
    before = (src / "a.png").read_bytes()
    with pytest.raises(ValueError, match="overwrite the input"):
        inference.deblur_files(_stride_model(4), [str(src / "a.png")], str(src), stride=4)
    assert (src / "a.png").read_bytes() == before
    outs = inference.deblur_files(_stride_model(4), [str(src)], str(src), stride=4, suffix="_deblurred")
    assert os.path.basename(outs[0]) == "a_deblurred.png"
    np.testing.assert_allclose(image_io.read_image(outs[0]).astype(int), 255 - img.astype(int), atol=1)
    with pytest.raises(FileExistsError):
        inference.deblur_files(_stride_model(4), [str(src / "a.png")], str(src), stride=4, suffix="_deblurred")
    with pytest.raises(ValueError, match="same output name"):
        inference.output_paths(["x/a.png", "y/a.jpg"], str(tmp_path / "o"))


def test_run_deblur_loads_once_detects_faces_and_keeps_outputs(tmp_path, monkeypatch):
    img = (RNG.random((12, 10, 3)) * 255).astype(np.uint8)
    image_io.write_image(str(tmp_path / "a.png"), img)
    loaded = []

    def load(checkpoint):
        loaded.append(checkpoint)
        return _stride_model(4)
    box = type("B", (), dict(left=2, top=2, right=6, bottom=6))()
    import common.face
    names = []
    monkeypatch.setattr(common.face, "get_detector",
                        lambda name: names.append(name) or _FakeDetector([box]))
    out_dir = str(tmp_path / "out")
    outs = inference.run_deblur(load, "ckpt", [str(tmp_path)], out_dir, stride=4, suffix="_x",
                                face_detector="fake")
    assert loaded == ["ckpt"] and names == ["fake"]
    assert outs == [os.path.join(out_dir, "a_x.png")]
    res = image_io.read_image(outs[0]).astype(int)
    # margin 0.3 of a 4-pixel box: rows/cols 0..7 deblurred (1 - x), the rest untouched
    np.testing.assert_allclose(res[:8, :8], 255 - img[:8, :8].astype(int), atol=1)
    np.testing.assert_array_equal(res[8:], img[8:])
    with pytest.raises(FileExistsError):
        inference.run_deblur(load, "ckpt", [str(tmp_path / "a.png")], out_dir, stride=4, suffix="_x")
    outs = inference.run_deblur(load, "ckpt", [str(tmp_path / "a.png")], out_dir, stride=4,
                                suffix="_x", overwrite=True)
    np.testing.assert_allclose(image_io.read_image(outs[0]).astype(int), 255 - img.astype(int), atol=1)


def test_deblur_main_passes_positional_inputs_and_flags(capsys):
    from absl import app, flags
    fv = flags.FlagValues()
    inference.define_deblur_flags(fv, checkpoint_help="a workdir", suffix="_p", stride=8)
    fv(["prog", "--checkpoint=w", "--output_dir=o", "--tile=64", "--face_detector=haar",
        "--face_size=32", "--overwrite"])
    calls = []

    def run(checkpoint, inputs, output_dir, **options):
        calls.append((checkpoint, inputs, output_dir, options))
        return ["o/1.png", "o/2.png"]
    inference.deblur_main(["prog", "1.jpg", "dir"], run, fv)
    (call,) = calls
    log = call[3].pop("log")
    assert callable(log)
    assert call == ("w", ["1.jpg", "dir"], "o", dict(suffix="_p", tile=64, face_detector="haar",
                                                     face_size=32, overwrite=True,
                                                     precision="auto", fused_norm=True,
                                                     xla=False, scale_faces=False,
                                                     max_memory=2.0, quality=95))
    assert capsys.readouterr().out.split() == ["o/1.png", "o/2.png"]
    with pytest.raises(app.UsageError, match="input images"):
        inference.deblur_main(["prog"], run, fv)
    assert "multiple of 8" in fv["tile"].help

    def refuses(checkpoint, inputs, output_dir, **options):
        raise FileExistsError("o/1_p.png exists: pass --overwrite or another --output_dir")
    with pytest.raises(app.UsageError, match="pass --overwrite"):  # one line, no traceback
        inference.deblur_main(["prog", "1.jpg"], refuses, fv)


def test_export_and_safe_load_round_trip(tmp_path):
    import keras
    inp = keras.Input((None, None, 3))
    model = keras.Model(inp, keras.layers.Conv2D(3, 3, padding="same")(inp))
    old_umask = os.umask(0o022)
    try:
        paths = inference.export_model(model, str(tmp_path / "export"))
    finally:
        os.umask(old_umask)
    assert os.stat(paths["keras"]).st_mode & 0o777 == 0o644  # the umask's mode, not mkstemp's 0600
    x = RNG.random((1, 12, 12, 3)).astype(np.float32)
    want = np.asarray(model(x))
    np.testing.assert_allclose(np.asarray(inference.load_keras(paths["keras"])(x)), want, atol=1e-5)
    np.testing.assert_allclose(np.asarray(inference.load_saved_model(paths["saved_model"])(x)), want, atol=1e-5)
    with pytest.raises(FileNotFoundError):
        inference.load_keras(str(tmp_path / "missing.keras"))


def test_float16_weights_halve_the_file_and_load_as_float32(tmp_path):
    import keras
    inp = keras.Input((None, None, 3))
    h = keras.layers.Conv2D(64, 3, padding="same")(inp)
    h = keras.layers.BatchNormalization()(h)
    model = keras.Model(inp, keras.layers.Conv2D(3, 3, padding="same")(h))
    bn = model.layers[2]
    bn.moving_variance.assign(np.full(64, 1e-7, np.float32))  # float16 would flush this to 0
    full = inference.export_model(model, str(tmp_path / "f32"))["keras"]
    half = inference.export_model(model, str(tmp_path / "f16"), weights_dtype="float16")["keras"]
    assert os.path.getsize(half) < 0.6 * os.path.getsize(full)
    loaded = inference.load_keras(half)
    assert {v.dtype for v in loaded.weights} == {"float32"}
    for want, got in zip(model.weights, loaded.weights):
        want = np.asarray(want)
        # kernels (rank >= 2) are rounded to float16, vectors kept exactly
        expect = want.astype(np.float16).astype(np.float32) if want.ndim >= 2 else want
        np.testing.assert_array_equal(np.asarray(got), expect)
    x = RNG.random((1, 12, 12, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), rtol=1e-2, atol=1e-2)
    model.layers[1].kernel.assign(np.full(model.layers[1].kernel.shape, 1e5, np.float32))
    with pytest.raises(ValueError, match="float16 cannot store"):
        inference.export_model(model, str(tmp_path / "big"), weights_dtype="float16")
    assert os.listdir(tmp_path / "big") == []  # no half-written file left behind
