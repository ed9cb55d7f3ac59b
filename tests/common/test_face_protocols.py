"""common.face protocols on hand-made cases, LFW pairs parsing, image sources, plots, a tiny LFW
run, and the `python -m common.face` CLI (--help, one-line flag errors)."""
import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.ndimage

from absl import flags

from common import blur, face
from common.face import cli, lfw
from common.face import evaluate as face_evaluate
from common.face import Box, Detector
from common.paths import SHARED_DATA
from tests.kernel_reference import centroid_offset

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LFW = os.path.join(SHARED_DATA, "lfw")
PAIRS = os.path.join(SHARED_DATA, "lfw_pairs.txt")


def _write_pairs(path, folds):
    """folds: list of (same_lines, diff_lines); each line a tuple of fields."""
    n = len(folds[0][0])
    with open(path, "w") as f:
        f.write(f"{len(folds)}\t{n}\n")
        for same, diff in folds:
            for line in list(same) + list(diff):
                f.write("\t".join(map(str, line)) + "\n")


def test_read_pairs_hand_made(tmp_path):
    p = tmp_path / "pairs.txt"
    _write_pairs(p, [([("Ann", 1, 2)], [("Ann", 1, "Bob", 3)]),
                     ([("Cid", 2, 10)], [("Bob", 1, "Cid", 1)])])
    pairs = face.read_pairs(str(p))
    assert pairs == [
        face.Pair("Ann/Ann_0001.jpg", "Ann/Ann_0002.jpg", True, 0),
        face.Pair("Ann/Ann_0001.jpg", "Bob/Bob_0003.jpg", False, 0),
        face.Pair("Cid/Cid_0002.jpg", "Cid/Cid_0010.jpg", True, 1),
        face.Pair("Bob/Bob_0001.jpg", "Cid/Cid_0001.jpg", False, 1)]
    assert face.unique_images(pairs)[0] == "Ann/Ann_0001.jpg" and len(face.unique_images(pairs)) == 7


def test_read_pairs_errors_name_file(tmp_path):
    p = tmp_path / "bad.txt"
    p.write_text("2\t1\nAnn\t1\t2\n")
    with pytest.raises(ValueError, match="bad.txt"):
        face.read_pairs(str(p))
    with pytest.raises(FileNotFoundError, match="--pairs"):
        face.read_pairs(str(tmp_path / "missing.txt"))


def test_official_pairs_and_balanced_order():
    pairs = face.read_pairs(PAIRS)
    assert len(pairs) == 6000 and sum(p.same for p in pairs) == 3000
    assert [sum(p.fold == f for p in pairs) for f in range(10)] == [600] * 10
    sub = face.subset_pairs(pairs, 3)
    assert len(sub) == 60 and all(sum(p.fold == f and p.same == s for p in sub) == 3
                                  for f in range(10) for s in (True, False))
    order = face.balanced_image_order(pairs)
    assert sorted(order) == face.unique_images(pairs)
    # any prefix long enough for subset n covers it: the images of subset_pairs(pairs, n) come first
    for n in (1, 5):
        need = set(face.unique_images(face.subset_pairs(pairs, n)))
        assert set(order[:len(need)]) == need


def test_landmark_protocol_known_values():
    rng = np.random.default_rng(0)
    gt = np.zeros((3, 68, 2))
    gt[..., 0] = rng.uniform(0, 30, (3, 68))
    gt[..., 1] = rng.uniform(0, 40, (3, 68))
    gt[:, 0] = [0, 0]
    gt[:, 1] = [30, 40]                                   # box 30 x 40 -> diagonal 50
    pred = gt.copy()
    pred[0, :, 0] += 2.5                                  # NME 0.05
    pred[1, :, 1] += 1.0                                  # NME 0.02
    pred[2] = np.nan                                      # landmarker failed -> failure
    r = face.landmark_protocol(pred, gt)
    np.testing.assert_allclose(r["nme"][:2], [0.05, 0.02], rtol=1e-12)
    assert np.isinf(r["nme"][2])
    np.testing.assert_allclose(r["auc"], np.mean([(0.08 - 0.05) / 0.08, (0.08 - 0.02) / 0.08, 0.0]))
    np.testing.assert_allclose(r["failure_rate"], 1 / 3)
    np.testing.assert_allclose(r["mean_nme"], 0.035)
    t, f = r["ced"]
    np.testing.assert_allclose(f[np.searchsorted(t, 0.03)], 1 / 3)
    np.testing.assert_allclose(f[-1], 2 / 3)


