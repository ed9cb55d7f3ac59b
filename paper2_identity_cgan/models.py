"""Networks of Chrysos, Favaro & Zafeiriou, *Motion deblurring of faces* (IJCV), Sec. 3.2, 5.1, Table 3.

Three parts (Fig. 2):

* ``HourglassNet`` (HG, Newell et al. 2016): first step, restores the low frequencies of the
  blurred face; trained alone on kernel-blurred faces, then frozen.
* ``Generator``: Table 3 encoder-decoder.  ``G_bl`` takes ``concat(I_bl, HG(I_bl))`` (6 channels),
  ``G_s`` takes the sharp image (3 channels).  The two generators own separate ``Encoder`` objects
  and **one shared** ``Decoder`` object (the dashed line of Fig. 2), so every decoder update made
  through either stream changes the other stream's output.
* ``Discriminator``: 5-layer conditional PatchGAN; returns logits and its penultimate features
  (the projection ``pi`` of Eq. 4).

All networks take images in [0, 1] ``[B, H, W, C]`` and return float32 (the last layer is float32,
so mixed precision never leaks into the losses).  Only ``keras.layers`` / ``keras.ops`` are used.
The generator needs ``H, W`` divisible by 128 (seven stride-2 encoder layers, Table 3); the HG
needs ``H, W`` divisible by ``4 * 2**hg_depth``.
"""
from __future__ import annotations

import keras
from keras import layers, ops

from common.keras_utils import track, tracked

# Table 3 widths.  "paper" is the table itself; "small" and "tiny" divide every width.
_ENC_PAPER = (64, 128, 256, 512, 512, 512, 512, 256)
_DEC_PAPER = (1024, 512, 512, 512, 256, 128, 64)

