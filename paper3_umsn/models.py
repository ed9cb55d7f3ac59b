"""UMSN networks: ResBlock, SN, F-Net-i, BN, UMSN (fusion + NRL) and the confidence network CN.

Yasarla, Perazzi & Patel, "Deblurring Face Images using Uncertainty Guided Multi-Stream Semantic
Networks", IEEE TIP 2020. Figures: Fig. 3 (SN), Fig. 4 (ResBlock), Fig. 5 (F-Net / BN), Fig. 6 (CN);
layer sequence: Appendix A. Widths follow Appendix A; where the paper is silent the authors' public
code (`models/face_fed.py`) was read for the constant (see `paper3_umsn/README.md`).

All tensors are NHWC, images float in [0, 1]. Only `keras.layers` / `keras.ops` are used, so the
networks also run under `KERAS_BACKEND=jax`. Every network ends in a float32 layer, so a mixed
precision policy never leaks into the losses.

Stride: SN downsamples twice (inputs must be multiples of 4); BN and the F-Nets once (multiples of
2). `UMSN_STRIDE` is what `common.inference` pads to.
"""
import numpy as np
import keras
from keras import layers, ops

from common.keras_utils import instance_norm, remat_call, track, tracked

NUM_CLASSES = 4  # m1 background, m2 face skin, m3 brows+eyes+nose+lips+teeth, m4 hair (Sec. III)
UMSN_STRIDE = 4

# Table VI rows, selected by --ablation.
ABLATIONS = ("bn", "bn_sem", "bn_sem_nrl", "umsn_no_lc", "umsn")

VARIANTS = {
    # Appendix A: BN = ResBlock(3,64)-Avgpool-5xResBlock(64,64)-Upsample-ResBlock(64,16)-Conv3x3(16,3);
    # F-Net-i = ResBlock(3,16)-Avgpool-3xResBlock(16,16)-ResBlock(16,8). inter_mult: the ResBlock's
    # inner width is inter_mult * out (authors' code: 3). SN widths: authors' code (64).
    "paper": dict(bn_width=64, bn_out=16, bn_mid_blocks=5, fnet_width=16, fnet_out=8,
                  fnet_mid_blocks=3, sn_width=64, sn_mid_blocks=3, inter_mult=3, cn_width=16,
                  nrl_width=16),
    # Same topology, narrow: for tests and CPU smoke runs.
    "tiny": dict(bn_width=8, bn_out=8, bn_mid_blocks=1, fnet_width=4, fnet_out=4,
                 fnet_mid_blocks=1, sn_width=8, sn_mid_blocks=1, inter_mult=1, cn_width=4,
                 nrl_width=8),
    # Between the two: what a 30-minute CPU run can afford.
    "small": dict(bn_width=32, bn_out=16, bn_mid_blocks=3, fnet_width=8, fnet_out=8,
                  fnet_mid_blocks=2, sn_width=16, sn_mid_blocks=1, inter_mult=2, cn_width=8,
                  nrl_width=16),
}


def _variant(name):
    if isinstance(name, dict):
        return dict(name)
    if name not in VARIANTS:
        raise ValueError(f"unknown UMSN variant {name!r}; choose one of {sorted(VARIANTS)}")
    return dict(VARIANTS[name])


