r"""Turns datasets into TFRecords of the shared schema (`common.tfrecord`).

    python -m data.build --source=celeba --manual_dir=/data/celeba --split=train \
        --mode=kernel --blur_kernels=camera_shake --kernel_sizes=13:29:2 --noise_sigma=0.03 \
        --output_dir=records/celeba --num_shards=16

Sources (`--source`, read from `--manual_dir` by the `data.builders` generators):
  celeba, lfw, helen_parsing (sharp faces + class masks), shen_blurred_faces, gopro (paired),
  face_videos (with --video_layout=300vw|youtube_faces|frames; youtube_faces = its YouTube Faces
  layout), unpaired_blur, folder (any
  folder of images, recursive; --split is ignored).
Modes (`--mode`):
  kernel    sharp source -> blurred = clip(k * sharp + n), n ~ N(0, noise_sigma^2), quantized to
            8 bits; k per image from --blur_kernels: camera_shake (Boracchi & Foi trajectories,
            paper 3 training), markov (Kupyn et al.; paper 2 synthetic), gaussian, shen (the
            Shen et al. 2018 test protocol: a fixed seeded bank of 10 camera-shake kernels for
            each size 13:2:27; image i gets kernel i mod 80 -- or every kernel with
            --blurs_per_image=80), or a .npz/.mat kernel bank file (--centre_kernels: each
            moved onto its centroid, so it blurs without translating). The kernel is stored.
  pravg     face_videos -> for every clip and every L in --lengths (7,9,11,15,21), the mean of L
            frames around the clip centre (common.frame_averaging.average_frames, optional --gamma);
            sharp = the middle frame (paper 2 Sec. 5.1).
  vla       face_videos -> variable length averaging (common.frame_averaging.vla_average).
  paired    gopro / shen_blurred_faces -> their own blurred/sharp pairs.
  unpaired  unpaired_blur (or folder) -> clear images as image/sharp, blurred as image/blurred,
            one image per record (paper 1 stage 1).
  sharp     sharp images only (blur made on the fly by common.pipeline with a kernel bank).
Masks: helen_parsing carries its class masks; --mask_dir adds `<stem>.png` class masks (ids 0..3,
e.g. data/sample/masks) to any image source.

Output: `<output_dir>/<name>-0000i-of-0000N.tfrecord` (+ `.json` per shard: counts and the
skipped/converted inputs) and `<name>-report.json` (all shards). Input items are split into N
contiguous chunks, one per shard; a shard is written to `.tmp` and renamed when complete, and
every item's randomness is seeded by (--seed, item index), so re-running the same command skips
finished shards and rebuilds only missing ones, with identical results. `<name>-build.json`
(written first) holds a fingerprint of the flags and the source files (paths, sizes, mtimes): a
rerun with other flags or changed sources is refused, or with --overwrite rebuilds from scratch,
so old shards never pass for new ones. Readers (`common.tfrecord.list_files`) refuse a glob that
matches an incomplete shard set (a build that was killed). Corrupt or unreadable
images and images smaller than --min_size are skipped; grayscale / palette / RGBA / 16-bit
inputs are converted to RGB; both are listed in the reports.
"""
import glob
import hashlib
import json
import os
import re
import time

from absl import flags, logging
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from common import blur, frame_averaging, image_io, shared_flags, tfrecord, workdir_lock

SOURCES = ("celeba", "lfw", "helen_parsing", "shen_blurred_faces", "gopro", "face_videos",
           "unpaired_blur", "folder", "youtube_faces")
MODES = ("kernel", "pravg", "vla", "paired", "unpaired", "sharp")
SHEN_SIZES = tuple(range(13, 28, 2))
SHEN_KERNELS_PER_SIZE = 10
SHEN_SEED = 2018


