"""Tiny datasets in the real layouts, written by the tests themselves (a few 32x32 images)."""
import os

import numpy as np
from PIL import Image


def save(path, arr):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(np.asarray(arr)).save(path)
  return path


def rand_img(seed, h=32, w=32):
  return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def write(path, text):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w") as f:
    f.write(text)
  return path


def celeba(root, n=10, with_annotations=True, w=89, h=109):
  for i in range(1, n + 1):
    save(os.path.join(root, "img_align_celeba", f"{i:06d}.jpg"), rand_img(i, h, w))
  if with_annotations:
    write(os.path.join(root, "Eval", "list_eval_partition.txt"),
          "".join(f"{i:06d}.jpg {0 if i <= 6 else 1 if i <= 8 else 2}\n" for i in range(1, n + 1)))
    write(os.path.join(root, "Anno", "identity_CelebA.txt"),
          "".join(f"{i:06d}.jpg {100 + i % 3}\n" for i in range(1, n + 1)))
    lines = [str(n), "lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x "
             "leftmouth_y rightmouth_x rightmouth_y"]
    lines += [f"{i:06d}.jpg 69 109 106 113 77 142 73 152 108 {154 + i}" for i in range(1, n + 1)]
    write(os.path.join(root, "Anno", "list_landmarks_align_celeba.txt"), "\n".join(lines) + "\n")
  return root


def helen(root, sizes=None):
  """4 images (2 exemplars = train, 1 tuning, 1 testing); labels maps chosen so the argmax is
  known: returns {id: expected class map}. ``sizes``: {id: (h, w)} (default 32x32 each); the
  released SmithCVPR2013 images differ in size from image to image, as ``sizes`` can."""
  ids = {"exemplars.txt": ["100_1", "101_1"], "tuning.txt": ["200_1"], "testing.txt": ["300_1"]}
  expected = {}
  for fname, names in ids.items():
    write(os.path.join(root, fname), "".join(f" {i + 1} , {n}\n" for i, n in enumerate(names)))
    for j, n in enumerate(names):
      h, w = (sizes or {}).get(n, (32, 32))
      save(os.path.join(root, "images", n + ".jpg"), rand_img(j, h, w))
      rng = np.random.default_rng(sum(map(ord, n)))
      maps = rng.integers(0, 256, (11, h, w)).astype(np.uint8)
      for lbl in range(11):
        save(os.path.join(root, "labels", n, f"{n}_lbl{lbl:02d}.png"), maps[lbl])
      expected[n] = np.array([0, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3])[np.argmax(maps, 0)]
  return expected


def lfw(root, people=None):
  people = people or {"Alice_A": 3, "Bob_B": 2, "Carol_C": 1, "Dan_D": 2}
  for name, k in people.items():
    for i in range(1, k + 1):
      save(os.path.join(root, name, f"{name}_{i:04d}.jpg"), rand_img(i + len(name), 32, 32))
  # 2 folds x (1 same + 1 different); fold 1 (index 1) is the test fold by default? no: fold 9.
  write(os.path.join(root, "pairs.txt"),
        "2\t1\nAlice_A\t1\t2\nAlice_A\t1\tBob_B\t1\nDan_D\t1\t2\nDan_D\t2\tCarol_C\t1\n")
  return root


def gopro(root, w=32, h=32):
  """GOPRO_Large: train|test/<seq>/blur|sharp/<frame>.png; every sequence numbers its frames
  from 000001, so file names repeat across sequences (as released; real frames are 1280x720).
  Each image differs (seeded by sequence, frame and blur/sharp)."""
  seed = 0
  for split, seqs in (("train", ["GOPR0001_00_00", "GOPR0002_00_00"]), ("test", ["GOPR0009_00_00"])):
    for q in seqs:
      for f in ("000001.png", "000002.png"):
        seed += 2
        save(os.path.join(root, split, q, "blur", f), rand_img(seed, h, w))
        save(os.path.join(root, split, q, "sharp", f), rand_img(seed + 1, h, w))
  return root


