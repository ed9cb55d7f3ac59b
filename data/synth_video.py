r"""Simulated face video from one still image: smooth random head motion + camera shake.

THIS IS A SIMULATION. Real face video (300VW, YouTube Faces) has non-rigid motion (expressions,
speech, out-of-plane head rotation, occlusion) and real exposure/noise; here every frame is a 2-D
similarity warp (translation, in-plane rotation, zoom) of the same still. It exists so that
frame averaging (PrAvg / VLA, paper 2 Sec. 3.3) can be exercised and paper 2 can be trained end
to end on still-image datasets when no video is at hand.

Motion model, per frame t = 0..L-1 (all seeded):
  * head motion: translation, rotation and log-zoom follow cubic-spline paths through a few
    random control points (slow, smooth drift);
  * camera shake: a sum of two sinusoids per axis with random frequency and phase plus a
    Gaussian-smoothed jitter (fast, small, smooth);
  * both are shifted so the middle frame t = L // 2 is exactly the input image (the sharp
    ground truth of PrAvg is the middle frame).

    python -m data.synth_video --input_dir=data/sample/faces --output_dir=/tmp/synth \
        --num_frames=21 --seed=0
writes <output_dir>/<stem>/frames/0000.png ... (the `frames` layout of data.builders.face_videos)
and <output_dir>/<stem>/motion.json (per-frame dx, dy, angle, zoom).
"""
import json
import os

from absl import app, flags
import numpy as np
from scipy import interpolate, ndimage

DEFAULTS = dict(max_translation=0.04, max_rotation_deg=4.0, max_zoom=0.04,
                shake_amplitude=0.01, shake_rotation_deg=0.5)


