"""YouTube Faces (Wolf, Hassner, Maoz 2011) with the official verification splits (paper 2,
Sec. 5.5 / Table 8: verification on frame-averaged, deblurred videos).

Manual layout (the dataset as distributed):
    <manual_dir>/frame_images_DB/<Name>/<n>/<k>.<frame>.jpg     e.g. Aaron_Eckhart/0/0.555.jpg
    <manual_dir>/splits.txt  (or meta_data/splits.txt, frame_images_DB/splits.txt)
splits.txt: the 10 official splits of 500 video pairs (250 same, 250 different); one pair a line,
comma separated: split number (1..10), [pair number,] video 1 (``Name/n``), video 2, [other
columns,] same (1/0) as the last column. Lines that do not start with a split number (the header)
are skipped. The video columns are the two fields holding a ``/`` and the label is the last
field, so the bare 4-column form and wider forms (a pair-number column, distance columns) parse.
Frames of a video are ordered by their frame number (the part after ``<k>.``).

Configs:
  * `pairs`: split `test`: the verification pairs with `fold` (split number - 1, 0..9), `same`
    and the two video ids (the frames are in config `videos`, not copied into every pair).
  * `videos`: split `test`: every video that a pair names, all its frames in order, with
    `video_id` and `identity` (the person folder).
Records for training/evaluation (`python -m data.build --source=youtube_faces`, = `--source=
face_videos --video_layout=youtube_faces`) cut the videos listed by `videos` into clips of
consecutive frames for PrAvg / VLA (`data.builders.face_videos.generate`, which imports this
module; this module imports no other builder): split `test` = videos of the people in split 10's
pairs, `train` = everyone else, `all`.
The verification protocol itself (`paper2_identity_cgan.evaluate --ytf_dir`) reads the layout
directly through `read_splits` / `video_frames`.
"""
import os

import numpy as np
import tensorflow_datasets as tfds

from data.builders import _layout

MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Put YouTube Faces' frame_images_DB/ (frame_images_DB/<Name>/<n>/<k>.<frame>.jpg) and the official
splits.txt (or meta_data/splits.txt) in manual_dir.
"""
SPLITS_CANDIDATES = ("splits.txt", os.path.join("meta_data", "splits.txt"),
                     os.path.join("frame_images_DB", "splits.txt"))
NUM_SPLITS = 10
TEST_SPLIT = 10   # the records' identity-disjoint `test` split: the people of this split's pairs


def check_layout(manual_dir, require_splits=True):
    """{"db": frame_images_DB path, "splits": splits.txt path or None}; LayoutError otherwise."""
    db = _layout.require_dir(manual_dir, "frame_images_DB",
                             hint="Expected YouTube Faces frame_images_DB/<Name>/<n>/<k>.<frame>.jpg.")
    splits = _layout.find_file(manual_dir, *SPLITS_CANDIDATES)
    if splits is None and require_splits:
        raise _layout.LayoutError(f"no YouTube Faces splits.txt in {manual_dir!r} (looked for "
                                  f"{', '.join(SPLITS_CANDIDATES)}): the verification pairs and the "
                                  "train/test splits need it.")
    return {"db": db, "splits": splits}


def _is_label(field):
    return field in ("0", "1")


def read_splits(path):
    """[(split 1..10, video1 'Name/n', video2, same bool)] of a YouTube Faces splits.txt."""
    rows = []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            parts = [p.strip() for p in line.split(",")]
            if not parts or not parts[0].isdigit():
                continue   # header / blank
            vids = [i for i, p in enumerate(parts) if "/" in p]
            if len(vids) != 2 or vids[1] == len(parts) - 1 or not _is_label(parts[-1]):
                raise _layout.LayoutError(
                    f"{path} line {lineno}: expected 'split, [pair,] Name/n, Name/m, ..., same "
                    f"(0/1, last)', got {line.strip()!r}")
            rows.append((int(parts[0]), parts[vids[0]], parts[vids[1]], parts[-1] == "1"))
    if not rows:
        raise _layout.LayoutError(f"{path}: no 'split, Name/n, Name/m, same' lines.")
    bad = sorted({s for s, *_ in rows if not 1 <= s <= NUM_SPLITS})
    if bad:
        raise _layout.LayoutError(f"{path}: split numbers must be 1..{NUM_SPLITS}, found {bad}.")
    return rows


def frame_number(path):
    """Sort key of a YouTube Faces frame file <k>.<frame>.jpg: its frame number."""
    return _layout.natural_key(os.path.basename(path).split(".", 1)[-1])


def video_frames(db, video_id):
    """Frame paths of video `Name/n` in frame order (LayoutError when missing or empty)."""
    vdir = os.path.join(db, *video_id.split("/"))
    if not os.path.isdir(vdir):
        raise _layout.LayoutError(f"YouTube Faces video {video_id!r} (named by splits.txt) has no "
                                  f"folder {vdir}.")
    frames = sorted(_layout.images_in(vdir), key=frame_number)
    if not frames:
        raise _layout.LayoutError(f"YouTube Faces video folder {vdir} holds no frame image.")
    return frames


def videos(manual_dir, split="all"):
    """(video_id 'Name/n', identity 'Name', frame paths, None) per video of `split`: test = the
    people of split 10's pairs, train = everyone else (person-disjoint), all."""
    if split not in ("train", "test", "all"):
        raise ValueError(f"unknown YouTube Faces split {split!r}; use train, test or all")
    lay = check_layout(manual_dir, require_splits=split != "all")
    test_people = None
    if split != "all":
        test_people = {v.split("/")[0] for s, a, b, _ in read_splits(lay["splits"])
                       if s == TEST_SPLIT for v in (a, b)}
    for name in sorted(os.listdir(lay["db"])):
        pdir = os.path.join(lay["db"], name)
        if not os.path.isdir(pdir):
            continue
        if test_people is not None and (name in test_people) != (split == "test"):
            continue
        for n in sorted(os.listdir(pdir), key=_layout.natural_key):
            vdir = os.path.join(pdir, n)
            if os.path.isdir(vdir):
                frames = sorted(_layout.images_in(vdir), key=frame_number)
                if frames:
                    yield f"{name}/{n}", name, frames, None


