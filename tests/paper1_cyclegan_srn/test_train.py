"""One step of each stage from the smoke flagfiles, chained (G -> pairs -> SRN), plus resume and
checkpoint save/restore of every network, optimiser and image pool (paper 1)."""
import glob
import json
import os
import shutil

import keras
import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio
import tensorflow as tf

from common import cli, image_io, pipeline, tfrecord
from common.train import checkpoints, flags as train_flags
from paper1_cyclegan_srn import generate_pairs, prepare_unpaired, train_cyclegan, train_srn

CFG = "paper1_cyclegan_srn/configs/"


def _flags(define_fns, flagfile, *extra):
    return cli.parse_flags(define_fns, ["prog", f"--flagfile={CFG}{flagfile}", *extra])


def _events(folder):
    return glob.glob(os.path.join(folder, "events.out.tfevents*"))


def _scalars(folder):
    out = {}
    for path in _events(folder):
        for e in tf.compat.v1.train.summary_iterator(path):
            for v in e.summary.value:
                if v.metadata.plugin_data.plugin_name == "scalars":
                    out.setdefault(v.tag, []).append(float(tf.make_ndarray(v.tensor)))
    return out


def _image_tags(folder):
    tags = set()
    for path in _events(folder):
        for e in tf.compat.v1.train.summary_iterator(path):
            tags.update(v.tag for v in e.summary.value if v.metadata.plugin_data.plugin_name == "images")
    return tags


@pytest.fixture(scope="module")
def stages(tmp_path_factory):
    root = tmp_path_factory.mktemp("p1")
    cg_dir, pairs_dir, srn_dir = str(root / "cg"), str(root / "pairs"), str(root / "srn")
    cg = _flags([train_cyclegan.define_flags], "smoke_cyclegan.flags", f"--workdir={cg_dir}",
                "--num_steps=1", "--image_every=1", "--eval_every=1", "--checkpoint_every=1",
                "--generator_upsample=resize")
    step = train_cyclegan.train_and_evaluate(cg_dir, cg)
    gp = _flags([generate_pairs.define_flags], "smoke_generate_pairs.flags",
                f"--cyclegan_workdir={cg_dir}", f"--output_dir={pairs_dir}", "--file_range=0:5",
                "--chunk_size=2")
    summary = generate_pairs.generate(gp)
    srn = _flags([train_srn.define_flags], "smoke_srn.flags", f"--workdir={srn_dir}",
                 f"--train_data={pairs_dir}/train-*.tfrecord",
                 f"--eval_data={pairs_dir}/test-*.tfrecord", "--num_steps=1", "--eval_every=1",
                 "--image_every=1", "--checkpoint_every=1", "--best_metric=psnr")
    srn_step = train_srn.train_and_evaluate(srn_dir, srn)
    return dict(root=root, cg_dir=cg_dir, pairs_dir=pairs_dir, srn_dir=srn_dir, cg=cg, gp=gp,
                srn=srn, step=step, srn_step=srn_step, summary=summary)


def test_cyclegan_one_step_writes_checkpoint_scalars_and_grids(stages):
    d = stages["cg_dir"]
    assert stages["step"] == 1
    assert tf.train.latest_checkpoint(os.path.join(d, "checkpoints")).endswith("ckpt-1")
    scalars = _scalars(os.path.join(d, "train"))
    for key in ("g_total", "g_adv", "f_adv", "cycle_x", "cycle_y", "identity", "d_total"):
        assert np.isfinite(scalars[key][0]), key
    assert scalars["learning_rate/gen_optimizer"][0] == pytest.approx(2e-4)
    assert scalars["learning_rate/disc_optimizer"][0] == pytest.approx(2e-4)
    assert _image_tags(os.path.join(d, "train")) == {"X | G(X) | F(G(X))", "Y | F(Y) | G(F(Y))"}
    assert np.isfinite(_scalars(os.path.join(d, "eval"))["cycle_psnr_x"][0])
    # the saved flags rebuild the run
    again = cli.load_flags([train_cyclegan.define_flags], d)
    assert again.generator == "tiny" and again.crop_size == 32


def _pair_psnrs(files):
    """scikit-image PSNR of each record's blurred image against its sharp one."""
    out = []
    for raw in tf.data.TFRecordDataset(files):
        ex = tfrecord.parse_example(raw.numpy(), keys=(tfrecord.SHARP, tfrecord.BLURRED))
        out.append(peak_signal_noise_ratio(ex[tfrecord.SHARP].numpy(),
                                           ex[tfrecord.BLURRED].numpy(), data_range=255))
    return out


