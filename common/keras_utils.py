"""Keras helpers shared by the three papers' networks (`keras.layers` / `keras.ops` only, so they
run under any Keras backend).

    self.blocks = track(self, "block", [...])   layers in a list, each also an attribute block_<i>
    tracked(self, "block")                      the layers `track` stored, in order
    instance_norm()                             instance normalisation (GroupNormalization, groups=-1)
    pad_to_multiple(x, 16)                      mirror-pad H, W at the bottom/right to multiples of 16
    remat_call(layer, x, enabled)               layer(x), recomputed in backprop when enabled
    fuse_instance_norms(model)                  TensorFlow backend: each instance norm as one fused
                                                kernel (training --fused_norm and inference)

Why `track`: Keras 3 tracks layers kept in Python lists for `.weights` and for `.keras` files, but
`tf.train.Checkpoint` does not follow those lists, so a checkpoint of the model would silently miss
their variables. Numbered attributes put every layer in the checkpoint's object graph. A model may
keep the returned list as an attribute too, or read the layers back with `tracked` (a property
`mid = property(lambda self: tracked(self, "mid"))`); which of the two a network does is part of
its saved structure, so a network that ships weights keeps the form it was saved with.
"""
from __future__ import annotations

import keras
from keras import layers, ops


def track(owner, prefix: str, items) -> list:
    """Sets `items` as attributes `<prefix>_0`, `<prefix>_1`, ... of `owner`; returns them as a list."""
    items = list(items)
    for i, item in enumerate(items):
        setattr(owner, f"{prefix}_{i}", item)
    return items


def tracked(owner, prefix: str) -> list:
    """The layers `track(owner, prefix, ...)` stored: `<prefix>_0`, `<prefix>_1`, ... until one is missing."""
    out = []
    while True:
        item = getattr(owner, f"{prefix}_{len(out)}", None)
        if item is None:
            return out
        out.append(item)


def remat_call(layer, x, enabled: bool):
    """layer(x); when enabled, its rematerialised call `keras.remat(layer)(x)` (TensorFlow:
    `tf.recompute_grad`): same values and gradients, but the layer's inner activations are
    recomputed during backprop instead of being kept (training memory for compute)."""
    return keras.remat(layer)(x) if enabled else layer(x)


def instance_norm(name=None):
    """Instance normalisation (Ulyanov et al. 2016) = GroupNormalization with one group per channel."""
    return layers.GroupNormalization(groups=-1, epsilon=1e-5, name=name)


def _mirror_pad_axis(x, axis: int, pad: int, size: int):
    """Pads `pad` entries after the end of `axis` (of static length `size`) by mirroring."""
    widths = [[0, 0] for _ in range(len(x.shape))]
    if pad < size:  # reflect: a b c d | c b a (edge not repeated), as numpy's "reflect"
        widths[axis][1] = pad
        return ops.pad(x, widths, mode="reflect")
    # Side too short to reflect: half-sample mirror (numpy's "symmetric": a b | b a | a b ...),
    # in steps no longer than the current side, since the backends' symmetric pad allows no more.
    while pad > 0:
        step = min(pad, size)
        widths[axis][1] = step
        x = ops.pad(x, widths, mode="symmetric")
        pad, size = pad - step, size + step
    return x


def pad_to_multiple(x, multiple: int):
    """Pads images [..., H, W, C] at the bottom/right so H and W are multiples of `multiple`.

    Mirror padding, per axis: numpy's "reflect" when the pad is shorter than the side, else
    numpy's "symmetric" repeated as needed (a 1-pixel side becomes edge padding). Any rank >= 3
    (an image [H,W,C] or a batch [B,H,W,C]); takes tensors or NumPy arrays (padded ones come back
    as tensors of the backend). Under symbolic H, W (a graph traced with unknown sizes) it
    reflects, which needs the pad shorter than the side. Crop back with `y[..., :H, :W, :]`.
    """
    multiple = int(multiple)
    if multiple < 1:
        raise ValueError(f"pad_to_multiple: multiple must be >= 1, got {multiple}")
    if len(x.shape) < 3:
        raise ValueError(f"pad_to_multiple: expected [..., H, W, C], got shape {tuple(x.shape)}")
    h, w = ops.shape(x)[-3], ops.shape(x)[-2]
    if isinstance(h, int) and isinstance(w, int):
        for axis, size in ((-3, h), (-2, w)):
            pad = (-size) % multiple
            if pad:
                x = _mirror_pad_axis(x, len(x.shape) + axis, pad, size)
        return x
    widths = [[0, 0] for _ in range(len(x.shape))]
    widths[-3][1], widths[-2][1] = (-h) % multiple, (-w) % multiple
    return ops.pad(x, widths, mode="reflect")


