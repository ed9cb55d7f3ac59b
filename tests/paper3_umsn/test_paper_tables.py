"""Tables II and VI and the Shen et al. / no-reference test sets of paper 3 (issue 17): layout
and one known value each, on the tiny smoke stages (conftest) and small fixtures."""
import os
import subprocess

import numpy as np
import pytest

from common import cli, image_io, metrics
from common.train import flags as train_flags
from common.evaluation import segmentation, stored_sets
from paper3_umsn import evaluate, models, train


# ------------------------------------------------------------------ F-score (Table II metric)
def _fscores_reference(preds, gts, num_classes):
    """Pure-Python per-class F-score pooled over all pixels (no NumPy / scikit-learn)."""
    tp, fp, fn = [0] * num_classes, [0] * num_classes, [0] * num_classes
    for pred, gt in zip(preds, gts):
        for prow, grow in zip(pred.tolist(), gt.tolist()):
            for p, g in zip(prow, grow):
                if p == g:
                    tp[p] += 1
                else:
                    fp[p] += 1
                    fn[g] += 1
    out = []
    for c in range(num_classes):
        prec = tp[c] / (tp[c] + fp[c]) if tp[c] + fp[c] else 0.0
        rec = tp[c] / (tp[c] + fn[c]) if tp[c] + fn[c] else 0.0
        den = tp[c] + fp[c] + fn[c]
        out.append(float("nan") if den == 0 else (2 * prec * rec / (prec + rec) if prec + rec else 0.0))
    return out


