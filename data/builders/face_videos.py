"""Face videos as clips of consecutive frames, for frame-averaged blur (paper 2, Sec. 3.3:
PrAvg over L in {7, 9, 11, 15, 21} frames and VLA) and landmark evaluation.

Configs / layouts (`manual_dir` is the dataset root):
  * `300vw` (Shen et al. 2015):  <video>/vid.avi and <video>/annot/000001.pts ... (68 points,
    iBUG .pts: "version: 1", "n_points: 68", "{", 68 "x y" lines, "}"). Frames already extracted
    to <video>/frames/000001.png|jpg (or <video>/img/) are used instead of decoding vid.avi
    (decoding needs opencv). Landmarks of frame i come from annot/<i:06d>.pts (1-based).
  * `youtube_faces` (Wolf et al. 2011): frame_images_DB/<Name>/<n>/<k>.<frame>.jpg and
    splits.txt (in manual_dir, manual_dir/meta_data/ or frame_images_DB/); read by
    `data.builders.youtube_faces` (which also holds the verification pairs). Split `test` =
    videos of the people in split 10's pairs, `train` = videos of everyone else
    (person-disjoint by construction), `all`.
  * `frames`: any folder (TFDS split `train` holds every clip); every folder that directly holds images is one video (frames in
    natural name order), and every video file (.avi .mp4 .mov .mkv) is one video.
Each video is cut into non-overlapping clips of `clip_length` frames (default 21, the largest
PrAvg window); a shorter tail is dropped. Identity = the person folder (YouTube Faces) or the
video folder name; `video_id` keeps the path.
"""
import os

import numpy as np
import tensorflow_datasets as tfds

from data.builders import _layout, youtube_faces

VIDEO_EXTENSIONS = (".avi", ".mp4", ".mov", ".mkv")
DEFAULT_CLIP_LENGTH = 21
MANUAL_DOWNLOAD_INSTRUCTIONS = """\
300VW: pass the folder of <video>/vid.avi + <video>/annot/*.pts. YouTube Faces: pass the folder
holding frame_images_DB/ and splits.txt. Otherwise: any folder of frame folders or video files.
"""


def read_pts(path):
    """[P,2] float32 points of an iBUG .pts file."""
    with open(path) as f:
        lines = [l.strip() for l in f if l.strip()]
    try:
        start, end = lines.index("{"), lines.index("}")
        pts = np.array([[float(v) for v in l.split()[:2]] for l in lines[start + 1:end]], np.float32)
    except ValueError as e:
        raise _layout.LayoutError(f"{path} is not an iBUG .pts file (expected '{{' ... '}}' around "
                                  "'x y' lines).") from e
    return pts


def read_video(path):
    """uint8 [T,H,W,3] RGB frames of a video file (needs opencv)."""
    try:
        import cv2  # pylint: disable=g-import-not-at-top
    except ImportError as e:
        raise ImportError(f"decoding {path} needs opencv (pip install opencv-python-headless), or "
                          "extract its frames to a frames/ folder first.") from e
    cap = cv2.VideoCapture(path)
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    cap.release()
    if not frames:
        raise ValueError(f"could not decode any frame from {path}.")
    return np.stack(frames)


def _videos_300vw(manual_dir):
    vids = sorted(d for d in os.listdir(manual_dir)
                  if os.path.isdir(os.path.join(manual_dir, d, "annot")))
    if not vids:
        raise _layout.LayoutError(f"no 300VW video in {manual_dir!r}: expected <video>/vid.avi and "
                                  "<video>/annot/000001.pts.")
    for v in vids:
        root = os.path.join(manual_dir, v)
        frames_dir = next((os.path.join(root, d) for d in ("frames", "img")
                           if os.path.isdir(os.path.join(root, d))), None)
        if frames_dir:
            frames = _layout.images_in(frames_dir)
        elif os.path.isfile(os.path.join(root, "vid.avi")):
            frames = os.path.join(root, "vid.avi")
        else:
            raise _layout.LayoutError(f"300VW video {root} has neither vid.avi nor a frames/ folder.")
        yield v, v, frames, os.path.join(root, "annot")


