"""common.evaluation + common.compare: fixed test sets, methods, metrics, the benchmark CLI.

Cheap: a few 64x64 crops of data/sample/test_faces written to tmp; face models only in the one
test that checks them.
"""
import json
import os
import shutil
import types

import numpy as np
import pytest
from scipy import ndimage
from skimage.io import imread
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from common import compare, image_io, metrics, tfrecord
from common.evaluation import methods, runner, stored_sets
from common.paths import REPO_ROOT

FACES = os.path.join(os.path.dirname(__file__), "..", "..", "data", "sample", "test_faces")
SIZE = 64


def _gauss_kernel(size=7, sigma=1.5):
    r = np.arange(size) - size // 2
    k = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * sigma ** 2))
    return (k / k.sum()).astype(np.float32)


def _faces(n):
    out = []
    for f in sorted(os.listdir(FACES))[:n]:
        img = image_io.read_image(os.path.join(FACES, f))
        t = (img.shape[0] - SIZE) // 2
        out.append((os.path.splitext(f)[0], img[t:t + SIZE, t:t + SIZE]))
    return out


def _blur(img, k):
    x = img.astype(np.float64) / 255.0
    y = np.stack([ndimage.convolve(x[..., c], k, mode="reflect") for c in range(3)], -1)
    return image_io.to_uint8(y)


def make_folder(root, n=3, kernels=False, masks=False, landmarks=False, ids=False):
    """The folder layout: blurred/ + sharp/ (GoPro convention) and optional extras."""
    k = _gauss_kernel()
    for name, img in _faces(n):
        image_io.write_image(os.path.join(root, "sharp", name + ".png"), img)
        image_io.write_image(os.path.join(root, "blurred", name + ".png"), _blur(img, k))
        if kernels:
            os.makedirs(os.path.join(root, "kernels"), exist_ok=True)
            np.save(os.path.join(root, "kernels", name + ".npy"), k)
        if masks:
            m = np.zeros((SIZE, SIZE), np.uint8)
            m[16:48, 16:48], m[24:40, 24:40], m[:8] = 1, 2, 3
            image_io.write_image(os.path.join(root, "masks", name + ".png"), m)
        if landmarks:
            os.makedirs(os.path.join(root, "landmarks"), exist_ok=True)
            np.save(os.path.join(root, "landmarks", name + ".npy"),
                    np.random.default_rng(0).uniform(10, 50, (68, 2)).astype(np.float32))
    if ids:
        with open(os.path.join(root, "identities.txt"), "w") as f:
            f.writelines(f"{name}\tperson{i}\n" for i, (name, _) in enumerate(_faces(n)))
    return str(root)


def _cfg(test_set, out, method=(), **kw):
    base = dict(test_set=test_set, output_dir=out, method=list(method), face_metrics=False,
                num_images=0, contact_rows=2, detector="mtcnn", identity_model="dlib_resnet",
                vgg_face_weights=None, dlib_models_dir=None, restart=False)
    base.update(kw)
    return types.SimpleNamespace(**base)


