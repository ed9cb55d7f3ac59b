"""common.video: face boxes tracked and smoothed across frames; a real face clip (a
face_video_toy sequence with a moving blur) through paper 2's `deblur` CLI path: frame count,
frame rate, size, audio, the face closer to sharp than the input, stable boxes."""
import os
import subprocess

import numpy as np
import pytest

from common import image_io, photo, video

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.environ.get("FACEDEBLUR_SHARED_DATA", os.path.join(REPO, "..", "shared", "data"))
SEQ = os.path.join(SHARED, "face_video_toy", "009_blur007_000044", "frames")
RNG = np.random.default_rng(0)
FPS = 12


def test_tracked_boxes_jitter_less_than_raw_detections_and_follow_the_face():
    true = [(40 + 3 * i, 30 + 1.5 * i, 140 + 3 * i, 130 + 1.5 * i) for i in range(30)]
    raw = [[tuple(np.add(b, RNG.normal(0, 2.0, 4)))] for b in true]
    tracker = video.FaceTracker(smoothing=0.6)
    tracked = [tracker.update(d) for d in raw]
    assert all(len(t) == 1 for t in tracked)  # one face, one track all along
    assert video.box_jitter(tracked) < 0.6 * video.box_jitter(raw)
    lag = np.abs(np.subtract(tracked[-1][0], true[-1])).max()
    assert lag < 12  # follows the moving face (EMA lag of a 3 px/frame motion: ~4.5 px)
    # a second face appears: its own track; the first missed 3 detections: kept, then dropped
    t = video.FaceTracker(smoothing=0.5, max_missed=3)
    t.update([(0, 0, 10, 10)])
    assert len(t.update([(0, 0, 10, 10), (50, 50, 70, 70)])) == 2
    for _ in range(3):
        assert len(t.update([(50, 50, 70, 70)])) == 2
    assert t.update(None) == t.update(None)  # a frame without detection: tracks stay
    assert len(t.update([(50, 50, 70, 70)])) == 1
    assert video.iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="smoothing"):
        video.FaceTracker(smoothing=1.0)


def _clip(tmp_path, n=10, audio=True):
    """n frames of a real face sequence (ping-pong), each blurred by its own Levin kernel
    (a blur that moves from frame to frame); returns (clip path, sharp frames, blurred)."""
    import imageio_ffmpeg
    from common import blur
    names = sorted(os.listdir(SEQ))
    order = (list(range(len(names))) + list(range(len(names) - 2, 0, -1))) * 2
    sharp = [image_io.read_image(os.path.join(SEQ, names[i])) for i in order[:n]]
    bank = np.load(os.path.join(SHARED, "kernels", "levin09.npz"))
    ks = [np.asarray(bank[k], np.float32) for k in sorted(bank.files)]
    blurred = []
    for i, s in enumerate(sharp):
        k = ks[i % len(ks)]
        b = np.asarray(blur.apply_kernels(image_io.to_float32(s)[None], (k / k.sum())[None]))[0]
        blurred.append(image_io.to_uint8(b))
    silent = str(tmp_path / "silent.mp4")
    h, w = blurred[0].shape[:2]
    gen = imageio_ffmpeg.write_frames(silent, (w, h), fps=FPS, quality=10, macro_block_size=1)
    gen.send(None)
    for f in blurred:
        gen.send(np.ascontiguousarray(f))
    gen.close()
    if not audio:
        return silent, sharp, blurred
    clip = str(tmp_path / "clip.mp4")
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-i", silent,
                    "-f", "lavfi", "-i", f"sine=frequency=440:duration={n / FPS:.3f}",
                    "-map", "0:v", "-map", "1:a", "-c:v", "copy", "-c:a", "aac", clip], check=True)
    return clip, sharp, blurred


def _face_psnr(a, b, box):
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    d = image_io.to_float32(a[y0:y1, x0:x1]) - image_io.to_float32(b[y0:y1, x0:x1])
    return -10 * np.log10(np.mean(d * d))


@pytest.mark.skipif(not os.path.isdir(SEQ), reason="needs ../shared/data/face_video_toy")
def test_paper2_deblur_cli_path_on_a_real_face_clip(tmp_path):
    from paper2_identity_cgan import deblur
    clip, sharp, blurred = _clip(tmp_path)
    meta = video.read_meta(clip)
    assert meta["audio"] == "aac" and meta["fps"] == FPS and len(list(video.frames(clip))) == 10
    logs = []
    (out,) = deblur.run(None, [clip], str(tmp_path / "out"), scale_faces=True, log=logs.append,
                        smoothing=0.6)
    assert out == str(tmp_path / "out" / "clip_cgan.mp4")
    got = video.read_meta(out)
    assert got["fps"] == FPS and got["size"] == meta["size"] and got["audio"] == "aac"
    frames = list(video.frames(out))
    assert len(frames) == len(blurred) == 10
    assert any("10 frames at 12 fps, audio copied, 0 frame(s) without a face" in m for m in logs)
    # the face (MTCNN on the sharp frames) is closer to sharp after than before
    from common.face import get_detector
    det = get_detector("mtcnn")
    gains = []
    for s, b, o in zip(sharp, blurred, frames):
        box = photo._box(max(det.detect(s), key=lambda d: (d.right - d.left) * (d.bottom - d.top)))  # pylint: disable=protected-access
        gains.append(_face_psnr(o, s, box) - _face_psnr(b, s, box))
    assert np.mean(gains) > 0.1 and max(gains) > 0.5, gains  # measured: mean 0.26, max 1.02
    # and the boxes that were pasted jitter less than the raw detections of the blurred clip
    raw = [[photo._box(det.detect(f)[0])] for f in blurred]  # pylint: disable=protected-access
    tracker = video.FaceTracker(0.6)  # what deblur_video runs with the CLI's --smoothing
    tracked = [tracker.update(r) for r in raw]
    assert all(len(t) == 1 for t in tracked)
    assert video.box_jitter(tracked) < 0.7 * video.box_jitter(raw), (tracked, raw)


def test_bad_videos_are_one_line_each_and_the_good_inputs_are_written(tmp_path):
    from common import inference
    clip, _, blurred = _clip(tmp_path, n=4, audio=False)
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    img = str(tmp_path / "a.png")
    image_io.write_image(img, blurred[0])
    invert = lambda x: 1.0 - np.asarray(x)  # noqa: E731
    with pytest.raises(inference.InputErrors) as e:
        inference.deblur_files(invert, [str(bad), clip, img], str(tmp_path / "o"),
                               photo_options=None)
    assert [os.path.basename(p) for p in e.value.written] == ["silent.mp4", "a.png"]
    (line,) = e.value.failures
    assert line.startswith(f"{bad}: video {bad} cannot be read by ffmpeg") and "\n" not in line
    assert not [n for n in os.listdir(tmp_path / "o") if n.startswith(".tmp")]
    # --whole_image on a video: every frame through the model, frame count kept, no audio
    frames = list(video.frames(str(tmp_path / "o" / "silent.mp4")))
    assert len(frames) == 4
    assert np.abs(frames[0].astype(int) - (255 - blurred[0].astype(int))).mean() < 4
