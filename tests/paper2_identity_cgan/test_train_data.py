"""Paper-2 trainer (one step per stage, Table 4 variants, checkpoint round trip with every
optimizer) and frame-averaged pair building (PrAvg vs NumPy, reverse-order dedupe, records)."""
import glob
import os

import numpy as np
import pytest
import tensorflow as tf

from common import cli, frame_averaging, image_io, pipeline, shared_flags
from common.train import checkpoints
from paper2_identity_cgan import data as p2data
from paper2_identity_cgan import models, train

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SMOKE = os.path.join(REPO, "paper2_identity_cgan", "configs", "smoke.flags")


def _seq(n=9, size=128, shift=2):
    face = image_io.read_image(os.path.join(REPO, "data", "sample", "faces",
                                            "AJ_Lamas_0001.jpg"))[:size, :size]
    return np.stack([np.roll(face, shift * i, axis=1) for i in range(n)])


@pytest.fixture(scope="module")
def video_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    for i, f in enumerate(_seq()):
        image_io.write_image(str(root / "seqA" / "frames" / f"{i:04d}.png"), f)
    return str(root)


def _config(workdir, *extra):
    return cli.parse_flags([train.define_flags],
                                   ["prog", f"--flagfile={SMOKE}", f"--workdir={workdir}",
                                    *extra])


@pytest.fixture(scope="module")
def hg_workdir(tmp_path_factory):
    wd = str(tmp_path_factory.mktemp("hg"))
    cfg = _config(wd, "--stage=hg", "--num_steps=1")
    assert train.train_and_evaluate(wd, cfg) == 1
    return wd


def test_hg_stage_one_step(hg_workdir):
    assert tf.train.latest_checkpoint(os.path.join(hg_workdir, "checkpoints")).endswith("ckpt-1")
    assert glob.glob(os.path.join(hg_workdir, "train", "events.out.tfevents.*"))
    assert os.path.isfile(os.path.join(hg_workdir, "flags.txt"))