def define_flags(fv=flags.FLAGS):
    flags.DEFINE_enum("source", None, SOURCES, "Dataset layout to read.", flag_values=fv)
    flags.DEFINE_string("manual_dir", None, "Dataset root on disk (see data/README.md).",
                        flag_values=fv)
    flags.DEFINE_string("split", "train", "Source split (celeba: train/validation/test; lfw: "
                        "train/test/all; helen_parsing: train/validation/test/test330; gopro: "
                        "train/test; shen_blurred_faces: subset name; face_videos: all or "
                        "train/test for youtube_faces).", flag_values=fv)
    flags.DEFINE_string("output_dir", None, "Where records go (created).", flag_values=fv)
    flags.DEFINE_string("name", None, "Record file prefix (default: --split).", flag_values=fv)
    flags.DEFINE_enum("mode", "kernel", MODES, "What to write (see module doc).", flag_values=fv)
    flags.DEFINE_string("blur_kernels", "camera_shake", "camera_shake | markov | gaussian | linear "
                        "| defocus | a '+' mixture of generators (e.g. camera_shake+markov+linear, "
                        "each kernel's family drawn uniformly) | shen | path to a .npz/.mat "
                        "kernel bank. Note: camera_shake alone draws Boracchi & Foi's random "
                        "exposure, so many of its kernels are near-deltas; pass "
                        "--kernel_exposure=1 for whole-exposure (strong) shake.", flag_values=fv)
    flags.DEFINE_float("kernel_exposure", 0.0, "Generated camera-shake kernels: trajectory "
                       "fraction integrated (1: whole exposure; 0: Boracchi & Foi's random "
                       "exposure), as the trainers' --kernel_exposure.", flag_values=fv)
    flags.DEFINE_float("kernel_min_taps", 0.0, "Redraw generated kernels with fewer effective "
                       "taps (1 / sum of squared weights) than this, as the trainers' "
                       "--kernel_min_taps (0: keep all).", flag_values=fv)
    flags.DEFINE_integer("kernel_min_extent", 0, "Redraw generated kernels that reach fewer "
                         "pixels along their longest side (common.blur.kernel_extent) than "
                         "this, as the trainers' --kernel_min_extent (0: keep all).",
                         lower_bound=0, flag_values=fv)
    flags.DEFINE_bool("centre_kernels", False, "Kernels read from a file (--blur_kernels=PATH): "
                      "shift each by whole pixels onto its centroid (common.blur.centre_kernel), "
                      "so the blur does not also translate the face (an error with a "
                      "generator: its kernels are centred already).", flag_values=fv)
    flags.DEFINE_string("kernel_sizes", "13:29:2", "Odd kernel sizes, 'start:stop[:step]' "
                        "(inclusive) or a comma list (common.shared_flags.parse_kernel_sizes).",
                        flag_values=fv)
    flags.DEFINE_integer("blurs_per_image", 1, "Blurred copies per sharp image (kernel mode).",
                         flag_values=fv)
    flags.DEFINE_float("noise_sigma", 0.03, "Gaussian noise std on [0,1] (paper 3: 0.03).",
                       flag_values=fv)
    flags.DEFINE_bool("quantize", blur.QUANTIZE_BLUR, "Round blurred images to 8 bits (always true once stored "
                      "as PNG; kept explicit).", flag_values=fv)
    flags.DEFINE_string("lengths", "7,9,11,15,21", "PrAvg window lengths L (odd).", flag_values=fv)
    flags.DEFINE_float("gamma", None, "Camera response gamma for frame averaging (None: average "
                       "stored intensities).", flag_values=fv)
    flags.DEFINE_enum("video_layout", "frames", ["300vw", "youtube_faces", "frames"],
                      "face_videos layout.", flag_values=fv)
    flags.DEFINE_integer("max_clips_per_video", None, "Clips per video (None: all).",
                         flag_values=fv)
    flags.DEFINE_bool("face_crop", True, "face_videos clips with 68-point annotations (300VW "
                      "annot/*.pts): crop every frame of a clip to one square face box (around "
                      "the landmarks of all its frames, --face_margin on each side; "
                      "data.build.face_box) and resize it to --face_size before averaging, "
                      "landmarks moved into the crop. --noface_crop writes whole frames. Clips "
                      "without landmarks are never cropped.", flag_values=fv)
    flags.DEFINE_float("face_margin", 0.25, "Face crop margin on each side, as a fraction of the "
                       "landmark box's larger side (0.25: the square is 1.5x the face).",
                       flag_values=fv)
    flags.DEFINE_integer("face_size", 256, "Side of the stored face crops in pixels (paper 2's "
                         "networks take 256x256 faces, Sec. 5.1); 0 keeps the crop's own size. "
                         "Replaces --resize for cropped clips.", flag_values=fv)
    flags.DEFINE_string("mask_dir", None, "Folder of <stem>.png class masks to carry through.",
                        flag_values=fv)
    flags.DEFINE_string("resize", None, "'H,W' or 'S': resize every image (bilinear; masks nearest; "
                        "landmarks scaled).", flag_values=fv)
    flags.DEFINE_integer("center_crop", 0, "Square centre crop of this size after --resize "
                         "(images, masks, landmarks; 0: none). LFW's 150x150 faces are "
                         "face-centred, so --center_crop=128 gives face-centred 128x128 faces.",
                         flag_values=fv)
    flags.DEFINE_enum("output_format", "records", ["records", "folder"],
                      "records: TFRecord shards. folder: the test-set folder layout "
                      "(sharp/NAME.png, blurred/NAME.png, kernels/NAME.npy, masks/NAME.png, "
                      "landmarks/NAME.npy, identities.txt; see data/README.md).", flag_values=fv)
    flags.DEFINE_string("exclude_identities", None, "Leave out items of these people: a text "
                        "file of names (one per line) or a folder of LFW-style files "
                        "<Name>_0001.jpg (e.g. data/sample/faces).", flag_values=fv)
    flags.DEFINE_integer("max_per_identity", None, "Keep at most N items per person (sources "
                         "with names/identities; None: all).", flag_values=fv)
    flags.DEFINE_integer("min_size", 32, "Skip images whose height or width is smaller.",
                         flag_values=fv)
    flags.DEFINE_integer("num_shards", 8, "Output shards.", flag_values=fv)
    flags.DEFINE_integer("num_workers", 1, "Build this many shards at once in separate processes "
                         "(shards are independent; the records are the same as with 1).",
                         flag_values=fv)
    flags.DEFINE_integer("max_items", None, "Use only the first N source items.", flag_values=fv)
    flags.DEFINE_integer("seed", 0, "Seed of every random choice.", flag_values=fv)
    flags.DEFINE_bool("overwrite", False, "Rebuild when --output_dir holds records of this --name "
                      "built with other flags or sources (otherwise refused).", flag_values=fv)
    flags.mark_flags_as_required(["source", "manual_dir", "output_dir"], flag_values=fv)


# ----------------------------------------------------------------------------------- sources


