"""One data path: the trainers read what the TFDS builders prepare (`tfds:NAME[:SPLIT][@DIR]`,
`common.tfds_source`, read in `common.pipeline.make_dataset`)."""
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from common import cli, image_io, pipeline, tfds_source
from data.builders import _layout, helen_parsing
from tests.data import fixtures

NAME = "facedeblur_helen_parsing"


@pytest.fixture(scope="module")
def helen_tfds(tmp_path_factory):
  """Helen-parsing fixture (images/, labels/<id>/<id>_lbl00..10.png, split files) prepared by
  the TFDS builder into a temporary data_dir: (manual_dir, data_dir, expected masks)."""
  root = tmp_path_factory.mktemp("helen_tfds")
  manual = str(root / "manual")
  expected = fixtures.helen(manual)
  data_dir = str(root / "tfds")
  _layout.prepare(helen_parsing.HelenParsing, manual, data_dir)
  return manual, data_dir, expected


def test_parse_spec():
  assert tfds_source.parse("tfds:facedeblur_lfw/images:test@/d") == ("facedeblur_lfw/images", "test", "/d")
  assert tfds_source.parse("tfds:facedeblur_celeba") == ("facedeblur_celeba", "train", None)
  with pytest.raises(ValueError, match="no dataset name"):
    tfds_source.parse("tfds::train")


def test_make_dataset_reads_the_prepared_split_exactly(helen_tfds):
  manual, data_dir, expected = helen_tfds
  spec = f"tfds:{NAME}:test330@{data_dir}"
  ds = pipeline.make_dataset(spec, 1, training=False, keys=("sharp", "mask", "source"))
  got = {b["source"].numpy()[0].decode(): b for b in ds}
  assert sorted(got) == ["200_1", "300_1"]  # tuning + testing = paper 3's test330
  for image_id, b in got.items():
    path = helen_parsing.find_image(os.path.join(manual, "images"), image_id)
    # TFDS keeps the JPEG and TensorFlow decodes it (PIL's decoder, used by data.build, may
    # differ by a few levels: another IDCT)
    with open(path, "rb") as f:
      want = tf.io.decode_jpeg(f.read()).numpy()
    np.testing.assert_array_equal(np.round(b["sharp"].numpy()[0] * 255).astype(np.uint8), want)
    assert np.abs(want.astype(int) - image_io.read_image(path)).max() <= 8
    np.testing.assert_array_equal(b["mask"].numpy()[0, ..., 0], expected[image_id])
  assert tfds_source.num_examples(spec) == 2
  assert pipeline.first_image_sizes(spec)[0][1:] == (32, 32)


def test_shards_partition_the_split(helen_tfds):
  _, data_dir, _ = helen_tfds
  spec = f"tfds:{NAME}:test330@{data_dir}"
  seen = []
  for i in range(2):
    ds = pipeline.make_dataset(spec, 1, training=False, keys=("source",), shard=(2, i))
    seen.append([b["source"].numpy()[0].decode() for b in ds])
  assert sorted(seen[0] + seen[1]) == ["200_1", "300_1"] and all(len(s) == 1 for s in seen)


def test_errors_name_the_dataset_and_what_is_missing(helen_tfds, tmp_path):
  _, data_dir, _ = helen_tfds
  with pytest.raises(ValueError, match="no feature for key 'blurred'.*'mask'"):
    pipeline.make_dataset(f"tfds:{NAME}@{data_dir}", 1, keys=("sharp", "blurred"))
  with pytest.raises(FileNotFoundError, match="facedeblur_gopro.*prepare it first"):
    pipeline.make_dataset(f"tfds:facedeblur_gopro:test@{tmp_path}", 1)


def test_read_without_the_builder_classes_imported(helen_tfds):
  """A trainer process need not import data.builders: TFDS reads the prepared metadata."""
  _, data_dir, _ = helen_tfds
  code = ("import sys; from common import pipeline; "
          f"ds = pipeline.make_dataset('tfds:{NAME}:train@{data_dir}', 2, training=False, "
          "keys=('sharp', 'mask')); b = next(iter(ds)); "
          "assert 'data.builders' not in sys.modules; print(tuple(b['mask'].shape))")
  env = {**os.environ, "PYTHONPATH": os.getcwd(), "TF_CPP_MIN_LOG_LEVEL": "2"}
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                       timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.strip().splitlines()[-1] == "(2, 32, 32, 1)"


def test_paper3_sn_stage_trains_on_the_tfds_split(helen_tfds, tmp_path):
  """paper 3's SN stage (needs masks) reads --train_data=tfds:... straight from the builder."""
  from paper3_umsn import train
  _, data_dir, _ = helen_tfds
  workdir = str(tmp_path / "sn")
  cfg = cli.parse_flags([train.define_flags], [
      "prog", "--flagfile=paper3_umsn/configs/smoke.flags", "--stage=sn_clean",
      f"--train_data=tfds:{NAME}:train@{data_dir}", "--num_steps=1", "--checkpoint_every=1",
      f"--workdir={workdir}"])
  tf.config.run_functions_eagerly(True)
  try:
    assert train.train_and_evaluate(workdir, cfg) == 1
  finally:
    tf.config.run_functions_eagerly(False)
  assert os.path.isfile(os.path.join(workdir, "checkpoints", "checkpoint"))