def test_cgan_stage_one_step_end_to_end(hg_workdir, video_dir, tmp_path):
    wd = str(tmp_path / "cgan")
    cfg = _config(wd, "--stage=cgan", "--num_steps=1", f"--hg_workdir={hg_workdir}",
                  "--train_stills=", f"--train_videos={video_dir}/*")
    assert train.train_and_evaluate(wd, cfg) == 1
    assert glob.glob(os.path.join(wd, "pairs", "train-*.tfrecord"))
    cg = tf.train.latest_checkpoint(os.path.join(wd, "checkpoints"))
    assert cg.endswith("ckpt-1")
    assert glob.glob(os.path.join(wd, "train", "events.out.tfevents.*"))
    # the frozen HG saved with the cGAN equals the stage-1 HG, moving averages included
    hg = tf.train.latest_checkpoint(os.path.join(hg_workdir, "checkpoints"))
    keys = [k for k, _ in tf.train.list_variables(hg)
            if k.startswith("hg/") and "OPTIMIZER" not in k]
    assert any("moving_mean" in k for k in keys)
    for k in keys:
        np.testing.assert_array_equal(tf.train.load_variable(hg, k), tf.train.load_variable(cg, k))
    # the deblur CLI path on files: any size in, same size out, inputs untouched, no overwrite
    from paper2_identity_cgan import deblur
    src = sorted(glob.glob(os.path.join(REPO, "data", "sample", "real_blurry", "*")))[:1]
    before = [open(f, "rb").read() for f in src]
    out = str(tmp_path / "deblurred")
    paths = deblur.run(wd, src, out)
    assert len(paths) == 1 and paths[0].startswith(out) and paths[0].endswith("_cgan.png")
    assert image_io.read_image(paths[0]).shape == image_io.read_image(src[0]).shape
    assert [open(f, "rb").read() for f in src] == before
    with pytest.raises(FileExistsError):
        deblur.run(wd, src, out)
    # export -> .keras (what weights/ ships): the same outputs as the workdir's model
    from paper2_identity_cgan import export
    exported = export.export(wd, str(tmp_path / "export"))
    import zipfile
    with zipfile.ZipFile(exported["keras"]) as z:  # inference.deflate_zip: shipped files stay small
        assert {i.compress_type for i in z.infolist()} == {zipfile.ZIP_DEFLATED}
    x = np.random.default_rng(0).random((2, 128, 128, 3)).astype(np.float32)
    np.testing.assert_allclose(deblur.load_model(exported["keras"])(x), deblur.load_model(wd)(x),
                               atol=1e-5)
    # the benchmark's workdir spec: the paper is detected from flags.txt, loaded by load_method
    from common.evaluation import methods
    m = methods.resolve_method(f"cgan={wd}")
    assert (m.name, m.kind, m.stride) == ("cgan", "paper2", 128) and m.num_params > 0
    x = np.random.default_rng(0).random((1, 128, 128, 3)).astype(np.float32)
    assert m(x).shape == x.shape
    # --init_model: a cGAN stage that starts from the export (no --hg_workdir) and trains on
    # records of sharp faces only, blurred on the fly by the kernel flags
    from common import inference, tfrecord
    sharp_rec = str(tmp_path / "sharp" / "train-00000-of-00001.tfrecord")
    os.makedirs(os.path.dirname(sharp_rec))
    tfrecord.write_shard(sharp_rec, [tfrecord.make_example(sharp=f) for f in _seq(3)])
    assert not pipeline.stores_blurred(sharp_rec)
    ft = str(tmp_path / "ft")
    cfg = _config(ft, "--stage=cgan", "--num_steps=1", f"--init_model={exported['keras']}",
                  "--hg_workdir=", f"--train_pairs={sharp_rec}", "--train_stills=")
    trainer = train.CGANTrainer(cfg)
    for name in ("hg", "g_bl"):
        for a, b in zip(getattr(trainer, name).weights,
                        getattr(inference.load_keras(exported["keras"]), name).weights):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert train.train_and_evaluate(ft, cfg) == 1
    bad = _config(str(tmp_path / "bad"), "--stage=cgan", f"--init_model={exported['keras']}",
                  "--nouse_hg")
    with pytest.raises(ValueError, match="--init_model=.*use_hg=True"):
        train.CGANTrainer(bad)
    # --unet_skips with more levels than the init model: the added decoder inputs start at
    # zero, so G_bl computes what the init model computes; fewer levels is an error
    wide = train.CGANTrainer(_config(str(tmp_path / "wide"), "--stage=cgan", "--hg_workdir=",
                                     f"--init_model={exported['keras']}",
                                     "--unet_skips=1,2,3,4,5,6,7"))
    assert wide.g_bl.decoder.skips == (1, 2, 3, 4, 5, 6, 7)
    init = inference.load_keras(exported["keras"])
    assert init.unet_skips == (1, 2)
    np.testing.assert_allclose(wide.g_bl(models.g_bl_input(x, wide.hg(x)), training=False),
                               init.g_bl(models.g_bl_input(x, init.hg(x)), training=False),
                               atol=1e-5)
    with pytest.raises(ValueError, match="U-Net skips at levels 1,2"):
        train.CGANTrainer(_config(str(tmp_path / "narrow"), "--stage=cgan", "--hg_workdir=",
                                  f"--init_model={exported['keras']}", "--unet_skips=1"))


def _batch(size=128, b=2):
    rng = np.random.default_rng(1)
    sharp = rng.random((b, size, size, 3), dtype=np.float32)
    return {"sharp": tf.constant(sharp), "blurred": tf.constant(sharp * 0.9 + 0.05)}


def _same_state(a_vars, b_vars):
    a_vars = [v for v in a_vars if "seed_generator" not in v.path]
    b_vars = [v for v in b_vars if "seed_generator" not in v.path]
    assert len(a_vars) == len(b_vars) > 0
    for a, b in zip(a_vars, b_vars):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


