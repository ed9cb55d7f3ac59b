"""Table 8 on YouTube Faces (Sec. 5.5): the official splits of a fixture in the real layout
(320x240 JPEG frames, face centred) made from LFW faces, through `evaluate.ytf_verification`."""
import os

import numpy as np
import pytest

from common import image_io
from common.paths import SHARED_DATA
from paper2_identity_cgan import evaluate
from tests.data import fixtures

LFW = os.path.join(SHARED_DATA, "lfw")
PEOPLE = ("Aaron_Eckhart", "AJ_Lamas")


def _faces():
  out = {}
  for name in PEOPLE:
    imgs = sorted(os.listdir(os.path.join(LFW, name)))
    out[name] = [image_io.read_image(os.path.join(LFW, name, imgs[0]))] * 2   # videos 0 and 1
  return out


@pytest.mark.skipif(not os.path.isdir(LFW), reason="needs ../shared/data/lfw")
def test_ytf_table8_over_the_official_splits(tmp_path):
  from common.face import FaceModels
  faces = _faces()
  faces[PEOPLE[1]] = faces[PEOPLE[1]][:1]
  a, b = PEOPLE[:2]
  pairs = [(1, f"{a}/0", f"{a}/0", True)]   # identical videos: cosine 1
  for split in range(1, 11):   # 3 videos: a/0, a/1, b/0
    pairs += [(split, f"{a}/0", f"{a}/1", True), (split, f"{a}/{split % 2}", f"{b}/0", False)]
  root = fixtures.ytf_faces(str(tmp_path / "ytf"), faces, n_frames=13, pairs=pairs)
  frame = image_io.read_image(os.path.join(root, "frame_images_DB", a, "1", "1.105.jpg"))
  assert frame.shape == (240, 320, 3)
  tools = FaceModels(identity_model="dlib_resnet", landmarker="", detector="", box_detector="dlib")
  # PrAvg 7 only here (11 is the same code path; run_eval does both)
  yv = evaluate.ytf_verification({"final": lambda x: x}, root, 0, tools, 128, lengths=(7,))
  assert len(yv["pairs"]) == 21
  for row in ("final", "blurred", "gt"):
    for L in (7,):
      assert yv["scores"][row][L][0] == pytest.approx(1.0, abs=1e-9)   # the identical pair
      accs = yv["per_split"][row][L]
      assert len(accs) == 10 and all(0.0 <= a <= 1.0 for a in accs)
      assert yv["ver"][row][L] == (pytest.approx(np.mean(accs)), pytest.approx(np.std(accs)))
  # an identity "model" is the blurred input: same scores, same table row
  np.testing.assert_array_equal(yv["scores"]["final"][7], yv["scores"]["blurred"][7])
  # the sharp frames separate these three people: every different pair scores below every same one
  gt = yv["scores"]["gt"][7]
  same = np.array([p[3] for p in yv["pairs"]])
  assert gt[~same].max() < gt[same].min()
  assert yv["ver"]["gt"][7][0] == 1.0
  ts = evaluate.tables({}, yv["ver"], len(yv["pairs"]), ["final"], (), "YouTube Faces",
                       yv["per_split"])
  assert ts[0].title.startswith("Table 8: verification on YouTube Faces")
  assert "21 pairs of the official splits" in str(ts[0])
  assert ts[0].value("ours", "PrAvg 7", "paper") == (0.8482, 0.0179)
  assert ts[1].value("gt", "split 3") == 1.0 and ts[1].title.endswith("PrAvg 7 (accuracy)")


def test_video_windows_and_descriptor(tmp_path):
  rng = np.random.default_rng(0)
  paths = []
  for k in range(15):
    paths.append(fixtures.save(str(tmp_path / f"0.{k}.png"),
                               rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)))
  b, s = evaluate.video_windows(paths, 7, 24)
  assert b.shape == (2, 24, 24, 3)   # windows centred at 3 and 10
  frames = np.stack([image_io.read_image(p)[:, 4:28] for p in paths]).astype(np.float64) / 255
  np.testing.assert_allclose(b[1], frames[7:14].mean(0), atol=1e-6)
  np.testing.assert_allclose(s[0], frames[3], atol=1e-7)
  assert evaluate.video_windows(paths, 7, 24, max_windows=1)[0].shape[0] == 1
  with pytest.raises(ValueError, match="fewer than PrAvg 21"):
    evaluate.video_windows(paths, 21, 24)
  d = evaluate.video_descriptor([[3.0, 0.0], [0.0, 1.0]])
  np.testing.assert_allclose(d, [2 ** -0.5, 2 ** -0.5])


def test_lfw_fallback_is_labelled():
  ver = {"final": {7: (0.8, 0.01), 11: (0.7, 0.02)}}
  t = evaluate.tables({}, ver, 40, ["final"])[0]
  assert t.title == "Table 8: verification on LFW (mean acc. ± std)"
  assert "fallback: no --ytf_dir" in str(t)
