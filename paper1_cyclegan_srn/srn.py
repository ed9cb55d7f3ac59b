"""Stage 3 of Nahli et al.: the scale-recurrent network SRN (Tao et al., CVPR 2018), paper Sec. 3.2 / Fig. 3.

Per scale i (coarse to fine, factor 0.5, bilinear), the same encoder-decoder (weights shared across
scales) sees concat(B^i, up(I^{i+1})) - the blurred image at that scale and the upsampled previous
estimate (gradient stopped, as in the SRN code) - and predicts I^i:

  encoder  conv5-32, 3 x ResBlock(32) | conv5-64 /2, 3 x ResBlock(64) | conv5-128 /2, 3 x ResBlock(128)
  bottleneck ConvLSTM (3x3, 128 features, hidden state carried across scales and resized) or identity
  decoder  3 x ResBlock(128), deconv4-64 x2 (+ enc skip), 3 x ResBlock(64), deconv4-32 x2 (+ skip),
           3 x ResBlock(32), conv5-3 (linear, float32)

ResBlock = x + conv5(relu(conv5(x))). Images are float in [0, 1]. Any H, W: the input is
reflect-padded to a multiple of 4 * 2^(scales-1) (16 for 3 scales) and every output cropped back.
Only `keras.layers` / `keras.ops` here (runs under KERAS_BACKEND=jax too).
"""
from __future__ import annotations

import keras
from keras import layers, ops

from common.keras_utils import pad_to_multiple, remat_call, track

RECURRENT_MODES = ("lstm", "none")

VARIANTS = {
    "paper": dict(channels=(32, 64, 128), blocks_per_stage=3, kernel_size=5, num_scales=3),
    # the shipped weights (weights/srn_small.keras): half the paper's widths, same depth and kernels
    "small": dict(channels=(16, 32, 64), blocks_per_stage=3, kernel_size=5, num_scales=3),
    "tiny": dict(channels=(8, 16, 32), blocks_per_stage=1, kernel_size=3, num_scales=3),
}


class ResBlock(layers.Layer):
    """SRN ResBlock without normalisation or final activation: x + conv(relu(conv(x)))."""

    def __init__(self, filters, kernel_size=5, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size = int(filters), int(kernel_size)
        self.conv1 = layers.Conv2D(filters, kernel_size, padding="same", activation="relu")
        self.conv2 = layers.Conv2D(filters, kernel_size, padding="same")

    def call(self, x):
        return x + self.conv2(self.conv1(x))

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size}


class ConvLSTMCell(layers.Layer):
    """Convolutional LSTM cell (Shi et al. 2015) written with keras.ops; SRN's bottleneck recurrence.

    call(x [B,h,w,C], (h_prev, c_prev) each [B,h,w,filters]) -> (h_new, (h_new, c_new)).
    Gates from one conv over concat(x, h_prev): i, j (candidate), f, o;
    c_new = sigmoid(f + forget_bias) * c_prev + sigmoid(i) * tanh(j);  h_new = sigmoid(o) * tanh(c_new).
    """

    def __init__(self, filters, kernel_size=3, forget_bias=1.0, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size = int(filters), int(kernel_size)
        self.forget_bias = float(forget_bias)
        self.conv = layers.Conv2D(4 * self.filters, kernel_size, padding="same")

    def call(self, x, state):
        h_prev, c_prev = state
        gates = self.conv(ops.concatenate([x, ops.cast(h_prev, x.dtype)], axis=-1))
        i, j, f, o = ops.split(gates, 4, axis=-1)
        c_prev = ops.cast(c_prev, gates.dtype)
        c_new = ops.sigmoid(f + self.forget_bias) * c_prev + ops.sigmoid(i) * ops.tanh(j)
        h_new = ops.sigmoid(o) * ops.tanh(c_new)
        return h_new, (h_new, c_new)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "forget_bias": self.forget_bias}