class SharedSmoothing(layers.Layer):
    """Smoothed dilated convolution pre-filter (Wang & Ji 2018; Fig. 4, right).

    One 3x3 kernel shared by every channel (a depthwise conv whose kernel is tiled over the
    channels), initialised to the identity (1 at the centre), placed before a dilated conv.
    [B,H,W,C] -> [B,H,W,C].
    """

    def __init__(self, kernel_size=3, **kwargs):
        super().__init__(**kwargs)
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.kernel_size = kernel_size

    def build(self, input_shape):
        k = self.kernel_size
        self.kernel = self.add_weight(name="kernel", shape=(k, k, 1, 1), initializer="zeros")
        identity = np.zeros((k, k, 1, 1), np.float32)
        identity[k // 2, k // 2] = 1.0
        self.kernel.assign(identity)

    def call(self, x):
        channels = ops.shape(x)[-1]
        kernel = ops.tile(ops.cast(self.kernel, x.dtype), (1, 1, channels, 1))
        return ops.depthwise_conv(x, kernel, strides=1, padding="same")

    def get_config(self):
        return {**super().get_config(), "kernel_size": self.kernel_size}


class NormReluConv(layers.Layer):
    """Fig. 3/4 'Conv l x l (p,q)': instance norm -> ReLU -> conv (no bias). [B,H,W,p] -> [B,H,W,q]."""

    def __init__(self, filters, kernel_size=1, dilation_rate=1, smoothed=False, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size = filters, kernel_size
        self.dilation_rate, self.smoothed = dilation_rate, smoothed
        self.norm = instance_norm()
        self.smooth = SharedSmoothing(3) if smoothed else None
        self.conv = layers.Conv2D(filters, kernel_size, padding="same", dilation_rate=dilation_rate,
                                  use_bias=False)

    def call(self, x):
        h = ops.relu(self.norm(x))
        if self.smooth is not None:
            h = self.smooth(h)
        return self.conv(h)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "dilation_rate": self.dilation_rate, "smoothed": self.smoothed}


class ResBlock(layers.Layer):
    """ResBlock(p, q) of Fig. 4: [B,H,W,p] -> [B,H,W,q].

    Inner path (width inter = inter_mult * q): IN-ReLU-Conv1x1, IN-ReLU-Conv3x3,
    IN-ReLU-Conv3x3(dilation 2), IN-ReLU-[shared smoothing]-Conv3x3(dilation 2) -> q channels;
    plus a 1x1 shortcut of the input; the sum is concatenated with the input (dense connection,
    p + q channels) and a DenseNet transition IN-ReLU-Conv1x1 brings it to q channels.
    `dilated=False` replaces the two dilated convs by plain 3x3 (used where the authors do).
    """

    def __init__(self, filters, inter_mult=3, dilated=True, smoothed=True, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.inter_mult = filters, inter_mult
        self.dilated, self.smoothed = dilated, smoothed
        inter = max(1, int(round(inter_mult * filters)))   # inter_mult may be fractional (Table VI BN)
        d = 2 if dilated else 1
        self.c1 = NormReluConv(inter, 1)
        self.c2 = NormReluConv(inter, 3)
        self.c3 = NormReluConv(inter, 3, dilation_rate=d)
        self.c4 = NormReluConv(filters, 3, dilation_rate=d, smoothed=smoothed and dilated)
        self.shortcut = layers.Conv2D(filters, 1, use_bias=False)
        self.transition = NormReluConv(filters, 1)
        self.remat = False   # see set_remat

    def call(self, x):
        h = x
        for unit in (self.c1, self.c2, self.c3, self.c4):
            h = _call(unit, h, self.remat)
        h = h + self.shortcut(x)
        return _call(self.transition, ops.concatenate([x, h], axis=-1), self.remat)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "inter_mult": self.inter_mult,
                "dilated": self.dilated, "smoothed": self.smoothed}


def _call(block, x, remat):
    """block(x), or its rematerialised call: same values and gradients, but the block's inner
    activations are recomputed during backprop instead of being kept (`keras.remat`)."""
    return remat_call(block, x, remat)


REMAT_MODES = ("none", "blocks", "units")


def set_remat(model, mode="blocks"):
    """Recompute activations of UMSN (and its F-Net streams) or of an F-Net in the backward pass.

    "blocks": each ResBlock keeps only its input; its inside is recomputed during backprop.
    "units": also, inside that recomputation, each IN-ReLU-Conv unit keeps only its input (the
    block's inside is computed once more; the least memory). "none": keep everything.
    Training-memory switch only: no weight, name or output changes; the gradients are the same
    up to float rounding (tests/paper3_umsn/test_remat.py). A frozen, forward-only SN gains nothing.
    """
    if mode not in REMAT_MODES:
        raise ValueError(f"remat mode {mode!r}: choose one of {REMAT_MODES}")
    nets = [model] + list(getattr(model, "fnets", []))
    for net in nets:
        net.remat = mode != "none"
        for block in net._flatten_layers(include_self=False, recursive=True):
            if isinstance(block, ResBlock):
                block.remat = mode == "units"
    return model


def _avgpool(x):
    return ops.average_pool(x, 2, strides=2, padding="valid")


def _upsample(x):
    return ops.repeat(ops.repeat(x, 2, axis=1), 2, axis=2)


def _check_multiple(x, stride, who):
    h, w = x.shape[1], x.shape[2]
    for size in (h, w):
        if size is not None and size % stride:
            raise ValueError(f"{who}: height and width must be multiples of {stride}, got {h}x{w}; "
                             "pad the input (common.keras_utils.pad_to_multiple)")


class SegmentationNetwork(keras.Model):
    """SN (Fig. 3): blurry face [B,H,W,3] in [0,1] -> class logits [B,H,W,4] float32.

    ResBlock(3,w)-Avgpool-[concat half-scale input]-ResBlock(w+3,w)-Avgpool-k x ResBlock(w,w)-
    Upsample-[concat skip]-ResBlock(2w,w)-Upsample-[concat skip]-ResBlock(2w,16)-Conv3x3(16,4).
    softmax(logits) gives the soft masks m_hat (Sec. III-A). H, W multiples of 4.
    """

    def __init__(self, width=64, mid_blocks=3, inter_mult=3, **kwargs):
        super().__init__(**kwargs)
        self.width, self.mid_blocks, self.inter_mult = width, mid_blocks, inter_mult
        self.enc1 = ResBlock(width, inter_mult, dilated=False)
        self.enc2 = ResBlock(width, inter_mult)
        track(self, "mid", [ResBlock(width, inter_mult) for _ in range(mid_blocks)])
        self.dec2 = ResBlock(width, inter_mult)
        self.dec1 = ResBlock(16, inter_mult, dilated=False)
        self.head = layers.Conv2D(NUM_CLASSES, 3, padding="same", dtype="float32")

    @property
    def mid(self):
        return tracked(self, "mid")

    def call(self, y):
        _check_multiple(y, 4, "SN")
        y = ops.cast(y, self.compute_dtype)
        e1 = self.enc1(y)                                   # [B,H,W,w]
        y_half = _avgpool(y)
        e2 = self.enc2(ops.concatenate([_avgpool(e1), y_half], -1))  # [B,H/2,W/2,w]
        h = _avgpool(e2)                                    # [B,H/4,W/4,w]
        for block in self.mid:
            h = block(h)
        h = self.dec2(ops.concatenate([_upsample(h), e2], -1))
        h = self.dec1(ops.concatenate([_upsample(h), e1], -1))
        return self.head(h)

    def get_config(self):
        return {**super().get_config(), "width": self.width, "mid_blocks": self.mid_blocks,
                "inter_mult": self.inter_mult}


class FNet(keras.Model):
    """First-stage semantic stream F-Net-i (Fig. 5, Appendix A).

    Input: blurry image and its class mask, [B,H,W,3] and [B,H,W,1] (H, W even).
    `features(y, m)`: ResBlock(4,w)-Avgpool-k x ResBlock(w,w) -> [B,H/2,W/2,w]: what UMSN
    concatenates into BN ("F-Net" = all layers but the last ResBlock and Conv3x3, Sec. III-C).
    `call([y, m])`: + ResBlock(w,out)-Upsample-Conv3x3(out,3), residual added to y -> the stream's
    own deblurred image [B,H,W,3] float32, used only to pre-train the stream (Sec. IV-A-2-a).
    """

    def __init__(self, width=16, out_width=8, mid_blocks=3, inter_mult=3, **kwargs):
        super().__init__(**kwargs)
        self.width, self.out_width = width, out_width
        self.mid_blocks, self.inter_mult = mid_blocks, inter_mult
        self.first = ResBlock(width, inter_mult, dilated=False)
        track(self, "mid", [ResBlock(width, inter_mult) for _ in range(mid_blocks)])
        self.last = ResBlock(out_width, inter_mult)
        self.head = layers.Conv2D(3, 3, padding="same", dtype="float32", kernel_initializer="zeros")
        self.remat = False   # see set_remat

    def features(self, y, m):
        _check_multiple(y, 2, "F-Net")
        h = _call(self.first, ops.cast(ops.concatenate([y, m], -1), self.compute_dtype), self.remat)
        h = _avgpool(h)
        for block in self.mid:
            h = _call(block, h, self.remat)
        return h

    @property
    def mid(self):
        return tracked(self, "mid")

    def call(self, inputs):
        y, m = inputs
        h = self.last(self.features(y, m))
        return ops.cast(y, "float32") + self.head(_upsample(h))

    def get_config(self):
        return {**super().get_config(), "width": self.width, "out_width": self.out_width,
                "mid_blocks": self.mid_blocks, "inter_mult": self.inter_mult}


class UMSN(keras.Model):
    """The deblurring network: BN (Fig. 5, Appendix A), optional F-Net-i streams and NRL.

    Inputs: y [B,H,W,3] blurry in [0,1]; m_hat [B,H,W,4] soft class masks from SN (H, W even).
    Returns a dict: "x_hat" [B,H,W,3] float32 deblurred; "x_hat_half" [B,H/2,W/2,3] float32
    (half-scale output, only used by the authors' optional half-scale loss).

    BN: ResBlock(c_in,64)-Avgpool-[concat F-Net-i features]-5 x ResBlock(64,64)-Upsample-
    [concat full-res skip (UNet)]-ResBlock(128,16); residual learning x_hat = y + Conv3x3(.)
    (Sec. III-B). NRL (Sec. III-C): the last features are added to Conv1x1([y, m_hat]) before the
    final Conv3x3, whose output is added to y.

    ablation (Table VI): "bn" (y only), "bn_sem" (+ m_hat input), "bn_sem_nrl" (+ NRL),
    "umsn_no_lc" / "umsn" (+ F-Net-i streams; the two differ only in the loss).
    """

    def __init__(self, variant="paper", ablation="umsn", bn_inter_mult=None, **kwargs):
        super().__init__(**kwargs)
        if ablation not in ABLATIONS:
            raise ValueError(f"unknown ablation {ablation!r}; choose one of {ABLATIONS}")
        self.variant, self.ablation = variant, ablation
        self.bn_inter_mult = bn_inter_mult
        v = _variant(variant)
        self.use_masks = ablation != "bn"
        self.use_nrl = ablation in ("bn_sem_nrl", "umsn_no_lc", "umsn")
        self.use_fnets = ablation in ("umsn_no_lc", "umsn")
        # BN's ResBlocks; bn_inter_mult widens their inner convs (Table VI: BN matched to UMSN's
        # parameter count, `matched_bn_inter_mult`); the F-Nets keep the variant's inter_mult.
        im = v["inter_mult"]
        bim = bn_inter_mult or im
        self.first = ResBlock(v["bn_width"], bim, dilated=False)
        track(self, "mid", [ResBlock(v["bn_width"], bim)
                                               for _ in range(v["bn_mid_blocks"])])
        self.last = ResBlock(v["bn_out"], bim, dilated=False)
        # Residual heads start at zero, so x_hat = y at initialisation (residual learning).
        self.half_head = layers.Conv2D(3, 3, padding="same", dtype="float32",
                                       kernel_initializer="zeros")
        if self.use_fnets:
            track(self, "fnet", [
                FNet(v["fnet_width"], v["fnet_out"], v["fnet_mid_blocks"], im, name=f"fnet_{i + 1}")
                for i in range(NUM_CLASSES)])
        if self.use_nrl:
            self.nrl_in = layers.Conv2D(v["bn_out"], 1)
        self.head = layers.Conv2D(3, 3, padding="same", dtype="float32", kernel_initializer="zeros")
        self.remat = False   # see set_remat

    @property
    def mid(self):
        return tracked(self, "mid")

    @property
    def fnets(self):
        return tracked(self, "fnet")

    def call(self, inputs):
        y, m_hat = inputs
        _check_multiple(y, 2, "UMSN")
        y = ops.cast(y, self.compute_dtype)
        m_hat = ops.cast(m_hat, self.compute_dtype)
        x_in = ops.concatenate([y, m_hat], -1) if self.use_masks else y
        e1 = _call(self.first, x_in, self.remat)             # [B,H,W,64]
        h = _avgpool(e1)                                     # ResBlock-Avgpool
        if self.use_fnets:
            feats = [f.features(y, m_hat[..., i:i + 1]) for i, f in enumerate(self.fnets)]
            h = ops.concatenate([h] + feats, -1)             # Fig. 2: fused with BN's first layer
        for block in self.mid:
            h = _call(block, h, self.remat)
        y32 = ops.cast(y, "float32")
        x_half = _avgpool(y32) + self.half_head(h)
        g = _call(self.last, ops.concatenate([_upsample(h), e1], -1), self.remat)   # [B,H,W,16]
        if self.use_nrl:
            g = g + self.nrl_in(x_in)                        # class-specific residual (NRL)
        return {"x_hat": y32 + self.head(g), "x_hat_half": x_half}

    def get_config(self):
        cfg = {**super().get_config(), "variant": self.variant, "ablation": self.ablation}
        if self.bn_inter_mult:
            cfg["bn_inter_mult"] = self.bn_inter_mult
        return cfg


class ConfidenceNetwork(keras.Model):
    """CN (Fig. 6): (m_i * x_hat, m_i * x) [B,H,W,3] each -> confidence C_i [B] in (0, 1).

    Conv3x3(6,w)-Avgpool-3 x [IN-ReLU-Conv3x3 x2-Avgpool]-global average-Dense(1)-sigmoid
    (the authors' `scale_kernel_conf` uses the same shape: pools, then a sigmoid). One CN is shared
    by the four classes, as in the authors' code. Only used by the loss (Eq. 4), never at inference.
    """

    def __init__(self, width=16, **kwargs):
        super().__init__(**kwargs)
        self.width = width
        self.stem = layers.Conv2D(width, 3, padding="same")
        track(self, "block_a", [NormReluConv(2 * width, 3) for _ in range(3)])
        track(self, "block_b", [NormReluConv(width, 3) for _ in range(3)])
        self.out = layers.Dense(1, dtype="float32")

    def call(self, inputs):
        pred, target = inputs
        h = self.stem(ops.cast(ops.concatenate([pred, target], -1), self.compute_dtype))
        h = _avgpool(h)
        for a, b in zip(tracked(self, "block_a"), tracked(self, "block_b")):
            h = b(a(h))
            if h.shape[1] is None or h.shape[1] >= 2:
                h = ops.average_pool(h, 2, strides=2, padding="same")
        h = ops.mean(h, axis=(1, 2))
        return ops.sigmoid(self.out(h))[:, 0]

    def get_config(self):
        return {**super().get_config(), "width": self.width}


class UMSNDeblurrer(keras.Model):
    """Inference model SN + UMSN: blurry [B,H,W,3] in [0,1] -> deblurred [B,H,W,3] float32.

    m_hat = softmax(SN(y)) (or nothing for the "bn" ablation), x_hat = UMSN(y, m_hat), clipped to
    [0, 1]. H, W multiples of 4 (`common.inference` pads). This is what `deblur` and `export` use.
    """

    def __init__(self, sn, umsn, **kwargs):
        super().__init__(**kwargs)
        self.sn, self.umsn = sn, umsn

    def call(self, y):
        m_hat = ops.softmax(self.sn(y), axis=-1)
        return ops.clip(self.umsn([y, m_hat])["x_hat"], 0.0, 1.0)

    def get_config(self):
        return {**super().get_config(),
                "sn": keras.saving.serialize_keras_object(self.sn),
                "umsn": keras.saving.serialize_keras_object(self.umsn)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        sn = keras.saving.deserialize_keras_object(config.pop("sn"))
        umsn = keras.saving.deserialize_keras_object(config.pop("umsn"))
        return cls(sn, umsn, **config)


# Registration for .keras save/load with safe_mode=True.
for _cls in (SharedSmoothing, NormReluConv, ResBlock, SegmentationNetwork, FNet, UMSN,
             ConfidenceNetwork, UMSNDeblurrer):
    keras.saving.register_keras_serializable(package="paper3_umsn")(_cls)


def build_sn(variant="paper"):
    v = _variant(variant)
    return SegmentationNetwork(v["sn_width"], v["sn_mid_blocks"], v["inter_mult"], name="sn")


def build_fnets(variant="paper"):
    v = _variant(variant)
    return [FNet(v["fnet_width"], v["fnet_out"], v["fnet_mid_blocks"], v["inter_mult"],
                 name=f"fnet_{i + 1}") for i in range(NUM_CLASSES)]


def build_umsn(variant="paper", ablation="umsn", bn_inter_mult=None):
    return UMSN(variant, ablation, bn_inter_mult=bn_inter_mult, name="umsn")


def umsn_param_count(variant="paper", ablation="umsn", bn_inter_mult=None, size=8):
    """Weights of UMSN(variant, ablation, bn_inter_mult), built on a [1,size,size,*] input."""
    net = build_umsn(variant, ablation, bn_inter_mult)
    net([np.zeros((1, size, size, 3), np.float32), np.full((1, size, size, NUM_CLASSES), 0.25, np.float32)])
    return int(net.count_params())


# matched_bn_inter_mult(name) of each named variant, measured once (README, Table VI):
# tiny 12,135 vs UMSN 11,783 (+3.0 %: 8-channel blocks leave coarse steps), small 498,022 vs
# 495,861 (+0.4 %), paper 5,653,098 vs 5,666,795 (-0.2 %); plain BN: 6,771 / 416,797 / 4,843,695.
MATCHED_BN_INTER_MULT = {"tiny": 1.4375, "small": 2.207, "paper": 3.2725}


def bn_inter_mult_for(variant, ablation, match_params):
    """The bn_inter_mult a run builds with: None (the variant's) unless match_params and the
    ablation is "bn" (Table VI's widened baseline); a named variant's value from
    MATCHED_BN_INTER_MULT, else `matched_bn_inter_mult`."""
    if not match_params or ablation != "bn":
        return None
    if isinstance(variant, str) and variant in MATCHED_BN_INTER_MULT:
        return MATCHED_BN_INTER_MULT[variant]
    return matched_bn_inter_mult(variant)


def matched_bn_inter_mult(variant="paper", ablation="bn", target="umsn", tol=0.005):
    """Table VI: "BN and UMSN are configured to have the same number of learnable parameters by
    setting appropriate number of output channels in the intermediate convolutional layers of the
    ResBlock" (Sec. IV-C). Returns the (fractional) inner-width multiplier of BN's ResBlocks that
    gives UMSN(variant, ablation) the parameter count of UMSN(variant, target): bisection on the
    multiplier until the counts agree within `tol` (relative), else the closer end (inner widths
    are whole channels, so narrow variants match only to a channel's worth of weights)."""
    goal = umsn_param_count(variant, target)
    lo = float(_variant(variant)["inter_mult"])
    if umsn_param_count(variant, ablation, lo) >= goal:
        return lo
    hi = 2.0 * lo
    while umsn_param_count(variant, ablation, hi) < goal:
        hi *= 2.0
    for _ in range(30):
        mid = 0.5 * (lo + hi)
        n = umsn_param_count(variant, ablation, mid)
        if abs(n - goal) <= tol * goal:
            return round(mid, 4)
        if n < goal:
            lo = mid
        else:
            hi = mid
    below, above = umsn_param_count(variant, ablation, lo), umsn_param_count(variant, ablation, hi)
    return round(hi if abs(above - goal) <= abs(goal - below) else lo, 4)


def build_cn(variant="paper"):
    return ConfidenceNetwork(_variant(variant)["cn_width"], name="cn")
