"""Tables IV (identity distance) and V (recognition) of paper3_umsn.evaluate on real LFW faces
with the dlib models (installed by the face extra), checked with "models" whose answer is known
and against a NumPy nearest-neighbour recomputation."""
import os

import numpy as np
import pytest

from common import paths
from paper3_umsn import evaluate

LFW = os.path.join(paths.SHARED_DATA, "lfw")
# three identities with at least four images each (gallery 3 + the probes)
IDS = ("Alejandro_Toledo", "Alvaro_Uribe", "Amelie_Mauresmo")
KERNELS = np.stack([np.eye(9, dtype=np.float32) / 9.0, np.full((9, 9), 1 / 81.0, np.float32)])


@pytest.fixture(scope="module")
def fm():
    if not os.path.isdir(LFW):
        pytest.skip(f"shared LFW not found at {LFW} (set FACEDEBLUR_SHARED_DATA)")
    from common.face import FaceBackendMissing
    try:
        return evaluate.build_face_models("dlib_resnet")
    except (FaceBackendMissing, FileNotFoundError) as e:
        pytest.skip(f"dlib face models missing: {e}")


def _load(rel, cache={}):
    if rel not in cache:
        from common import image_io
        cache[rel] = evaluate.centre_crop(image_io.read_image(os.path.join(LFW, rel)), 150)
    return cache[rel]


def test_centre_crop_and_blur_are_deterministic_per_image():
    img = np.arange(10 * 12 * 3, dtype=np.uint8).reshape(10, 12, 3)
    np.testing.assert_array_equal(evaluate.centre_crop(img, 4), img[3:7, 4:8])
    assert evaluate.centre_crop(img, 150) is img
    faces = {"a": np.full((20, 20, 3), 128, np.uint8)}
    blur = evaluate.make_blur(KERNELS, 0.05, faces.__getitem__, seed=1)
    np.testing.assert_array_equal(blur("a"), blur("a"))
    assert not np.array_equal(blur("a", 0), blur("a", 1))   # another key: other noise (and kernel)
    assert not np.array_equal(blur("a"), evaluate.make_blur(KERNELS, 0.05, faces.__getitem__, 2)("a"))


def test_identity_distances_known_models(fm):
    rels = [os.path.join(i, sorted(os.listdir(os.path.join(LFW, i)))[0]) for i in IDS]
    faces = {r: _load(r) for r in rels}
    blur = evaluate.make_blur(KERNELS, 0.02, faces.__getitem__, seed=1)
    # identity "deblurrer": restored == blurred, so both distances agree exactly
    res = evaluate.identity_distances(lambda x: x, faces, blur, fm)
    np.testing.assert_allclose(res["d_restored"], res["d_blurred"], rtol=0, atol=1e-12)
    emb = res["embeddings"]
    np.testing.assert_allclose(res["d_blurred"], np.sqrt(((emb["blurred"] - emb["sharp"]) ** 2).sum(1)))
    assert np.all(res["d_blurred"] > 0.01) and np.all(res["d_blurred"] < 2.0)
    # an oracle returning the sharp face: distance 0 (same image, same sharp box)
    it = iter(faces.values())
    oracle = lambda x: np.asarray(next(it), np.float32)[None] / 255.0
    res0 = evaluate.identity_distances(oracle, faces, blur, fm, stride=1)
    np.testing.assert_allclose(res0["d_restored"], 0.0, atol=1e-6)
    dummy_v = {"accuracy": {c: {1: 0.5, 3: 1.0, 5: 1.0} for c in ("clear", "blurred", "restored")},
               "ids": {"clear": [0, 1], "blurred": [0, 0, 1, 1], "restored": [0, 0, 1, 1]},
               "gallery_ids": [0, 0, 1, 1]}
    t4, t5 = evaluate.face_tables(res, dummy_v, "celeba")
    assert t4.value("UMSN (ours)", "d") == pytest.approx(float(np.mean(res["d_restored"])))
    assert t4.value("Blurred input", "d") == pytest.approx(float(np.mean(res["d_blurred"])))
    text = str(t4)
    assert "Table IV" in text and "5.570" in text and "NOT the same scale" in text
    assert t5.value("UMSN (ours)", "Top-1") == pytest.approx(50.0)
    assert "71.0" in str(t5) and "x 2 blurs" in t5.title