# When one call on the batch folded into channels (two transposes forward, two backward) beats B
# per-sample calls: maps of at most FOLD_MAX_ELEMENTS per sample (the per-call cost dominates) or
# of at most FOLD_MAX_CHANNELS channels (the per-sample kernel is slow on few channels); measured
# on UMSN `small`'s norm shapes, idle bfloat16 CPU (`benchmarks/instance_norm.py`).
FOLD_MAX_ELEMENTS = 64 * 64 * 16
FOLD_MAX_CHANNELS = 12


def folds_batch(h, w, c) -> bool:
    """Whether `fused_instance_norm`'s "auto" folds the batch of [B,h,w,c] maps into channels."""
    return c <= FOLD_MAX_CHANNELS or (h is not None and w is not None
                                      and h * w * c <= FOLD_MAX_ELEMENTS)


def fused_instance_norm(x, scale, offset, epsilon: float, mode: str = "auto"):
    """Instance norm of NHWC `x` by TensorFlow's fused batch-norm kernel in training mode:
    per-sample, per-channel mean and biased variance over H, W, then
    (x - mean) / sqrt(var + epsilon) * scale + offset, statistics in float32 (`scale`, `offset`:
    float32 [C]); returns float32-or-bfloat16 as the kernel gives (the input's dtype).
    mode "split": one kernel call per sample on [1,H,W,C] views of a batch of static size;
    "fold": the batch folded into channels, [B,H,W,C] -> [1,H,W,B*C], one call; "auto": fold
    where `folds_batch` says so or the batch size is unknown, else split. Both give the same
    formula's result (float rounding only)."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    def norm(t, s, o):
        return tf.compat.v1.nn.fused_batch_norm(t, s, o, epsilon=epsilon, is_training=True)[0]

    if mode not in ("auto", "split", "fold"):
        raise ValueError(f"fused_instance_norm: mode must be auto, split or fold, got {mode!r}")
    b, h, w, c = x.shape
    if mode == "auto":
        mode = "fold" if b is None or folds_batch(h, w, c) else "split"
    if b == 1:
        return norm(x, scale, offset)
    if mode == "split":
        if b is None:
            raise ValueError("fused_instance_norm: mode='split' needs a static batch size")
        return tf.concat([norm(xi, scale, offset) for xi in tf.split(x, b, axis=0)], 0)
    shape = tf.shape(x)
    nb, h, w = shape[0], shape[1], shape[2]
    xt = tf.reshape(tf.transpose(x, [1, 2, 0, 3]), [1, h, w, nb * c])
    y = norm(xt, tf.tile(scale, [nb]), tf.tile(offset, [nb]))
    return tf.transpose(tf.reshape(y, [h, w, nb, c]), [2, 0, 1, 3])


def _fused_instance_norm(self, x):
    """`GroupNormalization.call` of an instance norm (one group per channel) as
    `fused_instance_norm` (mode "auto"): one kernel instead of Keras's moments + normalise ops
    (same formula, float rounding only). Its gradient is TensorFlow's fused batch-norm gradient;
    it keeps no float32 copy of a bfloat16 input for backprop (Keras's layer upcasts and keeps
    it: training memory)."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    c = x.shape[-1]
    scale = tf.cast(self.gamma, tf.float32) if self.scale else tf.ones([c], tf.float32)
    offset = tf.cast(self.beta, tf.float32) if self.center else tf.zeros([c], tf.float32)
    return tf.cast(fused_instance_norm(x, scale, offset, self.epsilon), self.compute_dtype)


def instance_norms(model) -> list:
    """The instance norms of `model`: built `keras.layers.GroupNormalization` layers with one
    group per channel on the last axis."""
    out = []
    for layer in model._flatten_layers(include_self=False, recursive=True):  # pylint: disable=protected-access
        if not isinstance(layer, layers.GroupNormalization) or not layer.built:
            continue
        param = layer.gamma if layer.scale else layer.beta if layer.center else None
        if param is not None and layer.axis in (-1, 3) and layer.groups == int(param.shape[0]):
            out.append(layer)
    return out


def fuse_instance_norms(model) -> int:
    """Makes every built instance norm of `model` (`instance_norms`) run as one fused TensorFlow
    kernel (`_fused_instance_norm`), for inference and training (`--fused_norm`). Changes those
    layers' `call`, not their weights or saved structure; returns how many were changed (0 under
    another Keras backend, which keeps Keras's layer)."""
    import types  # pylint: disable=import-outside-toplevel
    if keras.backend.backend() != "tensorflow":
        return 0
    found = instance_norms(model)
    for layer in found:
        layer.call = types.MethodType(_fused_instance_norm, layer)
    return len(found)
