"""Table 1's rows as trainable runs (Tao et al.: SRN on GoPro pairs; Yuan et al.: CycleGAN on
unpaired GoPro; Zhu et al.: a second CycleGAN on the generated pairs), each from its committed
flagfile, one step each, then the table with its GoPro columns through the evaluation core.

Data: GOPRO_Large's real folder layout (train|test/<seq>/blur|sharp/NNNNNN.png, frame names
repeating across sequences) from `tests.data.fixtures.gopro`, but with 64x48 frames instead of
1280x720 (the real size costs minutes per step on a CPU), read by `data.build --source=gopro`
(the one GoPro reader); networks overridden to `tiny`, 32 px crops, batch 1, float32."""
import os
import re

import numpy as np
import pytest
import tensorflow as tf
from skimage.io import imread
from skimage.metrics import peak_signal_noise_ratio

from common import cli, tfrecord
from common.train import workdirs
from paper1_cyclegan_srn import evaluate, prepare_unpaired, train_cyclegan, train_srn
from tests.data import fixtures
from tests.data.test_build import run as build_run

CFG = "paper1_cyclegan_srn/configs/"
SMOKE = ("--batch_size=1", "--num_steps=1", "--crop_size=32", "--mixed_precision=none",
         "--log_every=1", "--checkpoint_every=1", "--image_every=0", "--eval_every=0")
CYCLEGAN_SMOKE = SMOKE + ("--generator=tiny", "--discriminator=tiny", "--pool_size=2",
                          "--eval_images=1")


def _parse(define, flagfile, *extra):
    return cli.parse_flags([define], ["prog", f"--flagfile={CFG}{flagfile}", *extra])


def _sources(pattern):
    return [tfrecord.parse_example(r.numpy(), [tfrecord.SOURCE])[tfrecord.SOURCE].numpy().decode()
            for r in tf.data.TFRecordDataset(tfrecord.list_files(pattern))]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """GoPro layout -> paired records (train/test) and unpaired domains; tiny generated pairs."""
    root = tmp_path_factory.mktemp("t1")
    gopro = fixtures.gopro(str(root / "GOPRO_Large"), w=64, h=48)
    rec = str(root / "records" / "gopro")
    for split in ("train", "test"):
        build_run(["--source=gopro", f"--manual_dir={gopro}", f"--split={split}", "--mode=paired",
                   f"--output_dir={rec}", f"--name={split}", "--num_shards=1"])
    unpaired = str(root / "records" / "gopro_unpaired")
    cfg = cli.parse_flags([prepare_unpaired.define_flags], [
        "prog", f"--flagfile={CFG}prepare_unpaired_gopro.flags", f"--gopro={gopro}",
        f"--output_dir={unpaired}", "--num_shards=1"])
    counts = prepare_unpaired.prepare(cfg)
    # stand-in for generate_pairs' records (same schema): sharp faces and a box blur of them
    pairs = str(root / "records" / "pairs")
    rng = np.random.default_rng(0)
    for split, n in (("train", 3), ("test", 2)):
        with tfrecord.ShardedWriter(pairs, split, 1) as w:
            for i in range(n):
                sharp = rng.integers(0, 256, (40, 36, 3), dtype=np.uint8)
                blurred = ((sharp.astype(np.float32) + np.roll(sharp, 3, axis=1)
                            + np.roll(sharp, -3, axis=1)) / 3).round().astype(np.uint8)
                w.write(tfrecord.make_example(sharp=sharp, blurred=blurred, source=f"{split}{i}"))
    return dict(root=root, gopro=gopro, rec=rec, unpaired=unpaired, counts=counts, pairs=pairs)


def test_unpaired_gopro_domains_come_from_different_sequences(data):
    assert data["counts"] == {"clear": 2, "blurred": 2}
    clear = _sources(os.path.join(data["unpaired"], "clear-*.tfrecord"))
    blurred = _sources(os.path.join(data["unpaired"], "blurred-*.tfrecord"))
    assert clear == ["GOPR0001_00_00/000001.png", "GOPR0001_00_00/000002.png"]
    assert blurred == ["GOPR0002_00_00/000001.png", "GOPR0002_00_00/000002.png"]
    # stored as released: domain X = the sharp frames, domain Y = the blurred frames
    first = next(iter(tf.data.TFRecordDataset(
        tfrecord.list_files(os.path.join(data["unpaired"], "blurred-*.tfrecord")))))
    got = tfrecord.parse_example(first.numpy(), [tfrecord.BLURRED])[tfrecord.BLURRED].numpy()
    want = imread(os.path.join(data["gopro"], "train", "GOPR0002_00_00", "blur", "000001.png"))
    np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="exactly one of --faces"):
        prepare_unpaired.prepare(cli.parse_flags([prepare_unpaired.define_flags], [
            "prog", f"--gopro={data['gopro']}", "--faces=x", f"--output_dir={data['root']}"]))
    with pytest.raises(ValueError, match="--gopro=.*train/ and test/"):
        prepare_unpaired.prepare(cli.parse_flags([prepare_unpaired.define_flags], [
            "prog", f"--gopro={data['root']}", f"--output_dir={data['root']}"]))