def source_items(source, manual_dir, split, video_layout="frames", clip_length=21,
                 max_clips_per_video=None):
    """List of (key, example dict) from the builder generators (paths, not pixels)."""
    from data.builders import (celeba, face_videos, gopro, helen_parsing, lfw,  # pylint: disable=g-import-not-at-top
                               shen_blurred_faces, unpaired_blur)
    if source == "folder":
        if not os.path.isdir(manual_dir):
            raise FileNotFoundError(f"--manual_dir {manual_dir!r} is not a folder.")
        return [(os.path.relpath(p, manual_dir), {"image": p})
                for p in image_io.list_images(manual_dir, recursive=True)]
    if source in ("face_videos", "youtube_faces"):  # youtube_faces = its face_videos layout
        video_layout = "youtube_faces" if source == "youtube_faces" else video_layout
        return list(face_videos.generate(manual_dir, split, video_layout, clip_length,
                                         max_clips_per_video))
    module = {"celeba": celeba, "lfw": lfw, "helen_parsing": helen_parsing,
              "shen_blurred_faces": shen_blurred_faces, "gopro": gopro,
              "unpaired_blur": unpaired_blur}[source]
    return list(module.generate(manual_dir, split))


class Skip(Exception):
    """An input that is skipped (reason in the message)."""


def load_rgb(path, min_size, notes):
    """uint8 [H,W,3]; appends 'converted' notes; raises Skip for unreadable or tiny images."""
    from PIL import Image  # pylint: disable=g-import-not-at-top
    try:
        with Image.open(path) as im:
            mode = im.mode
    except Exception as e:  # pylint: disable=broad-except
        raise Skip(f"unreadable: {e}") from e
    try:
        img = image_io.read_image(path)
    except (image_io.ImageReadError, OSError) as e:
        raise Skip(f"unreadable: {e}") from e
    if mode != "RGB":
        notes.append({"path": path, "converted": f"{mode} -> RGB"})
    if min(img.shape[:2]) < min_size:
        raise Skip(f"too small: {img.shape[1]}x{img.shape[0]} < --min_size={min_size}")
    return img


def resize_uint8(img, hw, nearest=False):
    method = "nearest" if nearest else "bilinear"
    out = tf.image.resize(img, hw, method=method, antialias=not nearest)
    if nearest:
        return tf.cast(out, tf.uint8).numpy()
    return image_io.to_uint8(np.clip(out.numpy() / 255.0, 0, 1))


# ----------------------------------------------------------------------------------- kernels


def shen_bank(seed=SHEN_SEED):
    """80 kernels: 10 seeded camera-shake kernels for each size 13:2:27 (size-major order)."""
    rng = np.random.default_rng(seed)
    return [(s, blur.camera_shake_kernel(s, rng=rng))
            for s in SHEN_SIZES for _ in range(SHEN_KERNELS_PER_SIZE)]


class KernelSource:
    """Deterministic kernel choice per (item index, copy).

    camera_shake, markov and gaussian without `exposure` / `min_taps` / `min_extent` keep this
    builder's own draws (so existing builds reproduce); other generators, '+' mixtures, or any
    generator with `exposure` / `min_taps` / `min_extent` draw from
    `common.blur.make_kernel_bank` (the trainers' kernel flags), seeded per item."""

    def __init__(self, spec, sizes, seed, exposure=0.0, min_taps=0.0, centre=False,
                 min_extent=0):
        self.spec, self.sizes, self.seed = spec, sizes, seed
        self.exposure, self.min_taps = float(exposure or 0.0), float(min_taps or 0.0)
        self.min_extent = int(min_extent or 0)
        self.bank = None
        families = spec.split("+")
        is_generator = blur.is_generator_spec(spec)
        self.generated = (is_generator
                          and (len(families) > 1 or spec not in ("camera_shake", "markov", "gaussian")
                               or self.exposure > 0 or self.min_taps > 0
                               or self.min_extent > 0))
        if centre and (spec == "shen" or is_generator):
            raise ValueError(f"--centre_kernels moves the kernels of a --blur_kernels file; "
                             f"{spec!r} is not one (generated kernels are centred already): "
                             f"drop --centre_kernels")
        if spec == "shen":
            self.bank = [k for _, k in shen_bank()]
        elif self.generated:
            pass
        elif spec not in ("camera_shake", "markov", "gaussian"):
            if not os.path.isfile(spec):
                raise FileNotFoundError(
                    f"--blur_kernels={spec!r}: not a known generator and no such file.")
            self.bank = blur.load_kernel_bank(spec, centre=centre)

    def kernels(self, index, count):
        rng = np.random.default_rng([self.seed, index])
        if self.generated:
            bank = blur.make_kernel_bank(self.spec, num=count, sizes=self.sizes,
                                         seed=int(rng.integers(2 ** 31)),
                                         exposure=self.exposure or None, min_taps=self.min_taps,
                                         min_extent=self.min_extent)
            return [np.asarray(k, np.float32) for k in bank]
        if self.bank is not None:
            if self.spec == "shen":
                ids = [(index * count + c) % len(self.bank) for c in range(count)]
            else:
                ids = rng.choice(len(self.bank), size=count, replace=count > len(self.bank))
            return [np.asarray(self.bank[i], np.float32) for i in ids]
        out = []
        for _ in range(count):
            s = int(self.sizes[rng.integers(len(self.sizes))])
            if self.spec == "camera_shake":
                out.append(blur.camera_shake_kernel(s, rng=rng))
            elif self.spec == "markov":
                out.append(blur.markov_kernel(s, rng=rng))
            else:
                out.append(blur.gaussian_kernel(s, rng.uniform(0.5, max(0.5, s / 6))))
        return out


@tf.function(reduce_retracing=True)
def _blur_tf(x, kernel, noise_sigma, seed, quantize):
    y = blur.apply_kernels(x, kernel)
    y = blur.add_noise(y, noise_sigma, seed=seed)  # sigma 0 -> unchanged (clipped)
    return tf.cond(quantize, lambda: blur.quantize_uint8(y), lambda: y)


