"""Sec. 5.6 real-video protocol (`paper2_identity_cgan.real_video`) on one short real clip."""
import glob
import json
import os

from absl import flags
import numpy as np
import pytest

from common.paths import SHARED_DATA
from paper2_identity_cgan import real_video

TOY = os.path.join(SHARED_DATA, "face_video_toy")


def test_sharpness_picks_the_unblurred_frame():
  rng = np.random.default_rng(0)
  sharp = rng.random((32, 32, 3)).astype(np.float32)
  box = sum(np.roll(np.roll(sharp, dy, 0), dx, 1) for dy in (-1, 0, 1) for dx in (-1, 0, 1)) / 9
  assert real_video.sharpness(sharp) > real_video.sharpness(box)
  # the 4-neighbour Laplacian against a direct NumPy loop on one pixel
  g = sharp.astype(np.float64).mean(-1)
  lap = g[4, 6] + g[6, 6] + g[5, 5] + g[5, 7] - 4 * g[5, 6]
  full = np.array([[g[y - 1, x] + g[y + 1, x] + g[y, x - 1] + g[y, x + 1] - 4 * g[y, x]
                    for x in range(1, 31)] for y in range(1, 31)])
  assert full[4, 5] == pytest.approx(lap)
  assert real_video.sharpness(sharp) == pytest.approx(full.var())


@pytest.mark.skipif(not os.path.isdir(TOY), reason="needs ../shared/data/face_video_toy")
def test_real_video_on_one_clip(tmp_path):
  clip = sorted(glob.glob(os.path.join(TOY, "*")))[0]
  names, seq = real_video.read_sequence(clip, size=128)
  assert names[-1] == "blurred.png" and len(names) == 8 and seq.shape == (8, 128, 128, 3)
  frames_only, _ = real_video.read_sequence(clip, size=128, with_blurred_png=False)  # --nowith_blurred_png
  assert frames_only == names[:-1]
  from common.face import FaceModels
  tools = FaceModels(identity_model="dlib_resnet", landmarker="", detector="", box_detector="dlib")
  # identical frames: every scored frame has the reference's embedding, cosine 1
  same = real_video.score_sequence(np.repeat(seq[:1], 3, 0), {}, tools, key="same")
  np.testing.assert_allclose(same["cosine"]["blurred"], 1.0, atol=1e-9)
  # the real clip: the reference (sharpest frame) is a frame, never the averaged blurred.png,
  # and an identity "method" scores exactly like the blurred row
  r = real_video.score_sequence(seq, {"copy": lambda x: x}, tools, names=names, key=clip)
  assert r["reference_name"] != "blurred.png" and "blurred.png" in r["frames"]
  assert len(r["cosine"]["blurred"]) == 7 and r["cosine"]["copy"] == r["cosine"]["blurred"]
  assert all(0.5 < c <= 1.0 for c in r["cosine"]["blurred"])
  # the CLI path: JSON + plot, ranking over the pooled frames
  fv = flags.FlagValues()
  real_video.define_flags(fv)
  fv(["real_video", f"--video={clip}", "--method=unsharp", "--size=128", "--reference=0",
      f"--out_dir={tmp_path}"])
  res = real_video.run(fv)
  with open(tmp_path / "real_video.json") as f:
    assert json.load(f)["ranking"] == res["ranking"]
  assert sorted(res["ranking"]) == ["blurred", "unsharp"]
  assert res["sequences"][clip]["reference_name"] == os.path.join("frames", "0000.png")
  assert res["summary"]["blurred"]["n"] == 7
  assert os.path.getsize(tmp_path / "real_video_cosine.png") > 0