def test_variant_no_identity_no_hg_one_step(tmp_path):
    cfg = _config(str(tmp_path), "--stage=cgan", "--noidentity", "--nouse_hg")
    t = train.CGANTrainer(cfg, tf.distribute.get_strategy())
    assert t.hg is None and t.g_s is None
    assert t.g_bl.encoder.blocks[0].conv.kernel.shape[2] == 3   # 'noHG': blurry image only
    before = [v.numpy().copy() for v in t.g_vars]
    out = t.replica_step(_batch())
    assert all(np.isfinite(float(v)) for v in out.values())
    assert float(out["g_reconstruction"]) == 0.0
    assert any(np.abs(a - v.numpy()).max() > 0 for a, v in zip(before, t.g_vars))


def test_adv_warmup_drops_adversarial_and_projection_terms(tmp_path):
    """--adv_warmup_steps=1: step 1's Eq. 6 total is the content + reconstruction terms only;
    step 2 adds lambda_adv L_cGAN + lambda_p L_p.  --global_residual: step 1 output = input."""
    cfg = _config(str(tmp_path), "--stage=cgan", "--adv_warmup_steps=1", "--global_residual",
                  "--hg_zero_init")
    t = train.CGANTrainer(cfg, tf.distribute.get_strategy(), restore_hg=False)
    for step in (1, 2):
        out = {k: float(v) for k, v in t.replica_step(_batch()).items()}
        base = (100 * out["g_content_i"] + 100 * out["g_content_g"]
                + 100 * out["g_reconstruction"])
        if step == 1:
            np.testing.assert_allclose(out["g_total"], base, rtol=1e-4)
            np.testing.assert_allclose(out["psnr_g_bl"], out["psnr_blurred"], rtol=1e-4)
            assert out["g_reconstruction"] < 1e-6
        else:
            np.testing.assert_allclose(out["g_total"], base + out["g_adv"]
                                       + 8 * out["g_projection"], rtol=1e-4)
            assert out["g_adv"] > 0


def test_cgan_step_and_checkpoint_round_trip_with_all_optimizers(tmp_path):
    wd = str(tmp_path / "c")
    cfg = _config(wd, "--stage=cgan")
    strategy = tf.distribute.get_strategy()
    t = train.CGANTrainer(cfg, strategy, restore_hg=False)
    assert t.g_bl.encoder.blocks[0].conv.kernel.shape[2] == 6
    hg0 = [v.numpy().copy() for v in t.hg.variables]
    es0 = [v.numpy().copy() for v in t.g_s.encoder.trainable_variables]
    out = t.replica_step(_batch())
    assert float(out["g_reconstruction"]) > 0
    for a, v in zip(hg0, t.hg.variables):
        np.testing.assert_array_equal(a, v.numpy())  # HG frozen
    assert any(np.abs(a - v.numpy()).max() > 0
               for a, v in zip(es0, t.g_s.encoder.trainable_variables))
    ids = [id(v) for v in t.g_vars]
    assert len(ids) == len(set(ids))  # the shared decoder appears once in the G optimizer
    checkpoints.Checkpointer(wd, **t.trackables()).save(1)
    t2 = train.CGANTrainer(cfg, strategy, restore_hg=False)
    assert checkpoints.Checkpointer(wd, **t2.trackables()).restore_latest() == 1
    for name in ("g_optimizer", "d_optimizer"):
        assert int(getattr(t2, name).iterations.numpy()) == 1
        _same_state(getattr(t, name).variables, getattr(t2, name).variables)
    for net in ("g_bl", "g_s", "d", "hg"):
        _same_state(getattr(t, net).variables, getattr(t2, net).variables)
    # stage 1: the HG and its optimizer
    hwd = str(tmp_path / "h")
    hcfg = _config(hwd, "--stage=hg")
    h = train.HGTrainer(hcfg, strategy)
    assert np.isfinite(float(h.replica_step(_batch())["hg_loss"]))
    checkpoints.Checkpointer(hwd, **h.trackables()).save(1)
    h2 = train.HGTrainer(hcfg, strategy)
    assert checkpoints.Checkpointer(hwd, **h2.trackables()).restore_latest() == 1
    _same_state(h.optimizer.variables, h2.optimizer.variables)
    _same_state(h.hg.variables, h2.hg.variables)