def blur_image(sharp_u8, kernel, noise_sigma, seed, quantize=True):
    """uint8 blurred image: k * x (reflect borders) + noise, clipped, 8-bit."""
    y = _blur_tf(tf.constant(image_io.to_float32(sharp_u8)), tf.constant(kernel, tf.float32),
                 tf.constant(noise_sigma, tf.float32), tf.constant([int(seed), 0], tf.int64),
                 tf.constant(bool(quantize)))
    return image_io.to_uint8(np.clip(y.numpy(), 0, 1))


# ----------------------------------------------------------------------------------- records


def _center_cropped(img, size, lm=None):
    if not size:
        return img, lm
    h, w = img.shape[:2]
    if h < size or w < size:
        raise Skip(f"smaller than --center_crop={size}: {w}x{h}")
    top, left = (h - size) // 2, (w - size) // 2
    if lm is not None:
        lm = np.asarray(lm, np.float32) - np.array([left, top], np.float32)
    return img[top:top + size, left:left + size], lm


def _resized(img, hw, lm=None, nearest=False):
    if hw is None or img.shape[:2] == tuple(hw):
        return img, lm
    if lm is not None:
        lm = np.asarray(lm, np.float32) * np.array([hw[1] / img.shape[1], hw[0] / img.shape[0]],
                                                   np.float32)
    return resize_uint8(img, hw, nearest), lm


def item_examples(cfg, index, key, ex, notes, identity_map):
    """Serialized tf.train.Examples for one source item (raises Skip)."""
    hw = cfg["resize"]
    mode = cfg["mode"]
    out = []
    if mode in ("pravg", "vla"):
        frames = ex["frames"]
        if isinstance(frames, (list, tuple)):
            frames = [load_rgb(p, cfg["min_size"], notes) for p in frames]
            if len({f.shape for f in frames}) != 1:
                raise Skip("frames of one clip differ in size")
            frames = np.stack(frames)
        lms = ex.get("landmarks")
        lms = None if lms is None else np.asarray(lms, np.float32)  # [T, 68, 2] in frame pixels
        if lms is not None and cfg.get("face_crop", True):
            # 300VW: one square face box for the whole clip (every frame that may be averaged)
            top, left, side = face_box(lms, frames.shape[1:3], cfg.get("face_margin", 0.25))
            frames = frames[:, top:top + side, left:left + side]
            lms = lms - np.array([left, top], np.float32)
            size = cfg.get("face_size", 256)
            hw = (size, size) if size else None
        src_hw = frames.shape[1:3]  # before --resize: the landmarks' frame
        if hw is not None:
            frames = np.stack([_resized(f, hw)[0] for f in frames])
        frames_f = image_io.to_float32(frames)
        c = len(frames_f) // 2
        lm = None if lms is None else lms[c]
        if lm is not None and hw is not None:
            lm = lm * np.array([hw[1] / src_hw[1], hw[0] / src_hw[0]], np.float32)
        ident = identity_map.get(ex.get("identity"))
        if mode == "pravg":
            for length in cfg["lengths"]:
                if length > len(frames_f):
                    raise Skip(f"clip has {len(frames_f)} frames < L={length}")
                blurred, sharp = frame_averaging.pravg_window(frames_f, c, length, cfg["gamma"])
                out.append(tfrecord.make_example(sharp=sharp, blurred=blurred, landmarks=lm,
                                                 identity=ident, source=f"{key}:L={length}"))
        else:
            boxes = None  # VLA's overlap stop: the box of each frame's landmarks (300VW)
            if lms is not None:
                pts = np.asarray(lms, np.float64)
                if hw is not None:
                    pts = pts * [hw[1] / src_hw[1], hw[0] / src_hw[0]]
                boxes = np.concatenate([pts.min(axis=1), pts.max(axis=1)], axis=1)
            r = frame_averaging.vla_average(frames_f, c, boxes=boxes, gamma=cfg["gamma"])
            out.append(tfrecord.make_example(sharp=r.sharp, blurred=r.blurred, landmarks=lm,
                                             identity=ident,
                                             source=f"{key}:L={r.length}:{r.reason}"))
        return out
    if mode == "paired":
        if "blurred" not in ex or "sharp" not in ex:
            raise ValueError(f"--mode=paired needs a paired source (gopro, shen_blurred_faces), "
                             f"got {cfg['source']}")
        s = load_rgb(ex["sharp"], cfg["min_size"], notes)
        b = load_rgb(ex["blurred"], cfg["min_size"], notes)
        if s.shape != b.shape:
            raise Skip(f"sharp {s.shape} and blurred {b.shape} differ in size")
        s, _ = _center_cropped(_resized(s, hw)[0], cfg["center_crop"])
        b, _ = _center_cropped(_resized(b, hw)[0], cfg["center_crop"])
        return [tfrecord.make_example(sharp=s, blurred=b, source=key)]
    if "image" not in ex:
        raise ValueError(
            f"--mode={mode} needs an image source; {cfg['source']} is paired or video: "
            "use --mode=paired / pravg / vla")
    img = load_rgb(ex["image"], cfg["min_size"], notes)
    lm = ex.get("landmarks") if ex.get("has_landmarks", ex.get("landmarks") is not None) else None
    mask = ex.get("mask")
    if cfg["mask_dir"]:
        stem = os.path.splitext(os.path.basename(ex["image"]))[0]
        mpath = os.path.join(cfg["mask_dir"], stem + ".png")
        if os.path.isfile(mpath):
            from PIL import Image  # pylint: disable=g-import-not-at-top
            with Image.open(mpath) as m:
                mask = np.asarray(m)[..., None] if m.mode in ("L", "P") else None
            if mask is None:
                raise Skip(f"mask {mpath} is not a 1-channel class map")
        else:
            notes.append({"path": ex["image"], "note": f"no mask {mpath}"})
    if mask is not None and mask.shape[:2] != img.shape[:2]:
        raise Skip(f"mask {mask.shape[:2]} and image {img.shape[:2]} differ in size")
    img, lm = _resized(img, hw, lm)
    img, lm = _center_cropped(img, cfg["center_crop"], lm)
    if mask is not None:
        mask, _ = _center_cropped(_resized(mask, hw, nearest=True)[0], cfg["center_crop"])
    ident = ex.get("identity")
    ident = identity_map.get(ident, ident) if not isinstance(ident, (int, np.integer)) else int(ident)
    common_fields = dict(mask=mask, landmarks=lm, identity=ident)
    if mode == "sharp":
        return [tfrecord.make_example(sharp=img, source=key, **common_fields)]
    if mode == "unpaired":
        domain = ex.get("domain", "clear")
        field = {"clear": "sharp", "blurred": "blurred"}[domain]
        return [tfrecord.make_example(**{field: img}, source=key,
                                      identity=common_fields["identity"])]
    # kernel mode
    for c, k in enumerate(cfg["kernel_source"].kernels(index, cfg["blurs_per_image"])):
        seed = np.random.default_rng([cfg["seed"], index, c, 7]).integers(2**31 - 1)
        b = blur_image(img, k, cfg["noise_sigma"], seed, cfg["quantize"])
        out.append(tfrecord.make_example(sharp=img, blurred=b, kernel=k,
                                         source=f"{key}#{c}" if cfg["blurs_per_image"] > 1 else key,
                                         **common_fields))
    return out


