"""python -m data.build: records, report, resume, kernel math, frame averaging on real video."""
import glob
import json
import os

from absl import flags
import numpy as np
import pytest
from scipy import ndimage
import tensorflow as tf

from common import blur, frame_averaging, image_io, metrics, tfrecord
from data import build
from tests.data import fixtures
from tests.kernel_reference import centroid_offset
from common.paths import SHARED_DATA

TOY = os.path.join(SHARED_DATA, "face_video_toy")


def run(argv):
  fv = flags.FlagValues()
  build.define_flags(fv)
  fv(["build"] + argv)
  return build.build(build.config_from_flags(fv))


def read_all(pattern, keys):
  files = sorted(glob.glob(pattern))
  ds = tf.data.TFRecordDataset(files).map(lambda s: tfrecord.parse_example(s, keys))
  return list(ds.as_numpy_iterator())


@pytest.fixture
def messy_folder(tmp_path):
  root = tmp_path / "faces"
  for i in range(5):
    fixtures.save(str(root / f"rgb{i}.png"), fixtures.rand_img(i, 40, 36))
  fixtures.save(str(root / "gray.png"), fixtures.rand_img(9, 40, 36)[..., 0])  # L mode
  fixtures.save(str(root / "tiny.png"), fixtures.rand_img(8, 8, 8))
  (root / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
  return str(root)


def test_kernel_mode_math_report_and_pipeline(messy_folder, tmp_path):
  out = str(tmp_path / "rec")
  rep = run(["--source=folder", f"--manual_dir={messy_folder}", f"--output_dir={out}",
             "--name=train", "--num_shards=2", "--noise_sigma=0", "--kernel_sizes=5,7", "--seed=3"])
  assert rep["items"] == 8 and rep["records"] == 6
  skipped = {os.path.basename(s["item"]): s["reason"] for s in rep["skipped"]}
  assert set(skipped) == {"tiny.png", "corrupt.jpg"}
  assert "too small" in skipped["tiny.png"] and "unreadable" in skipped["corrupt.jpg"]
  assert [c["converted"] for c in rep["converted"]] == ["L -> RGB"]
  with open(os.path.join(out, "train-report.json")) as f:
    assert json.load(f)["records"] == 6
  recs = read_all(os.path.join(out, "train-*.tfrecord"), ("image/sharp", "image/blurred", "kernel", "source"))
  assert len(recs) == 6
  for r in recs:
    k = r["kernel"]
    assert k.shape[0] in (5, 7) and abs(k.sum() - 1) < 1e-5
    sharp = r["image/sharp"].astype(np.float64) / 255
    # true convolution with symmetric borders == scipy.ndimage.convolve(mode="reflect")
    ref = np.stack([ndimage.convolve(sharp[..., c], k.astype(np.float64), mode="reflect")
                    for c in range(3)], -1)
    err = np.abs(r["image/blurred"].astype(np.float64) / 255 - ref).max()
    assert err <= 0.5 / 255 + 1e-4, err
  # the shared pipeline reads them
  from common import pipeline
  ds = pipeline.make_dataset(os.path.join(out, "train-*.tfrecord"), batch_size=3, crop=32,
                             training=False)
  b = next(iter(ds))
  assert b["sharp"].shape == (3, 32, 32, 3) and b["blurred"].dtype == tf.float32


def test_noise_level_and_resume(tmp_path):
  src = str(tmp_path / "src")
  for i in range(6):
    fixtures.save(os.path.join(src, f"{i}.png"), np.full((48, 48, 3), 128, np.uint8))
  out = str(tmp_path / "rec")
  args = ["--source=folder", f"--manual_dir={src}", f"--output_dir={out}", "--name=t",
          "--num_shards=3", "--noise_sigma=0.03", "--blur_kernels=gaussian", "--kernel_sizes=3"]
  run(args)
  recs = read_all(os.path.join(out, "t-*.tfrecord"), ("image/blurred",))
  resid = np.stack([r["image/blurred"] for r in recs]).astype(np.float64) / 255 - 128 / 255
  assert abs(resid.std() - 0.03) < 0.003 and abs(resid.mean()) < 0.003
  shards = sorted(glob.glob(os.path.join(out, "t-*.tfrecord")))
  before = {p: open(p, "rb").read() for p in shards}
  mtimes = {p: os.path.getmtime(p) for p in shards}
  os.remove(shards[1])
  os.remove(shards[1] + ".json")
  rep = run(args)
  assert rep["items_this_run"] == 2 and rep["items_resumed"] == 4
  assert open(shards[1], "rb").read() == before[shards[1]]  # deterministic rebuild
  assert os.path.getmtime(shards[0]) == mtimes[shards[0]]  # untouched
  assert not glob.glob(os.path.join(out, "*.tmp"))


def test_masks_carried_and_resized(tmp_path):
  root = str(tmp_path / "helen")
  expected = fixtures.helen(root)
  out = str(tmp_path / "rec")
  run(["--source=helen_parsing", f"--manual_dir={root}", "--split=train", f"--output_dir={out}",
       "--mode=sharp", "--num_shards=1", "--resize=16,16"])
  recs = read_all(os.path.join(out, "train-*.tfrecord"), ("image/sharp", "mask/classes", "source"))
  assert len(recs) == 2
  for r in recs:
    exp = expected[r["source"].decode()]
    got = r["mask/classes"][..., 0]
    assert got.shape == (16, 16) and r["image/sharp"].shape == (16, 16, 3)
    ref = tf.image.resize(exp[..., None], (16, 16), method="nearest").numpy()[..., 0]
    np.testing.assert_array_equal(got, ref)


def test_unpaired_and_paired(tmp_path):
  out = str(tmp_path / "rec")
  rep = run(["--source=unpaired_blur", f"--manual_dir={fixtures.unpaired(str(tmp_path / 'u'))}",
             f"--output_dir={out}", "--mode=unpaired", "--num_shards=1"])
  assert rep["records"] == 5
  files = glob.glob(os.path.join(out, "train-*.tfrecord"))
  kinds = [tuple(sorted(tfrecord.record_keys(r.numpy()) & {"image/sharp", "image/blurred"}))
           for r in tf.data.TFRecordDataset(files)]
  assert kinds.count(("image/sharp",)) == 3 and kinds.count(("image/blurred",)) == 2
  rep = run(["--source=gopro", f"--manual_dir={fixtures.gopro(str(tmp_path / 'g'))}",
             "--split=test", f"--output_dir={out}", "--mode=paired", "--num_shards=1"])
  recs = read_all(os.path.join(out, "test-*.tfrecord"), ("image/sharp", "image/blurred"))
  # test/GOPR0009_00_00/000001.png: the fixture's 5th pair (blur seed 10, sharp seed 11)
  np.testing.assert_array_equal(recs[0]["image/sharp"], fixtures.rand_img(11))
  np.testing.assert_array_equal(recs[0]["image/blurred"], fixtures.rand_img(10))


def test_folder_output_names_repeated_file_names_by_their_path(tmp_path):
  """GoPro numbers frames per sequence: GOPR0001_00_00/000001.png and GOPR0002_00_00/000001.png
  must not overwrite each other in the folder layout (across shards too)."""
  root = fixtures.gopro(str(tmp_path / "g"))
  out = str(tmp_path / "folder")
  rep = run(["--source=gopro", f"--manual_dir={root}", "--split=train", f"--output_dir={out}",
             "--mode=paired", "--output_format=folder", "--num_shards=2"])
  assert rep["records"] == 4
  names = sorted(os.listdir(os.path.join(out, "blurred")))
  assert names == ["GOPR0001_00_00_000001.png", "GOPR0001_00_00_000002.png",
                   "GOPR0002_00_00_000001.png", "GOPR0002_00_00_000002.png"]
  assert sorted(os.listdir(os.path.join(out, "sharp"))) == names
  for name in names:
    seq, frame = name[:14], name[15:]
    for sub, src in (("blurred", "blur"), ("sharp", "sharp")):
      np.testing.assert_array_equal(
          image_io.read_image(os.path.join(out, sub, name)),
          image_io.read_image(os.path.join(root, "train", seq, src, frame)))
  # unique stems keep their short names (LFW/CelebA-style sources)
  assert build.folder_names_from_path(["a/x.png", "b/y.png"]) is False
  assert build.folder_name("GOPR0384_11_00/000001.png", from_path=True) == "GOPR0384_11_00_000001"


def test_shen_bank_protocol():
  bank = build.shen_bank()
  assert len(bank) == 80
  assert [s for s, _ in bank[::10]] == list(range(13, 28, 2))
  assert all(k.shape == (s, s) and abs(k.sum() - 1) < 1e-5 for s, k in bank)
  ks = build.KernelSource("shen", None, 0)
  assert [k.shape[0] for k in ks.kernels(7, 80)][:3] == [13, 13, 13]
  assert len({k.tobytes() for k in ks.kernels(0, 80)}) == 80
  np.testing.assert_array_equal(build.shen_bank()[5][1], bank[5][1])  # fixed seed


@pytest.mark.skipif(not os.path.isdir(TOY), reason="needs ../shared/data/face_video_toy")
def test_pravg_reproduces_real_averaged_blur(tmp_path):
  """PrAvg of the 7 real frames vs the real averaged blur (blurred.png): measured 29.0-31.1 dB,
  within 0.25 dB of the best least-squares frame weighting; gamma 2.2 is worse here."""
  out = str(tmp_path / "rec")
  toy = str(tmp_path / "toy")
  for seq in sorted(os.listdir(TOY)):  # frames layout: every frame folder is a video
    os.makedirs(os.path.join(toy, seq))
    os.symlink(os.path.join(TOY, seq, "frames"), os.path.join(toy, seq, "frames"))
  rep = run(["--source=face_videos", f"--manual_dir={toy}", "--video_layout=frames", "--split=all",
             "--mode=pravg", "--lengths=7", f"--output_dir={out}", "--num_shards=1"])
  assert rep["records"] == 4
  recs = read_all(os.path.join(out, "*.tfrecord"), ("image/sharp", "image/blurred", "source"))
  for r in recs:
    seq = r["source"].decode().split(os.sep)[0]
    ref = image_io.to_float32(image_io.read_image(os.path.join(TOY, seq, "blurred.png")))
    frames = np.stack([image_io.to_float32(image_io.read_image(p))
                       for p in sorted(glob.glob(os.path.join(TOY, seq, "frames", "*.png")))])
    p_lin = metrics.psnr(image_io.to_float32(r["image/blurred"]), ref)
    p_mid = metrics.psnr(frames[3], ref)
    a = frames.reshape(7, -1).T
    w, *_ = np.linalg.lstsq(a, ref.ravel(), rcond=None)
    p_best = metrics.psnr(np.clip(a @ w, 0, 1).reshape(ref.shape), ref)
    p_gamma = metrics.psnr(frame_averaging.average_frames(frames, gamma=2.2)[0], ref)
    assert p_lin > 28.5 and p_lin > p_mid + 0.5, (seq, p_lin, p_mid)
    assert p_lin > p_best - 0.4, (seq, p_lin, p_best)
    assert p_gamma < p_lin + 0.1
    np.testing.assert_array_equal(r["image/sharp"], image_io.to_uint8(frames[3]))


def test_bad_flags(tmp_path):
  with pytest.raises(ValueError, match="odd"):
    run(["--source=folder", f"--manual_dir={tmp_path}", f"--output_dir={tmp_path}",
         "--kernel_sizes=4,6"])
  with pytest.raises(ValueError, match="face_videos"):
    run(["--source=folder", f"--manual_dir={tmp_path}", f"--output_dir={tmp_path}", "--mode=pravg"])


def test_interrupted_run_keeps_finished_shards(tmp_path, monkeypatch):
  src = str(tmp_path / "src")
  for i in range(6):
    fixtures.save(os.path.join(src, f"{i}.png"), fixtures.rand_img(i, 40, 40))
  out = str(tmp_path / "rec")
  args = ["--source=folder", f"--manual_dir={src}", f"--output_dir={out}", "--name=t",
          "--num_shards=3", "--kernel_sizes=3"]
  real = build.item_examples

  def crash_on_item_4(cfg, index, *a, **k):
    if index == 4:
      raise KeyboardInterrupt("simulated interruption")
    return real(cfg, index, *a, **k)

  monkeypatch.setattr(build, "item_examples", crash_on_item_4)
  with pytest.raises(KeyboardInterrupt):
    run(args)
  names = sorted(os.listdir(out))
  assert names == ["t-00000-of-00003.tfrecord", "t-00000-of-00003.tfrecord.json",
                   "t-00001-of-00003.tfrecord", "t-00001-of-00003.tfrecord.json", "t-build.json"]
  monkeypatch.setattr(build, "item_examples", real)
  rep = run(args)
  assert rep["items_resumed"] == 4 and rep["items_this_run"] == 2 and rep["records"] == 6


def test_vla_on_simulated_clips(tmp_path):
  from data import synth_video
  src = str(tmp_path / "stills")
  for i in range(2):
    fixtures.save(os.path.join(src, f"s{i}.png"), fixtures.rand_img(i, 48, 48))
  synth_video.write_clips(src, str(tmp_path / "clips"), num_frames=9, seed=0)
  out = str(tmp_path / "rec")
  rep = run(["--source=face_videos", f"--manual_dir={tmp_path / 'clips'}", "--split=all",
             "--mode=vla", "--lengths=9", f"--output_dir={out}", "--num_shards=1"])
  assert rep["records"] == 2
  for r in read_all(os.path.join(out, "*.tfrecord"), ("image/sharp", "image/blurred", "source")):
    length = int(r["source"].decode().split(":L=")[1].split(":")[0])
    assert length % 2 == 1 and 1 <= length <= 9
    if length > 1:
      assert not np.array_equal(r["image/sharp"], r["image/blurred"])


def test_strong_blur_test_set_folder_layout(tmp_path):
  """The committed strong-blur test-set flagfile, on 6 LFW test people, in the folder layout."""
  out = str(tmp_path / "strong")
  argv = [f"--flagfile={os.path.join(os.path.dirname(build.__file__), 'configs', 'lfw_strong_blur_test.flags')}",
          f"--manual_dir={os.path.join(SHARED_DATA, 'lfw')}", f"--output_dir={out}",
          f"--blur_kernels={os.path.join(SHARED_DATA, 'kernels', 'levin09.npz')}",
          f"--exclude_identities={os.path.join(os.path.dirname(build.__file__), 'sample', 'faces')}",
          "--max_items=6", "--num_shards=2"]
  run(argv)
  names = sorted(os.path.splitext(f)[0] for f in os.listdir(os.path.join(out, "sharp")))
  assert len(names) == 6
  assert names == sorted(os.path.splitext(f)[0] for f in os.listdir(os.path.join(out, "blurred")))
  people = [n.rsplit("_", 1)[0] for n in names]
  assert len(set(people)) == 6  # one image per person
  sample = {f.rsplit("_", 1)[0] for f in os.listdir(os.path.join(os.path.dirname(build.__file__), "sample", "faces"))}
  assert not set(people) & sample
  from data.builders import lfw
  test_people = {e["name"] for _, e in lfw.generate_images(os.path.join(SHARED_DATA, "lfw"), "test")}
  assert set(people) <= test_people
  # Levin et al.'s kernels, each moved onto its centroid (--centre_kernels in the flagfile)
  levin = blur.load_kernel_bank(os.path.join(SHARED_DATA, "kernels", "levin09.npz"), centre=True)
  for n, person in zip(names, people):
    sharp = image_io.read_image(os.path.join(out, "sharp", n + ".png"))
    blurred = image_io.read_image(os.path.join(out, "blurred", n + ".png"))
    src = image_io.read_image(os.path.join(SHARED_DATA, "lfw", person, n + ".jpg"))
    assert sharp.shape == blurred.shape == (128, 128, 3)
    np.testing.assert_array_equal(sharp, src[11:139, 11:139])  # centre 128 of 150
    k = np.load(os.path.join(out, "kernels", n + ".npy"))
    assert any(k.shape == l.shape and np.allclose(k, l, atol=1e-6) for l in levin)
    assert max(np.abs(centroid_offset(k))) <= 0.5  # the blur does not translate the face
    ref = np.stack([ndimage.convolve(sharp[..., c] / 255.0, k, mode="reflect") for c in range(3)], -1)
    resid = blurred / 255.0 - ref
    assert abs(resid.std() - 0.01) < 0.004 and abs(resid.mean()) < 0.004  # noise sigma 0.01
  lines = open(os.path.join(out, "identities.txt")).read().split("\n")
  assert sorted(l.split("\t")[0] for l in lines if l) == names
  meta = json.load(open(os.path.join(out, "meta.json")))
  assert meta["flags"]["noise_sigma"] == 0.01 and meta["flags"]["center_crop"] == 128
  # A rerun resumes: nothing is rewritten.
  stamp = os.path.getmtime(os.path.join(out, "blurred", names[0] + ".png"))
  report = run(argv)
  assert report["items_this_run"] == 0
  assert os.path.getmtime(os.path.join(out, "blurred", names[0] + ".png")) == stamp


def test_num_workers_builds_the_same_shards_in_parallel(tmp_path):
  """--num_workers=2 builds shards in two spawned processes: the same records (every feature
  equal; the bytes may differ because protobuf map order varies between processes) and counts
  as one process; a bad value is a one-line error naming the flag."""
  src = str(tmp_path / "src")
  for i in range(6):
    fixtures.save(os.path.join(src, f"{i}.png"), fixtures.rand_img(i, 40, 40))
  common_args = ["--source=folder", f"--manual_dir={src}", "--name=t", "--num_shards=3",
                 "--kernel_sizes=3"]
  one = run(common_args + [f"--output_dir={tmp_path / 'one'}"])
  two = run(common_args + [f"--output_dir={tmp_path / 'two'}", "--num_workers=2"])
  assert two["records"] == one["records"] == 6 and two["items_this_run"] == 6
  for path in sorted(glob.glob(str(tmp_path / "one" / "t-*.tfrecord"))):
    other = path.replace(str(tmp_path / "one"), str(tmp_path / "two"))
    mine, theirs = (list(tf.data.TFRecordDataset(p).as_numpy_iterator()) for p in (path, other))
    assert len(mine) == len(theirs) == 2
    for a, b in zip(mine, theirs):
      assert tf.train.Example.FromString(a) == tf.train.Example.FromString(b)
  with pytest.raises(ValueError, match="--num_workers=0"):
    run(common_args + [f"--output_dir={tmp_path / 'bad'}", "--num_workers=0"])


def test_vla_overlap_stop_uses_300vw_landmark_boxes(tmp_path):
  """--mode=vla on a 300VW-laid-out clip: the face box (of each frame's 68 points) slides 6 px
  a frame, so VLA stops on "overlap" at once; the same frames without annotations (a static
  face) average all 9 frames."""
  still = fixtures.rand_img(0, 32, 32)
  for i in range(1, 10):
    fixtures.save(os.path.join(tmp_path, "vw", "001", "frames", f"{i:06d}.png"), still)
    fixtures.save(os.path.join(tmp_path, "plain", "001", f"{i:06d}.png"), still)
    pts = np.stack([np.linspace(6 * i, 6 * i + 12, 68), np.linspace(0, 12, 68)], 1)
    fixtures.write(os.path.join(tmp_path, "vw", "001", "annot", f"{i:06d}.pts"),
                   fixtures.pts_text(pts))
  sources = {}
  for layout, folder in (("300vw", "vw"), ("frames", "plain")):
    out = str(tmp_path / f"rec_{folder}")
    run(["--source=face_videos", f"--video_layout={layout}", f"--manual_dir={tmp_path / folder}",
         "--split=all", "--mode=vla", "--lengths=9", f"--output_dir={out}", "--num_shards=1"])
    (r,) = read_all(os.path.join(out, "*.tfrecord"), ("source",))
    sources[layout] = r["source"].decode()
  assert sources["300vw"].endswith(":L=1:overlap")
  assert ":L=9:" in sources["frames"]


def test_face_box_known_boxes():
  """A square of 1.5x the landmark box's larger side (+2 px so the extreme points fit) around
  its centre, shifted inside the frame; non-finite points are ignored."""
  pts = np.array([[100, 50], [200, 130], [150, np.nan]], np.float32)
  assert build.face_box(pts, (360, 640), 0.25) == (14, 74, 152)  # side ceil(150) + 2
  assert build.face_box(pts, (360, 640), 0.0) == (39, 99, 102)
  # near the top-left corner: shifted inside, still holding every point
  assert build.face_box(pts - [95, 45], (360, 640), 0.25) == (0, 0, 152)
  # a face larger than the frame: the whole frame's short side
  assert build.face_box(pts * 4, (360, 640), 0.25) == (0, 280, 360)
  with pytest.raises(build.Skip, match="no finite landmark"):
    build.face_box(np.full((68, 2), np.nan), (360, 640))


@pytest.mark.parametrize("mode", ["pravg", "vla"])
def test_300vw_clips_are_cropped_to_the_face(tmp_path, mode):
  """300VW frames (640x360, a 135-px face drifting 2 px right / 1 px down a frame): every
  record is the clip's face box (data.build.face_box over the landmarks of all the clip's
  frames), the centre frame's landmarks moved into it; --face_size=0 keeps the crop's pixels
  exactly, the default resizes it to 256x256 with the landmarks scaled alike."""
  face = image_io.read_image(image_io.list_images("data/sample/faces")[0])
  root = fixtures.vw300_face_video(str(tmp_path / "300VW"), face, n_frames=9)
  from data.builders import face_videos  # pylint: disable=import-outside-toplevel
  pts = np.stack([face_videos.read_pts(os.path.join(root, "001", "annot", f"{i:06d}.pts"))
                  for i in range(1, 8)])  # the one 7-frame clip
  top, left, side = build.face_box(pts, (360, 640), 0.25)
  assert 135 < side < 360 and side == int(np.ceil((pts[..., 0].max() - pts[..., 0].min()) * 1.5)) + 2
  middle = image_io.read_image(os.path.join(root, "001", "frames", "000004.png"))
  keys = ("image/sharp", "image/blurred", "landmarks")
  for size in (0, 256):
    out = str(tmp_path / f"rec{size}")
    run(["--source=face_videos", "--video_layout=300vw", f"--manual_dir={root}", "--split=all",
         f"--mode={mode}", "--lengths=7", f"--face_size={size}", f"--output_dir={out}",
         "--num_shards=1"])
    (r,) = read_all(os.path.join(out, "*.tfrecord"), keys)
    lm = r["landmarks"].reshape(68, 2)
    crop = middle[top:top + side, left:left + side]
    if size == 0:
      np.testing.assert_array_equal(r["image/sharp"], crop)
      np.testing.assert_allclose(lm, pts[3] - [left, top], atol=1e-4)
    else:
      np.testing.assert_array_equal(r["image/sharp"], build.resize_uint8(crop, (256, 256)))
      np.testing.assert_allclose(lm, (pts[3] - [left, top]) * 256 / side, atol=1e-3)
    n = side if size == 0 else 256
    assert r["image/blurred"].shape == (n, n, 3)
    assert (lm >= 0).all() and (lm < n).all()  # the crop holds every landmark
    # the face moved during the window: the blurred crop really is an average
    assert np.abs(r["image/blurred"].astype(int) - r["image/sharp"]).mean() > 1
  # whole frames on request; --resize is refused with the crop (it would be ignored)
  out = str(tmp_path / "whole")
  run(["--source=face_videos", "--video_layout=300vw", f"--manual_dir={root}", "--split=all",
       f"--mode={mode}", "--lengths=7", "--noface_crop", f"--output_dir={out}", "--num_shards=1"])
  (r,) = read_all(os.path.join(out, "*.tfrecord"), keys)
  assert r["image/sharp"].shape == (360, 640, 3)
  with pytest.raises(ValueError, match="--face_size instead of --resize"):
    run(["--source=face_videos", "--video_layout=300vw", f"--manual_dir={root}", "--split=all",
         f"--mode={mode}", "--lengths=7", "--resize=128", f"--output_dir={out}x",
         "--num_shards=1"])


def test_kernel_mixtures_with_whole_exposure_blur_strongly_and_reproducibly(tmp_path):
  """--blur_kernels=camera_shake+markov+linear --kernel_exposure=1 --kernel_min_taps=12: the
  trainers' strong kernels (common.blur.make_kernel_bank) in a stored set; the default
  camera_shake draw (random exposure) is much milder; old fingerprints keep no new keys."""
  src = os.path.join(os.path.dirname(__file__), "..", "..", "data", "sample", "faces")
  def psnr_of(out, extra):
    run(["--source=folder", f"--manual_dir={src}", f"--output_dir={out}", "--name=v",
         "--num_shards=1", "--noise_sigma=0", "--kernel_sizes=15:29", "--seed=7", "--max_items=12",
         *extra])
    recs = read_all(os.path.join(out, "v-*.tfrecord"), ("image/sharp", "image/blurred", "kernel"))
    taps = [1.0 / float(np.sum(np.square(r["kernel"]))) for r in recs]
    return np.mean([metrics.psnr(r["image/sharp"] / 255.0, r["image/blurred"] / 255.0)
                    for r in recs]), taps, recs
  strong = ["--blur_kernels=camera_shake+markov+linear", "--kernel_exposure=1",
            "--kernel_min_taps=12"]
  p_strong, taps, recs = psnr_of(str(tmp_path / "a"), strong)
  p_again, _, recs2 = psnr_of(str(tmp_path / "b"), strong)
  p_default, _, _ = psnr_of(str(tmp_path / "c"), [])
  assert min(taps) >= 12 and p_strong == p_again
  assert all(np.array_equal(a["image/blurred"], b["image/blurred"]) for a, b in zip(recs, recs2))
  assert p_strong < p_default - 2.0, (p_strong, p_default)
  with open(os.path.join(str(tmp_path / "c"), "v-build.json")) as f:
    assert "kernel_exposure" not in json.load(f)["flags"]
  with pytest.raises(FileNotFoundError, match="not a known generator"):
    build.KernelSource("camera_shake+blob", [15], 0)
  for spec in ("camera_shake", "markov+linear"):
    with pytest.raises(ValueError, match="drop --centre_kernels"):
      build.KernelSource(spec, [15], 0, centre=True)
  # --kernel_min_extent: every stored kernel reaches at least that many pixels.
  run(["--source=folder", f"--manual_dir={src}", f"--output_dir={tmp_path / 'd'}", "--name=v",
       "--num_shards=1", "--noise_sigma=0", "--kernel_sizes=15:29", "--seed=7", "--max_items=12",
       *strong, "--kernel_min_extent=15"])
  recs = read_all(os.path.join(str(tmp_path / "d"), "v-*.tfrecord"), ("kernel",))
  assert min(blur.kernel_extent(r["kernel"]) for r in recs) >= 15
  with open(os.path.join(str(tmp_path / "d"), "v-build.json")) as f:
    assert json.load(f)["flags"]["kernel_min_extent"] == 15