def test_identity_similarity_matches_numpy():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(5, 8)), rng.normal(size=(5, 8))
    r = face.identity_similarity(a, b)
    cos = np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    np.testing.assert_allclose(r["cosine"], cos)
    np.testing.assert_allclose([r["mean"], r["std"], r["median"], r["mean_distance"]],
                               [cos.mean(), cos.std(), np.median(cos), (1 - cos).mean()])


def test_lfw_verification_hand_made():
    # 2 folds x 4 pairs; embeddings on the unit circle so cosine = cos(angle).
    ang = np.array([0.1, 0.2, 1.5, 1.4, 0.15, 0.3, 1.6, 0.25])
    same = np.array([1, 1, 0, 0, 1, 1, 0, 0], bool)        # last pair: different but similar
    folds = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    a = np.tile([[1.0, 0.0]], (8, 1))
    b = np.c_[np.cos(ang), np.sin(ang)]
    r = face.lfw_verification(a, b, same, folds)
    np.testing.assert_allclose(r["scores"], np.cos(ang))
    # fold 0 is tested with fold 1's threshold (between cos 0.3 and cos 0.25 -> misclassifies
    # nothing in fold 0); fold 1 with fold 0's threshold (between cos .2 and cos 1.4): its last
    # different pair (cos .25 -> 0.97) is called "same" -> 3/4.
    np.testing.assert_allclose(r["per_fold"], [1.0, 0.75])
    np.testing.assert_allclose([r["mean"], r["std"]], [0.875, 0.125])


def test_probe_gallery_split_and_topk():
    by_id = {f"id{i}": [f"id{i}/{j}.jpg" for j in range(n)] for i, n in enumerate([12, 10, 9, 11, 3])}
    g, gid, p, pid = face.probe_gallery_split(by_id, num_ids=2, gallery_per_id=9, seed=0)
    assert len(set(gid)) == 2 and set(gid) <= {"id0", "id1", "id3"}
    assert all(gid.count(i) == 9 for i in set(gid))
    assert set(g).isdisjoint(p) and set(pid) == set(gid)
    assert len(p) == sum(len(by_id[i]) - 9 for i in set(gid))
    assert face.probe_gallery_split(by_id, 2, 9, seed=0) == (g, gid, p, pid)
    with pytest.raises(ValueError, match="more than 20"):
        face.probe_gallery_split(by_id, 2, 20)
    # top-k on 2-D embeddings: probe 0 nearest its own id, probe 1 second nearest
    gal = np.array([[1, 0], [0, 1], [-1, 0]], float)
    r = face.recognition_topk(np.array([[1, 0.1], [0.9, 0.8]]), ["a", "b2"],
                                   gal, ["a", "b", "b2"], ks=(1, 2, 3))
    # probe 1 (angle ~42 deg) ranks a (cos .75), b (.67), b2 (-.75): true identity third
    assert r == {1: 0.5, 2: 0.5, 3: 1.0}


class _FakeDetector(Detector):
    name = "fake"

    def detect(self, image):
        return [Box(0, 0, 5, 5, 1.0)] if image.mean() > 100 else []


