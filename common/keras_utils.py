"""Keras helpers shared by the three papers' networks (`keras.layers` / `keras.ops` only, so they
run under any Keras backend).

    self.blocks = track(self, "block", [...])   layers in a list, each also an attribute block_<i>
    tracked(self, "block")                      the layers `track` stored, in order
    instance_norm()                             instance normalisation (GroupNormalization, groups=-1)
    pad_to_multiple(x, 16)                      mirror-pad H, W at the bottom/right to multiples of 16
    remat_call(layer, x, enabled)               layer(x), recomputed in backprop when enabled

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
