"""data.synth_video: seeded, smooth, centre frame = the still, landmarks follow the pixels."""
import numpy as np

from common import frame_averaging, metrics
from data import synth_video
from tests.data import fixtures


def test_seeded_centre_frame_and_smooth():
  img = fixtures.rand_img(0, 48, 40)
  a = synth_video.synthesize(img, 9, seed=1)
  b = synth_video.synthesize(img, 9, seed=1)
  c = synth_video.synthesize(img, 9, seed=2)
  assert a["frames"].shape == (9, 48, 40, 3) and a["frames"].dtype == np.uint8
  np.testing.assert_array_equal(a["frames"], b["frames"])
  assert not np.array_equal(a["frames"], c["frames"])
  np.testing.assert_array_equal(a["frames"][4], img)
  np.testing.assert_allclose(a["params"][4], [0, 0, 0, 1])
  p = a["params"]
  assert np.abs(p[:, :2]).max() > 0.1  # it moves
  assert np.abs(np.diff(p[:, :2], axis=0)).max() < 0.08 * 48  # but smoothly
  assert np.all(np.abs(p[:, 3] - 1) < 0.1)


def test_landmarks_follow_the_warp():
  img = np.zeros((64, 64, 3), np.float32)
  img[20:23, 40:43] = 1.0  # a bright 3x3 dot centred at (x=41, y=21)
  clip = synth_video.synthesize(img, 7, seed=5, landmarks=np.array([[41.0, 21.0]]))
  for f, lm in zip(clip["frames"], clip["landmarks"]):
    w = f[..., 0]
    ys, xs = np.mgrid[:64, :64]
    centroid = np.array([(w * xs).sum(), (w * ys).sum()]) / w.sum()
    np.testing.assert_allclose(centroid, lm[0], atol=0.35)


def test_averaging_a_simulated_clip_blurs_more_with_length():
  img = fixtures.rand_img(3, 48, 48)
  frames = synth_video.synthesize(img, 21, seed=0)["frames"]
  psnrs = []
  for length in (7, 21):
    blurred, sharp = frame_averaging.average_frames(frames[10 - length // 2:10 + length // 2 + 1])
    np.testing.assert_allclose(sharp, img / 255.0, atol=1e-6)
    psnrs.append(metrics.psnr(blurred, sharp))
  assert psnrs[0] > psnrs[1] and psnrs[0] < 40


def test_write_clips(tmp_path):
  src = tmp_path / "stills"
  for i in range(2):
    fixtures.save(str(src / f"s{i}.png"), fixtures.rand_img(i))
  out = synth_video.write_clips(str(src), str(tmp_path / "clips"), num_frames=5, seed=0)
  from data.builders import face_videos
  clips = list(face_videos.generate(str(tmp_path / "clips"), "all", "frames", clip_length=5))
  assert len(out) == 2 and len(clips) == 2