def face_box(landmarks, frame_hw, margin=0.25):
    """(top, left, side) of the square face crop of a clip: centred on the box of all its
    landmarks (``[..., 2]`` (x, y) pixels, every frame of the clip), whose larger side plus
    ``margin`` times it on each side is the square's side; shifted to lie inside the
    ``frame_hw`` frame (and no larger than it), so it holds every landmark unless the face is
    larger than the frame. Non-finite points are ignored; none finite raises Skip."""
    pts = np.asarray(landmarks, np.float64).reshape(-1, 2)
    pts = pts[np.isfinite(pts).all(axis=1)]
    if not len(pts):
        raise Skip("no finite landmark for the face crop")
    h, w = int(frame_hw[0]), int(frame_hw[1])
    (x0, y0), (x1, y1) = pts.min(axis=0), pts.max(axis=0)
    side = int(np.ceil(max(x1 - x0, y1 - y0) * (1 + 2 * margin))) + 2
    side = min(max(side, 2), h, w)
    left = int(np.floor((x0 + x1) / 2 - (side - 1) / 2))
    top = int(np.floor((y0 + y1) / 2 - (side - 1) / 2))
    return min(max(top, 0), h - side), min(max(left, 0), w - side), side


def _atomic_json(path, obj):
    image_io.atomic_write(path, json.dumps(obj, indent=1, default=str))


# cfg entries that do not change what the records hold
_NOT_FINGERPRINTED = ("kernel_source", "output_dir", "overwrite", "num_workers",
                      "folder_names_from_path")


def _fingerprint_value(v):
    """JSON-able stand-in of a source item value: files by (path, size, mtime), arrays by hash."""
    if isinstance(v, dict):
        return {str(k): _fingerprint_value(x) for k, x in sorted(v.items(), key=lambda kv: str(kv[0]))}
    if isinstance(v, (list, tuple)):
        return [_fingerprint_value(x) for x in v]
    if isinstance(v, np.ndarray):
        return hashlib.sha1(np.ascontiguousarray(v).tobytes()).hexdigest()
    if isinstance(v, str) and os.path.isfile(v):
        st = os.stat(v)
        return [v, st.st_size, st.st_mtime_ns]
    return v if isinstance(v, (int, float, bool, type(None))) else str(v)


