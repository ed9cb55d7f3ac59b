"""Training / test pairs by frame averaging (Sec. 3.3, 5.1, 5.2 of Chrysos et al.).

A *sequence* is ``uint8 [N, H, W, 3]`` consecutive face frames, from

* a folder of real frames (e.g. ``face_video_toy/<seq>/frames/0000.png``: the folder itself or
  its ``frames/`` subfolder), or
* ``data.synth_video`` applied to a still face (the data helper's synthetic camera/face motion),
  when only still faces exist.

From each sequence ``make_pairs`` draws

* PrAvg pairs (``common.frame_averaging.pravg_windows``): L consecutive frames averaged, sharp = middle;
* VLA pairs (``common.frame_averaging.vla_windows``): the window grows around the centre until a stop fires;

in forward and, optionally, reverse temporal order.  Footnote 6 of the paper: reverse-order pairs
that hold essentially the same blur as a forward pair are skipped; we skip a reverse pair when
its blurred image is within 1/255 (max abs) of the forward pair with the same sharp frame.  With
symmetric windows, averaging is order-free, so most reverse pairs duplicate forward ones and are
skipped; the reverse pass only adds pairs where VLA's motion tests stop differently.

VLA's overlap stop (Sec. 3.3: the face boxes of the window's first and last frames must
overlap) needs a face box per frame: real frame folders take it from 300VW-style annotations
(``<video>/annot/<frame stem>.pts``, the box of the 68 landmarks) when present; synthetic clips of
a still carry the still's whole frame moved with the simulated motion.

``write_pairs`` stores pairs in the shared record schema (``image/sharp``, ``image/blurred``,
``source`` = "<sequence>|<mode>|<centre>|<fwd/rev>") with ``common.tfrecord.ShardedWriter``, so
``common.pipeline.make_dataset`` reads them.
"""
from __future__ import annotations

import glob
import os
from typing import Iterator

import numpy as np

from common import frame_averaging, image_io, tfrecord


def find_sequences(spec: str) -> list[str]:
    """Folders of frames matched by a comma-separated list of globs (``<seq>`` or ``<seq>/frames``).

    Raises FileNotFoundError naming the pattern when nothing matches.
    """
    out = []
    for pattern in [p.strip() for p in spec.split(",") if p.strip()]:
        for folder in sorted(glob.glob(pattern)):
            if not os.path.isdir(folder):
                continue
            frames = os.path.join(folder, "frames")
            out.append(frames if os.path.isdir(frames) else folder)
    if not out:
        raise FileNotFoundError(f"no frame folder matches {spec!r} (--train_videos / --test_videos:"
                                " pass globs of folders that hold frames or a frames/ subfolder)")
    return out


def read_sequence(folder: str, size: int | None = None) -> np.ndarray:
    """uint8 [N, H, W, 3] frames of a folder in name order, optionally centre-cropped/resized
    to ``size`` x ``size``; all frames must share one shape (error names the folder)."""
    paths = image_io.list_images(folder, recursive=False)
    frames = [image_io.read_image(p) for p in paths]
    shapes = {f.shape for f in frames}
    if len(shapes) != 1:
        raise ValueError(f"{folder}: frames differ in shape {sorted(shapes)}; a sequence needs one "
                         "frame size")
    seq = np.stack(frames)
    return resize_sequence(seq, size) if size else seq


def sequence_points(folder: str) -> np.ndarray | None:
    """float64 [N, 68, 2] 300VW landmarks (x, y) of a frame folder's frames, in name order: the
    ``annot/<frame stem>.pts`` beside the ``frames/`` folder (or inside the folder). None when
    the folder has no annotation for every frame."""
    from data.builders import face_videos  # pylint: disable=import-outside-toplevel
    paths = image_io.list_images(folder, recursive=False)
    parent = os.path.dirname(folder) if os.path.basename(folder) == "frames" else folder
    annot = os.path.join(parent, "annot")
    if not os.path.isdir(annot) or not paths:
        return None
    pts = []
    for p in paths:
        pts_path = os.path.join(annot, os.path.splitext(os.path.basename(p))[0] + ".pts")
        if not os.path.isfile(pts_path):
            return None
        pts.append(face_videos.read_pts(pts_path))
    return np.stack(pts).astype(np.float64)