def motion_path(num_frames, seed=None, rng=None, *, max_translation=0.04, max_rotation_deg=4.0,
                max_zoom=0.04, shake_amplitude=0.01, shake_rotation_deg=0.5, size=(128, 128)):
    """Per-frame similarity parameters, float64 [L, 4]: dx, dy (pixels), angle (deg), zoom.

    Translations are fractions of the image size (h, w) = `size`. Frame L // 2 is (0, 0, 0, 1).
    """
    rng = rng if rng is not None else np.random.default_rng(seed)
    L = int(num_frames)
    if L < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    t = np.arange(L, dtype=np.float64)
    h, w = size

    def drift(amplitude):
        n_ctrl = 4
        xs = np.linspace(0, max(L - 1, 1), n_ctrl)
        ys = rng.uniform(-amplitude, amplitude, n_ctrl)
        return interpolate.CubicSpline(xs, ys)(t) if L > 1 else np.zeros(1)

    def shake(amplitude):
        out = np.zeros(L)
        for _ in range(2):
            freq = rng.uniform(0.05, 0.25)  # cycles per frame
            out += amplitude / 2 * np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi))
        jitter = ndimage.gaussian_filter1d(rng.normal(0, amplitude, L), sigma=1.5, mode="nearest")
        return out + jitter

    dx = (drift(max_translation) + shake(shake_amplitude)) * w
    dy = (drift(max_translation) + shake(shake_amplitude)) * h
    ang = drift(max_rotation_deg) + shake(shake_rotation_deg)
    logz = drift(np.log1p(max_zoom))
    params = np.stack([dx, dy, ang, logz], 1)
    params -= params[L // 2]
    params[:, 3] = np.exp(params[:, 3])
    return params


def _matrix(p, h, w):
    """2x3 forward map (x, y) -> (x', y') of one frame: rotate/zoom about the centre, then shift."""
    dx, dy, ang, zoom = p
    a = np.deg2rad(ang)
    c, s = np.cos(a) * zoom, np.sin(a) * zoom
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    m = np.array([[c, -s], [s, c]])
    t = np.array([cx + dx, cy + dy]) - m @ np.array([cx, cy])
    return np.concatenate([m, t[:, None]], 1)


def transform_points(points, p, h, w):
    """Points (x, y) [P,2] of the still -> their place in the frame with parameters p."""
    m = _matrix(p, h, w)
    return np.asarray(points, np.float64) @ m[:, :2].T + m[:, 2]


def warp(image, p):
    """One frame: the still warped by the similarity p (bilinear, reflected borders)."""
    img = np.asarray(image)
    h, w = img.shape[:2]
    m = _matrix(p, h, w)
    inv = np.linalg.inv(np.vstack([m, [0, 0, 1]]))[:2]  # frame (x, y) -> still (x, y)
    # scipy works in (row, col) = (y, x): swap axes of the inverse map
    a = inv[:, :2][::-1, ::-1]
    off = inv[:, 2][::-1]
    x = img.astype(np.float32)
    out = np.stack([ndimage.affine_transform(x[..., ch], a, offset=off, order=1, mode="reflect")
                    for ch in range(x.shape[-1])], -1)
    if img.dtype == np.uint8:
        return np.clip(np.round(out), 0, 255).astype(np.uint8)
    return out


def synthesize(image, num_frames=21, seed=None, landmarks=None, **motion):
    """Simulated clip of a still face.

    Args:
      image: [H, W, 3] uint8 or float.
      num_frames: L.
      seed: int; same seed, same motion.
      landmarks: optional [P, 2] (x, y) of the still; returned moved with every frame.
      **motion: overrides of `DEFAULTS` (see `motion_path`).

    Returns:
      dict: "frames" [L, H, W, 3] (dtype of `image`; frame L // 2 equals `image`), "params"
      [L, 4] (dx, dy, angle deg, zoom), "landmarks" [L, P, 2] or None.
    """
    img = np.asarray(image)
    h, w = img.shape[:2]
    kw = dict(DEFAULTS, **motion)
    params = motion_path(num_frames, seed=seed, size=(h, w), **kw)
    frames = np.stack([img.copy() if i == num_frames // 2 else warp(img, p)
                       for i, p in enumerate(params)])
    lms = None
    if landmarks is not None:
        lms = np.stack([transform_points(landmarks, p, h, w) for p in params]).astype(np.float32)
    return {"frames": frames, "params": params, "landmarks": lms}


def write_clips(input_dir, output_dir, num_frames=21, seed=0, max_images=None):
    """Writes one simulated clip per image of `input_dir`; returns the clip folders."""
    from common import image_io  # pylint: disable=g-import-not-at-top
    paths = image_io.list_images(input_dir)[:max_images]
    out = []
    for i, path in enumerate(paths):
        stem = os.path.splitext(os.path.relpath(path, input_dir))[0].replace(os.sep, "__")
        clip = synthesize(image_io.read_image(path), num_frames, seed=seed * 100003 + i)
        folder = os.path.join(output_dir, stem)
        for t, f in enumerate(clip["frames"]):
            image_io.write_image(os.path.join(folder, "frames", f"{t:04d}.png"), f)
        with open(os.path.join(folder, "motion.json"), "w") as fh:
            json.dump({"source": path, "seed": seed * 100003 + i, "simulated": True,
                       "params_dx_dy_angle_zoom": clip["params"].round(4).tolist()}, fh)
        out.append(folder)
    return out


def main(argv):
    del argv
    f = flags.FLAGS
    out = write_clips(f.input_dir, f.output_dir, f.num_frames, f.seed, f.max_images)
    print(f"{len(out)} simulated clips of {f.num_frames} frames in {f.output_dir}")


if __name__ == "__main__":
    flags.DEFINE_string("input_dir", None, "Folder of still face images.")
    flags.DEFINE_string("output_dir", None, "Where clips go (<stem>/frames/0000.png ...).")
    flags.DEFINE_integer("num_frames", 21, "Frames per clip (21 = the largest PrAvg L).")
    flags.DEFINE_integer("seed", 0, "Seed.")
    flags.DEFINE_integer("max_images", None, "Only the first N images.")
    flags.mark_flags_as_required(["input_dir", "output_dir"])
    app.run(main)