def build_fingerprint(cfg, items):
    """(hex digest, flags dict) over the flags that shape the records and the source items
    (their keys, and every input file's path, size and mtime; mask files and a kernel file too)."""
    flag_values = {k: v for k, v in cfg.items() if k not in _NOT_FINGERPRINTED}
    extra = {}
    if cfg.get("mask_dir") and os.path.isdir(cfg["mask_dir"]):
        extra["masks"] = _fingerprint_value(
            [os.path.join(cfg["mask_dir"], f) for f in sorted(os.listdir(cfg["mask_dir"]))])
    extra["kernels"] = _fingerprint_value(cfg.get("kernels"))
    blob = json.dumps({"flags": flag_values, "items": _fingerprint_value(items), **extra},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest(), json.loads(
        json.dumps(flag_values, default=str))


def _existing_build_files(out_dir, name):
    pattern = os.path.join(glob.escape(out_dir), glob.escape(name))
    files = glob.glob(pattern + "-[0-9][0-9][0-9][0-9][0-9]-of-[0-9][0-9][0-9][0-9][0-9].tfrecord")
    files += [f + ".json" for f in files if os.path.isfile(f + ".json")]
    files += glob.glob(pattern + "-[0-9][0-9][0-9][0-9][0-9]-of-[0-9][0-9][0-9][0-9][0-9]"
                                 ".tfrecord.json")
    # the folder layout's shard markers (data.build --output_format=folder)
    files += glob.glob(os.path.join(glob.escape(out_dir), ".build", glob.escape(name) + "-*"))
    report = os.path.join(out_dir, f"{name}-report.json")
    return sorted(set(files + ([report] if os.path.isfile(report) else [])))


def check_build_fingerprint(cfg, items):
    """Makes sure the shards already in --output_dir (if any) were built from the same flags and
    sources, so a rerun resumes only a build of the same records; writes `<name>-build.json`.

    Different flags or sources: ValueError naming what differs, or with --overwrite the old
    shards, their .json files and the report are deleted and everything is rebuilt. Shards
    without a `<name>-build.json` (a build of an older version) count as different.
    """
    out_dir, name = cfg["output_dir"], cfg["name"]
    fingerprint, flag_values = build_fingerprint(cfg, items)
    path = os.path.join(out_dir, f"{name}-build.json")
    old = None
    if os.path.isfile(path):
        with open(path) as f:
            old = json.load(f)
    existing = _existing_build_files(out_dir, name)
    if old is not None and old.get("fingerprint") == fingerprint:
        return
    if existing:
        if old is None:
            why = f"no {name}-build.json says which flags and sources built them"
        else:
            diff = [f"--{k}: {old['flags'].get(k)!r} then, {flag_values.get(k)!r} now"
                    for k in sorted(set(old.get("flags", {})) | set(flag_values))
                    if old.get("flags", {}).get(k) != flag_values.get(k)]
            why = ("they were built with other flags (" + "; ".join(diff) + ")" if diff else
                   f"the source files changed ({old.get('items')} items then, {len(items)} now, "
                   "or files added, removed or modified)")
        if not cfg.get("overwrite"):
            raise ValueError(f"--output_dir={out_dir} holds {name} records that this command "
                             f"would not build: {why}. Pass --overwrite to rebuild them, or "
                             f"another --output_dir or --name.")
        logging.warning("--overwrite: deleting %d old %s files in %s (%s)", len(existing), name,
                        out_dir, why)
        for f in existing:
            os.remove(f)
    _atomic_json(path, {"fingerprint": fingerprint, "items": len(items),
                        "shards": [tfrecord.shard_name(name, s, cfg["num_shards"])
                                   for s in range(cfg["num_shards"])],
                        "flags": flag_values})


def identity_name(ex):
    """The person of a source item: its `name` (LFW, CelebA ids) or `identity`, else None."""
    name = ex.get("name", ex.get("identity"))
    return None if name is None else str(name)


def read_excluded_identities(path):
    """Names from a text file (one per line) or from a folder of <Name>_0001.jpg files."""
    if os.path.isdir(path):
        return {re.sub(r"_\d+$", "", os.path.splitext(f)[0]) for f in os.listdir(path)
                if not f.startswith(".")}
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--exclude_identities: no such file or folder: {path}")
    with open(path) as f:
        return {line.strip() for line in f if line.strip() and not line.startswith("#")}


def select_items(items, exclude=None, max_per_identity=None):
    """Drops items of excluded people and keeps at most `max_per_identity` items per person."""
    out, seen = [], {}
    for key, ex in items:
        name = identity_name(ex)
        if exclude and name in exclude:
            continue
        if max_per_identity is not None and name is not None:
            if seen.get(name, 0) >= max_per_identity:
                continue
            seen[name] = seen.get(name, 0) + 1
        out.append((key, ex))
    return out


def folder_name(source, from_path=False):
    """Test-set file stem from a record's source key ('Ann/Ann_0001.jpg#1' -> 'Ann_0001_1').

    ``from_path``: the whole relative path names the file ('GOPR0384_11_00/000001.png' ->
    'GOPR0384_11_00_000001'), for sources whose file names repeat across folders (GoPro's
    per-sequence frame numbers; `folder_names_from_path` decides).
    """
    path = source.replace("\\", "/")
    base = path if from_path else path.split("/")[-1]
    stem, _, suffix = base.partition("#")
    stem = os.path.splitext(stem)[0].strip("/").replace("/", "_")
    name = f"{stem}_{suffix}" if suffix else stem
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def folder_names_from_path(keys):
    """Whether the folder layout must name files by relative path: True when two source items
    share a file stem (e.g. GoPro's `<seq>/000001.png` in every sequence), which would otherwise
    overwrite each other. Raises ValueError if even the path names collide."""
    stems = [folder_name(k) for k in keys]
    if len(set(stems)) == len(stems):
        return False
    names = {}
    for k in keys:
        n = folder_name(k, from_path=True)
        if n in names:
            raise ValueError(f"--output_format=folder: source items {names[n]!r} and {k!r} would "
                             f"both be written as {n}.png; use --output_format=records")
        names[n] = k
    return True


def write_folder_shard(out_dir, done_path, examples, from_path=False):
    """Writes examples in the test-set folder layout; `done_path` (JSON) is written by the caller.

    PNG bytes are written as they are stored in the record (no re-encoding). ``from_path``: name
    files by the source's relative path (`folder_name`), decided over all items by `build`.
    """
    names = []
    ident_lines = []
    for serialized in examples:  # tf.train.Example (or its bytes)
        if isinstance(serialized, bytes):
            serialized = tf.train.Example.FromString(serialized)
        ex = serialized.features.feature
        source = ex[tfrecord.SOURCE].bytes_list.value[0].decode() if tfrecord.SOURCE in ex else ""
        name = (folder_name(source, from_path=from_path) if source
                else f"item{len(names):06d}")
        for key, sub in ((tfrecord.SHARP, "sharp"), (tfrecord.BLURRED, "blurred"),
                         (tfrecord.MASK, "masks")):
            if key in ex:
                os.makedirs(os.path.join(out_dir, sub), exist_ok=True)
                image_io.atomic_write(os.path.join(out_dir, sub, name + ".png"),
                                            ex[key].bytes_list.value[0])
        if tfrecord.KERNEL in ex:
            size = int(ex[tfrecord.KERNEL_SIZE].int64_list.value[0])
            k = np.asarray(ex[tfrecord.KERNEL].float_list.value, np.float32).reshape(size, size)
            os.makedirs(os.path.join(out_dir, "kernels"), exist_ok=True)
            np.save(os.path.join(out_dir, "kernels", name + ".npy"), k)
        if tfrecord.LANDMARKS in ex and ex[tfrecord.LANDMARKS].float_list.value:
            lm = np.asarray(ex[tfrecord.LANDMARKS].float_list.value, np.float32).reshape(-1, 2)
            os.makedirs(os.path.join(out_dir, "landmarks"), exist_ok=True)
            np.save(os.path.join(out_dir, "landmarks", name + ".npy"), lm)
        if tfrecord.IDENTITY in ex:
            ident_lines.append(f"{name}\t{ex[tfrecord.IDENTITY].int64_list.value[0]}")
        names.append(name)
    os.makedirs(os.path.dirname(done_path), exist_ok=True)
    if ident_lines:
        image_io.atomic_write(done_path + ".identities",
                                    ("\n".join(ident_lines) + "\n").encode())
    return names


def _finish_folder(out_dir, n_shards, name, cfg):
    """identities.txt and meta.json of a folder-layout test set (from the shard markers)."""
    lines = []
    for s in range(n_shards):
        p = os.path.join(out_dir, ".build", tfrecord.shard_name(name, s, n_shards)) + ".identities"
        if os.path.isfile(p):
            with open(p) as f:
                lines.extend(l for l in f.read().splitlines() if l)
    if lines:
        image_io.atomic_write(os.path.join(out_dir, "identities.txt"),
                                    ("\n".join(lines) + "\n").encode())
    meta = {"layout": "facedeblur test set: sharp/NAME.png, blurred/NAME.png, kernels/NAME.npy",
            "built_by": "python -m data.build", "flags": {k: v for k, v in cfg.items()
                                                         if k != "kernel_source"}}
    _atomic_json(os.path.join(out_dir, "meta.json"), meta)


def build_shard(cfg, path, shard_items, first_index, identity_map, bar=None):
    """Writes one shard (`path`, its `.json` report) from `shard_items`, whose first item has
    index `first_index` in the whole source (the item's seed). Returns the records written."""
    examples, skipped, notes = [], [], []
    for i, (key, ex) in enumerate(shard_items, start=first_index):
        try:
            examples.extend(item_examples(cfg, i, key, ex, notes, identity_map))
        except Skip as e:
            skipped.append({"item": key, "reason": str(e)})
        if bar is not None:
            bar.update(1)
    if cfg.get("output_format") == "folder":
        write_folder_shard(cfg["output_dir"], path, examples,
                           from_path=cfg.get("folder_names_from_path", False))
        image_io.atomic_write(path, f"{len(examples)} items in the folder layout\n".encode())
    else:
        tfrecord.write_shard(path, examples)
    _atomic_json(path + ".json", {"items": len(shard_items), "records": len(examples),
                                  "skipped": skipped, "converted": notes})
    return len(examples)


def build(cfg):
    """Writes the records; returns the combined report dict.

    A rerun of the same command resumes (finished shards are kept); a rerun with other flags or
    sources is refused unless cfg["overwrite"] (`check_build_fingerprint`). The build holds
    `OUTPUT_DIR/.<name>.lock` (`common.workdir_lock`): a second build of the same --name into
    the same folder is refused naming the first one's pid and host.
    """
    out_dir, name = cfg["output_dir"], cfg["name"]
    # one writer per --output_dir and --name: a second build there is refused in one line
    with workdir_lock.hold(out_dir, f".{name}.lock", what="--output_dir"):
        return _build(cfg)


def _build(cfg):
    out_dir, name, n_shards = cfg["output_dir"], cfg["name"], cfg["num_shards"]
    os.makedirs(out_dir, exist_ok=True)
    clip_length = max(cfg["lengths"]) if cfg["mode"] in ("pravg", "vla") else 21
    items = source_items(cfg["source"], cfg["manual_dir"], cfg["split"], cfg["video_layout"],
                         clip_length, cfg["max_clips_per_video"])
    exclude = read_excluded_identities(cfg["exclude_identities"]) if cfg.get(
        "exclude_identities") else None
    items = select_items(items, exclude, cfg.get("max_per_identity"))
    if cfg["max_items"]:
        items = items[:cfg["max_items"]]
    if not items:
        raise ValueError(f"source {cfg['source']} split {cfg['split']!r} in {cfg['manual_dir']} "
                         "yielded no item.")
    check_build_fingerprint(cfg, items)
    if cfg.get("output_format") == "folder":
        # decided over every item, not per shard: shards are built independently
        cfg = {**cfg, "folder_names_from_path": folder_names_from_path([k for k, _ in items])}
    idents = sorted({e.get("identity") for _, e in items if isinstance(e.get("identity"), str)})
    identity_map = {s: i for i, s in enumerate(idents)}
    bounds = np.linspace(0, len(items), n_shards + 1).astype(int)
    t0 = time.time()
    done_items = new_items = 0
    written = 0
    bar = tqdm(total=len(items), desc=f"{name}", unit="img")
    todo = []
    for s in range(n_shards):
        path = shard_path(cfg, s)
        lo, hi = int(bounds[s]), int(bounds[s + 1])
        if os.path.isfile(path) and os.path.isfile(path + ".json"):
            bar.update(hi - lo)
            done_items += hi - lo
            continue
        todo.append((path, lo, hi))
    workers = min(int(cfg.get("num_workers") or 1), len(todo))
    if workers > 1:
        # spawn, not fork: TensorFlow's runtime is not fork-safe
        import multiprocessing  # pylint: disable=g-import-not-at-top
        from concurrent import futures  # pylint: disable=g-import-not-at-top
        with futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")
                                         ) as pool:
            jobs = {pool.submit(build_shard, cfg, path, items[lo:hi], lo, identity_map): hi - lo
                    for path, lo, hi in todo}
            for job in futures.as_completed(jobs):
                written += job.result()
                bar.update(jobs[job])
                new_items += jobs[job]
    else:
        for path, lo, hi in todo:
            written += build_shard(cfg, path, items[lo:hi], lo, identity_map, bar)
            new_items += hi - lo
    bar.close()
    seconds = time.time() - t0
    report = {"source": cfg["source"], "manual_dir": cfg["manual_dir"], "split": cfg["split"],
              "mode": cfg["mode"], "num_shards": n_shards, "items": len(items),
              "items_this_run": new_items, "items_resumed": done_items,
              "seconds_this_run": round(seconds, 3),
              "items_per_second": round(new_items / seconds, 2) if new_items else None,
              "records": 0, "bytes": 0, "skipped": [], "converted": []}
    for s in range(n_shards):
        path = shard_path(cfg, s)
        with open(path + ".json") as f:
            r = json.load(f)
        report["records"] += r["records"]
        report["bytes"] += os.path.getsize(path)
        report["skipped"] += r["skipped"]
        report["converted"] += r["converted"]
    report["flags"] = {k: v for k, v in cfg.items() if k != "kernel_source"}
    if cfg.get("output_format") == "folder":
        _finish_folder(out_dir, n_shards, name, cfg)
    _atomic_json(os.path.join(out_dir, f"{name}-report.json"), report)
    logging.info("%s: %d records (%.1f MB), %d skipped, %d converted; %s items/s", name,
                 report["records"], report["bytes"] / 1e6, len(report["skipped"]),
                 len(report["converted"]), report["items_per_second"])
    return report