def generate_pairs(manual_dir):
    """Yields (index, {"video1", "video2", "same", "fold"}) of every splits.txt pair (checked to exist)."""
    lay = check_layout(manual_dir)
    for i, (s, a, b, same) in enumerate(read_splits(lay["splits"])):
        for v in (a, b):
            video_frames(lay["db"], v)
        yield i, {"video1": a, "video2": b, "same": same, "fold": s - 1}


def generate_videos(manual_dir):
    """Yields (video id, {"frames": paths, "video_id", "identity"}) of every video a pair names."""
    lay = check_layout(manual_dir)
    ids = sorted({v for _, a, b, _ in read_splits(lay["splits"]) for v in (a, b)},
                 key=_layout.natural_key)
    for v in ids:
        yield v, {"frames": video_frames(lay["db"], v), "video_id": v, "identity": v.split("/")[0]}


class YoutubeFacesConfig(tfds.core.BuilderConfig):
    pass


class YoutubeFaces(_layout.ManualDirBuilder):
    """YouTube Faces: the official verification pairs, or the frames of the videos they name."""

    name = "facedeblur_youtube_faces"
    MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS
    HOMEPAGE = "https://www.cs.tau.ac.il/~wolf/ytfaces/"
    CITATION = ("Wolf, Hassner, Maoz. Face recognition in unconstrained videos with matched "
                "background similarity. CVPR 2011.")
    BUILDER_CONFIGS = [
        YoutubeFacesConfig(name="pairs", description="The 10 official splits of video pairs."),
        YoutubeFacesConfig(name="videos", description="Frames of every video the pairs name.")]

    def _features(self):
        if self.builder_config.name == "pairs":
            return {"video1": tfds.features.Text(), "video2": tfds.features.Text(),
                    "same": np.bool_, "fold": np.int64}
        return {"frames": tfds.features.Sequence(tfds.features.Image(shape=(None, None, 3),
                                                                     encoding_format="jpeg")),
                "video_id": tfds.features.Text(), "identity": tfds.features.Text()}

    def _split_names(self, manual_dir):
        check_layout(manual_dir)
        return ["test"]

    def _examples(self, manual_dir, split):
        del split
        if self.builder_config.name == "pairs":
            return generate_pairs(manual_dir)
        return generate_videos(manual_dir)
