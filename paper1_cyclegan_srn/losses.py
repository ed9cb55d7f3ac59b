"""Losses of Nahli et al. as pure functions (`keras.ops` only; inputs cast to float32).

Stage 1 (CycleGAN, Sec. 3.1): adversarial loss (Eq. 1) in its log / BCE form or the least-squares
form the CycleGAN reference implementations train with, cycle consistency (Eq. 2) and the optional
identity loss of Zhu et al. Stage 2 (SRN, Sec. 3.2): the multi-scale Euclidean loss (Eq. 3).
The loss weights (lambda, identity weight, per-scale k_i) are applied by the trainers.
"""
from __future__ import annotations

from keras import ops

GAN_MODES = ("lsgan", "bce")


def _f32(x):
    return ops.cast(x, "float32")


def _bce_with_logits(logits, label):
    """Mean binary cross entropy of a constant label against logits: softplus(x) - x * z."""
    logits = _f32(logits)
    return ops.mean(ops.softplus(logits) - logits * label)


def _check_mode(gan_mode):
    if gan_mode not in GAN_MODES:
        raise ValueError(f"gan_mode must be one of {GAN_MODES}, got {gan_mode!r}")


def discriminator_loss(real_output, fake_output, gan_mode="lsgan"):
    """Eq. 1 from the discriminator's side, halved as in the CycleGAN reference code.

    bce:   0.5 * ( -E[log D(y)] - E[log(1 - D(G(x)))] ), D = sigmoid(logits)
    lsgan: 0.5 * ( E[(D(y) - 1)^2] + E[D(G(x))^2] )
    real_output, fake_output: discriminator outputs [B,h,w,1] (logits for bce). Returns a scalar.
    """
    _check_mode(gan_mode)
    if gan_mode == "bce":
        return 0.5 * (_bce_with_logits(real_output, 1.0) + _bce_with_logits(fake_output, 0.0))
    real_output, fake_output = _f32(real_output), _f32(fake_output)
    return 0.5 * (ops.mean(ops.square(real_output - 1.0)) + ops.mean(ops.square(fake_output)))


def generator_adversarial_loss(fake_output, gan_mode="lsgan"):
    """Eq. 1 from the generator's side (non-saturating: G maximises log D(G(x))).

    bce: -E[log D(G(x))];  lsgan: E[(D(G(x)) - 1)^2]. Returns a scalar.
    """
    _check_mode(gan_mode)
    if gan_mode == "bce":
        return _bce_with_logits(fake_output, 1.0)
    return ops.mean(ops.square(_f32(fake_output) - 1.0))


def cycle_loss(real, cycled):
    """One direction of Eq. 2: E[ ||F(G(x)) - x||_1 ] (mean absolute error). Returns a scalar."""
    return ops.mean(ops.abs(_f32(cycled) - _f32(real)))


def identity_loss(real, same):
    """Identity loss of Zhu et al. (Sec. 5.2): E[ ||G(y) - y||_1 ]. Returns a scalar."""
    return ops.mean(ops.abs(_f32(same) - _f32(real)))


def resize_bilinear(image, height, width):
    """Bilinear resize without antialiasing (SRN resizes with tf.image.resize_images method 0)."""
    return ops.image.resize(image, (height, width), interpolation="bilinear", antialias=False)


def multiscale_euclidean_loss(target, predictions, weights=None):
    """Eq. 3: L = sum_i k_i / N_i * ||I^i - I_*^i||_2^2.

    target: [B,H,W,C] sharp image at full size (resized bilinearly to each scale), or a list of
      per-scale targets matching `predictions`. predictions: list of [B,h_i,w_i,C], coarse to fine.
    weights: k_i per scale (default all 1, as in the SRN code). N_i = number of elements at scale i.
    Returns (total, [per-scale mean squared errors]).
    """
    n = len(predictions)
    weights = [1.0] * n if weights is None else list(weights)
    if len(weights) != n:
        raise ValueError(f"got {len(weights)} scale weights for {n} scales")
    total = 0.0
    per_scale = []
    for i, pred in enumerate(predictions):
        pred = _f32(pred)
        if isinstance(target, (list, tuple)):
            tgt = _f32(target[i])
        else:
            tgt = _f32(target)
            if tuple(tgt.shape[1:3]) != tuple(pred.shape[1:3]):
                tgt = resize_bilinear(tgt, pred.shape[1], pred.shape[2])
        mse = ops.mean(ops.square(pred - tgt))
        per_scale.append(mse)
        total = total + float(weights[i]) * mse
    return total, per_scale