def shen(root, size=32, faces=None):
  """Shen et al. 2018 test layout: <subset>/sharp/<name>.png and
  <subset>/blurred/<name>_ker<K>_size<S>.png (kernels 1, 2 x sizes 13, 27 here). ``faces``:
  optional list of uint8 [size, size, 3] sharp faces (blurred = a box blur of them); default
  random images."""
  for sub in ("helen", "celeba"):
    for i, n in enumerate(("0001", "0002")):
      sharp = rand_img(3, size, size) if faces is None else faces[i % len(faces)]
      save(os.path.join(root, sub, "sharp", n + ".png"), sharp)
      for k in (1, 2):
        for s in (13, 27):
          if faces is None:
            blurred = rand_img(4, size, size)
          else:
            from scipy import ndimage  # pylint: disable=import-outside-toplevel
            blurred = ndimage.uniform_filter(sharp.astype(np.float32), (1, s // 4 * k, 1),
                                             mode="reflect").round().astype(np.uint8)
          save(os.path.join(root, sub, "blurred", f"{n}_ker{k:02d}_size{s}.png"), blurred)
  return root


def unpaired(root):
  for i in range(3):
    save(os.path.join(root, "clear", f"c{i}.png"), rand_img(i))
  for i in range(2):
    save(os.path.join(root, "blurred", "sub", f"b{i}.jpg"), rand_img(10 + i))
  return root


def pts_text(points):
  return "version: 1\nn_points:  68\n{\n" + "".join(f"{x:.3f} {y:.3f}\n" for x, y in points) + "}\n"


def vw300(root, n_frames=9, videos=("001", "002")):
  for v in videos:
    for i in range(1, n_frames + 1):
      save(os.path.join(root, v, "frames", f"{i:06d}.png"), rand_img(i, 32, 32))
      pts = np.stack([np.arange(68), np.arange(68) * 0.5 + i], 1)
      write(os.path.join(root, v, "annot", f"{i:06d}.pts"), pts_text(pts))
  return root


def vw300_face_video(root, face, videos=("001",), n_frames=21, w=640, h=360, box=135):
  """300VW layout (<video>/frames/000001.png + <video>/annot/000001.pts, 68 points, 1-based)
  with frames of w x h (default 640x360) where ``face`` (uint8 RGB), resized to a box x box
  square (135: the paper's mean 300VW face size, Sec. 5.2), drifts 2 px right and 1 px down per
  frame over a smooth background: smooth motion, so frame averaging (PrAvg, VLA) gives real
  blur. The 68 points lie on an ellipse inside the face box and move with it."""
  from PIL import Image  # pylint: disable=import-outside-toplevel
  face = np.asarray(Image.fromarray(np.asarray(face)).resize((box, box), Image.BILINEAR))
  yy, xx = np.mgrid[0:h, 0:w]
  background = np.stack([xx * 255 // w, yy * 255 // h, np.full_like(xx, 96)], -1).astype(np.uint8)
  t = np.linspace(0, 2 * np.pi, 68, endpoint=False)
  ellipse = np.stack([0.5 + 0.4 * np.cos(t), 0.55 + 0.4 * np.sin(t)], 1) * box
  for v in videos:
    for i in range(1, n_frames + 1):
      x0, y0 = (w - box) // 2 - n_frames + 2 * i, (h - box) // 2 - n_frames // 2 + i
      frame = background.copy()
      frame[y0:y0 + box, x0:x0 + box] = face
      save(os.path.join(root, v, "frames", f"{i:06d}.png"), frame)
      write(os.path.join(root, v, "annot", f"{i:06d}.pts"), pts_text(ellipse + [x0, y0]))
  return root


def ytf(root):
  for name, vids in (("Ann_A", (0, 1)), ("Ben_B", (0,)), ("Cid_C", (3,))):
    for v in vids:
      for j, frame in enumerate((555, 556, 557, 1000)):  # numeric, not lexicographic order
        save(os.path.join(root, "frame_images_DB", name, str(v), f"{v}.{frame}.jpg"), rand_img(j))
  write(os.path.join(root, "meta_data", "splits.txt"),
        "split number, 1st name, 2nd name, 1st dist, 2nd dist, same?\n"
        "1, Ann_A/0, Ann_A/1, 0, 0, 1\n10, Cid_C/3, Ben_B/0, 0, 0, 0\n")
  return root


YTF_SPLITS_HEADER = "split number, pair number, first name, second name, is same\n"


def ytf_faces(root, faces, n_frames=13, h=240, w=320, pairs=None):
  """YouTube Faces in its real layout and frame size: frame_images_DB/<Name>/<n>/<n>.<frame>.jpg,
  h x w JPEG frames with the face centred (`data.synth_video` clips of the given faces, edge-padded
  like the detector-centred YTF frames) + splits.txt. faces: {Name: [face uint8 [s,s,3] per video]}.
  pairs: [(split, 'Name/n', 'Name/m', same)]; default: for every split 1..10 one same and one
  different pair cycling through the people."""
  from data import synth_video  # pylint: disable=import-outside-toplevel
  for name, imgs in faces.items():
    for n, img in enumerate(imgs):
      frames = synth_video.synthesize(img, num_frames=n_frames, seed=n)["frames"]
      s = frames.shape[1]
      top, left = (h - s) // 2, (w - s) // 2
      for k, f in enumerate(frames):
        padded = np.pad(f, ((top, h - s - top), (left, w - s - left), (0, 0)), mode="edge")
        path = os.path.join(root, "frame_images_DB", name, str(n), f"{n}.{100 + k}.jpg")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        Image.fromarray(padded).save(path, quality=95)
  if pairs is None:
    names = sorted(faces)
    pairs = []
    for split in range(1, 11):
      a = names[split % len(names)]
      b = names[(split + 1) % len(names)]
      pairs += [(split, f"{a}/0", f"{a}/1", True), (split, f"{a}/0", f"{b}/0", False)]
  lines = [f"{s}, {i + 1}, {a}, {b}, {int(same)}, {int(same)}" for i, (s, a, b, same) in enumerate(pairs)]
  write(os.path.join(root, "meta_data", "splits.txt"), YTF_SPLITS_HEADER + "\n".join(lines) + "\n")
  return root
