"""Builders on fixtures in the real layouts, and on ../shared/data where it holds the layout."""
import os

import numpy as np
import pytest
import tensorflow as tf

from data.builders import (_layout, celeba, face_videos, gopro, helen_parsing, lfw,
                           shen_blurred_faces, unpaired_blur)
from tests.data import fixtures
from common.paths import SHARED_DATA

SHARED = SHARED_DATA
needs_shared = pytest.mark.skipif(not os.path.isdir(SHARED), reason="no ../shared/data here")


def test_celeba_official_files(tmp_path):
  root = fixtures.celeba(str(tmp_path / "celeba"))
  train = dict(celeba.generate(root, "train"))
  assert sorted(train) == [f"{i:06d}.jpg" for i in range(1, 7)]
  assert [k for k, _ in celeba.generate(root, "test")] == ["000009.jpg", "000010.jpg"]
  ex = train["000002.jpg"]
  assert ex["identity"] == 102 and ex["has_landmarks"]
  # images are 89x109 = half of 178x218, so landmarks are halved
  np.testing.assert_allclose(ex["landmarks"], np.array(
      [[69, 109], [106, 113], [77, 142], [73, 152], [108, 156]], np.float32) / 2)


def test_celeba_fallback_without_annotations(tmp_path):
  root = fixtures.celeba(str(tmp_path / "c"), n=20, with_annotations=False)
  splits = {s: [k for k, _ in celeba.generate(root, s)] for s in celeba.SPLITS}
  assert [len(splits[s]) for s in ("train", "validation", "test")] == [16, 2, 2]
  assert splits["test"] == ["000019.jpg", "000020.jpg"]
  ex = next(celeba.generate(root, "train"))[1]
  assert ex["identity"] == -1 and not ex["has_landmarks"]


def test_celeba_layout_error_names_folder(tmp_path):
  with pytest.raises(_layout.LayoutError, match="img_align_celeba"):
    celeba.check_layout(str(tmp_path))


def test_celeba_tfds_prepare_offline(tmp_path):
  root = fixtures.celeba(str(tmp_path / "celeba"))
  b = _layout.prepare(celeba.Celeba, root, str(tmp_path / "tfds"))
  assert b.info.splits["train"].num_examples == 6
  ex = next(iter(b.as_dataset(split="validation").take(1)))
  assert ex["image"].shape == (109, 89, 3) and ex["image"].dtype == tf.uint8
  assert int(ex["identity"]) in (101, 102, 100)


def test_helen_grouping_and_splits(tmp_path):
  root = str(tmp_path / "helen")
  expected = fixtures.helen(root)
  train = dict(helen_parsing.generate(root, "train"))
  assert sorted(train) == ["100_1", "101_1"]
  for k, ex in train.items():
    np.testing.assert_array_equal(ex["mask"][..., 0], expected[k])
    assert set(np.unique(ex["mask"])) <= {0, 1, 2, 3}
  assert [k for k, _ in helen_parsing.generate(root, "test330")] == ["200_1", "300_1"]
  os.remove(os.path.join(root, "labels", "300_1", "300_1_lbl07.png"))
  with pytest.raises(_layout.LayoutError, match="300_1_lbl07.png"):
    list(helen_parsing.generate(root, "test"))


def test_helen_missing_split_file(tmp_path):
  root = str(tmp_path / "helen")
  fixtures.helen(root)
  os.remove(os.path.join(root, "exemplars.txt"))
  with pytest.raises(_layout.LayoutError, match="exemplars.txt"):
    helen_parsing.check_layout(root)


def test_lfw_fixture_split_and_pairs(tmp_path):
  root = fixtures.lfw(str(tmp_path / "lfw"))
  pairs = list(lfw.generate_pairs(root))
  assert [(p["name1"], p["name2"], p["same"], p["fold"]) for _, p in pairs] == [
      ("Alice_A", "Alice_A", True, 0), ("Alice_A", "Bob_B", False, 0),
      ("Dan_D", "Dan_D", True, 1), ("Dan_D", "Carol_C", False, 1)]
  old = lfw.TEST_FOLDS
  lfw.TEST_FOLDS = (1,)
  try:
    test = {e["name"] for _, e in lfw.generate(root, "test")}
    train = {e["name"] for _, e in lfw.generate(root, "train")}
  finally:
    lfw.TEST_FOLDS = old
  assert test == {"Dan_D", "Carol_C"} and train == {"Alice_A", "Bob_B"}
  os.remove(os.path.join(root, "Bob_B", "Bob_B_0001.jpg"))
  with pytest.raises(_layout.LayoutError, match="Bob_B_0001.jpg"):
    list(lfw.generate_pairs(root))


