"""Stage 1 of Nahli et al.: CycleGAN (Zhu et al., ICCV 2017) for clear <-> blurred translation.

Paper Sec. 3.1 / Fig. 2: two generators G: X (clear) -> Y (blurred) and F: Y -> X, two PatchGAN
discriminators D_X, D_Y, adversarial loss (Eq. 1) and cycle-consistency loss (Eq. 2).

Networks follow the CycleGAN paper's appendix (and its reference code's defaults):
  ResNet generator  c7s1-64, d128, d256, R256 x n (n = 9 at 256 px, 6 at 128 px), u128, u64, c7s1-3
  PatchGAN (70x70)  C64 (no norm) - C128 - C256 - C512 (stride 1) - 1-channel conv, LeakyReLU 0.2
Instance norm is `common.keras_utils.instance_norm` (GroupNormalization, groups=-1); reflect padding in the generator;
convolution weights ~ N(0, 0.02). Generators work on images in [-1, 1] (tanh output); any H, W is
accepted (reflect-padded to a multiple of 4 and cropped back).

`upsample="resize"` (our option, `train_cyclegan --generator_upsample`; default "transpose", the
paper's) replaces each u-layer's stride-2 transposed convolution by nearest-neighbour x2
upsampling + a 3x3 convolution (Odena et al., "Deconvolution and Checkerboard Artifacts",
Distill 2016): the same shapes and receptive field without the checkerboard texture that
transposed convolutions leave in a briefly trained G, which a deblurring network then learns to
undo instead of blur.

Only `keras.layers` / `keras.ops` here, so the networks also run under KERAS_BACKEND=jax.
"""
from __future__ import annotations

import keras
from keras import layers, ops

from common.keras_utils import instance_norm, pad_to_multiple, track

INIT_STDDEV = 0.02  # CycleGAN reference code: init_type='normal', init_gain=0.02

GENERATOR_VARIANTS = {
    # c7s1-64, d128, d256, 9 x R256, u128, u64, c7s1-3 (256x256 training images)
    "resnet_9blocks": dict(filters=64, num_res_blocks=9),
    # the same with 6 residual blocks (128x128 training images)
    "resnet_6blocks": dict(filters=64, num_res_blocks=6),
    # CPU runs on 64-128 px faces: half the width, 6 blocks
    "small": dict(filters=32, num_res_blocks=6),
    "tiny": dict(filters=8, num_res_blocks=2),
}
DISCRIMINATOR_VARIANTS = {
    "patchgan_70": dict(filters=64, num_layers=3),   # 70x70 receptive field, 30x30 patches at 256 px
    "small": dict(filters=32, num_layers=3),
    "tiny": dict(filters=8, num_layers=2),
}
VARIANTS = {"generator": GENERATOR_VARIANTS, "discriminator": DISCRIMINATOR_VARIANTS}
UPSAMPLE_MODES = ("transpose", "resize")


def _conv_init():
    return keras.initializers.RandomNormal(0.0, INIT_STDDEV)


class ReflectionPad2D(layers.Layer):
    """Reflect-pads H and W by `padding` pixels: [B,H,W,C] -> [B,H+2p,W+2p,C]."""

    def __init__(self, padding=1, **kwargs):
        super().__init__(**kwargs)
        self.padding = int(padding)

    def call(self, x):
        p = self.padding
        return ops.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], mode="reflect")

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        p = 2 * self.padding
        return (b, None if h is None else h + p, None if w is None else w + p, c)

    def get_config(self):
        return {**super().get_config(), "padding": self.padding}


class ResnetBlock(layers.Layer):
    """R_k of the CycleGAN appendix: x + IN(conv3(pad(relu(IN(conv3(pad(x))))))), shape-preserving."""

    def __init__(self, filters, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.pad1 = ReflectionPad2D(1)
        self.conv1 = layers.Conv2D(filters, 3, padding="valid", kernel_initializer=_conv_init())
        self.norm1 = instance_norm()
        self.pad2 = ReflectionPad2D(1)
        self.conv2 = layers.Conv2D(filters, 3, padding="valid", kernel_initializer=_conv_init())
        self.norm2 = instance_norm()

    def call(self, x):
        y = ops.relu(self.norm1(self.conv1(self.pad1(x))))
        y = self.norm2(self.conv2(self.pad2(y)))
        return x + y

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}


