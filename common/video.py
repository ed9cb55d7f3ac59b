"""Deblur face videos frame by frame with the photo path (`common.photo`), faces tracked so that
the paste-back does not flicker.

    info = deblur_video(model, "clip.mp4", "out/clip_umsn.mp4", detector, stride=4,
                        scale=FaceScale(105.2, 128))

Frames are read and written with imageio-ffmpeg (it ships its own ffmpeg binary: nothing to
install besides the `video` extra). Faces are detected every `detect_every` frames
(`photo.detect_faces`) and followed by `FaceTracker`: a detection continues the track it
overlaps most (IoU >= `match_iou`), whose box moves to `smoothing` x the old box + (1 -
smoothing) x the new one (an exponential moving average), so one-frame detector jitter moves the
pasted region by a fraction of a pixel, not by the jitter; a face the detector misses keeps its
box for up to `max_missed` detections before it is dropped. Each frame then goes through
`photo.deblur_photo(..., boxes=tracked)` (the same regions, scale and feathered paste-back as a
photo). A frame without a tracked face is written as it is (deblurring it whole would switch the
look of the clip from frame to frame); `whole_image=True` deblurs every frame whole.

The output is H.264 MP4 (yuv420p, `quality` 0-10 of imageio-ffmpeg) at the input's frame rate
(a variable-rate clip is written at its average rate). The input's audio is copied into it
unchanged, re-encoded as AAC when MP4 cannot hold its codec, and dropped only when neither
works: `info["audio"]` says which, and the CLI logs it. An odd frame width or height is
padded by one edge-pixel column or row (H.264 4:2:0 needs even sizes): the output is then one
pixel larger, which `info["size"]` reports.
"""
from __future__ import annotations

import math
import os
import subprocess
import tempfile
from typing import Callable, Iterable

import numpy as np

from common import image_io, photo

VIDEO_EXTENSIONS = (".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm", ".mpg", ".mpeg")


def is_video(path: str) -> bool:
    """Whether `path` names a video by its extension (VIDEO_EXTENSIONS)."""
    return os.path.splitext(str(path))[1].lower() in VIDEO_EXTENSIONS


# --------------------------------------------------------------------------- tracking