def test_class_fscores_match_a_pure_python_reference():
    rng = np.random.default_rng(0)
    gts = [rng.integers(0, 3, (7, 9)), rng.integers(0, 3, (5, 4))]   # class 3 absent everywhere
    preds = [np.where(rng.random(g.shape) < 0.7, g, rng.integers(0, 3, g.shape)) for g in gts]
    got = segmentation.class_fscores(preds, gts, 4)
    want = _fscores_reference(preds, gts, 4)
    np.testing.assert_allclose(got[:3], want[:3], rtol=1e-12)
    assert np.isnan(got[3]) and np.isnan(want[3])
    np.testing.assert_array_equal(segmentation.class_fscores(gts, gts, 3), [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="class ids"):
        segmentation.class_fscores([np.full((2, 2), 4)], [np.zeros((2, 2), int)], 4)


# ------------------------------------------------------------------ Table II
def test_table_ii_on_the_sample_faces_with_their_masks(stages):
    clean, blurry = evaluate.load_sn(stages["sn_clean"]), evaluate.load_sn(stages["sn_blurry"])
    res = evaluate.run_table_ii(None, None, "data/sample/test_faces", "data/sample/masks",
                                num_images=5, crop=32, sn_runs=(clean, blurry))
    t = evaluate.table_ii(res)
    assert t.columns == list(evaluate.TABLE_II_COLUMNS)
    assert [r for r in evaluate.PAPER_TABLE_II] == ["class-1", "class-2", "class-3", "class-4"]
    assert t.value("class-1", "clean: SN clean", "paper") == 0.910
    assert t.value("class-4", "blurry: SN fine-tuned", "paper") == 0.566
    # one known value: ours recomputed from the sample's masks and the clean SN's argmax
    data = evaluate.segmentation_set("data/sample/test_faces", "data/sample/masks", 5, 32,
                                     blur_config=blurry[0])
    assert res["n"] == len(data["names"]) and res["n"] + res["skipped"] == 5
    preds = [evaluate.predict_classes(clean[1], im) for im in data["sharp"]]
    want = _fscores_reference(preds, [m.astype(int) for m in data["masks"]], 4)
    for i in range(4):
        got = t.value(f"class-{i + 1}", "clean: SN clean")
        if np.isnan(want[i]):
            assert got is None or np.isnan(got)
        else:
            assert got == pytest.approx(want[i], rel=1e-9)
    # the blurred faces are the stored masks' faces blurred with the SN run's bank (not sharp)
    assert not np.array_equal(data["blurred"][0], data["sharp"][0])
    with pytest.raises(ValueError, match="--mask_dir"):
        evaluate.segmentation_set("data/sample/test_faces", None, 2, 32, blurry[0])


# ------------------------------------------------------------------ Table VI
def _parse(*argv):
    return cli.parse_flags([train_flags.define_common_flags, train.define_flags],
                                   ["prog", *argv])


def test_bn_matched_to_umsn_parameter_count():
    config = _parse("--variant=tiny", "--ablation=bn", "--bn_match_params")
    bn = train.build_umsn(config)
    n_bn = models.umsn_param_count("tiny", "bn", bn.bn_inter_mult)
    n_umsn = models.umsn_param_count("tiny", "umsn")
    n_plain = models.umsn_param_count("tiny", "bn")
    assert bn.bn_inter_mult == models.MATCHED_BN_INTER_MULT["tiny"]
    assert abs(n_bn - n_umsn) / n_umsn < 0.05 and n_plain < 0.6 * n_umsn   # 12,135 vs 11,783
    assert models.bn_inter_mult_for("tiny", "bn_sem", True) is None        # only BN is widened
    assert train.build_umsn(_parse("--variant=tiny", "--ablation=bn")).bn_inter_mult is None
    cfg = bn.get_config()
    assert cfg["bn_inter_mult"] == bn.bn_inter_mult and "bn_inter_mult" not in \
        models.build_umsn("tiny", "bn").get_config()   # shipped configs unchanged


def test_table_vi_flagfile_is_the_equal_iteration_protocol():
    config = _parse("--flagfile=paper3_umsn/configs/table_vi.flags", "--ablation=bn")
    assert (config.num_steps, config.max_train_minutes, config.bn_match_params) == (100000, 0.0, True)
    env = dict(os.environ, DRY_RUN="1", STEPS="7")
    out = subprocess.run(["bash", "paper3_umsn/configs/run_table_vi.sh", "W", "SN", "F", "D", "T"],
                         env=env, capture_output=True, text=True, check=True).stdout.splitlines()
    trains = [line for line in out if "paper3_umsn.train" in line]
    assert [line.split("--ablation=")[1].split()[0] for line in trains] == list(models.ABLATIONS)
    assert all("--max_train_minutes=0 --num_steps=7" in line and "table_vi.flags" in line for line in trains)
    assert "--ablation_workdirs=W/bn,W/bn_sem,W/bn_sem_nrl,W/umsn_no_lc,W/umsn" in out[-1]
    env["PROTOCOL"] = "equal_time"
    out = subprocess.run(["bash", "paper3_umsn/configs/run_table_vi.sh", "W", "SN", "F", "D", "T"],
                         env=env, capture_output=True, text=True, check=True).stdout
    assert "--max_train_minutes=5" in out


def test_table_vi_layout_protocol_and_params(stages, umsn_run):
    result = evaluate.measure(stages["umsn"], "data/sample/test_faces", num_images=2, run=umsn_run)
    result["step"] = evaluate.run_step(stages["umsn"])
    t6 = evaluate.table_vi([result], "helen")
    assert t6.columns == ["PSNR", "SSIM", "params", "steps"]
    assert t6.value("UMSN", "PSNR", "paper") == 26.93 and t6.value("UMSN", "steps") == 1
    assert t6.value("UMSN", "params") == umsn_run[1].umsn.count_params()
    assert t6.value("UMSN", "PSNR") == pytest.approx(float(np.mean(result["psnr_restored"])))
    assert "equal iterations (1 steps each)" in t6.title   # the smoke run: 1 step, no time budget


# ------------------------------------------------------------------ Shen et al. layout (Table III)
def make_shen(root, faces=("0001", "0002"), kernels=(1, 3), sizes=(13, 27), size=32):
    """Shen et al.'s stored test images of one subset: sharp/NAME.png,
    blurred/NAME_ker<K>_size<S>.png, masks/NAME.png (for the first face only)."""
    rng = np.random.default_rng(1)
    for i, name in enumerate(faces):
        sharp = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        image_io.write_image(os.path.join(root, "sharp", name + ".png"), sharp)
        if i == 0:
            m = np.zeros((size, size), np.uint8)
            m[8:24, 8:24] = 1
            image_io.write_image(os.path.join(root, "masks", name + ".png"), m)
        for k in kernels:
            for s in sizes:
                b = np.clip(sharp.astype(int) + rng.integers(-20, 21, sharp.shape), 0, 255)
                image_io.write_image(os.path.join(root, "blurred", f"{name}_ker{k:02d}_size{s}.png"),
                                     b.astype(np.uint8))
    return str(root)


def test_shen_layout_loads_through_the_core_and_scores_table_iii(stages, umsn_run, tmp_path):
    root = make_shen(tmp_path / "helen")
    assert stored_sets.is_shen_layout(root) and stored_sets.stores_blurred(root)
    ts = stored_sets.load_test_set(root)
    assert len(ts) == 8 and ts.kind == "folder" and ts.has_reference
    assert ts.meta == {"layout": "shen", "faces": 2, "kernels": [1, 3], "sizes": [13, 27]}
    s = ts.samples[5]
    assert s.name == "0002_ker01_size27"
    np.testing.assert_array_equal(s.sharp, image_io.read_image(os.path.join(root, "sharp", "0002.png")))
    assert ts.samples[0].mask is not None and s.mask is None
    assert stored_sets.parse_shen_blurred("ker03/size17/0009.png") == ("0009", 3, 17)
    result = evaluate.measure(stages["umsn"], root, num_images=0, run=umsn_run)
    assert "not re-blurred" in result["blur"] and len(result["sharp"]) == 8
    t3 = evaluate.tables(result, "helen")[0]
    blurred = np.stack([image_io.to_float32(x.blurred) for x in ts.samples])
    sharp = np.stack([image_io.to_float32(x.sharp) for x in ts.samples])
    assert t3.value("Blurred input", "PSNR") == pytest.approx(float(np.mean(metrics.psnr(blurred, sharp))))
    assert t3.value("UMSN (umsn, tiny)", "PSNR", "paper") == 26.93
    os.remove(os.path.join(root, "sharp", "0002.png"))
    with pytest.raises(FileNotFoundError, match="sharp/0002.png"):
        stored_sets.load_test_set(root)


def test_no_reference_set_is_restored_with_a_contact_sheet(umsn_run, tmp_path):
    src = tmp_path / "pubfig"
    rng = np.random.default_rng(2)
    for i, shape in enumerate(((30, 26, 3), (24, 24, 3))):
        image_io.write_image(str(src / f"real_{i}.png"), rng.integers(0, 256, shape, dtype=np.uint8))
    ts, restored, sheet = evaluate.run_no_reference(umsn_run[1], str(src), 0, str(tmp_path / "out"))
    assert ts.kind == "no_reference" and len(restored) == 2
    assert [r.shape for r in restored] == [(30, 26, 3), (24, 24, 3)] and os.path.isfile(sheet)