def test_whole_image_box_is_the_no_detection_fallback():
    b = Box.whole_image(np.zeros((40, 30, 3), np.uint8))
    assert (b.left, b.top, b.right, b.bottom, b.score) == (0.0, 0.0, 30.0, 40.0, 0.0)
    assert b.diagonal == 50.0 and Box.whole_image(np.zeros((2, 2)), score=1.0).score == 1.0


def test_detection_success_rate_with_fake_detector():
    imgs = [np.full((8, 8, 3), v, np.uint8) for v in (200, 50, 150, 10)]
    rate, found = face.detection_success_rate(_FakeDetector(), imgs)
    assert rate == 0.5 and found.tolist() == [True, False, True, False]


def test_blurred_source_equals_scipy_convolution():
    sharp = face.ImageSource(LFW)
    kernels = np.zeros((2, 5, 5), np.float32)
    kernels[0, 2, :] = 0.2                                 # horizontal box blur
    kernels[1, :3, 2] = [0.5, 0.3, 0.2]                    # asymmetric vertical: checks the flip
    src = face.BlurredSource(sharp, kernels)
    rel = "Aaron_Eckhart/Aaron_Eckhart_0001.jpg"
    out = src(rel)
    k = kernels[src.kernel_index(rel)]
    img = sharp(rel).astype(np.float64) / 255
    ref = np.stack([scipy.ndimage.convolve(img[..., c], k, mode="reflect") for c in range(3)], -1)
    ref = np.round(ref * 255)
    assert out.dtype == np.uint8 and out.shape == img.shape
    assert np.abs(out.astype(float) - ref).max() <= 1
    np.testing.assert_array_equal(src(rel), out)          # deterministic
    assert np.abs(out.astype(float) - img * 255).mean() > 1  # it did blur


def test_centre_kernels_blurs_without_translating_and_keeps_its_own_cache(tmp_path):
    """--centre_kernels: the blurred source uses Levin et al.'s kernels moved onto their
    centroids (common.blur.centre_kernel), the flag parses, and its embeddings never share a
    cache file with the uncentred blur's."""
    cfg = _parse([f"--output_dir={tmp_path}", "--conditions=sharp,blurred", "--centre_kernels",
                  "--protocols=identity"])
    assert cfg.centre_kernels and not _parse([f"--output_dir={tmp_path}"]).centre_kernels
    ev = face_evaluate.Evaluator(cfg, log=lambda *a: None)
    want = blur.pad_kernels(blur.load_kernel_bank(cfg.blur_kernels, centre=True))
    np.testing.assert_array_equal(ev.sources["blurred"].kernels, want)
    assert np.all(np.abs(centroid_offset(want)) <= 0.5)
    plain = face_evaluate.Evaluator(dataclasses.replace(cfg, centre_kernels=False), log=lambda *a: None)
    assert ev.cache("blurred").path != plain.cache("blurred").path
    assert ev.cache("sharp").path == plain.cache("sharp").path


def test_plots_write_png(tmp_path):
    t = np.linspace(0, 0.08, 5)
    data = face.plot_ced({"s": (t, t / 0.08)}, str(tmp_path / "ced.png"))
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and (tmp_path / "ced.png").read_bytes() == data
    data = face.plot_similarity({"b": np.array([0.5, 0.9, 0.95])}, str(tmp_path / "s.png"))
    assert data[:4] == b"\x89PNG" and (tmp_path / "s.png").stat().st_size == len(data)


def _parse(argv):
    """The CLI's flags parsed into an EvalConfig (a fresh FlagValues, so tests do not share FLAGS)."""
    fv = cli.define_flags(flags.FlagValues())
    fv(["common.face"] + argv)
    return cli.config_from_flags(fv)


