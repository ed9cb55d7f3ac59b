"""evaluate tables, the deblur CLI on files, and export/load of the trained smoke run."""
import os

import numpy as np
import pytest

from common import image_io, inference
from paper3_umsn import deblur, evaluate, export, models


def test_evaluate_prints_tables_with_paper_numbers(stages, umsn_run):
    result = evaluate.measure(stages["umsn"], "data/sample/test_faces", num_images=4, run=umsn_run)
    assert result["restored"].shape == (4, 32, 32, 3)
    np.testing.assert_allclose(result["psnr_blurred"], [
        -10 * np.log10(np.mean((b - s) ** 2)) for b, s in zip(result["blurred"], result["sharp"])], rtol=1e-4)
    t3, t1_region, t1_masked, t6 = evaluate.tables(result, "celeba", [result])
    text = str(t3)
    assert "Table III" in text and "25.90" in text and "UMSN" in text
    assert "(region)" in str(t1_region) and "(masked_image)" in str(t1_masked)
    assert "29.27" in str(t1_masked) and "class-3 PSNR" in str(t1_masked)
    assert "29.27" not in str(t1_region)   # the paper's row only beside the matching convention
    # masked-image PSNR: the class's squared error over the whole frame (NumPy recomputation)
    cls = result["classes"]
    for k in range(4):
        col = f"class-{k + 1} PSNR"
        want = []
        for r, x, c in zip(result["restored"], result["sharp"], cls):
            m = (c == k)[..., None]
            if m.any():
                want.append(-10 * np.log10(np.mean((m * (r.astype(np.float64) - x)) ** 2)))
        if want:
            assert t1_masked.value("UMSN", col) == pytest.approx(np.mean(want), rel=1e-4), col
            assert t1_masked.value("UMSN", col) >= t1_region.value("UMSN", col) - 1e-9, col
    assert "25.90" in str(t6)
    assert t3.value("Blurred input", "PSNR") == pytest.approx(float(np.mean(result["psnr_blurred"])))


def test_deblur_cli_on_files_of_any_size(stages, shared_load_run, tmp_path):
    src = tmp_path / "in"
    rng = np.random.default_rng(0)
    image_io.write_image(str(src / "odd.png"), (rng.random((37, 45, 3)) * 255).astype(np.uint8))
    image_io.write_image(str(src / "b.jpg"), (rng.random((24, 24, 3)) * 255).astype(np.uint8))
    before = {p: open(src / p, "rb").read() for p in os.listdir(src)}
    outs = deblur.run(stages["umsn"], [str(src)], str(tmp_path / "out"))
    assert shared_load_run == [stages["umsn"]]   # the workdir was rebuilt through export.load_deblurrer
    shapes = sorted(image_io.read_image(p).shape for p in outs)
    assert shapes == [(24, 24, 3), (37, 45, 3)]
    assert all(p.endswith("_umsn.png") for p in outs)
    assert {p: open(src / p, "rb").read() for p in os.listdir(src)} == before
    with pytest.raises(ValueError, match="overwrite the input"):
        deblur.run(stages["umsn"], [str(src / "odd.png")], str(src), suffix="")


def test_export_round_trip_safe_mode(stages, umsn_run, shared_load_run, tmp_path):
    paths = export.export(stages["umsn"], str(tmp_path / "exp"))
    model = umsn_run[1]
    x = np.random.default_rng(1).random((1, 16, 20, 3)).astype(np.float32)
    want = np.asarray(model(x))
    loaded = inference.load_keras(paths["keras"])
    assert isinstance(loaded, models.UMSNDeblurrer)
    np.testing.assert_allclose(np.asarray(loaded(x)), want, atol=1e-5)
    np.testing.assert_allclose(np.asarray(inference.load_saved_model(paths["saved_model"])(x)), want, atol=1e-5)


