"""Paper 3's paper flagfiles (sn_clean / sn_blurry / fnet / umsn.flags over paper.flags: variant
paper, 128x128 patches, 25,000 camera-shake kernels 13..29, noise 0.03, the paper's Adam rates,
L_p with lambda_1 = 1, auto precision) run end to end on fixtures laid out like the real
datasets at their real sizes: Helen with Smith et al.'s parsing labels (images of different
sizes, labels/<id>/<id>_lbl00..10.png, exemplars/tuning/testing.txt), CelebA img_align_celeba
178x218 + list files, and Shen et al.'s blurred test layout (<subset>/sharp, <subset>/blurred/
<name>_ker<K>_size<S>.png; 128x128 faces), through data.build -> records (Helen + CelebA) and
the test-set folder (Shen) -> the four stages -> evaluate (Table III on the stored blur) ->
export (.keras + SavedModel). Only the batch size (1) and step count (1) are overridden, plus
data paths, workdirs, --init_* and --vgg16_weights (a Keras VGG16 weights file written here:
no ImageNet weights offline, so L_p runs on the real loader with untrained weights).
Marker: paper_settings. Cost: see docs/setup.md."""
import glob
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from common import cli, image_io, inference, tfrecord
from common.train import distribute
from tests.data.test_build import run as build_run
from paper3_umsn import evaluate, export, models, train
from tests.data import fixtures

pytestmark = [pytest.mark.paper_settings, pytest.mark.usefixtures("eager_steps")]
# steps run eagerly (tests/conftest.py); the traced steps: the smoke stages of conftest.py
CFG = "paper3_umsn/configs/"
ONE_STEP = ("--batch_size=1", "--num_steps=1")
HELEN_SIZES = {"100_1": (300, 240), "101_1": (256, 320), "200_1": (200, 200), "300_1": (240, 180)}


def _faces(n, size):
  out = []
  for p in image_io.list_images("data/sample/faces")[:n]:
    img = image_io.read_image(p)
    top = (img.shape[0] - size) // 2
    out.append(img[top:top + size, top:top + size])
  return out


def _stage(name, workdir, *extra):
  cfg = cli.parse_flags([train.define_flags], [
      "prog", f"--flagfile={CFG}{name}.flags", *ONE_STEP, f"--workdir={workdir}", *extra])
  assert (cfg.stage, cfg.variant, cfg.crop_size, cfg.num_kernels, cfg.mixed_precision) == (
      name, "paper", 128, 25000, "auto")
  assert train.train_and_evaluate(workdir, cfg) == 1
  assert glob.glob(os.path.join(workdir, "checkpoints", "ckpt-1*"))
  return cfg


def test_paper3_paper_flagfiles_on_helen_celeba_and_shen_layouts(tmp_path, monkeypatch):
  helen = str(tmp_path / "helen")
  fixtures.helen(helen, sizes=HELEN_SIZES)
  celeba = fixtures.celeba(str(tmp_path / "celeba"), n=10, w=178, h=218)
  shen = fixtures.shen(str(tmp_path / "shen"), size=128, faces=_faces(2, 128))
  rec = str(tmp_path / "records")
  build_run(["--source=helen_parsing", f"--manual_dir={helen}", "--split=train", "--mode=sharp",
         f"--output_dir={rec}", "--name=helen", "--num_shards=1"])
  build_run(["--source=celeba", f"--manual_dir={celeba}", "--split=train", "--mode=sharp",
         f"--output_dir={rec}", "--name=celeba", "--num_shards=1"])
  test_set = str(tmp_path / "shen_helen")
  build_run(["--source=shen_blurred_faces", f"--manual_dir={shen}", "--split=helen", "--mode=paired",
         "--output_format=folder", f"--output_dir={test_set}", "--num_shards=1"])
  assert len(os.listdir(os.path.join(test_set, "blurred"))) == 8   # 2 faces x 2 kernels x 2 sizes
  first = tfrecord.parse_example(
      next(iter(tf.data.TFRecordDataset(f"{rec}/helen-00000-of-00001.tfrecord"))).numpy(),
      keys=(tfrecord.SHARP, tfrecord.MASK))
  assert first[tfrecord.MASK].shape == (300, 240, 1) and int(tf.reduce_max(first[tfrecord.MASK])) <= 3

  vgg = str(tmp_path / "vgg16.weights.h5")  # same layer names as ImageNet's Keras VGG16 file
  keras.applications.VGG16(include_top=False, weights=None).save_weights(vgg)

  helen_rec = f"--train_data={rec}/helen-*.tfrecord"
  both = f"--train_data={rec}/helen-*.tfrecord,{rec}/celeba-*.tfrecord"   # Sec. IV-A-2
  d = {s: str(tmp_path / s) for s in train.STAGES}
  _stage("sn_clean", d["sn_clean"], helen_rec)
  _stage("sn_blurry", d["sn_blurry"], helen_rec, f"--init_sn={d['sn_clean']}")
  _stage("fnet", d["fnet"], both, f"--init_sn={d['sn_blurry']}", f"--vgg16_weights={vgg}")
  umsn = _stage("umsn", d["umsn"], both, f"--init_sn={d['sn_blurry']}",
                f"--init_fnets={d['fnet']}", f"--vgg16_weights={vgg}")
  assert (umsn.lambda_1, umsn.lambda_conf, umsn.ablation) == (1.0, 0.01, "umsn")

  # Table III on Shen et al.'s stored blur (never re-blurred), at the run's 128 px, in float32
  # as a serving process would (training left the global policy mixed: auto on CPU is bf16)
  distribute.set_precision("none")
  config, model = evaluate.load_model(d["umsn"])
  result = evaluate.measure(d["umsn"], test_set, num_images=8, run=(config, model))
  assert result["restored"].shape == (8, 128, 128, 3)
  names = sorted(os.listdir(os.path.join(test_set, "blurred")))
  stored = np.stack([image_io.read_image(os.path.join(test_set, "blurred", n)) for n in names])
  np.testing.assert_array_equal(image_io.to_uint8(result["blurred"]), stored)
  t3 = evaluate.tables(result, "helen")[0]
  assert "26.93" in str(t3)   # the paper's UMSN row beside ours

  # export: .keras + SavedModel serve the same deblurring as the restored paper-size model;
  # export.export restores the workdir through export.load_deblurrer, done just above (by
  # evaluate.load_model): it gets that model instead of building and restoring the paper
  # networks a second time
  load_deblurrer = export.load_deblurrer
  monkeypatch.setattr(export, "load_deblurrer",
                      lambda wd, checkpoint=None: (model, config) if wd == d["umsn"]
                      else load_deblurrer(wd, checkpoint))
  paths = export.export(d["umsn"], str(tmp_path / "export"))
  served = tf.saved_model.load(paths["saved_model"])
  x = result["blurred"][:1].astype(np.float32)
  got = np.asarray(served.serve(tf.constant(x)))
  loaded = inference.load_keras(paths["keras"])
  assert isinstance(loaded, models.UMSNDeblurrer)
  want = np.asarray(loaded(x))
  np.testing.assert_allclose(got, want, atol=1e-4)
  np.testing.assert_allclose(want, np.asarray(model(x)), atol=1e-4)  # = the restored model