def sequence_boxes(folder: str) -> np.ndarray | None:
    """float64 [N, 4] face boxes (x0, y0, x1, y1) of a frame folder's frames, in name order: the
    bounding boxes of ``sequence_points``. None when the folder has no annotation for every
    frame."""
    pts = sequence_points(folder)
    if pts is None:
        return None
    return np.concatenate([pts.min(axis=1), pts.max(axis=1)], axis=1)


def resize_boxes(boxes: np.ndarray, h: int, w: int, size: int) -> np.ndarray:
    """Boxes of h x w frames -> the same boxes after ``resize_sequence(..., size)``."""
    s = min(h, w)
    y0, x0 = (h - s) // 2, (w - s) // 2
    return (np.asarray(boxes, np.float64) - [x0, y0, x0, y0]) * (size / s)


def resize_sequence(seq: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop to a square and resize (bilinear, antialiased) every frame to size x size."""
    import tensorflow as tf  # local: keep NumPy-only callers light
    n, h, w, _ = seq.shape
    s = min(h, w)
    y0, x0 = (h - s) // 2, (w - s) // 2
    crop = seq[:, y0:y0 + s, x0:x0 + s]
    if s == size:
        return crop
    out = tf.image.resize(tf.convert_to_tensor(crop, tf.float32), (size, size), antialias=True)
    return np.clip(np.round(out.numpy()), 0, 255).astype(np.uint8)


def still_sequences(folder: str, num_frames: int, size: int, seed: int = 0,
                    limit: int | None = None, with_boxes: bool = False,
                    motion_scales: tuple[float, ...] = (1.0,)
                    ) -> Iterator[tuple[str, np.ndarray]]:
    """(name, uint8 [num_frames, size, size, 3]) synthetic videos of the still faces in ``folder``
    made by ``data.synth_video`` (the data helper's module). ``with_boxes``: (name, frames,
    boxes [num_frames, 4]), the still's whole frame moved with each frame's motion.
    ``motion_scales``: the i-th still's motion is ``synth_video.DEFAULTS`` (translation, rotation,
    zoom, shake) times ``motion_scales[i % len(motion_scales)]``; larger motion, stronger blur."""
    try:
        from data import synth_video  # pylint: disable=import-outside-toplevel
    except ImportError as e:  # pragma: no cover - depends on the data helper's module
        raise ImportError("data/synth_video.py is needed to turn still faces into sequences "
                          "(--train_stills / --test_stills); pass --train_videos with real frame "
                          "folders instead") from e
    rng = np.random.default_rng(seed)
    paths = image_io.list_images(folder)
    if limit:
        paths = paths[:limit]
    if not motion_scales or min(motion_scales) <= 0:
        raise ValueError(f"motion scales must be > 0, got {motion_scales!r} (--motion_scale)")
    for i, path in enumerate(paths):
        face = image_io.read_image(path)
        h, w = face.shape[:2]
        corners = np.array([[0, 0], [w, 0], [0, h], [w, h]], np.float32)
        scale = float(motion_scales[i % len(motion_scales)])
        motion = {k: v * scale for k, v in synth_video.DEFAULTS.items()}
        clip = synth_video.synthesize(face, num_frames=num_frames, seed=int(rng.integers(2**31)),
                                      landmarks=corners, **motion)
        frames = np.asarray(clip["frames"])
        if frames.dtype != np.uint8:
            frames = image_io.to_uint8(frames)
        name = os.path.splitext(os.path.basename(path))[0]
        if not with_boxes:
            yield name, resize_sequence(frames, size)
            continue
        moved = np.asarray(clip["landmarks"], np.float64)  # [num_frames, 4 corners, 2]
        boxes = np.concatenate([moved.min(axis=1), moved.max(axis=1)], axis=1)
        yield name, resize_sequence(frames, size), resize_boxes(boxes, h, w, size)


def make_pairs(name: str, frames: np.ndarray, modes=("pravg", "vla"), pravg_length: int = 7,
               pravg_stride: int | None = None, vla_stride: int = 3, vla_max_length: int = 21,
               reverse: bool = True, boxes: np.ndarray | None = None):
    """All pairs of one sequence: list of dicts ``blurred``, ``sharp`` (float32 [H,W,3]),
    ``source`` and ``length``.  ``modes``: "pravg" and/or "vla".  ``boxes``: optional [N, 4]
    face boxes per frame for VLA's overlap stop."""
    out = []
    rev_boxes = None if boxes is None else np.asarray(boxes)[::-1]
    passes = [("fwd", frames, boxes)] + ([("rev", frames[::-1], rev_boxes)] if reverse else [])
    n = len(frames)
    forward = {}
    for direction, seq, seq_boxes in passes:
        for mode in modes:
            if mode == "pravg":
                items = ((c, b, s, pravg_length) for c, b, s in
                         frame_averaging.pravg_windows(seq, pravg_length, pravg_stride))
            elif mode == "vla":
                items = frame_averaging.vla_windows(seq, vla_stride, vla_max_length,
                                                    boxes=seq_boxes)
            else:
                raise ValueError(f"unknown pair mode {mode!r}; choose pravg or vla")
            for c, b, s, length in items:
                centre = c if direction == "fwd" else n - 1 - c
                key = (mode, centre)
                if direction == "fwd":
                    forward.setdefault(centre, []).append(b)
                elif any(np.abs(b - f).max() <= 1.0 / 255 for f in forward.get(centre, [])):
                    continue  # footnote 6: the same blur as a forward pair
                out.append({"blurred": b, "sharp": s, "length": length,
                            "source": f"{name}|{key[0]}{length}|{centre}|{direction}"})
    return out