def shard_path(cfg, s):
    """A shard's record file, or (folder layout) its completion marker under .build/."""
    name = tfrecord.shard_name(cfg["name"], s, cfg["num_shards"])
    if cfg.get("output_format") == "folder":
        return os.path.join(cfg["output_dir"], ".build", name)
    return os.path.join(cfg["output_dir"], name)


def config_from_flags(fv):
    mode = fv.mode
    cfg = {
        "source": fv.source, "manual_dir": fv.manual_dir, "split": fv.split,
        "output_dir": fv.output_dir, "name": fv.name or fv.split, "mode": mode,
        "kernels": fv.blur_kernels, "kernel_sizes": shared_flags.parse_kernel_sizes(fv.kernel_sizes),
        "blurs_per_image": fv.blurs_per_image, "noise_sigma": fv.noise_sigma,
        "quantize": fv.quantize, "lengths": [int(v) for v in fv.lengths.split(",")],
        "gamma": fv.gamma, "video_layout": fv.video_layout,
        "max_clips_per_video": fv.max_clips_per_video, "mask_dir": fv.mask_dir,
        "resize": shared_flags.parse_resize(fv.resize), "min_size": fv.min_size, "num_shards": fv.num_shards,
        "max_items": fv.max_items, "seed": fv.seed, "center_crop": fv.center_crop,
        "output_format": fv.output_format, "exclude_identities": fv.exclude_identities,
        "max_per_identity": fv.max_per_identity, "num_workers": fv.num_workers,
        "overwrite": fv.overwrite, "face_crop": fv.face_crop, "face_margin": fv.face_margin,
        "face_size": fv.face_size,
    }
    if fv.face_margin < 0 or fv.face_size < 0:
        raise ValueError(f"--face_margin={fv.face_margin} / --face_size={fv.face_size}: give a "
                         "margin >= 0 and a size >= 0 (0: the crop's own size)")
    if (mode in ("pravg", "vla") and fv.face_crop and fv.resize
            and fv.video_layout == "300vw"):
        raise ValueError(f"--resize={fv.resize} with --face_crop: 300VW clips are cropped to the "
                         "face and resized to --face_size; pass --face_size instead of --resize "
                         "(or --noface_crop to resize whole frames)")
    if fv.num_workers < 1:
        raise ValueError(f"--num_workers={fv.num_workers}: give 1 (no pool) or more processes")
    if any(L < 1 or L % 2 == 0 for L in cfg["lengths"]):
        raise ValueError(f"--lengths must be odd, got {fv.lengths}")
    if mode in ("pravg", "vla") and fv.source not in ("face_videos", "youtube_faces"):
        raise ValueError(f"--mode={mode} needs --source=face_videos (or youtube_faces)")
    # only when set, so the fingerprints of builds made before these flags existed still match
    for name in ("kernel_exposure", "kernel_min_taps", "kernel_min_extent", "centre_kernels"):
        if getattr(fv, name):
            cfg[name] = getattr(fv, name)
    if mode == "kernel":
        cfg["kernel_source"] = KernelSource(fv.blur_kernels, cfg["kernel_sizes"], fv.seed,
                                            fv.kernel_exposure, fv.kernel_min_taps,
                                            fv.centre_kernels, fv.kernel_min_extent)
    return cfg


def main(argv):
    del argv
    try:
        build(config_from_flags(flags.FLAGS))
    except (ValueError, FileNotFoundError, workdir_lock.LockError) as e:
        # bad flags, a refused rerun or a build already running there: one line
        raise SystemExit(f"error: {e}") from None


if __name__ == "__main__":
    from common import cli  # pylint: disable=import-outside-toplevel
    define_flags()
    cli.run_app(main)