# ----------------------------------------------------------------------------- done-when test
def test_benchmark_gopro_folder_blurred_row_equals_skimage_and_resumes(tmp_path):
    ts = make_folder(tmp_path / "gopro", n=3)
    out = str(tmp_path / "out")
    logs = []
    compare.run(_cfg(ts, out, ["unsharp"]), log=logs.append)
    res = json.load(open(os.path.join(out, "results.json")))
    assert [m["method"]["name"] for m in res["methods"]] == ["blurred", "unsharp"]
    names = sorted(os.listdir(os.path.join(ts, "blurred")))
    pairs = [(imread(os.path.join(ts, "blurred", n)), imread(os.path.join(ts, "sharp", n))) for n in names]
    want_psnr = np.mean([peak_signal_noise_ratio(s, b, data_range=255) for b, s in pairs])
    want_ssim = np.mean([structural_similarity(s, b, data_range=255, channel_axis=-1, gaussian_weights=True,
                                               sigma=1.5, use_sample_covariance=False) for b, s in pairs])
    blurred = res["methods"][0]["summary"]
    assert blurred["psnr"] == pytest.approx(want_psnr, abs=1e-9)
    assert blurred["ssim"] == pytest.approx(want_ssim, abs=1e-9)
    assert blurred["num_images"] == 3 and blurred["face_boxes_detected"] == 0   # no face models: centre box
    for f in ("results.md", "results.csv", "contact_sheet.png"):
        assert os.path.getsize(os.path.join(out, f)) > 0
    md = open(os.path.join(out, "results.md")).read()
    assert md.index("| blurred") < md.index("| unsharp")
    assert os.listdir(os.path.join(out, "tensorboard", "unsharp"))
    sheet = image_io.read_image(os.path.join(out, "contact_sheet.png"))
    assert sheet.shape[0] > 2 * SIZE and sheet.shape[1] > 3 * SIZE   # 2 rows x (2 methods + ground truth)
    # resume: a rerun skips both methods; a changed spec under the same name is re-scored
    logs.clear()
    compare.run(_cfg(ts, out, ["unsharp"]), log=logs.append)
    assert sum("skipped" in line for line in logs) == 2
    logs.clear()
    compare.run(_cfg(ts, out, ["unsharp=unsharp,stride=4"]), log=logs.append)
    assert sum("skipped" in line for line in logs) == 1


def test_wiener_and_rl_use_stored_kernels_and_beat_the_blurred_input(tmp_path):
    ts = stored_sets.load_test_set(make_folder(tmp_path / "k", n=2, kernels=True))
    assert ts.has_kernels and ts.kind == "folder"
    base = runner.evaluate(methods.resolve_method("blurred"), ts).summary["psnr"]
    for spec in ("wiener", "rl"):
        m = methods.resolve_method(spec)
        assert m.needs_kernel and m.num_params == 0
        assert runner.evaluate(m, ts).summary["psnr"] > base + 1.0, spec
    plain = stored_sets.load_test_set(make_folder(tmp_path / "nok", n=1))
    with pytest.raises(ValueError, match="stores none"):
        runner.evaluate(methods.resolve_method("wiener"), plain)
    with pytest.raises(ValueError, match="kernels/NAME.npy"):
        compare.run(_cfg(str(tmp_path / "nok"), str(tmp_path / "o"), ["rl"]))


def test_unsharp_equals_numpy():
    x = np.random.default_rng(1).random((2, 20, 24, 3)).astype(np.float32)
    g = np.stack([np.stack([ndimage.gaussian_filter(x[b, ..., c].astype(np.float64), 2.0, mode="reflect")
                            for c in range(3)], -1) for b in range(2)])
    want = np.clip(x + (x - g), 0, 1)
    np.testing.assert_allclose(methods.resolve_method("unsharp")(x), want, atol=1e-6)