class ResnetGenerator(keras.Model):
    """CycleGAN ResNet generator (G: clear -> blurred, F: blurred -> clear).

    Input: float [B,H,W,3] in [-1,1], any H, W. Output: float32 [B,H,W,3] in [-1,1] (tanh).
    `upsample`: "transpose" (CycleGAN's u-layers) or "resize" (x2 nearest + 3x3 conv).
    """

    def __init__(self, filters=64, num_res_blocks=9, out_channels=3, upsample="transpose",
                 **kwargs):
        super().__init__(**kwargs)
        if upsample not in UPSAMPLE_MODES:
            raise ValueError(f"upsample={upsample!r}: choose from {UPSAMPLE_MODES}")
        self.filters = int(filters)
        self.num_res_blocks = int(num_res_blocks)
        self.out_channels = int(out_channels)
        self.upsample = upsample
        f = self.filters
        init = _conv_init
        self.c7s1_in = track(self, "c7s1_in", [
            ReflectionPad2D(3), layers.Conv2D(f, 7, kernel_initializer=init()), instance_norm()])
        self.down_convs = track(self, "down_conv", [
            layers.Conv2D(f * m, 3, strides=2, padding="same", kernel_initializer=init())
            for m in (2, 4)])
        self.down_norms = track(self, "down_norm", [instance_norm() for _ in (2, 4)])
        self.blocks = track(self, "block", [ResnetBlock(f * 4) for _ in range(self.num_res_blocks)])
        if upsample == "transpose":
            self.up_convs = track(self, "up_conv", [
                layers.Conv2DTranspose(f * m, 3, strides=2, padding="same",
                                       kernel_initializer=init()) for m in (2, 1)])
        else:
            self.up_convs = track(self, "up_conv", [
                keras.Sequential([layers.UpSampling2D(2, interpolation="nearest"),
                                  layers.Conv2D(f * m, 3, padding="same", kernel_initializer=init())])
                for m in (2, 1)])
        self.up_norms = track(self, "up_norm", [instance_norm() for _ in (2, 1)])
        self.c7s1_out = track(self, "c7s1_out", [
            ReflectionPad2D(3),
            layers.Conv2D(self.out_channels, 7, kernel_initializer=init(), dtype="float32")])

    def call(self, x):
        h, w = ops.shape(x)[1], ops.shape(x)[2]
        x = pad_to_multiple(x, 4)
        pad, conv, norm = self.c7s1_in
        y = ops.relu(norm(conv(pad(x))))
        for conv, norm in zip(self.down_convs, self.down_norms):
            y = ops.relu(norm(conv(y)))
        for block in self.blocks:
            y = block(y)
        for conv, norm in zip(self.up_convs, self.up_norms):
            y = ops.relu(norm(conv(y)))
        pad, conv = self.c7s1_out
        y = ops.tanh(conv(pad(y)))
        return y[:, :h, :w, :]

    def get_config(self):
        return {"filters": self.filters, "num_res_blocks": self.num_res_blocks,
                "out_channels": self.out_channels, "upsample": self.upsample, "name": self.name}


class PatchDiscriminator(keras.Model):
    """PatchGAN discriminator: [B,H,W,3] in [-1,1] -> float32 logits [B,h',w',1] (30x30 at 256 px).

    Layers use explicit zero padding 1 and 4x4 kernels (strides 2, ..., 2, 1, 1) as the reference
    code, so a 70x70 patch maps to one output logit. No sigmoid: the adversarial losses take logits
    (BCE) or raw scores (least squares).
    """

    def __init__(self, filters=64, num_layers=3, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.num_layers = int(num_layers)
        init = _conv_init
        self.pads, self.convs, self.norms = [], [], []
        for i in range(self.num_layers + 1):
            stride = 2 if i < self.num_layers else 1
            mult = min(2 ** i, 8)
            self.pads.append(layers.ZeroPadding2D(1))
            self.convs.append(layers.Conv2D(self.filters * mult, 4, strides=stride,
                                            kernel_initializer=init()))
            if i > 0:  # no normalisation on the first layer (C64)
                self.norms.append(instance_norm())
        track(self, "pad", self.pads)
        track(self, "conv", self.convs)
        track(self, "norm", self.norms)
        self.head_pad = layers.ZeroPadding2D(1)
        self.head = layers.Conv2D(1, 4, strides=1, kernel_initializer=init(), dtype="float32")

    def call(self, x):
        y = x
        for i, (pad, conv) in enumerate(zip(self.pads, self.convs)):
            y = conv(pad(y))
            if i > 0:
                y = self.norms[i - 1](y)
            y = ops.leaky_relu(y, 0.2)
        return self.head(self.head_pad(y))

    def get_config(self):
        return {"filters": self.filters, "num_layers": self.num_layers, "name": self.name}


def build_generator(variant="resnet_9blocks", name=None, image_size=None, upsample="transpose"):
    """Builds a ResnetGenerator from GENERATOR_VARIANTS (built on [1,S,S,3] when image_size given)."""
    if variant not in GENERATOR_VARIANTS:
        raise ValueError(f"unknown generator variant {variant!r}; choose from {sorted(GENERATOR_VARIANTS)}")
    model = ResnetGenerator(**GENERATOR_VARIANTS[variant], upsample=upsample, name=name)
    if image_size:
        model(ops.zeros((1, image_size, image_size, 3)))
    return model


def build_discriminator(variant="patchgan_70", name=None, image_size=None):
    """Builds a PatchDiscriminator from DISCRIMINATOR_VARIANTS."""
    if variant not in DISCRIMINATOR_VARIANTS:
        raise ValueError(f"unknown discriminator variant {variant!r}; "
                         f"choose from {sorted(DISCRIMINATOR_VARIANTS)}")
    model = PatchDiscriminator(**DISCRIMINATOR_VARIANTS[variant], name=name)
    if image_size:
        model(ops.zeros((1, image_size, image_size, 3)))
    return model