def write_pairs(output_dir: str, name: str, pairs, num_shards: int = 1) -> list[str]:
    """Writes pairs as shared-schema records; returns the shard paths."""
    with tfrecord.ShardedWriter(output_dir, name, num_shards) as writer:
        for p in pairs:
            writer.write(tfrecord.make_example(sharp=image_io.to_uint8(p["sharp"]),
                                               blurred=image_io.to_uint8(p["blurred"]),
                                               source=p["source"]))
    return sorted(glob.glob(os.path.join(output_dir, f"{name}-*-of-*.tfrecord")))


def collect_sequences(videos: str = "", stills: str = "", size: int = 128, num_frames: int = 21,
                      seed: int = 0, stills_limit: int | None = None, with_boxes: bool = False,
                      motion_scales: tuple[float, ...] = (1.0,)):
    """(name, frames) for every real frame folder in ``videos`` and every still in ``stills``;
    ``with_boxes``: (name, frames, boxes [N, 4] or None), see ``sequence_boxes``;
    ``motion_scales``: see ``still_sequences``."""
    if videos:
        for folder in find_sequences(videos):
            rel = os.path.basename(os.path.dirname(folder)) if folder.endswith("frames") else \
                os.path.basename(folder)
            frames = read_sequence(folder, size)
            if not with_boxes:
                yield rel, frames
                continue
            boxes = sequence_boxes(folder)
            if boxes is not None:
                h, w = image_io.read_image(image_io.list_images(folder, recursive=False)[0]).shape[:2]
                boxes = resize_boxes(boxes, h, w, size)
            yield rel, frames, boxes
    if stills:
        yield from still_sequences(stills, num_frames, size, seed=seed, limit=stills_limit,
                                   with_boxes=with_boxes, motion_scales=motion_scales)


