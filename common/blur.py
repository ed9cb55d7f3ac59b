"""Blur synthesis for training pairs: kernels in NumPy, application and noise in TensorFlow.

Kernel synthesis (NumPy, seeded):
  * `camera_shake_kernel` -- random 3-D camera trajectories of Boracchi & Foi, "Modeling the
    performance of image restoration from motion blur", IEEE TIP 2012 (the generator used by
    DeblurGAN and UMSN, paper 3).
  * `markov_kernel` -- Markov random-walk trajectory kernels in the style of Hradis et al. 2015 /
    Kupyn et al. 2018 (the synthetic camera-shake blur of paper 2, Sec. 5).
  * `gaussian_kernel`, `defocus_kernel`, `load_kernel_bank`, `pad_kernels`, `make_kernel_bank`.

Application (TensorFlow ops, usable inside `tf.data.Dataset.map`, on CPU and GPU):
  * `apply_kernels` -- one kernel per example, true convolution, same-size output, symmetric or
    zero borders.
  * `add_noise` (paper 3 uses sigma = 0.03 on [0, 1] images), `quantize_uint8`.

Frame averaging (paper 2, Sec. 3.3, NumPy):
  * `average_frames` -- predefined averaging (PrAvg) of L frames, middle frame = ground truth.
  * `vla_average` -- variable length averaging (VLA) with its three stop conditions.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

BORDERS = ("reflect", "constant")


# --------------------------------------------------------------------------------------------
# Applying kernels (TensorFlow)
# --------------------------------------------------------------------------------------------

def apply_kernels(images, kernels, border="reflect"):
    """Convolves every image with its own kernel (true convolution, output the input's size).

    Args:
      images: float [B, H, W, C] (or [H, W, C]); the batch size may be unknown (tf.data).
      kernels: float [B, k, k] (or [k, k] with a single image), k odd, one kernel per example.
        The kernel is flipped (convolution, not correlation), so
        `apply_kernels(x, k)[b, ..., c] == scipy.ndimage.convolve(x[b, ..., c], k[b], mode=...)`.
      border: "reflect" -- symmetric extension d c b a | a b c d (scipy.ndimage mode="reflect",
        scipy.signal boundary="symm"); "constant" -- zeros outside the image.

    Returns:
      tf.Tensor float32 with the shape of `images`.

    Implementation: the batch is folded into the channel axis and one
    `tf.nn.depthwise_conv2d` runs on a [1, H+k-1, W+k-1, B*C] tensor with a [k, k, B*C, 1]
    filter (the fastest of depthwise / map_fn / vectorized_map on CPU, see
    benchmarks/blur_throughput.py).
    """
    if border not in BORDERS:
        raise ValueError(f"apply_kernels: border must be one of {BORDERS}, got {border!r}")
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
    kshape = tf.shape(kernels)
    ph, pw = kshape[1] // 2, kshape[2] // 2
    mode = "SYMMETRIC" if border == "reflect" else "CONSTANT"
    x = tf.pad(images, [[0, 0], [ph, ph], [pw, pw], [0, 0]], mode=mode)

    shape = tf.shape(x)
    b, hp, wp, c = shape[0], shape[1], shape[2], shape[3]
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