class SRN(keras.Model):
    """Scale-recurrent deblurring network.

    Input: blurred float [B,H,W,3] in [0,1], any H, W >= 1.
    Output: list of `num_scales` float32 estimates, coarse to fine; scale i (i = num_scales-1 ... 0
    from the first) has size round(H * 0.5^i) x round(W * 0.5^i); the last element is the full-size
    restored image.

    ``global_residual`` (our departure, off in the paper's settings): each scale's output is its
    blurred input plus the last convolution's output, which starts at zero, so an untrained SRN is
    the identity instead of a random image; short CPU runs then spend their steps on the blur,
    not on learning to copy the face (the shipped ``small`` model uses it).
    """

    def __init__(self, channels=(32, 64, 128), blocks_per_stage=3, kernel_size=5, num_scales=3,
                 recurrent="lstm", out_channels=3, global_residual=False, **kwargs):
        super().__init__(**kwargs)
        if recurrent not in RECURRENT_MODES:
            raise ValueError(f"recurrent must be one of {RECURRENT_MODES}, got {recurrent!r}")
        self.channels = tuple(int(c) for c in channels)
        self.blocks_per_stage = int(blocks_per_stage)
        self.kernel_size = int(kernel_size)
        self.num_scales = int(num_scales)
        self.recurrent = recurrent
        self.out_channels = int(out_channels)
        self.global_residual = bool(global_residual)
        c1, c2, c3 = self.channels
        k, n = self.kernel_size, self.blocks_per_stage

        def blocks(c):
            return [ResBlock(c, k) for _ in range(n)]

        def down(c, stride):
            return [layers.Conv2D(c, k, strides=stride, padding="same", activation="relu")]

        self.enc1 = track(self, "enc1", down(c1, 1) + blocks(c1))
        self.enc2 = track(self, "enc2", down(c2, 2) + blocks(c2))
        self.enc3 = track(self, "enc3", down(c3, 2) + blocks(c3))
        self.lstm = ConvLSTMCell(c3, 3) if recurrent == "lstm" else None
        self.dec3 = track(self, "dec3", blocks(c3))
        self.up2 = layers.Conv2DTranspose(c2, 4, strides=2, padding="same", activation="relu")
        self.dec2 = track(self, "dec2", blocks(c2))
        self.up1 = layers.Conv2DTranspose(c1, 4, strides=2, padding="same", activation="relu")
        self.dec1 = track(self, "dec1", blocks(c1))
        self.out_conv = layers.Conv2D(self.out_channels, k, padding="same", dtype="float32",
                                      kernel_initializer="zeros" if self.global_residual
                                      else "glorot_uniform")
        # Training-memory switch (train_srn --remat=blocks): each ResBlock keeps only its input
        # and is recomputed in backprop; same values and gradients; no weight or config change.
        self.remat = False

    @property
    def size_multiple(self):
        """Padded input sizes are multiples of this (two stride-2 stages at the coarsest scale)."""
        return 4 * 2 ** (self.num_scales - 1)

    def _run(self, stack, x):
        for layer in stack:
            x = remat_call(layer, x, self.remat and isinstance(layer, ResBlock))
        return x

    def _encoder_decoder(self, x, state):
        e1 = self._run(self.enc1, x)
        e2 = self._run(self.enc2, e1)
        e3 = self._run(self.enc3, e2)
        if self.lstm is not None:
            if state is None:
                zeros = ops.zeros_like(e3)
                state = (zeros, zeros)
            e3, state = self.lstm(e3, state)
        d3 = self._run(self.dec3, e3)
        d2 = self._run(self.dec2, self.up2(d3) + e2)
        d1 = self._run(self.dec1, self.up1(d2) + e1)
        return self.out_conv(d1), state

    def call(self, blurred):
        h, w = blurred.shape[1], blurred.shape[2]
        x = pad_to_multiple(blurred, self.size_multiple)
        hp, wp = x.shape[1], x.shape[2]
        outputs = []
        pred, state = x, None
        for i in reversed(range(self.num_scales)):
            f = 2 ** i
            hi, wi = hp // f, wp // f
            inp_blur = x if f == 1 else ops.image.resize(x, (hi, wi), interpolation="bilinear",
                                                          antialias=False)
            inp_pred = ops.stop_gradient(
                ops.image.resize(pred, (hi, wi), interpolation="bilinear", antialias=False)
                if tuple(pred.shape[1:3]) != (hi, wi) else pred)
            if state is not None:
                state = tuple(ops.image.resize(s, (hi // 4, wi // 4), interpolation="bilinear",
                                               antialias=False) for s in state)
            inp = ops.concatenate([inp_blur, ops.cast(inp_pred, inp_blur.dtype)], axis=-1)
            pred, state = self._encoder_decoder(inp, state)
            if self.global_residual:
                pred = ops.cast(inp_blur, "float32") + pred
            ch, cw = (h + f // 2) // f, (w + f // 2) // f  # round(h / f), half up
            outputs.append(pred[:, :max(ch, 1), :max(cw, 1), :])
        return outputs

    def get_config(self):
        return {"channels": self.channels, "blocks_per_stage": self.blocks_per_stage,
                "kernel_size": self.kernel_size, "num_scales": self.num_scales,
                "recurrent": self.recurrent, "out_channels": self.out_channels,
                "global_residual": self.global_residual, "name": self.name}


def build_srn(variant="paper", recurrent="lstm", image_size=None, name="srn", **overrides):
    """Builds an SRN from VARIANTS (plus overrides); builds weights on [1,S,S,3] when image_size given."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown SRN variant {variant!r}; choose from {sorted(VARIANTS)}")
    model = SRN(**{**VARIANTS[variant], **overrides}, recurrent=recurrent, name=name)
    if image_size:
        model(ops.zeros((1, image_size, image_size, 3)))
    return model


class SRNDeblurrer(keras.Model):
    """Inference model of the shipped weights, ``export`` and ``deblur``: blurred [B, H, W, 3] in
    [0, 1] (any H, W) -> the finest SRN scale, float32 [B, H, W, 3] clipped to [0, 1].

    Wraps an ``SRN`` built from the training flags that shape it (``variant``, ``recurrent``,
    ``global_residual``; layer name ``srn`` as in training), so a saved ``.keras`` file rebuilds
    the same network and loads its weights.
    """

    def __init__(self, variant="small", recurrent="lstm", global_residual=False, **kwargs):
        super().__init__(**kwargs)
        self.variant, self.recurrent = variant, recurrent
        self.global_residual = bool(global_residual)
        self.srn = build_srn(variant, recurrent=recurrent, global_residual=self.global_residual)

    def call(self, blurred):
        return ops.clip(ops.cast(self.srn(blurred)[-1], "float32"), 0.0, 1.0)

    def get_config(self):
        return {**super().get_config(), "variant": self.variant, "recurrent": self.recurrent,
                "global_residual": self.global_residual}


keras.saving.register_keras_serializable(package="paper1_cyclegan_srn")(SRNDeblurrer)