def test_per_class_and_face_region_metrics_against_common_metrics(tmp_path):
    ts = stored_sets.load_test_set(make_folder(tmp_path / "m", n=2, masks=True, landmarks=True, ids=True))
    assert ts.has_masks and ts.has_landmarks and ts.has_identities
    assert ts.samples[0].identity == "person0"
    r = runner.evaluate(methods.resolve_method("blurred"), ts)
    s = ts.samples[1]
    pc = metrics.per_class_psnr_ssim(s.blurred, s.sharp, s.mask.astype(np.int64))
    row = r.per_image[1]
    for k in range(4):
        assert row[f"class{k}_psnr"] == pytest.approx(pc["psnr"][k])
        assert row[f"class{k}_ssim"] == pytest.approx(pc["ssim"][k])
    c = slice(SIZE // 4, 3 * SIZE // 4)   # no face models: the centre half is the face region
    assert row["face_psnr"] == pytest.approx(metrics.psnr(s.blurred[c, c], s.sharp[c, c]))
    assert row["face_box"] == "centre"
    assert r.summary["class2_psnr"] == pytest.approx(np.mean([p["class2_psnr"] for p in r.per_image]))


def test_folder_errors_are_one_line_and_name_the_file(tmp_path):
    root = make_folder(tmp_path / "bad", n=2)
    os.remove(os.path.join(root, "sharp", sorted(os.listdir(os.path.join(root, "sharp")))[0]))
    with pytest.raises(FileNotFoundError, match="same file name"):
        stored_sets.load_test_set(root)
    only_sharp = tmp_path / "only_sharp"
    image_io.write_image(str(only_sharp / "sharp" / "a.png"), np.zeros((16, 16, 3), np.uint8))
    with pytest.raises(ValueError, match="never re-blurs"):
        stored_sets.load_test_set(str(only_sharp))
    with pytest.raises(FileNotFoundError, match="not found"):
        stored_sets.load_test_set(str(tmp_path / "missing"))


def test_tfrecords_and_no_reference_sets(tmp_path):
    k = _gauss_kernel()
    faces = _faces(2)
    path = str(tmp_path / "rec" / "test-00000-of-00001.tfrecord")
    mask = np.zeros((SIZE, SIZE), np.uint8)
    with tfrecord.ShardedWriter(str(tmp_path / "rec"), "test", 1) as w:
        for i, (name, img) in enumerate(faces):
            w.write(tfrecord.make_example(sharp=img, blurred=_blur(img, k), kernel=k, mask=mask,
                                          identity=i, source=name + ".jpg"))
    assert os.path.isfile(path)
    ts = stored_sets.load_test_set(str(tmp_path / "rec"))
    assert ts.kind == "tfrecord" and len(ts) == 2 and ts.has_kernels and ts.has_masks
    np.testing.assert_array_equal(ts.samples[1].blurred, _blur(faces[1][1], k))   # stored, not re-blurred
    assert ts.samples[0].name.endswith(faces[0][0]) and ts.samples[1].identity == "1"
    with tfrecord.ShardedWriter(str(tmp_path / "sharp_only"), "t", 1) as w:
        w.write(tfrecord.make_example(sharp=faces[0][1]))
    with pytest.raises(ValueError, match="never re-blurs"):
        stored_sets.load_test_set(str(tmp_path / "sharp_only"))
    # no reference: a folder of blurry photos -> ms (and detection with face models) only
    for name, img in faces:
        image_io.write_image(str(tmp_path / "real" / (name + ".jpg")), img)
    real = stored_sets.load_test_set(str(tmp_path / "real"))
    assert real.kind == "no_reference" and not real.has_reference
    out = str(tmp_path / "o")
    res = compare.run(_cfg(str(tmp_path / "real"), out, ["unsharp"]), log=lambda *_: None)
    assert "psnr" not in res[0].summary and "ms_per_image" in res[0].summary
    assert os.path.isfile(os.path.join(out, "contact_sheet.png"))


def test_method_specs(tmp_path, monkeypatch):
    assert methods.parse_method_flag("blurred") == ("blurred", "blurred")
    assert methods.parse_method_flag("umsn=paper3:/tmp/run/umsn") == ("umsn", "paper3:/tmp/run/umsn")
    assert methods.parse_method_flag("/x/model.keras") == ("model", "/x/model.keras")
    assert methods.parse_method_flag("paper3_umsn/umsn_small")[0] == "umsn_small"
    assert compare.ordered_methods(["wiener", "blurred"])[0] == ("blurred", "blurred")
    with pytest.raises(ValueError, match="duplicate"):
        compare.ordered_methods(["a=wiener", "a=rl"])
    # workdir detection from flags.txt
    for flag, paper in (("--ablation=umsn", "paper3"), ("--use_hg", "paper2"), ("--recurrent=lstm", "paper1")):
        wd = tmp_path / paper
        wd.mkdir()
        (wd / "flags.txt").write_text(f"--seed=0\n{flag}\n")
        assert methods.detect_paper(str(wd)) == paper
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "flags.txt").write_text("--seed=0\n")
    with pytest.raises(ValueError, match="paper1:DIR"):
        methods.resolve_method(str(tmp_path / "other"))
    with pytest.raises(ValueError, match="not a classical method"):
        methods.resolve_method("x=/nonexistent/thing")
    # a user's callable
    mod = tmp_path / "userdeblur.py"
    mod.write_text("def deblur(x):\n    return x * 0.5\ndeblur.num_params = 7\ndeblur.stride = 4\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    m = methods.resolve_method("mine=userdeblur:deblur")
    assert (m.name, m.kind, m.num_params, m.stride) == ("mine", "callable", 7, 4)
    np.testing.assert_allclose(m(np.ones((1, 4, 4, 3))), 0.5)


def test_keras_shipped_and_saved_model_methods(tmp_path, monkeypatch):
    import keras
    from common import inference
    inp = keras.Input((None, None, 3))
    model = keras.Model(inp, keras.layers.Conv2D(3, 3, padding="same")(inp))
    weights = tmp_path / "repo" / "paper3_umsn" / "weights"
    paths = inference.export_model(model, str(weights), name="tiny")
    x = np.random.default_rng(0).random((1, 12, 12, 3)).astype(np.float32)
    want = np.clip(np.asarray(model(x)), 0, 1)
    monkeypatch.setattr(methods, "REPO_ROOT", str(tmp_path / "repo"))
    for spec in ("shipped:paper3_umsn/tiny", "paper3_umsn/tiny", paths["keras"]):
        m = methods.resolve_method(spec)
        assert m.kind == "keras" and m.num_params == 84 and m.stride == 4, spec   # paper 3's stride
        np.testing.assert_allclose(m(x), want, atol=1e-5)
    sm = methods.resolve_method("sm=" + paths["saved_model"])
    assert sm.kind == "saved_model" and sm.num_params == 84
    np.testing.assert_allclose(sm(x), want, atol=1e-5)
    with pytest.raises(FileNotFoundError, match="not found"):
        methods.resolve_method("shipped:paper3_umsn/missing")
    # Outside a paper package: the stride of the loaded model's paper (an export dir), or 1.
    plain = inference.export_model(model, str(tmp_path / "elsewhere"), name="plain")
    assert methods.resolve_method(plain["keras"]).stride == 1
    export = tmp_path / "umsn_export"
    export.mkdir()
    shutil.copy(os.path.join(REPO_ROOT, "paper3_umsn", "weights", "umsn_small.keras"), export)
    assert methods.resolve_method(str(export / "umsn_small.keras")).stride == 4


def test_face_metrics_with_face_models(tmp_path):
    from common.face import FaceModels
    root = make_folder(tmp_path / "f", n=2)
    for name in os.listdir(os.path.join(root, "sharp")):   # whole faces: the detector needs them
        img = image_io.read_image(os.path.join(FACES, os.path.splitext(name)[0] + ".jpg"))
        image_io.write_image(os.path.join(root, "sharp", name), img)
        image_io.write_image(os.path.join(root, "blurred", name), _blur(img, _gauss_kernel()))
    ts = stored_sets.load_test_set(root)
    fm = FaceModels(detector="dlib")
    s = runner.evaluate(methods.resolve_method("blurred"), ts, face=fm).summary
    assert s["face_boxes_detected"] == 2 and s["detection_rate"] == 1.0
    assert 0.8 < s["identity_cosine"] < 1.0 and 0.0 < s["nme"] < 0.08
    assert s["landmarks_gt"].startswith("dlib68 on sharp")
    # the sharp image itself: cosine 1, NME 0 against its own pseudo ground truth
    sharp = ts.samples[0]
    r = runner.image_metrics(sharp, sharp.sharp, fm)
    assert r["identity_cosine"] == pytest.approx(1.0) and r["nme"] == pytest.approx(0.0)
