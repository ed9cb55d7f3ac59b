"""YouTube Faces builder: the official splits (pairs with labels), video frames in frame order,
the data.build records path and the TFDS pairs/videos configs, on fixtures in the real layout."""
import os
import subprocess
import sys

import numpy as np
import pytest

from data.builders import _layout, face_videos, youtube_faces
from tests.data import fixtures
from tests.data.test_build import read_all, run


def test_read_splits_forms_and_labels(tmp_path):
  # the bare 4-column form (split, video 1, video 2, same) and the distributed wider form
  bare = fixtures.write(str(tmp_path / "a.txt"), "1, Ann_A/0, Ann_A/1, 1\n2, Ann_A/0, Ben_B/0, 0\n")
  assert youtube_faces.read_splits(bare) == [(1, "Ann_A/0", "Ann_A/1", True),
                                             (2, "Ann_A/0", "Ben_B/0", False)]
  wide = fixtures.write(str(tmp_path / "b.txt"), fixtures.YTF_SPLITS_HEADER +
                        "10, 499, Cid_C/3, Ben_B/0, 0, 0\n3, 7, Ben_B/0, Ben_B/2, 1, 1\n")
  assert youtube_faces.read_splits(wide) == [(10, "Cid_C/3", "Ben_B/0", False),
                                             (3, "Ben_B/0", "Ben_B/2", True)]
  bad = fixtures.write(str(tmp_path / "c.txt"), "1, Ann_A/0, 1\n")
  with pytest.raises(_layout.LayoutError, match="c.txt line 1"):
    youtube_faces.read_splits(bad)
  with pytest.raises(_layout.LayoutError, match="1..10"):
    youtube_faces.read_splits(fixtures.write(str(tmp_path / "d.txt"), "11, A/0, B/0, 0\n"))


def test_pairs_videos_and_clear_errors(tmp_path):
  root = fixtures.ytf(str(tmp_path / "ytf"))   # 32x32 frames, "split, v1, v2, d1, d2, same"
  pairs = [e for _, e in youtube_faces.generate_pairs(root)]
  assert pairs == [{"video1": "Ann_A/0", "video2": "Ann_A/1", "same": True, "fold": 0},
                   {"video1": "Cid_C/3", "video2": "Ben_B/0", "same": False, "fold": 9}]
  vids = dict(youtube_faces.generate_videos(root))
  assert sorted(vids) == ["Ann_A/0", "Ann_A/1", "Ben_B/0", "Cid_C/3"]
  # frame order by frame number, not by name: 555 < 556 < 557 < 1000
  assert [os.path.basename(p) for p in vids["Ann_A/0"]["frames"]] == [
      "0.555.jpg", "0.556.jpg", "0.557.jpg", "0.1000.jpg"]
  assert vids["Cid_C/3"]["identity"] == "Cid_C"
  # the records' person-disjoint split (people of split 10 = test), shared with face_videos
  test = {e["identity"] for _, e in face_videos.generate(root, "test", "youtube_faces", 4)}
  assert test == {"Ben_B", "Cid_C"}
  assert list(face_videos.videos(root, "youtube_faces", "train")) == list(youtube_faces.videos(root, "train"))
  os.remove(os.path.join(root, "meta_data", "splits.txt"))
  with pytest.raises(_layout.LayoutError, match="splits.txt"):
    list(youtube_faces.generate_pairs(root))
  fixtures.write(os.path.join(root, "splits.txt"), "1, Ann_A/0, Dan_D/0, 0\n")
  with pytest.raises(_layout.LayoutError, match="Dan_D/0"):
    list(youtube_faces.generate_pairs(root))
  with pytest.raises(_layout.LayoutError, match="frame_images_DB"):
    youtube_faces.check_layout(str(tmp_path))


def test_data_build_source_youtube_faces_pravg(tmp_path):
  root = fixtures.ytf(str(tmp_path / "ytf"))
  out = str(tmp_path / "rec")
  report = run(["--source=youtube_faces", f"--manual_dir={root}", "--split=test", "--mode=pravg",
                "--lengths=3", f"--output_dir={out}", "--num_shards=1"])
  assert report["records"] == 2   # Ben_B/0 and Cid_C/3: one 3-frame clip each
  recs = read_all(os.path.join(out, "test-*.tfrecord"), ["image/sharp", "image/blurred", "source"])
  frames = [np.asarray(fixtures.Image.open(p), np.float64) / 255 for p in sorted(
      youtube_faces.video_frames(os.path.join(root, "frame_images_DB"), "Ben_B/0"),
      key=youtube_faces.frame_number)[:3]]
  ben = next(r for r in recs if r["source"].decode().startswith("Ben_B/0"))
  np.testing.assert_allclose(ben["image/blurred"] / 255.0, np.mean(frames, 0), atol=1.5 / 255)
  np.testing.assert_array_equal(ben["image/sharp"] / 255.0, frames[1])


def test_tfds_pairs_and_videos(tmp_path):
  root = fixtures.ytf(str(tmp_path / "ytf"))
  b = _layout.prepare(youtube_faces.YoutubeFaces, root, str(tmp_path / "tfds"), config="pairs")
  rows = sorted((int(e["fold"]), bool(e["same"]), e["video1"].numpy().decode())
                for e in b.as_dataset(split="test"))
  assert rows == [(0, True, "Ann_A/0"), (9, False, "Cid_C/3")]
  b = _layout.prepare(youtube_faces.YoutubeFaces, root, str(tmp_path / "tfds"), config="videos")
  ex = {e["video_id"].numpy().decode(): e for e in b.as_dataset(split="test")}
  assert len(ex) == 4 and ex["Ann_A/1"]["frames"].shape == (4, 32, 32, 3)


def test_youtube_faces_reader_imports_no_other_builder():
  """One video path without a circle: face_videos (clips, PrAvg/VLA records) imports this reader;
  the reader imports no other builder."""
  code = ("import sys; import data.builders.youtube_faces; "
          "print(sorted(m for m in sys.modules if m.startswith('data.builders.')))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
  assert out.stdout.strip() == "['data.builders._layout', 'data.builders.youtube_faces']"