def test_generate_pairs_split_records_and_resume(stages):
    out, summary = stages["pairs_dir"], stages["summary"]
    assert summary["num_images"] == 5 and summary["train"] == 4 and summary["test"] == 1
    train = tfrecord.list_files(os.path.join(out, "train-*.tfrecord"))
    assert len(train) == 2 and tfrecord.count_records(os.path.join(out, "*.tfrecord")) == 5
    # G's blur strength: the mean PSNR of the 5 stored pairs, recomputed with scikit-image
    every = _pair_psnrs(tfrecord.list_files(os.path.join(out, "*.tfrecord")))
    assert summary["pair_psnr_mean"] == pytest.approx(np.mean(every), abs=1e-3)
    raw = next(iter(tf.data.TFRecordDataset(train[0]))).numpy()
    ex = tfrecord.parse_example(raw, keys=(tfrecord.SHARP, tfrecord.BLURRED, tfrecord.SOURCE))
    assert ex[tfrecord.SHARP].shape == ex[tfrecord.BLURRED].shape == (64, 64, 3)
    # input = G(clear): recompute with the restored generator
    g = generate_pairs.load_generator(stages["cg_dir"])
    # rebuilt as stage 1 trained it (--generator_upsample=resize, read back from flags.txt)
    assert g.upsample == "resize"
    assert not any(isinstance(layer, keras.layers.Conv2DTranspose) for layer in g._flatten_layers())
    again = generate_pairs.blur_with_generator(g, np.asarray(ex[tfrecord.SHARP])[None])[0]
    assert np.abs(again.astype(int) - np.asarray(ex[tfrecord.BLURRED]).astype(int)).max() <= 1
    # resume: a rerun skips every finished chunk; a deleted chunk is rewritten
    os.remove(train[1])
    res = generate_pairs.generate(stages["gp"], g=g)
    assert res["chunks_skipped"] == 2 and res["chunks_written"] == 1
    assert res["pair_psnr_mean"] == pytest.approx(np.mean(_pair_psnrs(train[1])), abs=1e-3)
    assert tfrecord.count_records(os.path.join(out, "*.tfrecord")) == 5
    assert json.load(open(os.path.join(out, "pairs.json")))["train"] == 4


def test_prepare_unpaired_faces_keeps_the_domains_apart_and_reports_y_blur_strength(tmp_path):
    faces, out = "data/sample/faces", str(tmp_path / "unpaired")
    cfg = cli.parse_flags([prepare_unpaired.define_flags], [
        "prog", f"--faces={faces}", "--clear_range=0:2", "--blurred_range=2:5",
        "--blur_kernels=linear", "--num_kernels=3", "--kernel_sizes=9:13", "--noise_sigma=0.01",
        f"--output_dir={out}", "--num_shards=1"])
    counts = prepare_unpaired.prepare(cfg)
    assert counts["clear"] == 2 and counts["blurred"] == 3
    names = [os.path.relpath(p, faces) for p in image_io.list_images(faces)]
    srcs = {d: [tfrecord.parse_example(r.numpy(), keys=(tfrecord.SOURCE,))[tfrecord.SOURCE]
                .numpy().decode() for r in tf.data.TFRecordDataset(
                    tfrecord.list_files(os.path.join(out, f"{d}-*.tfrecord")))]
            for d in ("clear", "blurred")}
    assert srcs == {"clear": names[0:2], "blurred": names[2:5]}
    # Y's blur strength: each stored blurred face against its clear source, by scikit-image
    want = []
    for raw in tf.data.TFRecordDataset(tfrecord.list_files(os.path.join(out, "blurred-*"))):
        ex = tfrecord.parse_example(raw.numpy(), keys=(tfrecord.BLURRED, tfrecord.SOURCE))
        src = image_io.read_image(os.path.join(faces, ex[tfrecord.SOURCE].numpy().decode()))
        want.append(peak_signal_noise_ratio(src, ex[tfrecord.BLURRED].numpy(), data_range=255))
    assert 15 < np.mean(want) < 40
    assert counts["blurred_psnr_mean"] == pytest.approx(np.mean(want), abs=1e-3)
    assert json.load(open(os.path.join(out, "unpaired.json"))) == counts
    # a rerun keeps both domains (no blurred faces re-drawn, so no new strength to report)
    assert prepare_unpaired.prepare(cfg) == {"clear": "kept", "blurred": "kept"}