def test_cli_on_tiny_pairs_subset(tmp_path):
    pairs = face.read_pairs(PAIRS)
    p = tmp_path / "pairs.txt"
    # 2 folds x (1 same + 1 different) pairs from the official file
    fold_lines = []
    for f in (0, 1):
        s = next(x for x in pairs if x.fold == f and x.same)
        d = next(x for x in pairs if x.fold == f and not x.same)
        name = s.a.split("/")[0]
        fold_lines.append(([(name, int(s.a[-8:-4]), int(s.b[-8:-4]))],
                           [(d.a.split("/")[0], int(d.a[-8:-4]), d.b.split("/")[0], int(d.b[-8:-4]))]))
    _write_pairs(p, fold_lines)
    out = tmp_path / "out"
    cfg = _parse([f"--output_dir={out}", f"--pairs={p}", f"--lfw_dir={LFW}",
                  "--protocols=verification,landmarks,detection,identity",
                  "--conditions=sharp,blurred", "--detectors=haar", "--num_images=3"])
    returned = face.run(cfg)
    assert set(returned["tables"]) == {"verification", "landmarks", "detection", "identity"}
    res = json.loads((out / "results.json").read_text())
    assert set(res["verification"]) == {"sharp", "blurred"}
    assert len(res["verification"]["sharp"]["per_fold"]) == 2
    lm = res["landmarks"]
    assert lm["sharp"]["auc"] == 1.0 and lm["sharp"]["failure_rate"] == 0.0  # pseudo-GT oracle
    assert 0.0 <= lm["blurred"]["auc"] < 1.0
    assert res["detection"]["haar"]["sharp"] == 1.0
    assert -1.0 <= res["identity"]["blurred"]["mean"] < 1.0
    for f in ("results.md", "verification.csv", "landmarks.csv", "detection.csv", "ced.png",
              "identity_similarity.png"):
        assert (out / f).stat().st_size > 0, f
    assert any(n.startswith("events.out.tfevents") for n in os.listdir(out / "tensorboard"))
    assert "pseudo-GT" in (out / "results.md").read_text()
    from common.report import Table
    t = Table.from_csv(str(out / "verification.csv"))
    assert t.columns == ["accuracy %"] and [r[0] for r in t.rows] == ["sharp", "blurred"]
    np.testing.assert_allclose(t.value("sharp", "accuracy %")[0], 100 * res["verification"]["sharp"]["mean"])
    # --pairs_per_fold=-1 reuses the embedding cache: the largest covered subset is all (1 per class)
    out2 = tmp_path / "out2"
    face.run(_parse([f"--output_dir={out2}", f"--pairs={p}", f"--lfw_dir={LFW}",
                     f"--cache_dir={out / 'cache'}", "--protocols=verification", "--pairs_per_fold=-1"]))
    res2 = json.loads((out2 / "results.json").read_text())
    assert res2["config"]["pairs_per_fold"] == 1
    assert res2["verification"] == res["verification"]


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "common.face", *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": REPO})


@pytest.mark.parametrize("args,flag", [
    (["--protocols=verification,nope"], "--protocols"),
    (["--conditions=sharp,restored", "--protocols=detection"], "--restored_dir"),
    (["--conditions=blurred", "--protocols=landmarks"], "must include 'sharp'"),
    (["--identity_model=vgg"], "--identity_model"),
    (["--num_images=many"], "--num_images"),
    (["--no_such_flag=1"], "no_such_flag"),
    ([], "--output_dir"),
])
def test_cli_bad_flag_is_one_fatal_line_and_exit_1(tmp_path, args, flag):
    if args:
        args = [f"--output_dir={tmp_path}", *args]
    r = _cli(*args)
    assert r.returncode == 1, (r.stdout, r.stderr)
    fatal = [ln for ln in r.stderr.splitlines() if ln.startswith("FATAL Flags parsing error")]
    assert len(fatal) == 1 and flag in fatal[0], r.stderr
    assert "Traceback" not in r.stderr and not os.listdir(tmp_path)


def test_cli_help_lists_the_evaluation_flags():
    r = _cli("--help")
    assert "Traceback" not in r.stderr, r.stderr
    for flag in ("--output_dir", "--protocols", "--conditions", "--restored_dir", "--pairs_per_fold"):
        assert flag in r.stdout, (flag, r.stdout)


