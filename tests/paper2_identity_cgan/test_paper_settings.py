"""Paper 2's paper flagfiles (hg.flags, cgan.flags over paper.flags: variant paper = 8-stack
Newell hourglass and Table 3's G/D, 256 px, the paper's Adam and Eq. 6 weights, VLA forward +
reverse, auto precision) run end to end on fixtures laid out like the real datasets at their
real sizes: CelebA img_align_celeba 178x218 + list files (the HG's still faces) and 300VW
(<video>/frames + annot/*.pts, 640x360 frames, a 135-px face) through data.build -> records ->
HG -> cGAN -> evaluate. Only the batch size (1) and the step count (--num_steps=1, --epochs=0)
are overridden, plus data paths and workdirs. Marker: paper_settings.

Paper 2 has no export step: a trained cGAN is used through its workdir (evaluate, deblur,
common.compare's paper2: spec). Cost: see docs/setup.md."""
import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from common import cli, image_io, tfrecord
from tests.data.test_build import run as build_run
from paper2_identity_cgan import evaluate, models, train
from tests.data import fixtures

pytestmark = [pytest.mark.paper_settings, pytest.mark.usefixtures("eager_steps")]
# steps run eagerly (tests/conftest.py); the traced steps: test_train_data.py (tiny variant)
CFG = "paper2_identity_cgan/configs/"
ONE_STEP = ("--batch_size=1", "--num_steps=1", "--epochs=0")


def _first_face():
  return image_io.read_image(image_io.list_images("data/sample/faces")[0])