def test_split_is_seeded_and_disjoint():
    tr, te = generate_pairs.split_indices(100, 0.2, seed=1)
    assert len(te) == 20 and len(tr) == 80 and not set(tr) & set(te)
    tr2, te2 = generate_pairs.split_indices(100, 0.2, seed=1)
    np.testing.assert_array_equal(te, te2)


def test_srn_one_step_on_generated_pairs(stages):
    d = stages["srn_dir"]
    assert stages["srn_step"] == 1
    scalars = _scalars(os.path.join(d, "train"))
    parts = [scalars[f"mse_scale{i}"][0] for i in range(3)]
    assert scalars["loss"][0] == pytest.approx(sum(parts), rel=1e-5)  # k_i = 1
    ev = _scalars(os.path.join(d, "eval"))
    assert np.isfinite(ev["psnr"][0]) and np.isfinite(ev["blurred_psnr"][0])
    assert "blurred | restored | sharp" in _image_tags(os.path.join(d, "train"))


def test_cyclegan_checkpoint_restores_all_optimisers_pools_and_resumes(stages):
    cfg, d = stages["cg"], stages["cg_dir"]
    saved = train_cyclegan.CycleGANTrainer(cfg)
    ckpt = checkpoints.Checkpointer(d, 3, **saved.trackables())
    assert ckpt.restore_latest() == 1
    assert int(saved.gen_optimizer.iterations) == 1 and int(saved.disc_optimizer.iterations) == 1
    assert int(saved.pool_x.count) == 2 and int(saved.pool_y.count) == 2  # batch 2 stored
    fresh = train_cyclegan.CycleGANTrainer(cfg)
    for name in ("gen_optimizer", "disc_optimizer"):
        a = [v.numpy() for v in getattr(saved, name).variables]
        b = [v.numpy() for v in getattr(fresh, name).variables]
        assert any(not np.array_equal(x, y) for x, y in zip(a, b)), name  # moments restored
    reader = tf.train.load_checkpoint(ckpt.latest)
    names = reader.get_variable_to_shape_map()
    for prefix in ("g_net", "f_net", "d_x", "d_y", "gen_optimizer", "disc_optimizer", "pool_x"):
        assert any(n.startswith(prefix) for n in names), prefix
    # resume to step 2 from the same workdir
    cfg2 = _flags([train_cyclegan.define_flags], "smoke_cyclegan.flags", f"--workdir={d}",
                  "--num_steps=2", "--image_every=0", "--eval_every=0", "--checkpoint_every=1",
                  "--generator_upsample=resize")
    assert train_cyclegan.train_and_evaluate(d, cfg2) == 2
    assert tf.train.latest_checkpoint(os.path.join(d, "checkpoints")).endswith("ckpt-2")


def test_srn_checkpoint_restores_optimizer(stages):
    cfg, d = stages["srn"], stages["srn_dir"]
    trainer = train_srn.SRNTrainer(cfg)
    ckpt = checkpoints.Checkpointer(d, 3, **trainer.trackables())
    assert ckpt.restore_latest() == 1 and int(trainer.optimizer.iterations) == 1
    fresh = train_srn.SRNTrainer(cfg)
    w0 = [v.numpy() for v in trainer.model.weights]
    w1 = [v.numpy() for v in fresh.model.weights]
    assert any(not np.array_equal(a, b) for a, b in zip(w0, w1))


def test_missing_data_flag_is_named(tmp_path):
    cfg = _flags([train_srn.define_flags], "smoke_srn.flags", "--train_data=",
                 f"--workdir={tmp_path}")
    with pytest.raises(ValueError, match="--train_data"):
        train_srn.make_train_dataset(cfg)
    cfg = _flags([train_cyclegan.define_flags], "smoke_cyclegan.flags", "--blur_kernels=",
                 f"--workdir={tmp_path}")
    with pytest.raises(ValueError, match="--blur_kernels"):
        train_cyclegan.make_unpaired_dataset(cfg)


