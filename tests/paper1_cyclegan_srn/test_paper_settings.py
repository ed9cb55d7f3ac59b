"""Paper 1's paper flagfiles (cyclegan.flags, generate_pairs.flags, srn.flags: variant paper,
256 px crops, Adam settings, auto precision) run end to end on a CelebA-laid-out fixture at
CelebA's real size (img_align_celeba/*.jpg 178x218 + Eval/Anno list files): data.build ->
records -> CycleGAN -> generate_pairs -> SRN -> evaluate -> export. Only the batch size (1) and
step count (1) are overridden, plus the data paths and workdirs. Marker: paper_settings.
Cost: ~105 CPU-s (CycleGAN step ~50 s, generate_pairs / SRN step / evaluate / export ~12 s each),
~3.5 min wall on the 2 shared cores."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from common import cli, inference, tfrecord
from common.train import checkpoints, distribute
from common.paths import SHARED_DATA
from tests.data.test_build import run as build_run
from paper1_cyclegan_srn import evaluate, generate_pairs, train_cyclegan, train_srn
from tests.data import fixtures

pytestmark = pytest.mark.paper_settings
CFG = "paper1_cyclegan_srn/configs/"
ONE_STEP = ("--batch_size=1", "--num_steps=1")


def test_paper1_paper_flagfiles_on_celeba_layout(tmp_path):
    celeba = fixtures.celeba(str(tmp_path / "celeba"), n=10, w=178, h=218)
    rec = str(tmp_path / "records")
    build_run(["--source=celeba", f"--manual_dir={celeba}", "--split=train", "--mode=sharp",
           f"--output_dir={rec}", "--name=clear", "--num_shards=1"])
    build_run(["--source=celeba", f"--manual_dir={celeba}", "--split=validation", "--mode=kernel",
           f"--blur_kernels={os.path.join(SHARED_DATA, 'kernels', 'levin09.npz')}",
           f"--output_dir={rec}", "--name=blurred", "--num_shards=1"])

    cg_dir = str(tmp_path / "cyclegan")
    cg = cli.parse_flags([train_cyclegan.define_flags], [
        "prog", f"--flagfile={CFG}cyclegan.flags", *ONE_STEP, f"--workdir={cg_dir}",
        f"--clear_data={rec}/clear-*.tfrecord", f"--blurred_data={rec}/blurred-*.tfrecord"])
    assert (cg.generator, cg.crop_size, cg.resize) == ("resnet_9blocks", 256, "312,256")
    assert train_cyclegan.train_and_evaluate(cg_dir, cg) == 1

    pairs = str(tmp_path / "pairs")
    gp = cli.parse_flags([generate_pairs.define_flags], [
        "prog", f"--flagfile={CFG}generate_pairs.flags", f"--cyclegan_workdir={cg_dir}",
        f"--clear_data={celeba}/img_align_celeba", f"--output_dir={pairs}", "--batch_size=1"])
    summary = generate_pairs.generate(gp)
    assert summary["train"] + summary["test"] == 10 and summary["test"] == 2
    first = next(iter(tf.data.TFRecordDataset(tfrecord.list_files(f"{pairs}/train-*.tfrecord"))))
    ex = tfrecord.parse_example(first.numpy())
    assert ex[tfrecord.SHARP].shape == ex[tfrecord.BLURRED].shape == (312, 256, 3)

    srn_dir = str(tmp_path / "srn")
    srn = cli.parse_flags([train_srn.define_flags], [
        "prog", f"--flagfile={CFG}srn.flags", *ONE_STEP, f"--workdir={srn_dir}",
        f"--train_data={pairs}/train-*.tfrecord", f"--eval_data={pairs}/test-*.tfrecord"])
    assert (srn.variant, srn.crop_size) == ("paper", 256)
    assert train_srn.train_and_evaluate(srn_dir, srn) == 1

    ev = cli.parse_flags([evaluate.define_flags], [
        "prog", f"--srn_workdir={srn_dir}", f"--test_data={pairs}/test-*.tfrecord",
        "--detector=none", f"--output_dir={tmp_path / 'eval'}"])
    out = evaluate.run_eval(ev)
    assert out["num_test_images"] == 2
    assert json.load(open(tmp_path / "eval" / "tables.json"))["num_test_images"] == 2

    # export at the paper's crop (SRN needs static shapes), in float32 as a serving process would
    distribute.set_precision("none")  # training left the global policy at mixed_bfloat16
    config = cli.load_flags([train_srn.define_flags], srn_dir)
    model = train_srn.build_model(config, image_size=16)
    checkpoints.restore_for_eval(srn_dir, srn=model)
    paths = inference.export_model(model, str(tmp_path / "export"), name="srn", input_size=256)
    served = tf.saved_model.load(paths["saved_model"])
    x = np.random.default_rng(0).random((1, 256, 256, 3)).astype(np.float32)
    got = served.serve(tf.constant(x))
    got = got[-1] if isinstance(got, (list, tuple)) else got
    want = model(x, training=False)[-1]
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-4)