def _numpy_topk(probe, pid, gallery, gid, ks=(1, 3, 5)):
    """Per probe, identities ranked by their best cosine over their gallery images."""
    pn = probe / np.linalg.norm(probe, axis=1, keepdims=True)
    gn = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
    sim = pn @ gn.T
    ids = sorted(set(gid))
    best = np.stack([sim[:, [g == i for g in gid]].max(1) for i in ids], 1)
    order = np.argsort(-best, axis=1, kind="stable")
    rank = np.array([list(np.array(ids)[order[p]]).index(pid[p]) for p in range(len(pid))])
    nn = np.array(gid)[np.argmax(sim, axis=1)]   # plain nearest neighbour = top-1
    return {k: float(np.mean(rank < k)) for k in ks}, float(np.mean(nn == np.array(pid)))


def test_recognition_matches_numpy_and_known_models(fm):
    by_id = {i: v for i, v in evaluate.lfw_identities(LFW).items() if i in IDS}
    assert all(len(v) > 3 for v in by_id.values())
    split = evaluate.recognition_split(by_id, num_ids=3, gallery_per_id=3, seed=0)
    gallery, gallery_ids, probes, probe_ids = split
    assert len(gallery) == 9 and sorted(probe_ids) == sorted(IDS) and not set(probes) & set(gallery)
    blur = evaluate.make_blur(KERNELS, 0.02, _load, seed=1)
    res = evaluate.recognition(lambda x: x, _load, split, blur, fm, blurs_per_probe=2)
    acc, emb, ids = res["accuracy"], res["embeddings"], res["ids"]
    assert len(ids["blurred"]) == 6 and len(ids["clear"]) == 3
    np.testing.assert_array_equal(emb["restored"], emb["blurred"])
    assert acc["restored"] == acc["blurred"]
    for cond in ("clear", "blurred"):
        want, nn_top1 = _numpy_topk(emb[cond], ids[cond], emb["gallery"], gallery_ids)
        assert acc[cond] == pytest.approx(want), cond
        assert acc[cond][1] == pytest.approx(nn_top1), cond
        assert acc[cond][3] == 1.0   # 3 identities: every probe is within rank 3
    # probes that ARE gallery images: clear top-1 is exactly 1
    same = (gallery, gallery_ids, [gallery[0], gallery[3], gallery[6]],
            [gallery_ids[0], gallery_ids[3], gallery_ids[6]])
    res2 = evaluate.recognition(lambda x: x, _load, same, blur, fm, blurs_per_probe=1)
    assert res2["accuracy"]["clear"][1] == 1.0


def test_vgg_face_without_weights_names_the_flag():
    with pytest.raises(ValueError, match="--vgg_face_weights"):
        evaluate.build_face_models("vgg_face")


def test_load_config_names_workdir(tmp_path):
    with pytest.raises(FileNotFoundError, match="--workdir"):
        evaluate.load_config(str(tmp_path))


def test_face_tables_on_the_trained_smoke_run(fm, umsn_run):
    """The --face_tables path end to end on the fixture's tiny umsn run (2 test faces, 2 LFW
    identities x 9 gallery images, 1 blur per probe)."""
    config, model = umsn_run
    t4, t5 = evaluate.run_face_tables(model, config, "data/sample/test_faces", num_images=2,
                                      recognition_ids=2, gallery_per_id=9, blurs_per_probe=1)
    assert "2 test faces" in t4.title and t4.value("UMSN (ours)", "d") >= 0
    assert "2 probes" in t5.title and "18 sharp images of 2 LFW identities" in t5.title
    assert "have more than 9 images" in "\n".join(t5.notes)
    for row in ("Clear images", "Blurred images", "UMSN (ours)"):
        assert 0 <= t5.value(row, "Top-1") <= t5.value(row, "Top-3") <= 100.0