def test_evaluate_prints_tables_with_paper_numbers(stages, tmp_path):
    from paper1_cyclegan_srn import evaluate
    pairs = os.path.join(stages["pairs_dir"], "*.tfrecord")
    cfg = cli.parse_flags([evaluate.define_flags], [
        "prog", f"--srn_workdir={stages['srn_dir']}", f"--compare=stage-1 F=paper1:{stages['cg_dir']}",
        f"--test_data={pairs}", "--blur_kernels=camera_shake", "--detector=haar",
        f"--output_dir={tmp_path}"])
    out = evaluate.run_eval(cfg)
    sharp, blurred = evaluate.load_pairs(pairs, 8)
    mse = ((sharp.astype(np.float64) - blurred) ** 2).reshape(len(sharp), -1).mean(axis=1)
    assert out["table1"]["Blurred input"][0] == pytest.approx(np.mean(10 * np.log10(1 / mse)), rel=1e-4)
    assert all(v is not None for v in out["table1"]["Ours"][:2])
    assert out["table1"]["Ours"][2] is None  # no GoPro data given
    assert out["table1"]["Zhu et al. [6]"] == [None] * 4   # no --zhu: stage 1's F is not that row
    assert all(v is not None for v in out["table1"]["stage-1 F (measured)"][:2])
    for row in ("Testing dataset", "Synthetic dataset"):
        assert all(0.0 <= v <= 1.0 for v in out["table2"][row])
    # both sets hold the same ground-truth faces
    assert out["table2"]["Testing dataset"][0] == out["table2"]["Synthetic dataset"][0]
    md = open(tmp_path / "tables.md").read()
    assert "17.14" in md and "0.8509" in md and "0.61" in md
    assert os.path.exists(tmp_path / "examples.png")


def test_benchmark_method_specs_of_paper1_workdirs(stages):
    """`common.compare --method=DIR`: paper 1 detected from flags.txt; SRN and CycleGAN F load
    through evaluate.load_method; the parameter count read from the checkpoint equals the model's."""
    from common.evaluation import methods
    srn = methods.resolve_method(f"srn={stages['srn_dir']}")
    assert (srn.kind, srn.stride) == ("paper1", 16)
    cfg = cli.load_flags([train_srn.define_flags], stages["srn_dir"])
    model = train_srn.build_model(cfg, image_size=16)
    model(np.zeros((1, 16, 16, 3), np.float32))
    assert srn.num_params == model.count_params()
    x = np.random.default_rng(0).random((1, 20, 24, 3)).astype(np.float32)
    assert srn(x).shape == x.shape
    f = methods.resolve_method(f"paper1:{stages['cg_dir']}")
    assert f.kind == "paper1" and f.stride == 4
    assert f.num_params > 0 and "CycleGAN" in f.description


def test_deblur_cli_any_size_never_overwrites(stages, tmp_path):
    from common import image_io
    from paper1_cyclegan_srn import deblur
    src = tmp_path / "in"
    img = (np.random.default_rng(0).uniform(size=(37, 50, 3)) * 255).astype(np.uint8)
    image_io.write_image(str(src / "photo.png"), img)
    before = open(src / "photo.png", "rb").read()
    outs = deblur.run(stages["srn_dir"], [str(src)], str(tmp_path / "out"))
    assert len(outs) == 1 and image_io.read_image(outs[0]).shape == (37, 50, 3)
    assert open(src / "photo.png", "rb").read() == before
    with pytest.raises(FileExistsError):
        deblur.run(stages["srn_dir"], [str(src)], str(tmp_path / "out"))
    with pytest.raises(ValueError, match="overwrite the input"):
        deblur.run(stages["srn_dir"], [str(src)], str(src), suffix="")


def test_srn_best_checkpoint_is_kept_and_exported(stages, tmp_path):
    from paper1_cyclegan_srn import export  # pylint: disable=import-outside-toplevel
    best = checkpoints.read_best(stages["srn_dir"])
    assert best["metric"] == "psnr" and best["step"] == stages["srn_step"]
    assert np.isfinite(best["value"])
    paths = export.export(stages["srn_dir"], str(tmp_path / "best"), serve_size=32,
                          checkpoint="best")
    assert os.path.exists(paths["keras"])
    no_best = str(tmp_path / "srn_no_best")  # the same run as if trained without --best_metric
    shutil.copytree(stages["srn_dir"], no_best, ignore=shutil.ignore_patterns("best"))
    with pytest.raises(FileNotFoundError, match="--best_metric"):
        export.export(no_best, str(tmp_path / "none"), serve_size=32, checkpoint="best")