def _videos_generic(manual_dir):
    if not manual_dir or not os.path.isdir(manual_dir):
        raise _layout.LayoutError(f"manual_dir {manual_dir!r} is not a folder.")
    found = False
    for root, dirs, files in os.walk(manual_dir, followlinks=True):
        dirs.sort()
        rel = os.path.relpath(root, manual_dir)
        imgs = [f for f in files if _layout.is_image(f)]
        if imgs:
            found = True
            vid = rel if rel != "." else os.path.basename(os.path.abspath(manual_dir))
            yield vid, vid.split(os.sep)[0], _layout.images_in(root), None
        for f in sorted(files):
            if f.lower().endswith(VIDEO_EXTENSIONS):
                found = True
                vid = os.path.join(rel, f) if rel != "." else f
                yield vid, vid.split(os.sep)[0], os.path.join(root, f), None
    if not found:
        raise _layout.LayoutError(f"no frame folder or video file ({', '.join(VIDEO_EXTENSIONS)}) "
                                  f"under {manual_dir!r}.")


def videos(manual_dir, layout, split="all"):
    """(video_id, identity, frames: list of paths | video file path, annot_dir | None) per video."""
    if layout == "300vw":
        return _videos_300vw(manual_dir)
    if layout == "youtube_faces":
        return youtube_faces.videos(manual_dir, split)
    if layout == "frames":
        return _videos_generic(manual_dir)
    raise ValueError(f"unknown face video layout {layout!r}; use 300vw, youtube_faces or frames")


def generate(manual_dir, split="all", layout="frames", clip_length=DEFAULT_CLIP_LENGTH,
             max_clips_per_video=None):
    """Yields ("<video>@<start>", {"frames": list of paths or uint8 [L,H,W,3], "landmarks": [L,68,2]
    float32 or None, "video_id", "identity", "start"})."""
    for vid, identity, frames, annot in videos(manual_dir, layout, split):
        if isinstance(frames, str):
            frames = list(read_video(frames))
        n_clips = len(frames) // clip_length
        if max_clips_per_video:
            n_clips = min(n_clips, max_clips_per_video)
        for c in range(n_clips):
            start = c * clip_length
            clip = frames[start:start + clip_length]
            lms = None
            if annot:
                paths = [os.path.join(annot, f"{start + i + 1:06d}.pts") for i in range(clip_length)]
                if all(os.path.isfile(p) for p in paths):
                    lms = np.stack([read_pts(p) for p in paths])
            yield f"{vid}@{start}", {"frames": clip if isinstance(clip[0], str) else np.stack(clip),
                                     "landmarks": lms, "video_id": vid, "identity": identity,
                                     "start": start}


class FaceVideosConfig(tfds.core.BuilderConfig):

    def __init__(self, *, layout, **kwargs):
        super().__init__(**kwargs)
        self.layout = layout


class FaceVideos(_layout.ManualDirBuilder):
    """Clips of `clip_length` consecutive face-video frames (+ 68 landmarks for 300VW)."""

    name = "facedeblur_face_videos"
    MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS
    BUILDER_CONFIGS = [FaceVideosConfig(name="300vw", layout="300vw"),
                       FaceVideosConfig(name="youtube_faces", layout="youtube_faces"),
                       FaceVideosConfig(name="frames", layout="frames")]

    def __init__(self, *, clip_length=DEFAULT_CLIP_LENGTH, max_clips_per_video=None, **kwargs):
        self._clip_length = clip_length
        self._max_clips = max_clips_per_video
        super().__init__(**kwargs)

    def _features(self):
        return {
            "frames": tfds.features.Sequence(tfds.features.Image(shape=(None, None, 3))),
            "landmarks": tfds.features.Tensor(shape=(None, 68, 2), dtype=np.float32),
            "video_id": tfds.features.Text(),
            "identity": tfds.features.Text(),
            "start": np.int64,
        }

    def _split_names(self, manual_dir):
        # the layout is checked while generating; tfds reserves the split name "all": every video
        # of a layout without splits goes to "train"
        return ["train", "test"] if self.builder_config.layout == "youtube_faces" else ["train"]

    def _examples(self, manual_dir, split):
        if self.builder_config.layout != "youtube_faces":
            split = "all"
        for key, ex in generate(manual_dir, split, self.builder_config.layout, self._clip_length,
                                self._max_clips):
            if ex["landmarks"] is None:
                ex["landmarks"] = np.zeros((0, 68, 2), np.float32)
            yield key, ex