def iou(a, b) -> float:
    """Intersection over union of two boxes (x0, y0, x1, y1)."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


class FaceTracker:
    """Face boxes followed across frames and smoothed (module doc).

    update(detections) per frame: detections, a list of boxes (x0, y0, x1, y1) (anything
    `photo._box` reads), or None on a frame where the detector did not run (the tracks stay
    where they are). Returns the tracked boxes of that frame (those seen within the last
    `max_missed` detections), as float tuples.
    """

    def __init__(self, smoothing: float = 0.6, match_iou: float = 0.3, max_missed: int = 3):
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
        self.smoothing, self.match_iou, self.max_missed = smoothing, match_iou, max_missed
        self.tracks: list[dict] = []

    def update(self, detections: Iterable | None) -> list[tuple]:
        if detections is not None:
            dets = [np.asarray(photo._box(d), np.float64) for d in detections]  # pylint: disable=protected-access
            pairs = sorted(((iou(t["box"], d), ti, di) for ti, t in enumerate(self.tracks)
                            for di, d in enumerate(dets)), reverse=True)
            used_t, used_d = set(), set()
            for score, ti, di in pairs:
                if score < self.match_iou or ti in used_t or di in used_d:
                    continue
                t = self.tracks[ti]
                t["box"] = self.smoothing * t["box"] + (1.0 - self.smoothing) * dets[di]
                t["missed"] = 0
                used_t.add(ti)
                used_d.add(di)
            for ti, t in enumerate(self.tracks):
                if ti not in used_t:
                    t["missed"] += 1
            self.tracks = [t for t in self.tracks if t["missed"] <= self.max_missed]
            self.tracks += [{"box": d, "missed": 0} for di, d in enumerate(dets)
                            if di not in used_d]
        return [tuple(float(v) for v in t["box"]) for t in self.tracks]


def box_jitter(boxes_per_frame: list[list]) -> float:
    """Mean absolute frame-to-frame change of the box coordinates of a single-face sequence
    after removing its linear trend (px): what a viewer sees as flicker."""
    seq = np.asarray([photo._box(b[0]) for b in boxes_per_frame if b], np.float64)  # pylint: disable=protected-access
    if len(seq) < 3:
        return 0.0
    t = np.arange(len(seq), dtype=np.float64)
    fit = np.polynomial.polynomial.polyfit(t, seq, 1)
    resid = seq - np.polynomial.polynomial.polyval(t, fit).T
    return float(np.abs(np.diff(resid, axis=0)).mean())


# --------------------------------------------------------------------------- files


class VideoError(ValueError):
    """A video that cannot be read or written; the message names the file."""


def read_meta(path: str) -> dict:
    """{"fps", "size" (w, h), "nframes" (an estimate, or None), "audio" (codec name or None)}
    of a video file; VideoError naming it when ffmpeg cannot read it (or is not installed)."""
    try:
        import imageio_ffmpeg  # pylint: disable=import-outside-toplevel
    except ImportError:
        raise VideoError(f"video {path} needs imageio-ffmpeg: pip install -e \".[video]\" "
                         "(or imageio-ffmpeg==0.6.0)") from None
    try:
        gen = imageio_ffmpeg.read_frames(path)
        meta = next(gen)
        gen.close()
    except (OSError, RuntimeError, StopIteration, ValueError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[-1]
        raise VideoError(f"video {path} cannot be read by ffmpeg ({first[:160]}): pass an "
                         f"MP4/MOV/AVI/MKV/WebM clip") from None
    fps = float(meta.get("fps") or 0) or 25.0
    dur = meta.get("duration")
    nframes = int(round(float(dur) * fps)) if dur and math.isfinite(float(dur)) else None
    return {"fps": fps, "size": tuple(int(v) for v in meta["size"]), "nframes": nframes,
            "audio": meta.get("audio_codec")}


def frames(path: str):
    """uint8 [H,W,3] RGB frames of a video file, in order (rotation metadata applied by
    ffmpeg)."""
    import imageio_ffmpeg  # pylint: disable=import-outside-toplevel
    gen = imageio_ffmpeg.read_frames(path)
    meta = next(gen)
    w, h = (int(v) for v in meta["size"])
    try:
        for buf in gen:
            yield np.frombuffer(buf, np.uint8).reshape(h, w, 3)
    finally:
        gen.close()


def _mux_audio(video: str, src: str, dst: str) -> str:
    """dst = video's picture + src's audio; returns "copied", "aac" or "dropped (reason)"."""
    import imageio_ffmpeg  # pylint: disable=import-outside-toplevel
    exe = imageio_ffmpeg.get_ffmpeg_exe()
    reason = ""
    for how, codec in (("copied", "copy"), ("aac", "aac")):
        cmd = [exe, "-y", "-loglevel", "error", "-i", video, "-i", src, "-map", "0:v:0",
               "-map", "1:a:0", "-c:v", "copy", "-c:a", codec, dst]
        p = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if p.returncode == 0:
            return how
        reason = (p.stderr.strip().splitlines() or ["ffmpeg failed"])[-1]
    os.replace(video, dst)
    return f"dropped ({reason[:120]})"


def deblur_video(model: Callable, src: str, dst: str, detector=None, *, stride: int = 1,
                 scale: photo.FaceScale = photo.FaceScale(), whole_image: bool = False,
                 detect_every: int = 1, smoothing: float = 0.6, max_memory: float | None = None,
                 quality: int = 8, restore: str = "resample", progress: bool | None = None,
                 keep_audio: bool = True) -> dict:
    """Deblurs the video file src into the MP4 dst (module doc); returns an info dict:
    {"frames", "fps", "size", "audio": "none" | "copied" | "aac" | "dropped (...)",
    "frames_without_face", "boxes": [tracked boxes per frame]}.

    progress: a tqdm bar on stderr (None: only when stderr is a terminal). dst is written to a
    temporary name beside it and renamed at the end: a failure leaves no partial file."""
    import imageio_ffmpeg  # pylint: disable=import-outside-toplevel
    from tqdm import tqdm  # pylint: disable=import-outside-toplevel
    if detect_every < 1:
        raise ValueError(f"detect_every must be >= 1, got {detect_every}")
    meta = read_meta(src)
    w, h = meta["size"]
    ow, oh = w + w % 2, h + h % 2
    tracker = FaceTracker(smoothing)
    bound = {"max_memory": max_memory} if max_memory else {}
    info = {"frames": 0, "fps": meta["fps"], "size": (ow, oh), "audio": "none",
            "frames_without_face": 0, "boxes": []}
    folder = os.path.dirname(os.path.abspath(dst))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".mp4", prefix=".tmp-", dir=folder)
    os.close(fd)
    writer = imageio_ffmpeg.write_frames(tmp, (ow, oh), fps=meta["fps"], quality=quality,
                                         codec="libx264", macro_block_size=1,
                                         ffmpeg_log_level="error")
    bar = tqdm(total=meta["nframes"], unit="frame", desc=os.path.basename(src),
               disable=None if progress is None else not progress, leave=False)
    try:
        writer.send(None)
        for i, frame in enumerate(frames(src)):
            if whole_image or detector is None:
                out = photo.deblur_bounded(model, frame, stride, **bound) if whole_image \
                    else frame
                boxes = []
            else:
                boxes = tracker.update(photo.detect_faces(detector, frame)
                                       if i % detect_every == 0 else None)
                if boxes:
                    out = photo.deblur_photo(model, frame, stride=stride, scale=scale,
                                             restore=restore, boxes=boxes, **bound)[0]
                else:
                    out = frame
                    info["frames_without_face"] += 1
            info["boxes"].append(boxes)
            if (ow, oh) != (w, h):
                out = np.pad(out, ((0, oh - h), (0, ow - w), (0, 0)), mode="edge")
            writer.send(np.ascontiguousarray(out, np.uint8))
            info["frames"] += 1
            bar.update(1)
        writer.close()
        if info["frames"] == 0:
            raise VideoError(f"video {src} has no frame that ffmpeg can decode: pass another "
                             "clip")
        if meta["audio"] and keep_audio:
            info["audio"] = _mux_audio(tmp, src, dst)
        else:
            os.replace(tmp, dst)
        os.chmod(dst, image_io.umask_mode())
    except (OSError, RuntimeError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[-1]
        raise VideoError(f"video {src}: {first[:200]}") from None
    finally:
        bar.close()
        writer.close()
        if os.path.exists(tmp):
            os.remove(tmp)
    return info