def test_row_flagfiles_hold_the_paper_settings():
    tao = _parse(train_srn.define_flags, "table1_tao_srn.flags", "--workdir=/tmp/x")
    assert (tao.variant, tao.crop_size, tao.batch_size, tao.learning_rate, tao.lr_power) == (
        "paper", 256, 16, 1e-4, 0.3)
    assert tao.train_data.endswith("records/gopro/train-*.tfrecord") and not tao.blur_kernels
    for name, data in (("yuan", "records/gopro_unpaired/"), ("zhu", "records/p1/pairs/train-")):
        cg = _parse(train_cyclegan.define_flags, f"table1_{name}_cyclegan.flags", "--workdir=/tmp/x")
        assert (cg.generator, cg.crop_size, cg.batch_size, cg.lambda_cycle) == (
            "resnet_9blocks", 256, 4, 10.0)
        assert data in cg.clear_data and data in cg.blurred_data
        assert 0 < cg.decay_start_step < cg.num_steps
    # the script trains every row from these flagfiles and names only files that exist
    script = open(os.path.join(CFG, "run_table1.sh")).read()
    used = re.findall(r"--flagfile=\$C/(\S+)", script)
    assert sorted(used) == ["prepare_unpaired_gopro.flags", "table1_tao_srn.flags",
                            "table1_yuan_cyclegan.flags", "table1_zhu_cyclegan.flags"]
    assert all(os.path.isfile(os.path.join(CFG, f)) for f in used)
    assert all(f"--{k}=" in script for k in ("tao", "yuan", "zhu", "srn_workdir", "gopro_data"))


@pytest.fixture(scope="module")
def rows(data):
    """One step of each row's flagfile (smoke-size networks) on the fixtures above."""
    root, rec, unpaired, pairs = data["root"], data["rec"], data["unpaired"], data["pairs"]
    tao_dir, yuan_dir, zhu_dir = (str(root / n) for n in ("tao", "yuan", "zhu"))
    tao = _parse(train_srn.define_flags, "table1_tao_srn.flags", *SMOKE, "--variant=tiny",
                 "--eval_data=", "--eval_crop=0", f"--workdir={tao_dir}", f"--train_data={rec}/train-*.tfrecord")
    yuan = _parse(train_cyclegan.define_flags, "table1_yuan_cyclegan.flags", *CYCLEGAN_SMOKE,
                  f"--workdir={yuan_dir}", f"--clear_data={unpaired}/clear-*.tfrecord",
                  f"--blurred_data={unpaired}/blurred-*.tfrecord")
    zhu = _parse(train_cyclegan.define_flags, "table1_zhu_cyclegan.flags", *CYCLEGAN_SMOKE,
                 "--resize=", f"--workdir={zhu_dir}", f"--clear_data={pairs}/train-*.tfrecord",
                 f"--blurred_data={pairs}/train-*.tfrecord")
    steps = (train_srn.train_and_evaluate(tao_dir, tao),
             train_cyclegan.train_and_evaluate(yuan_dir, yuan),
             train_cyclegan.train_and_evaluate(zhu_dir, zhu))
    return dict(tao=tao_dir, yuan=yuan_dir, zhu=zhu_dir, steps=steps)


def test_each_row_trains_from_its_flagfile(rows):
    assert rows["steps"] == (1, 1, 1)
    for d, kind in ((rows["tao"], ("paper1", "srn")), (rows["yuan"], ("paper1", "cyclegan")),
                    (rows["zhu"], ("paper1", "cyclegan"))):
        assert tf.train.latest_checkpoint(os.path.join(d, "checkpoints")).endswith("ckpt-1")
        assert workdirs.workdir_kind(d) == kind


def test_table1_rows_and_gopro_columns(data, rows, tmp_path):
    cfg = cli.parse_flags([evaluate.define_flags], [
        "prog", f"--tao=paper1:{rows['tao']}", f"--yuan=paper1:{rows['yuan']}",
        f"--zhu=paper1:{rows['zhu']}", f"--test_data={data['pairs']}/test-*.tfrecord",
        f"--gopro_data={data['rec']}/test-*.tfrecord", "--detector=none",
        f"--output_dir={tmp_path}"])
    out = evaluate.run_eval(cfg)
    t1 = out["table1"]
    assert list(t1) == ["Blurred input", "Tao et al. [7]", "Yuan et al. [13]", "Zhu et al. [6]", "Ours"]
    for row in ("Tao et al. [7]", "Yuan et al. [13]", "Zhu et al. [6]"):
        psnr, ssim, g_psnr, g_ssim = t1[row]
        assert np.isfinite([psnr, g_psnr]).all() and 0 <= ssim <= 1 and 0 <= g_ssim <= 1, row
    assert t1["Ours"] == [None] * 4 and out["num_gopro_images"] == 2
    # the blurred-input row on GoPro: PSNR of the stored frames, from the fixture's PNGs (skimage)
    test = os.path.join(data["gopro"], "test", "GOPR0009_00_00")
    want = np.mean([peak_signal_noise_ratio(imread(os.path.join(test, "sharp", f)),
                                            imread(os.path.join(test, "blur", f)), data_range=255)
                    for f in ("000001.png", "000002.png")])
    assert t1["Blurred input"][2] == pytest.approx(want, abs=1e-6)
    # a CycleGAN row scores its F: the same number as the core on that workdir's method
    from common.evaluation import load_test_set, resolve_method, runner
    f = resolve_method(f"paper1:{rows['yuan']}")
    r = runner.evaluate(f, load_test_set(f"{data['rec']}/test-*.tfrecord"))
    assert t1["Yuan et al. [13]"][2:] == pytest.approx([r.summary["psnr"], r.summary["ssim"]])
    md = open(tmp_path / "tables.md").read().splitlines()
    header = next(line for line in md if line.startswith("| Method") or line.startswith("|"))
    assert all(c in header for c in evaluate.T1_COLUMNS)
    names = [line.split("|")[1].strip() for line in md if line.startswith("| ")][1:6]
    assert names == list(t1)
    assert os.path.exists(tmp_path / "examples.png")
    with pytest.raises(ValueError, match="not both"):
        evaluate.row_methods(cli.parse_flags([evaluate.define_flags], [
            "prog", "--srn_workdir=a", "--ours=b", "--test_data=x"]))