def test_lfw_tfds_pairs_config(tmp_path):
  root = fixtures.lfw(str(tmp_path / "lfw"))
  b = _layout.prepare(lfw.Lfw, root, str(tmp_path / "tfds"), config="pairs")
  rows = list(b.as_dataset(split="test").as_numpy_iterator())
  assert sorted((r["fold"], bool(r["same"])) for r in rows) == [(0, False), (0, True), (1, False), (1, True)]
  assert rows[0]["image1"].shape == (32, 32, 3)


def test_gopro_and_errors(tmp_path):
  root = fixtures.gopro(str(tmp_path / "gopro"))
  train = list(gopro.generate(root, "train"))
  assert [k for k, _ in train] == ["GOPR0001_00_00/000001.png", "GOPR0001_00_00/000002.png",
                                   "GOPR0002_00_00/000001.png", "GOPR0002_00_00/000002.png"]
  os.remove(os.path.join(root, "test", "GOPR0009_00_00", "sharp", "000002.png"))
  with pytest.raises(_layout.LayoutError, match="000002.png"):
    list(gopro.generate(root, "test"))
  with pytest.raises(_layout.LayoutError, match="'train'"):
    gopro.check_layout(str(tmp_path))


def test_shen_pairs(tmp_path):
  root = fixtures.shen(str(tmp_path / "shen"))
  assert shen_blurred_faces.check_layout(root) == ["celeba", "helen"]
  exs = [e for _, e in shen_blurred_faces.generate(root, "helen")]
  assert len(exs) == 8
  assert {(e["name"], e["kernel_index"], e["kernel_size"]) for e in exs} == {
      (n, k, s) for n in ("0001", "0002") for k in (1, 2) for s in (13, 27)}
  assert all(e["sharp"].endswith(e["name"] + ".png") for e in exs)
  fixtures.save(os.path.join(root, "helen", "blurred", "9999_ker01_size13.png"), fixtures.rand_img(0))
  with pytest.raises(_layout.LayoutError, match="9999"):
    list(shen_blurred_faces.generate(root, "helen"))


def test_unpaired(tmp_path):
  root = fixtures.unpaired(str(tmp_path / "u"))
  exs = list(unpaired_blur.generate(root))
  assert [(e["domain"], e["file_name"]) for _, e in exs] == [
      ("clear", "c0.png"), ("clear", "c1.png"), ("clear", "c2.png"),
      ("blurred", os.path.join("sub", "b0.jpg")), ("blurred", os.path.join("sub", "b1.jpg"))]
  os.makedirs(str(tmp_path / "v" / "clear"))
  with pytest.raises(_layout.LayoutError, match="blurred"):
    unpaired_blur.check_layout(str(tmp_path / "v"))


def test_face_videos_300vw(tmp_path):
  root = fixtures.vw300(str(tmp_path / "300vw"), n_frames=9)
  clips = list(face_videos.generate(root, "all", "300vw", clip_length=4))
  # 9 frames -> 2 clips of 4 per video, tail dropped
  assert [k for k, _ in clips] == ["001@0", "001@4", "002@0", "002@4"]
  lm = clips[1][1]["landmarks"]
  assert lm.shape == (4, 68, 2)
  np.testing.assert_allclose(lm[0, 10], [10, 5 + 5])  # frame 5 (1-based): y = 0.5 * 10 + 5