# ---------------------------------------------------------------------------- data -----------
def test_pravg_pairs_match_numpy_mean():
    frames = _seq(n=9, size=32)
    out = list(frame_averaging.pravg_windows(frames, 3, stride=3))
    assert [c for c, _, _ in out] == [1, 4, 7]
    for c, b, s in out:
        ref = frames[c - 1:c + 2].astype(np.float64).mean(0) / 255.0
        np.testing.assert_allclose(b, ref, atol=1e-6)
        np.testing.assert_allclose(s, frames[c] / 255.0, atol=1e-7)
    with pytest.raises(ValueError, match="odd"):
        list(frame_averaging.pravg_windows(frames, 4))


def test_make_pairs_reverse_skips_duplicates_and_writes_records(tmp_path):
    frames = _seq(n=9, size=32)
    fwd = p2data.make_pairs("s", frames, modes=("pravg",), pravg_length=3, reverse=False)
    both = p2data.make_pairs("s", frames, modes=("pravg",), pravg_length=3, reverse=True)
    assert len(fwd) == 3
    # reversed windows centred on 7, 4, 1 average the same frames: all skipped (footnote 6)
    assert len(both) == 3 and all(p["source"].endswith("fwd") for p in both)
    vla = p2data.make_pairs("s", frames, modes=("vla",), vla_stride=2, vla_max_length=7)
    assert vla and all(3 <= p["length"] <= 7 and p["length"] % 2 for p in vla)
    files = p2data.write_pairs(str(tmp_path), "train", fwd + vla)
    ds = pipeline.make_dataset(files, 1, training=False, keys=("sharp", "blurred"))
    got = list(ds)
    assert len(got) == len(fwd) + len(vla)
    np.testing.assert_allclose(got[0]["blurred"][0].numpy(), fwd[0]["blurred"], atol=0.6 / 255)