VARIANTS = {
    # Table 3; HG: the off-the-shelf Newell et al. defaults (8 stacks, 256 features, depth 4).
    "paper": dict(enc_filters=_ENC_PAPER, dec_filters=_DEC_PAPER, d_filters=64,
                  hg_stacks=8, hg_features=256, hg_depth=4),
    # CPU-sized: widths / 4, two stacks of depth 3.
    "small": dict(enc_filters=tuple(f // 4 for f in _ENC_PAPER),
                  dec_filters=tuple(f // 4 for f in _DEC_PAPER), d_filters=16,
                  hg_stacks=2, hg_features=64, hg_depth=3),
    # Tests: widths / 8, one stack of depth 2.
    "tiny": dict(enc_filters=tuple(f // 8 for f in _ENC_PAPER),
                 dec_filters=tuple(f // 8 for f in _DEC_PAPER), d_filters=8,
                 hg_stacks=1, hg_features=16, hg_depth=2),
}

GEN_DIVISOR = 128  # 2**7: Conv. 2..8 of Table 3 have stride 2


def _to_signed(x):
    """[0, 1] -> [-1, 1] in float32."""
    return ops.cast(x, "float32") * 2.0 - 1.0


# ----------------------------------------------------------------------------------- HG ----
class HGResidual(layers.Layer):
    """Newell et al. bottleneck residual module: BN-ReLU-1x1(c/2)-BN-ReLU-3x3(c/2)-BN-ReLU-1x1(c).

    [B, H, W, Cin] -> [B, H, W, filters]; a 1x1 conv projects the skip when Cin != filters.
    """

    def __init__(self, filters, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        half = max(filters // 2, 1)
        self.bn1, self.bn2, self.bn3 = (layers.BatchNormalization() for _ in range(3))
        self.c1 = layers.Conv2D(half, 1)
        self.c2 = layers.Conv2D(half, 3, padding="same")
        self.c3 = layers.Conv2D(filters, 1)
        self.skip = None

    def build(self, input_shape):
        if input_shape[-1] != self.filters:
            self.skip = layers.Conv2D(self.filters, 1)

    def call(self, x, training=None):
        y = self.c1(ops.relu(self.bn1(x, training=training)))
        y = self.c2(ops.relu(self.bn2(y, training=training)))
        y = self.c3(ops.relu(self.bn3(y, training=training)))
        s = self.skip(x) if self.skip is not None else x
        return y + s

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}


class Hourglass(layers.Layer):
    """One recursive hourglass of depth ``depth`` (Newell et al. 2016, Fig. 3).

    [B, H, W, F] -> [B, H, W, F]; H, W divisible by 2**depth.  Upper branch: residual at the
    current scale; lower branch: max-pool, residual, hourglass(depth-1) (or residual), residual,
    nearest 2x upsampling; the branches are added.
    """

    def __init__(self, depth, features, **kwargs):
        super().__init__(**kwargs)
        self.depth, self.features = depth, features
        self.up1 = HGResidual(features)
        self.pool = layers.MaxPooling2D(2)
        self.low1 = HGResidual(features)
        self.low2 = Hourglass(depth - 1, features) if depth > 1 else HGResidual(features)
        self.low3 = HGResidual(features)
        self.upsample = layers.UpSampling2D(2, interpolation="nearest")

    def call(self, x, training=None):
        up1 = self.up1(x, training=training)
        low = self.low1(self.pool(x), training=training)
        low = self.low2(low, training=training)
        low = self.low3(low, training=training)
        return up1 + self.upsample(low)

    def get_config(self):
        return {**super().get_config(), "depth": self.depth, "features": self.features}


class HourglassNet(keras.Model):
    """Stacked hourglass for image restoration (first step, Sec. 3.2; Newell et al. 2016).

    Input ``I_bl`` [B, H, W, 3] in [0, 1]; H, W divisible by ``4 * 2**depth``.
    Stem (Newell): 7x7 conv stride 2 -> residual -> max-pool -> residual -> residual, i.e. the
    hourglasses work at H/4.  Each stack predicts a 3-channel correction at H/4 that is upsampled
    bilinearly to H and added to the input (our choice: HG restores the low frequencies, so its
    prediction lives at H/4 where its heat-map head lives in the pose network).  Intermediate
    supervision as in Newell: every stack's prediction is returned and is remapped into the next
    stack through 1x1 convolutions.

    ``call`` returns the final restored image [B, H, W, 3] float32; ``call_all`` returns the list of
    every stack's image (for the intermediate-supervision loss).
    """

    def __init__(self, stacks=2, features=64, depth=3, zero_init=False, **kwargs):
        super().__init__(**kwargs)
        self.stacks, self.features, self.depth = stacks, features, depth
        self.zero_init = zero_init
        f = features
        self.stem_conv = layers.Conv2D(max(f // 4, 8), 7, strides=2, padding="same")
        self.stem_bn = layers.BatchNormalization()
        self.stem_res1 = HGResidual(max(f // 2, 8))
        self.stem_pool = layers.MaxPooling2D(2)
        self.stem_res2 = HGResidual(max(f // 2, 8))
        self.stem_res3 = HGResidual(f)
        track(self, "hg", [Hourglass(depth, f, name=f"hourglass_{i}") for i in range(stacks)])
        track(self, "res", [HGResidual(f) for _ in range(stacks)])
        track(self, "lin", [layers.Conv2D(f, 1) for _ in range(stacks)])
        track(self, "lin_bn", [layers.BatchNormalization() for _ in range(stacks)])
        # zero_init (our choice, not in the paper): heads start at zero, so every stack's
        # output equals its input at step 0 (the HG starts as the identity, not at ~24 dB).
        head_init = "zeros" if zero_init else "glorot_uniform"
        track(self, "head", [layers.Conv2D(3, 1, dtype="float32", name=f"head_{i}",
                                            kernel_initializer=head_init)
                              for i in range(stacks)])
        track(self, "remap_feat", [layers.Conv2D(f, 1) for _ in range(stacks - 1)])
        track(self, "remap_pred", [layers.Conv2D(f, 1) for _ in range(stacks - 1)])

    hgs = property(lambda self: tracked(self, "hg"))
    res = property(lambda self: tracked(self, "res"))
    lin = property(lambda self: tracked(self, "lin"))
    lin_bn = property(lambda self: tracked(self, "lin_bn"))
    heads = property(lambda self: tracked(self, "head"))
    remap_feat = property(lambda self: tracked(self, "remap_feat"))
    remap_pred = property(lambda self: tracked(self, "remap_pred"))

    def call_all(self, x, training=None):
        x = ops.cast(x, "float32")
        h = _to_signed(x)
        h = ops.relu(self.stem_bn(self.stem_conv(h), training=training))
        h = self.stem_res1(h, training=training)
        h = self.stem_pool(h)
        h = self.stem_res2(h, training=training)
        h = self.stem_res3(h, training=training)
        outs = []
        size = (ops.shape(x)[1], ops.shape(x)[2])
        for i in range(self.stacks):
            y = self.hgs[i](h, training=training)
            y = self.res[i](y, training=training)
            y = ops.relu(self.lin_bn[i](self.lin[i](y), training=training))
            pred = self.heads[i](y)  # [B, H/4, W/4, 3] float32
            up = ops.image.resize(pred, size, interpolation="bilinear")
            outs.append(x + up)
            if i < self.stacks - 1:
                h = h + self.remap_feat[i](y) + self.remap_pred[i](ops.cast(pred, y.dtype))
        return outs

    def call(self, x, training=None):
        return self.call_all(x, training=training)[-1]

    def get_config(self):
        return {"stacks": self.stacks, "features": self.features, "depth": self.depth,
                "zero_init": self.zero_init, "name": self.name}


# ---------------------------------------------------------------------------- generator ----
def parse_skips(skips) -> tuple[int, ...]:
    """U-Net skip levels (``--unet_skips``: ints or strings such as ``["1", "2"]``) -> a sorted
    tuple of distinct encoder levels in 1..7, or a one-line error."""
    try:
        levels = tuple(sorted({int(k) for k in skips}))
    except (TypeError, ValueError):
        levels = (0,)
    if any(k < 1 or k > 7 for k in levels):
        raise ValueError(f"--unet_skips={','.join(map(str, skips))}: give encoder levels in "
                         f"1..7 (1 = full resolution, 7 = H/64), e.g. --unet_skips=1,2")
    return levels


class ConvBlock(layers.Layer):
    """Table 3 layer: (transposed) conv 4x4 (or 1x1) -> batch norm (optional) -> ReLU -> dropout.

    ``dropout`` is the rate of dropped units (Table 3 lists the keep probability 0.5, which is
    also a drop rate of 0.5).
    """

    def __init__(self, filters, kernel_size, strides, transpose=False, batch_norm=True,
                 dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size, self.strides = filters, kernel_size, strides
        self.transpose, self.batch_norm, self.dropout = transpose, batch_norm, dropout
        conv = layers.Conv2DTranspose if transpose else layers.Conv2D
        init = keras.initializers.RandomNormal(0.0, 0.02)  # pix2pix / DCGAN init
        self.conv = conv(filters, kernel_size, strides=strides, padding="same",
                         use_bias=not batch_norm, kernel_initializer=init)
        self.bn = layers.BatchNormalization() if batch_norm else None
        self.drop = layers.Dropout(dropout) if dropout > 0 else None
        if self.drop is not None:
            # the Dropout's RNG state lives in a SeedGenerator (not a layer), which
            # tf.train.Checkpoint would not reach: hold it as a direct attribute
            self.drop_seed_state = self.drop.seed_generator.state

    def call(self, x, training=None):
        y = self.conv(x)
        if self.bn is not None:
            y = self.bn(y, training=training)
        y = ops.relu(y)
        if self.drop is not None:
            y = self.drop(y, training=training)
        return y

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "transpose": self.transpose,
                "batch_norm": self.batch_norm, "dropout": self.dropout}


class ResidualProjection(layers.Layer):
    """Shape-matching identity for the Sec. 5.1 residuals that skip two layers.

    Spatial change by average pooling (``factor`` < 1 as 1/pool) or nearest upsampling; a 1x1
    convolution without bias only when the channel count changes (ResNet option B).
    """

    def __init__(self, filters, scale, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.scale = filters, scale
        if scale > 1:
            self.resample = layers.UpSampling2D(int(scale), interpolation="nearest")
        elif scale < 1:
            self.resample = layers.AveragePooling2D(int(round(1 / scale)))
        else:
            self.resample = None
        self.proj = None

    def build(self, input_shape):
        if input_shape[-1] != self.filters:
            self.proj = layers.Conv2D(self.filters, 1, use_bias=False)

    def call(self, x):
        if self.resample is not None:
            x = self.resample(x)
        return self.proj(x) if self.proj is not None else x

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "scale": self.scale}


class Encoder(layers.Layer):
    """Table 3(a): 8 conv layers; residuals after layers 1, 3, 5 skip two layers each (Sec. 5.1).

    [B, H, W, C] in [-1, 1] -> list of 8 features ``e1..e8`` with shapes
    ``[B, H/2**max(i-1,0), ..., enc_filters[i]]`` (e1 at H, e8 at H/128).
    Conv. 1 has no BN; Conv. 8 is 1x1.
    """

    def __init__(self, filters=_ENC_PAPER, **kwargs):
        super().__init__(**kwargs)
        self.filters = tuple(filters)
        f = self.filters
        blocks = [ConvBlock(f[0], 4, 1, batch_norm=False, name="conv1")]
        for i in range(1, 7):
            blocks.append(ConvBlock(f[i], 4, 2, name=f"conv{i + 1}"))
        blocks.append(ConvBlock(f[7], 1, 2, name="conv8"))
        track(self, "block", blocks)
        # after layer 1 -> added to layer 3's output, 3 -> 5, 5 -> 7 (two stride-2 layers each)
        self.res_1 = ResidualProjection(f[2], 0.25)
        self.res_3 = ResidualProjection(f[4], 0.25)
        self.res_5 = ResidualProjection(f[6], 0.25)

    blocks = property(lambda self: tracked(self, "block"))
    res = property(lambda self: {1: self.res_1, 3: self.res_3, 5: self.res_5})

    def call(self, x, training=None):
        feats = []
        h = x
        for i, block in enumerate(self.blocks, start=1):
            h = block(h, training=training)
            if i in (3, 5, 7):
                h = h + self.res[i - 2](feats[i - 3])
            feats.append(h)
        return feats

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}


class Decoder(layers.Layer):
    """Table 3(b): 8 transposed-conv layers, shared by G_bl and G_s (Sec. 3.2, Fig. 2).

    Input: the encoder's list ``e1..e8``.  F-Conv. 1-3 use dropout 0.5; residuals after decoder
    layers 1 and 3 skip two layers.  U-Net skips: ``skips`` names the encoder levels whose
    features are concatenated (after) the decoder feature of the same size; level ``k`` feeds
    F-Conv. ``9 - k`` (``e1`` -> F-Conv. 8, ``e2`` -> F-Conv. 7, ..., ``e7`` -> F-Conv. 2).  The
    paper has "two U-net style skip connections" without naming the levels; the default
    ``(1, 2)`` is our choice (``e2`` to F-Conv. 6's output, ``e1`` to F-Conv. 7's).  More levels
    (``(1, ..., 7)``: pix2pix's U-Net) let the large-blur scales H/4..H/64 bypass the 1x1
    bottleneck (``--unet_skips``, a departure).
    F-Conv. 8 (4x4, stride 1, no BN) is float32 with tanh, mapped to [0, 1].
    Output [B, H, W, out_channels] float32 in [0, 1].  With ``residual=True`` (our CPU-demo
    choice, not Table 3) F-Conv. 8 is zero-initialised and the output is the tanh correction in
    [-1, 1] that ``Generator`` adds to its input image.
    """

    def __init__(self, filters=_DEC_PAPER, out_channels=3, residual=False, skips=(1, 2),
                 **kwargs):
        super().__init__(**kwargs)
        self.filters, self.out_channels = tuple(filters), out_channels
        self.residual = residual
        self.skips = parse_skips(skips)
        f = self.filters
        blocks = [ConvBlock(f[0], 1, 2, transpose=True, dropout=0.5, name="fconv1")]
        for i in range(1, 7):
            blocks.append(ConvBlock(f[i], 4, 2, transpose=True,
                                    dropout=0.5 if i < 3 else 0.0, name=f"fconv{i + 1}"))
        track(self, "block", blocks)
        self.res_1 = ResidualProjection(f[2], 4)
        self.res_3 = ResidualProjection(f[4], 4)
        # residual (our choice): F-Conv. 8 starts at zero, so the correction is 0 at step 0
        init = "zeros" if residual else keras.initializers.RandomNormal(0.0, 0.02)
        self.last = layers.Conv2DTranspose(out_channels, 4, strides=1, padding="same",
                                           kernel_initializer=init, dtype="float32",
                                           name="fconv8")

    blocks = property(lambda self: tracked(self, "block"))
    res = property(lambda self: {1: self.res_1, 3: self.res_3})

    def _skip(self, h, feats, level):
        """``concat(h, e_level)`` when ``level`` is one of ``skips`` (the U-Net skip), else h."""
        if level not in self.skips:
            return h
        return ops.concatenate([h, ops.cast(feats[level - 1], h.dtype)], axis=-1)

    def call(self, feats, training=None):
        h = feats[-1]
        outs = []
        for i, block in enumerate(self.blocks, start=1):
            if i >= 2:
                h = self._skip(h, feats, 9 - i)  # e7 -> F-Conv. 2, ..., e2 -> F-Conv. 7
            h = block(h, training=training)
            if i in (3, 5):
                h = h + self.res[i - 2](outs[i - 3])
            outs.append(h)
        h = self._skip(h, feats, 1)  # e1 -> F-Conv. 8
        y = ops.tanh(ops.cast(self.last(h), "float32"))
        if self.residual:
            return y  # a correction in [-1, 1], added to the input by the Generator
        return (y + 1.0) * 0.5

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "out_channels": self.out_channels, "residual": self.residual,
                "skips": list(self.skips)}


class Generator(keras.Model):
    """Encoder-decoder generator (Table 3).  ``G_bl``: input 6 channels ``concat(I_bl, HG(I_bl))``
    (3 for the 'noHG' variant); ``G_s``: input 3 channels ``I_s``.

    [B, H, W, C] in [0, 1] (H, W divisible by 128) -> [B, H, W, 3] float32 in [0, 1].
    Pass the same ``decoder`` object to two generators to share its weights.
    """

    def __init__(self, encoder: Encoder, decoder: Decoder, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.decoder = decoder

    def call(self, x, training=None):
        y = self.decoder(self.encoder(_to_signed(x), training=training), training=training)
        if self.decoder.residual:
            # global skip (our choice, not Table 3): the decoder predicts a correction that is
            # added to the first three input channels (I_bl for G_bl, I_s for G_s), clipped
            # to [0, 1]; with the zero-initialised F-Conv. 8 the output equals the input at init.
            y = ops.clip(ops.cast(x[..., :3], "float32") + y, 0.0, 1.0)
        return y


# ------------------------------------------------------------------------ discriminator ----
class Discriminator(keras.Model):
    """Conditional 5-layer PatchGAN (pix2pix 70x70, Isola et al. 2017) of Sec. 3.1 / 5.1.

    ``call(condition, image)``: both [B, H, W, 3] in [0, 1], concatenated (6 channels).
    Layers: C64 s2 (no BN) - C128 s2 - C256 s2 - C512 s1 - C1 s1, 4x4 kernels, LeakyReLU 0.2.
    Returns ``(logits [B, H/8, W/8, 1] float32, features [B, H/8, W/8, 8*base] float32)``;
    ``features`` is the penultimate layer, the projection ``pi`` of Eq. 4.
    """

    def __init__(self, base_filters=64, **kwargs):
        super().__init__(**kwargs)
        self.base_filters = base_filters
        b = base_filters
        init = keras.initializers.RandomNormal(0.0, 0.02)
        track(self, "conv", [layers.Conv2D(b * m, 4, strides=s, padding="same",
                                            kernel_initializer=init, use_bias=(i == 0))
                              for i, (m, s) in enumerate([(1, 2), (2, 2), (4, 2), (8, 1)])])
        track(self, "bn", [layers.BatchNormalization() for _ in range(3)])
        self.out = layers.Conv2D(1, 4, strides=1, padding="same", kernel_initializer=init,
                                 dtype="float32")

    convs = property(lambda self: tracked(self, "conv"))
    bns = property(lambda self: [None] + tracked(self, "bn"))

    def call(self, condition, image, training=None):
        h = ops.concatenate([_to_signed(condition), _to_signed(image)], axis=-1)
        for conv, bn in zip(self.convs, self.bns):
            h = conv(h)
            if bn is not None:
                h = bn(h, training=training)
            h = ops.leaky_relu(h, 0.2)
        return self.out(h), ops.cast(h, "float32")

    def get_config(self):
        return {"base_filters": self.base_filters, "name": self.name}


# ------------------------------------------------------------------------------ builders ----
def build_networks(variant="small", use_hg=True, identity=True, global_residual=False,
                   hg_zero_init=False, unet_skips=(1, 2)):
    """Build every network of Fig. 2 for a ``VARIANTS`` key.

    Returns a dict with ``hg`` (HourglassNet or None when ``use_hg`` is False), ``g_bl``,
    ``g_s`` (None when ``identity`` is False: the 'no-identity' variant of Table 4),
    ``decoder`` (the object shared by ``g_bl`` and ``g_s``) and ``d``.
    ``global_residual`` / ``hg_zero_init``: our CPU-demo departures (see ``Decoder``,
    ``HourglassNet``); both False is Table 3 / Newell exactly.  ``unet_skips``: the encoder
    levels of the U-Net skips (``Decoder``; two in the paper, ``(1, 2)`` our reading).
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {sorted(VARIANTS)}")
    cfg = VARIANTS[variant]
    decoder = Decoder(cfg["dec_filters"], residual=global_residual, skips=unet_skips,
                      name="shared_decoder")
    g_bl = Generator(Encoder(cfg["enc_filters"], name="encoder_bl"), decoder, name="g_bl")
    g_s = (Generator(Encoder(cfg["enc_filters"], name="encoder_s"), decoder, name="g_s")
           if identity else None)
    hg = (HourglassNet(cfg["hg_stacks"], cfg["hg_features"], cfg["hg_depth"],
                       zero_init=hg_zero_init, name="hg") if use_hg else None)
    d = Discriminator(cfg["d_filters"], name="d")
    return {"hg": hg, "g_bl": g_bl, "g_s": g_s, "decoder": decoder, "d": d}


def build_hg(variant="small", zero_init=False):
    """The HG alone (stage 1)."""
    cfg = VARIANTS[variant]
    return HourglassNet(cfg["hg_stacks"], cfg["hg_features"], cfg["hg_depth"],
                        zero_init=zero_init, name="hg")


def g_bl_input(blurred, hg_out):
    """G_bl's conditioning input: ``concat(I_bl, HG(I_bl))`` [B, H, W, 6], or ``I_bl`` alone."""
    if hg_out is None:
        return blurred
    return ops.concatenate([ops.cast(blurred, "float32"), ops.cast(hg_out, "float32")], axis=-1)


def deblur(hg, g_bl, blurred):
    """Test-time path (Fig. 2 right): ``G_bl(concat(I_bl, HG(I_bl)))``; [B,H,W,3] -> [B,H,W,3]."""
    hg_out = hg(blurred, training=False) if hg is not None else None
    return g_bl(g_bl_input(blurred, hg_out), training=False)


class CGANDeblurrer(keras.Model):
    """Inference model HG + G_bl (test-time path of Fig. 2, right), what ``deblur``, ``export``
    and the shipped weights use: blurry [B, H, W, 3] in [0, 1] (H, W multiples of 128,
    ``common.inference`` pads) -> deblurred [B, H, W, 3] float32 in [0, 1].

    Built from the training flags that shape the networks (``variant``, ``use_hg``,
    ``global_residual``, ``hg_zero_init``, ``unet_skips``), so a saved ``.keras`` file rebuilds
    the same HG and G_bl (layer names ``hg`` / ``g_bl`` as in training) and loads their weights;
    files saved before ``unet_skips`` existed load with its default ``(1, 2)``.
    """

    def __init__(self, variant="small", use_hg=True, global_residual=False, hg_zero_init=False,
                 unet_skips=(1, 2), **kwargs):
        super().__init__(**kwargs)
        self.variant, self.use_hg = variant, bool(use_hg)
        self.global_residual, self.hg_zero_init = bool(global_residual), bool(hg_zero_init)
        self.unet_skips = parse_skips(unet_skips)
        nets = build_networks(variant, use_hg=use_hg, identity=False,
                              global_residual=global_residual, hg_zero_init=hg_zero_init,
                              unet_skips=self.unet_skips)
        self.hg, self.g_bl = nets["hg"], nets["g_bl"]

    def call(self, blurred):
        return ops.clip(deblur(self.hg, self.g_bl, blurred), 0.0, 1.0)

    def get_config(self):
        return {**super().get_config(), "variant": self.variant, "use_hg": self.use_hg,
                "global_residual": self.global_residual, "hg_zero_init": self.hg_zero_init,
                "unet_skips": list(self.unet_skips)}


keras.saving.register_keras_serializable(package="paper2_identity_cgan")(CGANDeblurrer)
