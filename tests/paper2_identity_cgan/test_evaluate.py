"""Paper-2 evaluation helpers: protocol pairs vs NumPy, table layout (no network needed)."""
import numpy as np

from paper2_identity_cgan import evaluate


def _seqs(n=21, size=16):
    rng = np.random.default_rng(0)
    return [("a", (rng.random((n, size, size, 3)) * 255).astype(np.uint8)),
            ("short", (rng.random((5, size, size, 3)) * 255).astype(np.uint8))]


def test_pravg_protocol_is_the_centred_window_mean():
    seqs = _seqs()
    b, s = evaluate.make_protocol_pairs(seqs, "pravg7")
    assert b.shape == (1, 16, 16, 3)  # the 5-frame sequence is too short for L = 7
    frames = seqs[0][1].astype(np.float64) / 255
    np.testing.assert_allclose(b[0], frames[7:14].mean(0), atol=1e-6)
    np.testing.assert_allclose(s[0], frames[10], atol=1e-7)
    b5, _ = evaluate.make_protocol_pairs(seqs, "pravg21")
    np.testing.assert_allclose(b5[0], frames.mean(0), atol=1e-6)


def test_synthetic_protocol_is_deterministic_and_blurs():
    seqs = _seqs()
    b1, s1 = evaluate.make_protocol_pairs(seqs, "synthetic", seed=3)
    b2, _ = evaluate.make_protocol_pairs(seqs, "synthetic", seed=3)
    np.testing.assert_array_equal(b1, b2)
    assert len(b1) == 2 and np.abs(b1 - s1).mean() > 1e-3


def test_tables_put_paper_numbers_beside_ours():
    r = {"psnr": 25.0, "ssim": 0.9, "auc": 0.7, "failure": 5.0, "n": 3}
    results = {"pravg7": {"final": r, "blurred": dict(r, psnr=24.0), "oracle": dict(r, auc=1.0)}}
    ver = {"final": {7: (0.8, 0.01), 11: (0.7, 0.02)}, "blurred": {7: (0.75, 0.0), 11: (0.7, 0.0)}}
    ts = evaluate.tables(results, ver, 40, ["final"])
    titles = [t.title for t in ts]
    assert titles[0].startswith("Table 4") and titles[1].startswith("Table 5")
    assert titles[-1].startswith("Table 8")
    assert ts[1].value("ours", "AUC") == 0.7
    assert ts[1].value("ours", "AUC", "paper") == 0.798
    assert ts[0].value("final", "SSIM", "paper") == 0.93501
    assert ts[-1].value("blurred", "PrAvg 7", "paper") == (0.8414, 0.0206)
    assert "ours: 3 held-out test images" in str(ts[0])


def test_evaluate_protocols_with_the_common_face_models():
    """Landmarks and identity through common.face.FaceModels on 2 real held-out faces: the oracle
    row is perfect by construction and an identity 'model' equals the blurred row."""
    from common.face import FaceModels
    from paper2_identity_cgan import data as p2data
    seqs = list(p2data.still_sequences("data/sample/test_faces", 21, 128, limit=2))
    tools = FaceModels(identity_model="dlib_resnet", landmarker="dlib68", detector="", box_detector="dlib")
    from common.evaluation import methods, runner
    unsharp = methods.resolve_method("unsharp")
    models_ = {"final": lambda x: x, "unsharp": lambda x: runner.restore_images(unsharp, x)}
    results = evaluate.evaluate_protocols(models_, seqs, ["pravg7"], tools)
    res = results["pravg7"]
    assert res["oracle"]["auc"] == 1.0 and res["oracle"]["failure"] == 0.0
    np.testing.assert_allclose(res["oracle"]["cosine"], 1.0, atol=1e-9)
    for key in ("psnr", "ssim", "auc", "failure", "cosine"):
        assert res["final"][key] == res["blurred"][key], key
    assert 0.0 < res["blurred"]["auc"] < 1.0 and len(tools.boxes) == 2
    assert res["unsharp"]["psnr"] != res["blurred"]["psnr"]
    # every compared method of the paper's Table 5 is a row (paper numbers), then the measured one
    t5 = evaluate.tables(results, model_names=["final"], compare_names=["unsharp"])[1]
    for name, vals in evaluate.PAPER_COMPARISON.items():
        assert t5.value(name, "AUC", "paper") == vals["pravg7"][0]
    assert t5.value("unsharp (measured)", "PSNR") == res["unsharp"]["psnr"]
    assert [r[0] for r in t5.rows][-3:] == ["ours", "blurred", "oracle"]