def test_find_sequences_errors_name_the_pattern(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        p2data.find_sequences(str(tmp_path / "nothing-here*"))


def test_camera_shake_bank_rejects_near_deltas():
    cfg = _config("/nonexistent", "--blur_kernels=camera_shake", "--num_kernels=6",
                  "--kernel_min_taps=8", "--kernel_sizes=13:29")
    bank = shared_flags.kernel_bank(cfg, seed=0)
    assert bank.shape == (6, 29, 29)
    np.testing.assert_allclose(bank.sum((1, 2)), 1.0, atol=1e-5)
    assert (1.0 / np.square(bank.astype(np.float64)).sum((1, 2)) >= 8.0).all()


def _write_pts(path, box):
    x0, y0, x1, y1 = box
    pts = [(x0, y0), (x1, y0), (x0, y1), (x1, y1)] + [((x0 + x1) / 2, (y0 + y1) / 2)] * 64
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("version: 1\nn_points: 68\n{\n" + "".join(f"{x} {y}\n" for x, y in pts) + "}\n")


def test_vla_overlap_stop_fires_with_300vw_boxes(tmp_path):
    """A 300VW-laid-out clip (frames/ + annot/*.pts) whose face box slides 8 px per frame: the
    boxes reach make_pairs, and VLA stops on "overlap" (first/last box IoU < 0.25) where the
    same frames without annotations grow to the maximum length."""
    frames = _seq(n=9, size=64, shift=0)  # a static face: only the boxes move
    for i, f in enumerate(frames):
        image_io.write_image(str(tmp_path / "vid1" / "frames" / f"{i + 1:06d}.png"), f)
        _write_pts(str(tmp_path / "vid1" / "annot" / f"{i + 1:06d}.pts"), (8 * i, 0, 8 * i + 24, 24))
    (name, seq, boxes), = p2data.collect_sequences(str(tmp_path / "vid1"), size=32, with_boxes=True)
    assert name == "vid1" and seq.shape == (9, 32, 32, 3)
    np.testing.assert_allclose(boxes[1], [4, 0, 16, 12])  # 64 -> 32 px: halved
    kw = dict(modes=("vla",), vla_stride=4, vla_max_length=9, reverse=False)
    with_boxes = p2data.make_pairs(name, seq, boxes=boxes, **kw)
    without = p2data.make_pairs(name, seq, **kw)
    lengths = {int(p["source"].split("|")[2]): p["length"] for p in with_boxes}
    assert {int(p["source"].split("|")[2]): p["length"] for p in without}[4] == 9
    # 32 px boxes [4i, 0, 4i + 12, 12]: frames 3 and 5 overlap 4 x 12 px of a 240 px union,
    # IoU 0.2 < 0.25, so the window around frame 4 cannot grow: L = 1, no pair.
    assert 4 not in lengths
    assert frame_averaging.vla_average(seq, 4, boxes=boxes, max_length=9).reason == "overlap"
    # a frame folder without annot/: no boxes, no overlap stop
    (_, _, no_boxes), = p2data.collect_sequences(_frames_only(tmp_path, frames), size=32,
                                                 with_boxes=True)
    assert no_boxes is None


def _frames_only(tmp_path, frames):
    for i, f in enumerate(frames[:3]):
        image_io.write_image(str(tmp_path / "vid2" / "frames" / f"{i:04d}.png"), f)
    return str(tmp_path / "vid2")


def test_still_sequences_carry_moved_whole_frame_boxes():
    (name, seq, boxes), = p2data.still_sequences(os.path.join(REPO, "data", "sample", "faces"),
                                                 num_frames=5, size=64, limit=1, with_boxes=True)
    assert seq.shape == (5, 64, 64, 3) and boxes.shape == (5, 4)
    np.testing.assert_allclose(boxes[2], [0, 0, 64, 64], atol=1e-6)  # the still itself
    assert np.abs(boxes - boxes[2]).max() > 0.1  # the others moved


def test_motion_scale_makes_stronger_frame_averaged_blur():
    """--motion_scale multiplies synth_video's motion: 3x motion averages into a blurrier
    (lower-PSNR) 7-frame PrAvg image of the same stills and seed than 1x."""
    faces = os.path.join(REPO, "data", "sample", "faces")

    def mean_psnr(scale):
        out = []
        for _, seq in p2data.still_sequences(faces, num_frames=7, size=64, limit=3,
                                             motion_scales=(scale,)):
            (_, b, s), = frame_averaging.pravg_windows(seq.astype(np.float32) / 255.0, 7)
            out.append(10 * np.log10(1.0 / np.mean((b - s) ** 2)))
        return float(np.mean(out))

    assert mean_psnr(3.0) < mean_psnr(1.0) - 2.0
    with pytest.raises(ValueError, match="--motion_scale"):
        next(p2data.still_sequences(faces, num_frames=7, size=64, limit=1, motion_scales=(0.0,)))


def test_resume_reseeds_and_eval_logs_the_common_scalars(tmp_path, monkeypatch):
    """Issue 33 item 5: a resumed hg run draws new batches
    (common.train.distribute.reseeded_dataset), and the held-out evaluation logs psnr/ssim/blurred_psnr like paper 1, so --best_metric=psnr works."""
    from tests import trainer_contract
    wd = str(tmp_path)
    cfg = _config(wd, "--stage=hg", "--eval_data=data/sample/test_faces", "--best_metric=psnr")
    seen = trainer_contract.capture_train(monkeypatch, train.train_and_evaluate, wd, cfg)
    trainer_contract.assert_resume_draws_new_batches(seen["dataset"])
    res = seen["eval_fn"](0)
    assert {"psnr", "ssim", "blurred_psnr", "blurred_ssim"} <= set(res)
    assert checkpoints.parse_best_metric(cfg.best_metric)[0] in res
    assert np.isfinite(res["psnr"]) and 0 < res["ssim"] <= 1