def define_pair_flags(fv) -> None:
    """The pair-building flags shared by this CLI and ``train.py --stage=cgan``."""
    from absl import flags  # pylint: disable=import-outside-toplevel
    d = dict(flag_values=fv)
    flags.DEFINE_string("train_videos", "", "Comma-separated globs of real frame folders.", **d)
    flags.DEFINE_string("train_stills", "", "Folder of still faces turned into synthetic videos "
                        "(data.synth_video).", **d)
    flags.DEFINE_integer("stills_limit", 0, "Use at most this many stills (0: all).", **d)
    flags.DEFINE_integer("synth_frames", 21, "Frames per synthetic video.", **d)
    flags.DEFINE_list("motion_scale", ["1"], "Factors on synth_video's motion, cycled over the "
                      "stills (e.g. 1,2,3: a third of the clips each at 1x, 2x, 3x; stronger "
                      "blur).", **d)
    flags.DEFINE_list("pair_modes", ["vla", "pravg"], "Frame averaging: vla and/or pravg.", **d)
    flags.DEFINE_integer("pravg_length", 7, "L for PrAvg pairs.", **d)
    flags.DEFINE_integer("vla_stride", 3, "Centre stride for VLA pairs.", **d)
    flags.DEFINE_integer("vla_max_length", 21, "Longest VLA window.", **d)
    flags.DEFINE_bool("reverse", True, "Also parse sequences in reverse temporal order.", **d)


def pairs_from_flags(config) -> list[dict]:
    """Every pair (``make_pairs``) of the sequences named by the pair-building flags
    (``define_pair_flags``) plus --crop_size and --seed."""
    pairs = []
    for name, frames, boxes in collect_sequences(
            config.train_videos, config.train_stills, config.crop_size, config.synth_frames,
            config.seed, config.stills_limit or None, with_boxes=True,
            motion_scales=tuple(float(v) for v in config.motion_scale)):
        pairs += make_pairs(name, frames, modes=tuple(config.pair_modes),
                            pravg_length=config.pravg_length, vla_stride=config.vla_stride,
                            vla_max_length=config.vla_max_length, reverse=config.reverse,
                            boxes=boxes)
    return pairs


def define_flags(fv=None):
    """Flags of ``python -m paper2_identity_cgan.data`` (the pair builder)."""
    from absl import flags  # pylint: disable=import-outside-toplevel
    fv = flags.FLAGS if fv is None else fv
    d = dict(flag_values=fv)
    define_pair_flags(fv)
    flags.DEFINE_string("output_dir", None, "Where the pair records go (train.py --pairs_dir).",
                        **d)
    flags.DEFINE_string("name", "train", "Record file prefix.", **d)
    flags.DEFINE_integer("crop_size", 128, "Frame size (square centre crop, resized).",
                         lower_bound=1, **d)
    flags.DEFINE_integer("seed", 0, "Seed of the synthetic videos.", **d)


def main(argv):
    """``python -m paper2_identity_cgan.data --train_stills=DIR --train_videos=GLOB
    --output_dir=DIR``: build training pairs ahead of ``train.py --stage=cgan --pairs_dir=DIR``
    (which otherwise builds them itself into WORKDIR/pairs). The flags are train.py's names."""
    from absl import flags  # pylint: disable=import-outside-toplevel
    del argv
    a = flags.FLAGS
    if not (a.train_videos or a.train_stills):
        raise SystemExit("error: pass --train_stills and/or --train_videos")
    pairs = pairs_from_flags(a)
    files = write_pairs(a.output_dir, a.name, pairs)
    print(f"{len(pairs)} pairs -> {files}")


if __name__ == "__main__":
    from common import cli  # pylint: disable=import-outside-toplevel
    define_flags()
    cli.run_app(main, required=("output_dir",))