def test_cycle_noise_perturbs_only_the_cycle_input(tmp_path):
    """--cycle_noise_sigma adds N(0, sigma^2) to what the other generator reconstructs from;
    0 (the paper) leaves it untouched; a step with noise still trains."""
    d = str(tmp_path / "cg")
    cfg = _flags([train_cyclegan.define_flags], "smoke_cyclegan.flags", f"--workdir={d}",
                 "--num_steps=1", "--cycle_noise_sigma=0.2")
    trainer = train_cyclegan.CycleGANTrainer(cfg)
    image = tf.zeros((4, 32, 32, 3))
    noisy = trainer._cycle_noise(image).numpy()
    assert noisy.std() == pytest.approx(0.2, rel=0.1) and abs(noisy.mean()) < 0.02
    cfg0 = _flags([train_cyclegan.define_flags], "smoke_cyclegan.flags", f"--workdir={d}")
    assert cfg0.cycle_noise_sigma == 0.0
    assert train_cyclegan.CycleGANTrainer(cfg0)._cycle_noise(image) is image
    assert train_cyclegan.train_and_evaluate(d, cfg) == 1
    assert np.isfinite(_scalars(os.path.join(d, "train"))["cycle_x"][0])


def test_srn_init_model_starts_from_an_export_and_cosine_schedule_sets_the_rate(stages, tmp_path):
    from paper1_cyclegan_srn import export  # pylint: disable=import-outside-toplevel
    paths = export.export(stages["srn_dir"], str(tmp_path / "exp"), serve_size=32)
    d = str(tmp_path / "ft")
    cfg = _flags([train_srn.define_flags], "smoke_srn.flags", f"--workdir={d}",
                 f"--init_model={paths['keras']}", "--num_steps=4", "--lr_schedule=cosine",
                 "--lr_warmup_steps=1", "--lr_min_factor=0.1", "--eval_every=0",
                 "--image_every=0", "--checkpoint_every=4", "--log_every=1")
    fresh = train_srn.SRNTrainer(cfg)  # built from the export: the trained step-1 weights
    trained = train_srn.SRNTrainer(stages["srn"])
    checkpoints.Checkpointer(stages["srn_dir"], 3, **trained.trackables()).restore_latest()
    for a, b in zip(fresh.model.weights, trained.model.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert train_srn.train_and_evaluate(d, cfg) == 4
    rates = _scalars(os.path.join(d, "train"))["learning_rate/optimizer"]
    lr = cfg.learning_rate
    np.testing.assert_allclose(rates, [lr * train_flags.lr_factor(s, "cosine", warmup_steps=1,
                                                                 total_steps=4, min_factor=0.1)
                                       for s in range(4)], rtol=1e-5)
    bad = _flags([train_srn.define_flags], "smoke_srn.flags", f"--workdir={tmp_path / 'bad'}",
                 f"--init_model={paths['keras']}", "--global_residual=true")
    with pytest.raises(ValueError, match="--init_model=.*global_residual=False"):
        train_srn.SRNTrainer(bad)
    missing = _flags([train_srn.define_flags], "smoke_srn.flags", f"--workdir={tmp_path / 'm'}",
                     f"--init_model={tmp_path / 'none.keras'}")
    with pytest.raises(FileNotFoundError, match="--init_model="):
        train_srn.SRNTrainer(missing)


def test_sharp_only_records_are_blurred_on_the_fly(tmp_path):
    from paper1_cyclegan_srn import inputs  # pylint: disable=import-outside-toplevel
    rng = np.random.default_rng(0)
    faces = [rng.integers(0, 256, (40, 40, 3), dtype=np.uint8) for _ in range(3)]
    path = str(tmp_path / "train-00000-of-00001.tfrecord")
    tfrecord.write_shard(path, [tfrecord.make_example(sharp=f) for f in faces])
    assert not pipeline.stores_blurred(path)
    bank = np.zeros((1, 5, 5), np.float32)
    bank[0, 2, :] = 0.2  # horizontal motion
    batch = next(iter(inputs.paired_dataset(path, 2, 32, kernels=bank, training=False,
                                            repeat=False)))
    assert batch["blurred"].shape == (2, 32, 32, 3)
    assert float(tf.reduce_mean(tf.abs(batch["blurred"] - batch["sharp"]))) > 0.01
    with pytest.raises(ValueError, match="records of sharp faces only: pass --blur_kernels"):
        inputs.paired_dataset(path, 2, 32)