def test_init_model_starts_sn_and_umsn_from_an_exported_model(stages, umsn_run, shared_load_run,
                                                             tmp_path):
    """--init_model (fine-tuning, e.g. the demo from the shipped weights) copies SN and UMSN."""
    import tensorflow as tf
    from tests.paper3_umsn.conftest import _config
    from paper3_umsn import train
    paths = export.export(stages["umsn"], str(tmp_path / "exp"))
    config = _config(str(tmp_path / "ft"), "--stage=umsn", "--lambda_1=0",
                     f"--init_model={paths['keras']}")
    stage = train.make_stage(config, tf.distribute.get_strategy())
    model = umsn_run[1]
    for got, want in ((stage.sn, model.sn), (stage.umsn, model.umsn)):
        assert len(got.weights) == len(want.weights) > 0
        for a, b in zip(got.weights, want.weights):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not stage.sn.trainable
    with pytest.raises(ValueError, match="does not match --variant=small"):
        train.make_stage(_config(str(tmp_path / "ft2"), "--stage=umsn", "--lambda_1=0",
                            "--variant=small", f"--init_model={paths['keras']}"),
                    tf.distribute.get_strategy())


def test_deblur_without_checkpoint_names_the_flag_when_weights_are_missing(monkeypatch, tmp_path):
    monkeypatch.setattr(deblur, "SHIPPED", str(tmp_path / "weights" / "umsn_small.keras"))
    with pytest.raises(FileNotFoundError, match="--checkpoint not given"):
        deblur.load_model(None)


def test_evaluate_on_a_stored_blur_test_set_never_reblurs(stages, umsn_run, tmp_path):
    """Tables III/I on the folder layout (Shen et al. / GoPro style, written as data.build does):
    the stored blurred images are scored as they are, the stored masks are Table I's classes, and
    every row of the paper's Table III is printed, with --compare rows measured."""
    from tests.common.test_evaluation import make_folder
    root = make_folder(tmp_path / "shen", n=3, kernels=True, masks=True)
    result = evaluate.measure(stages["umsn"], root, num_images=3, run=umsn_run,
                               compare=["unsharp", "wiener"])
    names = sorted(os.listdir(os.path.join(root, "blurred")))
    stored = np.stack([image_io.read_image(os.path.join(root, "blurred", n)) for n in names])
    np.testing.assert_array_equal(image_io.to_uint8(result["blurred"]), stored)   # not re-blurred
    masks = np.stack([image_io.read_image(os.path.join(root, "masks", n))[..., 0] for n in names])
    np.testing.assert_array_equal(result["classes"], masks)
    assert result["restored"].shape == (3, 64, 64, 3)
    t3, t1_region, _ = evaluate.tables(result, "helen")
    for row in evaluate.PAPER_TABLE_III:
        if row != "UMSN":
            assert t3.value(row, "PSNR", "paper") == evaluate.PAPER_TABLE_III[row]["helen"][0]
    assert t3.value("wiener (measured)", "PSNR") > t3.value("Blurred input", "PSNR")
    assert t3.value("unsharp (measured)", "SSIM") == pytest.approx(result["compare"]["unsharp"]["ssim"])
    assert "masks stored" in t1_region.title
    assert t1_region.value("wiener (measured)", "class-2 PSNR") is not None
    assert t1_region.value("Ziyi et al. [9]", "class-1 PSNR", "paper") is None   # masked-image table only
    with pytest.raises(ValueError, match="stores no sharp"):
        os.rename(os.path.join(root, "sharp"), os.path.join(root, "gone"))
        evaluate.measure(stages["umsn"], root, run=umsn_run)


def test_benchmark_workdir_spec_loads_through_load_method(stages, umsn_run, shared_load_run):
    from common.evaluation import methods
    m = methods.resolve_method(stages["umsn"])   # paper 3 detected from flags.txt
    config, model = umsn_run
    assert m.kind == "paper3" and m.stride == models.UMSN_STRIDE
    assert m.num_params == model.count_params() > 0
    x = np.random.default_rng(0).random((1, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(m(x), np.clip(np.asarray(model(x)), 0, 1), atol=1e-6)