def test_face_videos_ytf_order_and_split(tmp_path):
  root = fixtures.ytf(str(tmp_path / "ytf"))
  clips = list(face_videos.generate(root, "all", "youtube_faces", clip_length=4))
  assert [k for k, _ in clips] == ["Ann_A/0@0", "Ann_A/1@0", "Ben_B/0@0", "Cid_C/3@0"]
  assert [os.path.basename(p) for p in clips[0][1]["frames"]] == [
      "0.555.jpg", "0.556.jpg", "0.557.jpg", "0.1000.jpg"]
  test = {e["identity"] for _, e in face_videos.generate(root, "test", "youtube_faces", 4)}
  train = {e["identity"] for _, e in face_videos.generate(root, "train", "youtube_faces", 4)}
  assert test == {"Ben_B", "Cid_C"} and train == {"Ann_A"}


def test_face_videos_generic_and_error(tmp_path):
  root = str(tmp_path / "g")
  for i in range(5):
    fixtures.save(os.path.join(root, "personA", "clip1", f"f{i}.png"), fixtures.rand_img(i))
  clips = list(face_videos.generate(root, "all", "frames", clip_length=5))
  assert [k for k, _ in clips] == [os.path.join("personA", "clip1") + "@0"]
  assert clips[0][1]["identity"] == "personA"
  os.makedirs(str(tmp_path / "empty"))
  with pytest.raises(_layout.LayoutError, match="no frame folder"):
    list(face_videos.generate(str(tmp_path / "empty"), "all", "frames"))


def test_face_videos_tfds(tmp_path):
  root = fixtures.vw300(str(tmp_path / "300vw"), n_frames=4, videos=("001",))
  b = _layout.prepare(face_videos.FaceVideos, root, str(tmp_path / "tfds"), config="300vw",
                      clip_length=4)
  ex = next(iter(b.as_dataset(split="train")))
  assert ex["frames"].shape == (4, 32, 32, 3) and ex["landmarks"].shape == (4, 68, 2)


@needs_shared
def test_shared_lfw():
  root = os.path.join(SHARED, "lfw")
  pairs = list(lfw.generate_pairs(root))  # finds ../lfw_pairs.txt, checks every file exists
  assert len(pairs) == 6000 and sum(p["same"] for _, p in pairs) == 3000
  train = {e["name"] for _, e in lfw.generate(root, "train")}
  test = {e["name"] for _, e in lfw.generate(root, "test")}
  assert train and test and not train & test


@needs_shared
def test_shared_celeba_small_fallback(tmp_path):
  root = os.path.join(SHARED, "celeba_small")
  lay = celeba.check_layout(root)
  assert lay["partition"] is None and lay["identity"] is None
  n = {s: len(celeba.split_files(root, s)[1]) for s in celeba.SPLITS}
  assert n == {"train": 8000, "validation": 1000, "test": 1000}
  b = _layout.prepare(celeba.Celeba, root, str(tmp_path / "tfds"), max_examples_per_split=3)
  ex = next(iter(b.as_dataset(split="test")))
  assert ex["image"].shape == (109, 89, 3)


@pytest.mark.parametrize("cls,fixture,splits,supervised", [
    (gopro.Gopro, fixtures.gopro, {"train": 4, "test": 2}, ("blurred", "sharp")),
    (shen_blurred_faces.ShenBlurredFaces, fixtures.shen, {"celeba": 8, "helen": 8},
     ("blurred", "sharp")),
    (helen_parsing.HelenParsing, fixtures.helen,
     {"train": 2, "validation": 1, "test": 1, "test330": 2}, None),
    (unpaired_blur.UnpairedBlur, fixtures.unpaired, {"train": 5}, None),
])
def test_manual_dir_builders_prepare_offline(tmp_path, cls, fixture, splits, supervised):
  assert issubclass(cls, _layout.ManualDirBuilder) and cls.VERSION == "1.0.0"
  root = str(tmp_path / "manual")
  fixture(root)
  b = _layout.prepare(cls, root, str(tmp_path / "tfds"))
  assert {s: b.info.splits[s].num_examples for s in b.info.splits} == splits
  assert b.info.supervised_keys == supervised
  wrong = tmp_path / "wrong"
  wrong.mkdir()
  (wrong / "junk.txt").write_text("x")
  with pytest.raises(_layout.LayoutError, match="wrong"):  # the check names the folder
    _layout.prepare(cls, str(wrong), str(tmp_path / "tfds2"))