def test_config_rules_match_the_flag_validators(tmp_path):
    """The same rule rejects a bad combination from Python (ValueError) and from the CLI."""
    with pytest.raises(ValueError, match="--protocols"):
        face.default_config(output_dir=str(tmp_path), protocols=["nope"])
    with pytest.raises(ValueError, match="--restored_dir"):
        face.default_config(output_dir=str(tmp_path), conditions=["sharp", "restored"])
    with pytest.raises(ValueError, match="--output_dir"):
        face.default_config()
    with pytest.raises(flags.IllegalFlagValueError, match="--restored_dir"):
        _parse([f"--output_dir={tmp_path}", "--conditions=sharp,restored"])


def test_restored_source_mirrors_lfw_layout(tmp_path):
    from common import image_io
    img = np.zeros((6, 5, 3), np.uint8)
    img[1, 2] = [10, 200, 30]
    image_io.write_image(str(tmp_path / "Ann" / "Ann_0001.png"), img)   # another extension than LFW's
    src = face.RestoredSource(str(tmp_path))
    np.testing.assert_array_equal(src("Ann/Ann_0001.jpg"), img)
    with pytest.raises(FileNotFoundError, match="Ann/Ann_0002.jpg"):
        src("Ann/Ann_0002.jpg")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        face.RestoredSource(str(tmp_path / "nowhere"))


def test_default_config_for_paper_scripts(tmp_path):
    cfg = face.default_config(output_dir=str(tmp_path), protocols=["verification"])
    assert cfg.pairs == PAIRS and cfg.conditions == ["sharp", "blurred"] and cfg.max_error == 0.08
    assert cfg.num_ids == 100 and cfg.gallery_per_id == 9
    with pytest.raises(ValueError, match="unknown option"):
        face.default_config(output_dir=str(tmp_path), nope=1)


def test_lfw_helpers_on_a_hand_made_folder(tmp_path):
    for rel in ("Ann/Ann_0001.jpg", "Ann/Ann_0002.png", "Ann/notes.txt", "Bob/Bob_0001.jpg"):
        (tmp_path / rel).parent.mkdir(exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    assert lfw.images_by_identity(str(tmp_path)) == {"Ann": ["Ann/Ann_0001.jpg", "Ann/Ann_0002.png"],
                                                     "Bob": ["Bob/Bob_0001.jpg"]}
    pairs = face.read_pairs(PAIRS)
    assert lfw.pairs_per_class(pairs) == 300 and lfw.pairs_per_class(face.subset_pairs(pairs, 4)) == 4
    sub = lfw.image_subset(pairs, 5, seed=1)
    assert len(sub) == 5 and sub == sorted(sub) and set(sub) <= set(face.unique_images(pairs))
    assert sub == lfw.image_subset(pairs, 5, seed=1) and lfw.image_subset(pairs[:2], 0) == \
        face.unique_images(pairs[:2])


def test_embedding_cache_round_trip(tmp_path):
    from common.face.cache import EmbeddingCache
    path = str(tmp_path / "c" / "emb.npz")
    cache = EmbeddingCache(path)
    assert cache.data == {}
    cache.save()                      # nothing to save: no file
    assert not os.path.exists(path)
    cache.data = {"b.jpg": np.array([0.0, 1.0]), "a.jpg": np.array([1.0, 0.0])}
    cache.save()
    again = EmbeddingCache(path)
    assert sorted(again.data) == ["a.jpg", "b.jpg"]
    np.testing.assert_array_equal(again.data["b.jpg"], [0.0, 1.0])


def test_cli_missing_input_is_one_fatal_line(tmp_path):
    r = _cli(f"--output_dir={tmp_path / 'out'}", f"--lfw_dir={tmp_path / 'no_lfw'}", "--protocols=detection")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().splitlines()[-1] == f"FATAL common.face: image folder {tmp_path / 'no_lfw'} not found"
