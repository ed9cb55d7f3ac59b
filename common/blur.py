"""Blur synthesis for training pairs: kernels in NumPy, application and noise in TensorFlow.

Kernel synthesis (NumPy, seeded):
  * `camera_shake_kernel` -- random 3-D camera trajectories of Boracchi & Foi, "Modeling the
    performance of image restoration from motion blur", IEEE TIP 2012 (the generator used by
    DeblurGAN and UMSN, paper 3).
  * `markov_kernel` -- Markov random-walk trajectory kernels in the style of Hradis et al. 2015 /
    Kupyn et al. 2018 (the synthetic camera-shake blur of paper 2, Sec. 5).
  * `gaussian_kernel`, `defocus_kernel`, `linear_motion_kernel`, `load_kernel_bank`, `pad_kernels`, `make_kernel_bank`.

Application (TensorFlow ops, usable inside `tf.data.Dataset.map`, on CPU and GPU):
  * `apply_kernels` -- one kernel per example, true convolution, same-size output, symmetric or
    zero borders.
  * `add_noise` (paper 3 uses sigma = 0.03 on [0, 1] images), `quantize_uint8`.

Blur from video by frame averaging (paper 2's PrAvg / VLA) is in `common.frame_averaging`.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

BORDERS = ("reflect", "constant")


# --------------------------------------------------------------------------------------------
# Applying kernels (TensorFlow)
# --------------------------------------------------------------------------------------------

FFT_MIN_KERNEL = 25  # "auto" switches to FFT from this kernel size on (CPU crossover ~23)


def apply_kernels(images, kernels, border="reflect", method="auto"):
    """Convolves every image with its own kernel (true convolution, output the input's size).

    Args:
      images: float [B, H, W, C] (or [H, W, C]); the batch size may be unknown (tf.data).
      kernels: float [B, k, k] (or [k, k] with a single image), k odd, one kernel per example.
        The kernel is flipped (convolution, not correlation), so
        `apply_kernels(x, k)[b, ..., c] == scipy.ndimage.convolve(x[b, ..., c], k[b], mode=...)`.
      border: "reflect" -- symmetric extension d c b a | a b c d (scipy.ndimage mode="reflect",
        scipy.signal boundary="symm"); "constant" -- zeros outside the image.
      method: "direct" -- the batch is folded into the channel axis and one
        `tf.nn.depthwise_conv2d` runs on a [1, H+k-1, W+k-1, B*C] tensor with a [k, k, B*C, 1]
        filter (much faster than a per-example map_fn or a per-example map in tf.data);
        "fft" -- the padded images and kernels are multiplied in the 2-D Fourier domain
        (cost independent of k; float32 round-off ~1e-6); "auto" -- "fft" when the static
        kernel size is >= FFT_MIN_KERNEL (25), else "direct". Measured on 2 shared CPU
        cores, batch 16 at 128x128 (benchmarks/blur_throughput.py): direct is ~1.4x faster at
        k=17, FFT ~1.25x faster at k=29.

    Returns:
      tf.Tensor float32 with the shape of `images`.
    """
    if border not in BORDERS:
        raise ValueError(f"apply_kernels: border must be one of {BORDERS}, got {border!r}")
    if method not in ("auto", "direct", "fft"):
        raise ValueError(f"apply_kernels: method must be auto, direct or fft, got {method!r}")
    images = tf.convert_to_tensor(images)
    if images.dtype != tf.float32:
        images = tf.cast(images, tf.float32)
    kernels = tf.cast(tf.convert_to_tensor(kernels), tf.float32)
    single = images.shape.rank == 3
    if single:
        images = images[None]
        if kernels.shape.rank == 2:
            kernels = kernels[None]
    if images.shape.rank != 4:
        raise ValueError(f"apply_kernels: images must be [B,H,W,C] or [H,W,C], got {images.shape}")
    if kernels.shape.rank != 3:
        raise ValueError(f"apply_kernels: kernels must be [B,k,k] (or [k,k] with one image), "
                         f"got {kernels.shape}")
    kh, kw = kernels.shape[1], kernels.shape[2]
    if kh is not None and kw is not None and (kh % 2 == 0 or kw % 2 == 0):
        raise ValueError(f"apply_kernels: kernel sizes must be odd, got {kh}x{kw}; "
                         f"use pad_kernels() to centre them in an odd size")
    ih, iw = images.shape[1], images.shape[2]
    if border == "reflect" and None not in (kh, kw, ih, iw) and (kh // 2 > ih or kw // 2 > iw):
        raise ValueError(f"apply_kernels: a {kh}x{kw} kernel needs images of at least "
                         f"{kh // 2}x{kw // 2} for reflect borders, got {ih}x{iw}")
    kshape = tf.shape(kernels)
    ph, pw = kshape[1] // 2, kshape[2] // 2
    checks = [tf.debugging.assert_equal(kshape[1:] % 2, 1, message="apply_kernels: kernel sizes "
                                        "must be odd (use pad_kernels)")]
    if border == "reflect":
        checks.append(tf.debugging.assert_less_equal(
            tf.stack([ph, pw]), tf.shape(images)[1:3],
            message="apply_kernels: image smaller than half the kernel (reflect border)"))
    mode = "SYMMETRIC" if border == "reflect" else "CONSTANT"
    with tf.control_dependencies(checks):
        x = tf.pad(images, [[0, 0], [ph, ph], [pw, pw], [0, 0]], mode=mode)

    shape = tf.shape(x)
    b, hp, wp, c = shape[0], shape[1], shape[2], shape[3]
    if method == "auto":
        method = "fft" if (kh is not None and kw is not None
                           and max(kh, kw) >= FFT_MIN_KERNEL) else "direct"
    if method == "fft":
        # Circular convolution of the padded image; rows/cols k-1.. are the linear ones.
        xf = tf.signal.rfft2d(tf.transpose(x, [0, 3, 1, 2]))  # [B, C, Hp, Wp/2+1]
        kf = tf.signal.rfft2d(kernels, fft_length=tf.stack([hp, wp]))[:, None]
        y = tf.signal.irfft2d(xf * kf, fft_length=tf.stack([hp, wp]))
        y = tf.transpose(y[:, :, 2 * ph:, 2 * pw:], [0, 2, 3, 1])
        y = tf.ensure_shape(y, images.shape)
        return y[0] if single else y
    # [B, Hp, Wp, C] -> [1, Hp, Wp, B*C]  (channel index = b*C + c)
    x = tf.reshape(tf.transpose(x, [1, 2, 0, 3]), [1, hp, wp, b * c])
    # Flip for true convolution; [B, k, k] -> [k, k, B, 1] -> [k, k, B, C] -> [k, k, B*C, 1].
    f = tf.reverse(kernels, axis=[1, 2])
    f = tf.transpose(f, [1, 2, 0])[:, :, :, None]
    f = tf.tile(f, [1, 1, 1, c])
    f = tf.reshape(f, [kshape[1], kshape[2], b * c, 1])
    y = tf.nn.depthwise_conv2d(x, f, strides=[1, 1, 1, 1], padding="VALID")
    h, w = hp - 2 * ph, wp - 2 * pw
    y = tf.transpose(tf.reshape(y, [h, w, b, c]), [2, 0, 1, 3])
    y = tf.ensure_shape(y, images.shape)
    return y[0] if single else y


def add_noise(images, sigma, seed=None, clip=True):
    """Adds white Gaussian noise N(0, sigma^2) (paper 3: sigma = 0.03 for [0, 1] images).

    Args:
      images: float tensor, any shape, values in [0, 1].
      sigma: scalar (python or tensor) or a tensor broadcastable to `images` (e.g. [B,1,1,1]
        for a per-example level). sigma == 0 returns the images unchanged (still clipped).
      seed: None -> stateful random op (fresh noise every call, fine inside tf.data.map);
        an int or a shape-[2] int tensor -> `tf.random.stateless_normal`, reproducible.
      clip: clip the result to [0, 1] (a sensor cannot record values outside the range).

    Returns:
      float32 tensor with the shape of `images`.
    """
    images = tf.cast(tf.convert_to_tensor(images), tf.float32)
    sigma = tf.cast(sigma, tf.float32)
    shape = tf.shape(images)
    if seed is None:
        noise = tf.random.normal(shape)
    else:
        seed_t = tf.convert_to_tensor(seed)
        if seed_t.shape.rank == 0:
            seed_t = tf.stack([tf.cast(seed_t, tf.int64), tf.constant(0, tf.int64)])
        noise = tf.random.stateless_normal(shape, seed=tf.cast(seed_t, tf.int64))
    out = images + sigma * noise
    return tf.clip_by_value(out, 0.0, 1.0) if clip else out


# The one default for rounding on-the-fly blurred images to 8 bits (`--quantize_blur` of every
# trainer, `pipeline.make_dataset(quantize=...)`): on, because every blurred image the models
# meet outside training (stored TFRecords, PNG/JPEG photos, data/build.py's --quantize) is 8-bit.
QUANTIZE_BLUR = True


def quantize_uint8(images):
    """Simulates 8-bit storage: clip to [0, 1], round to multiples of 1/255; float32 out."""
    images = tf.cast(tf.convert_to_tensor(images), tf.float32)
    return tf.round(tf.clip_by_value(images, 0.0, 1.0) * 255.0) / 255.0


# --------------------------------------------------------------------------------------------
# Simple kernels and kernel banks (NumPy)
# --------------------------------------------------------------------------------------------

def _check_size(size, name):
    size = int(size)
    if size < 1 or size % 2 == 0:
        raise ValueError(f"{name}: size must be a positive odd integer, got {size}")
    return size


def _normalise(k, name):
    k = np.clip(np.asarray(k, np.float64), 0.0, None)
    s = k.sum()
    if not np.isfinite(s) or s <= 0:
        raise ValueError(f"{name}: kernel has no positive mass")
    return (k / s).astype(np.float32)


def gaussian_kernel(size, sigma):
    """Sampled 2-D Gaussian, float32 [size, size], sums to 1.

    sigma: a scalar (isotropic) or (sigma_y, sigma_x); must be > 0.
    """
    size = _check_size(size, "gaussian_kernel")
    sy, sx = (sigma, sigma) if np.ndim(sigma) == 0 else tuple(sigma)
    if sy <= 0 or sx <= 0:
        raise ValueError(f"gaussian_kernel: sigma must be > 0, got {sigma}")
    r = np.arange(size, dtype=np.float64) - size // 2
    g = np.exp(-0.5 * (r[:, None] / sy) ** 2 - 0.5 * (r[None, :] / sx) ** 2)
    return _normalise(g, "gaussian_kernel")


def pad_kernels(kernels, size=None):
    """Zero-pads kernels (centred) to one common odd size.

    Args:
      kernels: a list of 2-D arrays (any sizes, odd or even) or an array [K, k, k].
      size: the output size (odd); default the smallest odd size holding every kernel.

    Returns:
      float32 [K, size, size]. Even-sized kernels get their extra zero row/column at the
      bottom/right (their centre moves by half a pixel, unavoidable for an even kernel).
    """
    kernels = [np.asarray(k, np.float32) for k in kernels]
    if not kernels:
        raise ValueError("pad_kernels: no kernels given")
    for i, k in enumerate(kernels):
        if k.ndim != 2:
            raise ValueError(f"pad_kernels: kernel {i} is not 2-D (shape {k.shape})")
    need = max(max(k.shape) for k in kernels)
    need += 1 - need % 2
    if size is None:
        size = need
    size = _check_size(size, "pad_kernels")
    if size < need:
        raise ValueError(f"pad_kernels: size {size} is smaller than the largest kernel ({need})")
    out = np.zeros((len(kernels), size, size), np.float32)
    for i, k in enumerate(kernels):
        h, w = k.shape
        top = (size - h) // 2 if h % 2 else (size - h - 1) // 2
        left = (size - w) // 2 if w % 2 else (size - w - 1) // 2
        out[i, top:top + h, left:left + w] = k
    return out


def centre_kernel(kernel):
    """Shifts a kernel by whole pixels so that its centroid lies on its centre pixel.

    Generated kernels are centred this way (`_splat`); recorded ones such as Levin et al.'s are
    not (their centroids sit up to ~4 px off centre), and an off-centre kernel translates the
    image as well as blurring it. A translation is not blur, and no blind method can tell it from
    a single blurred image, so a test set scored against the sharp image should use centred
    kernels (blind-deblurring benchmarks align for the same reason).

    Args:
      kernel: 2-D array, non-negative with positive sum (any size).

    Returns:
      float32 [S, S], S odd, summing to 1, the same taps moved so that the centroid is within
      half a pixel of (S // 2, S // 2); S is the smallest odd square that holds them.
    """
    k = _normalise(kernel, "centre_kernel").astype(np.float64)
    if k.ndim != 2:
        raise ValueError(f"centre_kernel: kernel is not 2-D (shape {k.shape})")
    ys, xs = np.nonzero(k)
    mass = k[ys, xs]
    cy, cx = (ys * mass).sum(), (xs * mass).sum()  # the taps sum to 1
    ys = ys - int(np.round(cy))
    xs = xs - int(np.round(cx))  # centroid now within 0.5 px of (0, 0)
    half = int(max(np.abs(ys).max(), np.abs(xs).max()))
    out = np.zeros((2 * half + 1, 2 * half + 1), np.float64)
    out[ys + half, xs + half] = mass
    return out.astype(np.float32)


def defocus_kernel(size, radius, supersample=8):
    """Anti-aliased uniform disk (out-of-focus blur), float32 [size, size], sums to 1.

    Each pixel's weight is the fraction of its area inside the disk of `radius` pixels centred on
    the centre pixel, estimated on a `supersample` x `supersample` sub-grid. radius <= 0.5 gives
    (almost) a delta. The disk must fit: radius <= size / 2.
    """
    size = _check_size(size, "defocus_kernel")
    if radius < 0 or radius > size / 2:
        raise ValueError(f"defocus_kernel: radius must be in [0, size/2 = {size / 2}], got {radius}")
    n = int(supersample)
    sub = (np.arange(size * n, dtype=np.float64) + 0.5) / n - size / 2.0  # sub-pixel centres
    inside = (sub[:, None] ** 2 + sub[None, :] ** 2) <= max(radius, 1e-6) ** 2
    cover = inside.reshape(size, n, size, n).mean(axis=(1, 3))
    if cover.sum() == 0:  # radius smaller than the sub-grid spacing: a delta
        cover[size // 2, size // 2] = 1.0
    return _normalise(cover, "defocus_kernel")


def _rng(rng, seed):
    if rng is not None and seed is not None:
        raise ValueError("give either rng or seed, not both")
    if rng is None:
        return np.random.default_rng(seed)
    return rng


def _splat(points, weights, size, name):
    """Renders a weighted 2-D point set (y, x) into a [size, size] kernel with bilinear weights.

    The points are first translated so that their weighted mean lands on the centre pixel
    (size // 2) -- bilinear splatting preserves the first moment, so the kernel's centroid is
    the centre up to float rounding -- and shrunk about that mean if they would leave the grid.
    """
    points = np.asarray(points, np.float64)
    weights = np.asarray(weights, np.float64)
    keep = weights > 0
    points, weights = points[keep], weights[keep]
    c = size // 2
    mean = (points * weights[:, None]).sum(0) / weights.sum()
    rel = points - mean
    reach = np.abs(rel).max()
    if reach > c:
        rel *= c / reach
    p = rel + c
    f = np.clip(np.floor(p), 0, size - 2).astype(np.int64)
    t = p - f
    k = np.zeros((size, size), np.float64)
    for dy in (0, 1):
        wy = t[:, 0] if dy else 1.0 - t[:, 0]
        for dx in (0, 1):
            wx = t[:, 1] if dx else 1.0 - t[:, 1]
            np.add.at(k, (f[:, 0] + dy, f[:, 1] + dx), weights * wy * wx)
    return _normalise(k, name)


def camera_shake_trajectory(rng, canvas=64, num_t=2000, max_total_length=60.0, anxiety=None,
                            centripetal=None, gaussian_term=None, freq_big_shakes=None):
    """Random camera trajectory of Boracchi & Foi (2012), complex [num_t] positions in pixels.

    A particle starts with a random direction; at every step its velocity gets a Gaussian
    perturbation (gaussian_term), an inertial pull back towards the origin (centripetal) and, with
    probability freq_big_shakes * anxiety, an abrupt shake that roughly reverses it; the speed is
    then renormalised so every trajectory has total length max_total_length. Parameters left
    None are drawn as in the reference generator: anxiety 0.1*U, centripetal 0.7*U,
    gaussian_term 10*U, freq_big_shakes 0.2*U (U ~ uniform[0, 1)). `canvas` is the size of the
    domain the trajectory is defined on (only used by the caller to scale it).
    """
    del canvas
    anxiety = 0.1 * rng.uniform() if anxiety is None else float(anxiety)
    centripetal = 0.7 * rng.uniform() if centripetal is None else float(centripetal)
    gaussian_term = 10.0 * rng.uniform() if gaussian_term is None else float(gaussian_term)
    freq_big_shakes = 0.2 * rng.uniform() if freq_big_shakes is None else float(freq_big_shakes)
    step = max_total_length / (num_t - 1)
    angle = 2.0 * np.pi * rng.uniform()
    v0 = complex(np.cos(angle), np.sin(angle))
    v = v0 * anxiety if anxiety > 0 else v0 * step
    # Draw all random numbers up front (one stream, reproducible with the seed).
    shake_u = rng.uniform(size=num_t - 1)
    shake_angle = rng.uniform(size=num_t - 1) - 0.5
    jitter = rng.standard_normal(num_t - 1) + 1j * rng.standard_normal(num_t - 1)
    x = np.zeros(num_t, np.complex128)
    p_big = freq_big_shakes * anxiety
    pos = 0j
    for t in range(num_t - 1):
        dv = anxiety * (gaussian_term * jitter[t] - centripetal * pos) * step
        if shake_u[t] < p_big:
            dv += 2.0 * v * np.exp(1j * (np.pi + shake_angle[t]))
        v = v + dv
        speed = abs(v)
        v = v / speed * step if speed > 0 else v0 * step
        pos = pos + v
        x[t + 1] = pos
    return x


BORACCHI_EXPOSURES = (1 / 1000, 1 / 10, 1 / 2, 1.0)


def camera_shake_kernel(size, rng=None, seed=None, *, canvas=64, num_t=2000,
                        max_total_length=60.0, anxiety=None, centripetal=None,
                        gaussian_term=None, freq_big_shakes=None, exposure=None,
                        exposures=BORACCHI_EXPOSURES):
    """Camera-shake PSF from a random 3-D camera trajectory (Boracchi & Foi, IEEE TIP 2012).

    The generator used by DeblurGAN (Kupyn et al. 2018) and UMSN (paper 3): a trajectory of
    `num_t` samples with total length `max_total_length` on a `canvas`-pixel domain (see
    `camera_shake_trajectory` for the motion model and the random parameter defaults) is
    integrated over the first `exposure` fraction of its samples and splatted with bilinear
    (sub-pixel) weights. The trajectory is scaled by size / canvas, so a kernel of any size has
    the same shape statistics as the 64-px reference PSFs, and centred on its centroid.

    Args:
      size: odd kernel size (13..29 in our banks).
      rng / seed: a numpy Generator, or a seed for a fresh one (not both).
      exposure: fraction of the trajectory integrated; None draws one of `exposures`
        (Boracchi-Foi's PSF exposure times 1/1000, 1/10, 1/2, 1 of the trajectory).

    Returns:
      float32 [size, size], non-negative, sums to 1, centroid at (size // 2, size // 2).
    """
    size = _check_size(size, "camera_shake_kernel")
    rng = _rng(rng, seed)
    x = camera_shake_trajectory(rng, canvas, num_t, max_total_length, anxiety, centripetal,
                                gaussian_term, freq_big_shakes)
    if exposure is None:
        exposure = exposures[rng.integers(len(exposures))]
    if not 0 < exposure <= 1:
        raise ValueError(f"camera_shake_kernel: exposure must be in (0, 1], got {exposure}")
    # Sample t covers the time interval [t, t + 1) of num_t; weight = overlap with [0, T*num_t).
    weights = np.clip(exposure * num_t - np.arange(num_t), 0.0, 1.0)
    points = np.stack([x.imag, x.real], axis=1) * (size / canvas)
    return _splat(points, weights, size, "camera_shake_kernel")


def markov_kernel(size, rng=None, seed=None, *, num_steps=None, length=None,
                  length_range=(0.25, 0.9), momentum=0.8, accel_sigma=0.35,
                  defocus_prob=0.0, defocus_range=(0.5, 2.0), samples_per_step=4):
    """Markov random-walk motion kernel (Hradis et al. 2015 / Kupyn et al. 2018 style).

    Paper 2 (Sec. 5, "Training data") blurs its HG-network training faces with "random
    camera-shake kernels from Hradis et al. (2015)": the camera path is a second-order Markov
    chain -- velocity v_{t+1} = momentum * v_t + N(0, accel_sigma^2 I), position
    p_{t+1} = p_t + v_{t+1}, starting from a unit velocity in a random direction -- rendered
    with sub-pixel bilinear splatting (`samples_per_step` points per step) and normalised. The
    path is rescaled to a total length drawn from `length_range` * size (or `length` pixels).
    Optionally (`defocus_prob`) the kernel is further blurred by a small defocus disk, as
    Hradis et al. combine motion and defocus. The exact constants of Hradis et al. are not
    given in paper 2; these defaults give kernels from almost linear to strongly curved.

    Returns:
      float32 [size, size], non-negative, sums to 1, centroid at the centre pixel.
    """
    size = _check_size(size, "markov_kernel")
    rng = _rng(rng, seed)
    n = int(num_steps) if num_steps is not None else max(8, size)
    angle = 2 * np.pi * rng.uniform()
    v = np.array([np.sin(angle), np.cos(angle)])
    vel = np.empty((n, 2))
    for t in range(n):
        v = momentum * v + accel_sigma * rng.standard_normal(2)
        vel[t] = v
    pts = np.concatenate([np.zeros((1, 2)), np.cumsum(vel, axis=0)])
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    total = seg.sum()
    if length is None:
        length = rng.uniform(*length_range) * size
    if total > 0:
        pts *= length / total
    # Dense resampling along the polyline, uniform in time (constant exposure per step).
    s = np.linspace(0.0, n, n * int(samples_per_step) + 1)
    dense = np.stack([np.interp(s, np.arange(n + 1), pts[:, i]) for i in range(2)], axis=1)
    k = _splat(dense, np.ones(len(dense)), size, "markov_kernel")
    if defocus_prob > 0 and rng.uniform() < defocus_prob:
        import scipy.signal
        r = rng.uniform(*defocus_range)
        d = defocus_kernel(2 * int(np.ceil(r)) + 1, r)
        k = scipy.signal.convolve2d(k, d, mode="same")
    return _normalise(k, "markov_kernel")


def linear_motion_kernel(size, rng=None, seed=None, *, length=None, angle=None,
                         length_range=(0.3, 1.0), samples=None):
    """Uniform linear motion: a straight line segment of `length` pixels at `angle` radians.

    The classical constant-velocity blur (e.g. the motion kernels of the USRNet/KAIR test set).
    `length` defaults to a draw from `length_range` * size; `angle` to a uniform draw in
    [0, pi). Rendered with sub-pixel bilinear splatting, normalised, centroid at the centre.

    Returns:
      float32 [size, size], non-negative, sums to 1.
    """
    size = _check_size(size, "linear_motion_kernel")
    rng = _rng(rng, seed)
    if length is None:
        length = rng.uniform(*length_range) * size
    if angle is None:
        angle = rng.uniform(0.0, np.pi)
    length = float(min(max(length, 1.0), size - 1))
    n = int(samples or max(16, 8 * int(np.ceil(length))))
    t = np.linspace(-0.5, 0.5, n) * length
    points = np.stack([t * np.sin(angle), t * np.cos(angle)], axis=1)
    return _splat(points, np.ones(n), size, "linear_motion_kernel")


def _smooth_process(rng, t, length_scale, num):
    """`num` independent draws of a zero-mean, unit-variance Gaussian process on times `t` with
    the squared-exponential covariance exp(-(t - t')^2 / (2 length_scale^2)): float64 [num, T]."""
    d = t[:, None] - t[None, :]
    cov = np.exp(-0.5 * np.square(d / length_scale)) + 1e-6 * np.eye(len(t))
    return rng.standard_normal((num, len(t))) @ np.linalg.cholesky(cov).T


def shake_kernel(size, rng=None, seed=None, *, extent_range=(0.45, 0.95),
                 length_scale_range=(0.15, 0.6), aspect_range=(0.15, 1.0), dwell_sigma=0.6,
                 optics_sigma_range=(0.3, 0.8), num_t=256):
    """Recorded-shake-like motion PSF: a smooth Gaussian-process camera path over the whole
    exposure, with non-uniform speed, drawn so that it spans most of its support.

    Recorded camera shake (Levin et al. 2009, Koehler et al. 2012) is a smooth, often curved or
    looping path of a few to ~25 px with uneven brightness along it (the camera dwells where it
    turns) and 2-3 px thick (lens and sensor). Our trajectory generators at whole exposure are
    far more compact (`camera_shake`: a random walk of ~3 px) or straight (`linear`). This
    follows the Gaussian-process trajectories of deepinv's motion-blur generator: x(t), y(t)
    are independent squared-exponential GPs on t in [0, 1] (length scale drawn from
    `length_scale_range`: long = gentle arcs, short = turns and loops), squeezed across a random
    direction by `aspect_range` (shake is often dominated by one axis), scaled so that its
    bounding box spans `extent_range` x (size - 1) px; each time sample is weighted by
    exp(dwell_sigma * g(t)) for a smooth GP g (non-uniform speed / exposure), splatted with
    bilinear weights and blurred by a Gaussian of sigma drawn from `optics_sigma_range` px.

    Returns:
      float32 [size, size], non-negative, sums to 1, centroid at the centre pixel (up to the
      optics blur's loss at the border).
    """
    import scipy.ndimage
    size = _check_size(size, "shake_kernel")
    rng = _rng(rng, seed)
    t = np.linspace(0.0, 1.0, int(num_t))
    path = _smooth_process(rng, t, rng.uniform(*length_scale_range), 2)
    path[1] *= rng.uniform(*aspect_range)
    a = rng.uniform(0.0, np.pi)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    points = (rot @ path).T
    span = np.ptp(points, axis=0).max()
    points *= rng.uniform(*extent_range) * (size - 1) / max(span, 1e-9)
    dwell = np.exp(dwell_sigma * _smooth_process(rng, t, 0.2, 1)[0])
    k = _splat(points, dwell, size, "shake_kernel").astype(np.float64)
    k = scipy.ndimage.gaussian_filter(k, rng.uniform(*optics_sigma_range), mode="constant")
    return _normalise(k, "shake_kernel")


def _arrays_from(obj):
    """Yields the numeric 2-D (or stacks of 2-D) arrays inside a loaded .mat/.npz value."""
    a = np.asarray(obj)
    if a.dtype == object:
        for item in a.ravel():
            yield from _arrays_from(item)
        return
    if a.dtype.names:  # MATLAB struct
        for name in a.dtype.names:
            for item in a[name].ravel():
                yield from _arrays_from(item)
        return
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        return
    if a.ndim == 2 and min(a.shape) > 1:
        yield a
    elif a.ndim == 3:
        stack = a if a.shape[1] == a.shape[2] else np.moveaxis(a, -1, 0)  # MATLAB [k,k,K]
        for k in stack:
            if min(k.shape) > 1:
                yield k


def load_kernel_bank(path, centre=False):
    """Loads blur kernels from an .npz (every array) or .mat file (every 2-D float array).

    3-D arrays are read as stacks ([K,k,k], or MATLAB's [k,k,K]); cell arrays and structs in
    .mat files are searched. Kernels are made non-negative and normalised to sum 1; with
    `centre`, each is moved onto its centroid (`centre_kernel`).

    Returns:
      list of float32 2-D arrays (sizes may differ; see `pad_kernels`).

    Raises:
      FileNotFoundError / ValueError naming `path` when it is missing, unreadable, of another
      type, or holds no usable kernel.
    """
    path = str(path)
    import os
    if not os.path.exists(path):
        raise FileNotFoundError(f"kernel bank {path!r} does not exist")
    ext = os.path.splitext(path)[1].lower()
    try:
        if ext == ".npz":
            with np.load(path, allow_pickle=False) as data:
                values = [data[k] for k in data.files]
        elif ext == ".mat":
            import scipy.io
            data = scipy.io.loadmat(path)
            values = [v for k, v in data.items() if not k.startswith("__")]
        else:
            raise ValueError(f"unsupported extension {ext!r} (use .npz or .mat)")
    except Exception as e:  # noqa: BLE001 -- any reader failure becomes one clear message
        raise ValueError(f"cannot read kernel bank {path!r}: {e}") from e
    kernels = []
    for v in values:
        for k in _arrays_from(v):
            k = np.asarray(k, np.float64)
            if np.all(np.isfinite(k)) and np.clip(k, 0, None).sum() > 0:
                kernels.append(centre_kernel(k) if centre else _normalise(k, path))
    if not kernels:
        raise ValueError(f"kernel bank {path!r} holds no usable kernel (expected 2-D float "
                         f"arrays with positive sum)")
    return kernels


KERNEL_SPECS = ("camera_shake", "markov", "linear", "gaussian", "defocus", "shake")


def is_generator_spec(spec):
    """True for a kernel generator name of `KERNEL_SPECS` or a '+' mixture of them (what
    `make_kernel_bank` draws), False for anything else (a kernel file's path)."""
    return isinstance(spec, str) and all(f in KERNEL_SPECS for f in spec.split("+"))


def _is_mixture(spec):
    """"camera_shake+markov+linear" style specs: each kernel from one family drawn uniformly."""
    return isinstance(spec, str) and "+" in spec


def effective_taps(kernel):
    """`1 / sum(k**2)` of a kernel summing to 1: 1 for a delta, N for N equal taps.

    A size-free measure of how much a kernel blurs (a motion line of L pixels has about L taps).
    """
    kernel = np.asarray(kernel, dtype=np.float64)
    return float(1.0 / np.sum(np.square(kernel)))


def kernel_extent(kernel, rel=0.05):
    """Length in pixels of a kernel's longest side: the larger side of the bounding box of its
    taps of at least `rel` times the largest tap (a line of L pixels at any angle has about L
    along its major axis, a delta 1). Unlike the box `size`, this is how far the blur reaches.
    """
    kernel = np.asarray(kernel, dtype=np.float64)
    ys, xs = np.nonzero(kernel >= rel * kernel.max())
    return int(max(np.ptp(ys), np.ptp(xs)) + 1)


def make_kernel_bank(spec, num=None, sizes=range(13, 30, 2), seed=0, *, exposure=None,
                     min_taps=0.0, min_extent=0, max_tries_per_kernel=200, centre=False):
    """A bank of kernels, zero-padded to one size, ready for `apply_kernels` in tf.data.

    Args:
      spec: "camera_shake" | "markov" | "linear" | "gaussian" | "defocus", a mixture of them
        joined by "+" (e.g. "camera_shake+markov+linear+gaussian": each kernel's family drawn
        uniformly at random), or a path to an .npz / .mat bank.
      num: number of kernels (default 256 for a generator; for a file all its kernels, or a
        seeded random subset of `num` of them).
      sizes: odd support sizes drawn uniformly per kernel (generators only). Gaussian sigma is
        drawn in [0.5, size / 6], defocus radius in [1, size / 2 - 0.5].
      seed: seed of the bank.
      exposure: camera_shake only: the trajectory fraction integrated (None: Boracchi-Foi's
        random choice of 1/1000, 1/10, 1/2, 1, which makes about half the kernels nearly a
        delta; 1.0 integrates the whole trajectory).
      min_taps: generators only: redraw kernels whose `effective_taps` is below this, so every
        kernel visibly blurs (0 keeps every draw).
      min_extent: generators only: also redraw kernels whose `kernel_extent` is below this many
        pixels, so the bank holds long motions (0 keeps every draw).
      centre: files only: move each kernel onto its centroid (`centre_kernel`); an error with
        a generator spec, whose kernels are centred already.

    Returns:
      float32 [K, S, S] with S = the largest size (odd).
    """
    rng = np.random.default_rng(seed)
    families = spec.split("+") if _is_mixture(spec) else [spec]
    unknown = [f for f in families if f not in KERNEL_SPECS]
    if _is_mixture(spec) and unknown:
        raise ValueError(f"make_kernel_bank: unknown kernel families {unknown} in {spec!r}; "
                         f"choose from {KERNEL_SPECS}")
    if not unknown and centre:
        raise ValueError(f"make_kernel_bank: centre=True moves the kernels of a file; {spec!r} "
                         f"is a generator, whose kernels are centred already (drop centre)")
    if unknown:
        kernels = load_kernel_bank(spec, centre=centre)
        if num is not None:
            if num > len(kernels):
                raise ValueError(f"make_kernel_bank: {spec!r} holds {len(kernels)} kernels, "
                                 f"{num} asked")
            kernels = [kernels[i] for i in sorted(rng.choice(len(kernels), num, replace=False))]
        return pad_kernels(kernels)
    sizes = [_check_size(s, "make_kernel_bank") for s in sizes]
    num = 256 if num is None else int(num)

    def draw():
        s = int(sizes[rng.integers(len(sizes))])
        family = families[rng.integers(len(families))] if len(families) > 1 else spec
        if family == "camera_shake":
            return camera_shake_kernel(s, rng=rng, exposure=exposure)
        if family == "markov":
            return markov_kernel(s, rng=rng)
        if family == "linear":
            return linear_motion_kernel(s, rng=rng)
        if family == "shake":
            return shake_kernel(s, rng=rng)
        if family == "gaussian":
            return gaussian_kernel(s, rng.uniform(0.5, max(0.5, s / 6)))
        return defocus_kernel(s, rng.uniform(1.0, s / 2 - 0.5))

    kernels, tries = [], 0
    while len(kernels) < num:
        tries += 1
        if tries > max_tries_per_kernel * num:
            raise ValueError(f"make_kernel_bank({spec!r}): min_taps={min_taps} and "
                             f"min_extent={min_extent} reject almost every kernel of sizes "
                             f"{sizes}; lower them or use larger sizes")
        kernel = draw()
        if ((min_taps <= 0 or effective_taps(kernel) >= min_taps)
                and (min_extent <= 0 or kernel_extent(kernel) >= min_extent)):
            kernels.append(kernel)
    return pad_kernels(kernels, size=max(sizes))