def test_paper2_paper_flagfiles_on_celeba_and_300vw_layouts(tmp_path, monkeypatch):
  celeba = fixtures.celeba(str(tmp_path / "celeba"), n=10, w=178, h=218)
  # held-out faces for the in-training PSNR (--eval_data, a data path): one CelebA-size still
  # (178x218) and one 150x150 test face instead of 32, each resized on its shorter side
  held_out = tmp_path / "held_out"
  held_out.mkdir()
  celeba_face = image_io.read_image(image_io.list_images(f"{celeba}/img_align_celeba")[-1])
  image_io.write_image(str(held_out / "a_celeba.png"), celeba_face)
  image_io.write_image(str(held_out / "b_lfw.png"), _first_face())
  vw = fixtures.vw300_face_video(str(tmp_path / "300VW"), _first_face())
  rec = str(tmp_path / "records")
  build_run(["--source=celeba", f"--manual_dir={celeba}", "--split=train", "--mode=sharp",
         f"--output_dir={rec}", "--name=stills", "--num_shards=1"])
  rep = build_run(["--source=face_videos", "--video_layout=300vw", f"--manual_dir={vw}", "--split=all",
               "--mode=vla", f"--output_dir={rec}", "--name=vla", "--num_shards=1"])
  assert rep["records"] == 1
  raw = next(iter(tf.data.TFRecordDataset(f"{rec}/vla-00000-of-00001.tfrecord"))).numpy()
  ex = {k: v.numpy() for k, v in tfrecord.parse_example(
      raw, (tfrecord.SHARP, tfrecord.BLURRED, tfrecord.LANDMARKS)).items()}
  # the clip's face box (annot/*.pts), not the whole 640x360 frame, at the paper's 256 px
  assert ex[tfrecord.SHARP].shape == ex[tfrecord.BLURRED].shape == (256, 256, 3)
  lm = ex[tfrecord.LANDMARKS]
  assert lm.shape == (68, 2)
  assert (lm >= 0).all() and (lm < 256).all()
  assert np.abs(ex[tfrecord.SHARP].astype(int) - ex[tfrecord.BLURRED]).mean() > 1  # really averaged

  # stage 1: the HG (8 stacks, 256 features) on kernel-blurred CelebA stills, resized to 256
  hg_dir = str(tmp_path / "hg")
  hg = cli.parse_flags([train.define_flags], [
      "prog", f"--flagfile={CFG}hg.flags", *ONE_STEP, f"--workdir={hg_dir}",
      f"--train_data={rec}/stills-*.tfrecord", f"--eval_data={held_out}"])
  assert (hg.variant, hg.crop_size, hg.resize, hg.stage) == ("paper", 256, "312,256", "hg")
  # CelebA keeps its aspect: 178x218 (WxH) -> 256x314, the centre 256 rows; the square face
  # is resized to 256x256, not to --resize's 312x256
  (batch,) = train.eval_batches(hg, 0)
  got = batch["sharp"].numpy()
  for face, (h, w) in ((celeba_face, (314, 256)), (_first_face(), (256, 256))):
    want = tf.image.resize(face, (h, w), antialias=True).numpy()
    want = np.round(np.clip(want, 0, 255))[(h - 256) // 2:(h - 256) // 2 + 256] / 255
    assert np.abs(got[0 if h == 314 else 1] - want).max() < 1e-5
  assert (hg.hg_learning_rate, hg.mixed_precision) == (2.5e-4, "auto")
  assert train.train_and_evaluate(hg_dir, hg) == 1
  assert glob.glob(os.path.join(hg_dir, "checkpoints", "ckpt-1*"))

  # stage 2: G_bl + G_s + D with the frozen HG on the 300VW VLA pairs (256 crops of the frames)
  cg_dir = str(tmp_path / "cgan")
  cg = cli.parse_flags([train.define_flags], [
      "prog", f"--flagfile={CFG}cgan.flags", *ONE_STEP, f"--workdir={cg_dir}",
      f"--hg_workdir={hg_dir}", f"--train_pairs={rec}/vla-*.tfrecord",
      f"--eval_data={held_out}"])
  assert (cg.variant, cg.crop_size, cg.lambda_adv, cg.lambda_p, cg.lambda_ci) == (
      "paper", 256, 1.0, 8.0, 100.0)
  assert (cg.global_residual, cg.hg_zero_init, cg.adv_warmup_steps) == (False, False, 0)
  assert train.train_and_evaluate(cg_dir, cg) == 1
  with open(os.path.join(cg_dir, cli.FLAGS_FILENAME)) as f:
    assert "--variant=paper" in f.read()

  # evaluate at the trained size (256): the 300VW test video + one held-out still, every
  # protocol; face models are tested elsewhere (tests/common), so none here. Windows every 7
  # frames (--window_stride; every frame: test_window_tables.py) keep it to 15 video windows.
  out = str(tmp_path / "eval")
  fv = cli.parse_flags([evaluate.define_flags], [
      "prog", f"--workdirs=final={cg_dir}", f"--test_videos={vw}/*", "--stills_limit=1",
      "--window_stride=7", "--landmarker=", "--identity_model=", f"--out_dir={out}"])
  loaded = []  # what run_eval restored (not rebuilt a second time below)
  load_model = evaluate.load_model
  monkeypatch.setattr(evaluate, "load_model", lambda wd: loaded.append(load_model(wd)) or loaded[-1])
  evaluate.run_eval(fv)
  with open(os.path.join(out, "results.json")) as f:
    res = json.load(f)
  assert set(res) == set(evaluate.PROTOCOLS)
  for proto, rows in res.items():
    # every frame window of the video (--every_window, Tables 5-7) + the still's middle window
    assert rows["final"]["n"] == rows["blurred"]["n"] >= 2, proto
    # a window of still frames averages to its sharp frame: the blurred PSNR may be inf (exact)
    assert np.isfinite(rows["final"]["psnr"]) and rows["blurred"]["psnr"] > 0

  # the restored model is the paper's (rebuilt from flags.txt) at the paper's size
  ((cfg, fn),) = loaded
  assert cfg.variant == "paper" and fn(np.zeros((1, 256, 256, 3), np.float32)).shape == (1, 256, 256, 3)
  assert models.VARIANTS["paper"]["hg_stacks"] == 8
