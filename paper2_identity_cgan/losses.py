"""Losses of Chrysos, Favaro & Zafeiriou, *Motion deblurring of faces*, Eq. 2-6 (Sec. 3.1-3.2).

Pure functions of tensors (``keras.ops`` only); every input is cast to float32 and every loss is
a float32 scalar.  ``||.||_l1`` of the paper is taken as the mean absolute value (per element), as
in pix2pix's L1 term.  The weights (lambda_ci = lambda_cg = lambda_r = 100, lambda_p = 8, Sec. 5.1)
are applied in one place, ``total_generator_loss`` (Eq. 6), called by the trainer.
"""
from __future__ import annotations

from keras import ops


def _f32(x):
    return ops.cast(x, "float32")


def discriminator_loss(real_logits, fake_logits):
    """Eq. 2, the discriminator's side: maximise log D(s, y) + log(1 - D(s, G(s))).

    Returned as the minimised binary cross-entropy with logits:
    ``mean(softplus(-real)) + mean(softplus(fake))``.
    """
    real_logits, fake_logits = _f32(real_logits), _f32(fake_logits)
    return ops.mean(ops.softplus(-real_logits)) + ops.mean(ops.softplus(fake_logits))


def generator_adversarial_loss(fake_logits):
    """Eq. 2, the generator's side in the non-saturating form (Goodfellow et al. 2014):
    ``mean(-log D(s, G(s))) = mean(softplus(-fake))``."""
    return ops.mean(ops.softplus(-_f32(fake_logits)))


def l1_loss(target, pred):
    """Mean absolute difference ``mean(|pred - target|)``."""
    return ops.mean(ops.abs(_f32(pred) - _f32(target)))


def image_gradients(images):
    """Forward differences of [B, H, W, C] images: ``(dy [B,H-1,W,C], dx [B,H,W-1,C])``."""
    images = _f32(images)
    dy = images[:, 1:, :, :] - images[:, :-1, :, :]
    dx = images[:, :, 1:, :] - images[:, :, :-1, :]
    return dy, dx


def content_intensity_loss(sharp, deblurred):
    """Eq. 3, first term (weighted by lambda_ci): ``||G_bl(I_bl) - I_s||_l1``."""
    return l1_loss(sharp, deblurred)


def content_gradient_loss(sharp, deblurred):
    """Eq. 3, second term (weighted by lambda_cg): ``||grad G_bl(I_bl) - grad I_s||_l1``.

    The vertical and horizontal forward-difference terms are each averaged and then summed.
    """
    ty, tx = image_gradients(sharp)
    py, px = image_gradients(deblurred)
    return ops.mean(ops.abs(py - ty)) + ops.mean(ops.abs(px - tx))


def projection_loss(fake_features, real_features):
    """Eq. 4: ``||pi(G_bl(I_bl)) - pi(I_s)||_l1`` between D's penultimate features."""
    return l1_loss(real_features, fake_features)


def reconstruction_loss(sharp, reconstructed):
    """Eq. 5: ``||G_s(I_s) - I_s||_l1`` (identity-preservation stream)."""
    return l1_loss(sharp, reconstructed)


def hourglass_loss(sharp, stack_outputs):
    """HG training (first step): mean squared error of every stack's output to ``I_s``, averaged
    over the stacks (Newell et al.'s MSE with intermediate supervision)."""
    sharp = _f32(sharp)
    total = 0.0
    for out in stack_outputs:
        total = total + ops.mean(ops.square(_f32(out) - sharp))
    return total / float(len(stack_outputs))


def total_generator_loss(adv, content_i, content_g, proj, recon, *, lambda_ci=100.0,
                         lambda_cg=100.0, lambda_p=8.0, lambda_r=100.0, lambda_adv=1.0):
    """Eq. 6: ``L = L_cGAN + (lambda_ci L_ci + lambda_cg L_cg) + lambda_p L_p + lambda_r L_r``.

    ``recon`` may be 0 (the 'no-identity' variant has no G_s).
    """
    return (lambda_adv * _f32(adv) + lambda_ci * _f32(content_i) + lambda_cg * _f32(content_g)
            + lambda_p * _f32(proj) + lambda_r * _f32(recon))
