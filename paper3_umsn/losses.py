"""UMSN losses, one pure function per equation (Yasarla et al., IEEE TIP 2020, Sec. III-D).

Every function casts its inputs to float32 and returns a float32 scalar (or a per-class vector
where noted). Images NHWC in [0, 1]; masks [B,H,W,M] (M = 4 classes), soft or one-hot.
Weights are not applied here except where an equation has its own constant (lambda in Eq. 4);
`train.py` combines the terms in one visible place.
"""
import numpy as np
import keras
from keras import ops

# ImageNet channel means (BGR, 0-255) that VGG16's Caffe-style weights expect.
_VGG_MEAN_BGR = (103.939, 116.779, 123.68)


def _f32(*xs):
    return [ops.cast(x, "float32") for x in xs]


def per_sample_class_l1(target, pred, masks):
    """L(m_i * x_hat, m_i * x) of Eq. 2 for each example and class: [B,M].

    Mean over H, W and the 3 colour channels of |m_i * x_hat - m_i * x|.
    """
    target, pred, masks = _f32(target, pred, masks)
    diff = ops.abs(pred - target)                                   # [B,H,W,3]
    # |m*a - m*b| = m*|a-b| for m >= 0; mean over H, W, C.
    per = ops.mean(ops.expand_dims(diff, -1) * ops.expand_dims(masks, -2), axis=(1, 2, 3))
    return per                                                      # [B,M]


def class_l1_losses(target, pred, masks):
    """Per-class L1 (Eq. 2): vector [M], L_i = mean over the batch of per_sample_class_l1."""
    return ops.mean(per_sample_class_l1(target, pred, masks), axis=0)


def class_reconstruction_loss(target, pred, masks, class_weights=None):
    """Eq. 3: L(x_hat, x) = sum_i w_i L(m_i * x_hat, m_i * x); w_i = 1 in the paper."""
    per = class_l1_losses(target, pred, masks)
    if class_weights is not None:
        per = per * ops.convert_to_tensor(np.asarray(class_weights, np.float32))
    return ops.sum(per)


def confidence_loss(target, pred, masks, confidences, lam=0.01, class_weights=None, eps=1e-8):
    """Eq. 4: L_c = sum_i C_i L(m_i * x_hat, m_i * x) - lambda log(C_i), averaged over the batch.

    confidences: [B,M] in (0, 1], one C_i per example and class (from CN, Fig. 6).
    class_weights: optional per-class factors on the data term (authors' code; paper: none).
    """
    (confidences,) = _f32(confidences)
    per = per_sample_class_l1(target, pred, masks)                 # [B,M]
    if class_weights is not None:
        per = per * ops.convert_to_tensor(np.asarray(class_weights, np.float32))
    terms = confidences * per - lam * ops.log(confidences + eps)
    return ops.mean(ops.sum(terms, axis=-1))


def perceptual_loss(target, pred, feature_fn):
    """Eq. 5: L_p = ||Phi(x_hat) - Phi(x)||_2^2, as the mean over feature elements.

    feature_fn: images [B,H,W,3] in [0,1] -> features (VGG16 relu1_2 in the paper: `Vgg16Relu12`).
    """
    target, pred = _f32(target, pred)
    ft = ops.stop_gradient(ops.cast(feature_fn(target), "float32"))
    fp = ops.cast(feature_fn(pred), "float32")
    return ops.mean(ops.square(fp - ft))


def total_loss(l_c, l_p, lambda_1=1.0):
    """Eq. 6: L_total = L_c + lambda_1 L_p (lambda_1 = 1.0 in the paper)."""
    return ops.cast(l_c, "float32") + lambda_1 * ops.cast(l_p, "float32")


def l1_loss(target, pred):
    """Plain mean absolute error (Eq. 1's ||x - x_hat||_1 as a mean; F-Net pre-training)."""
    target, pred = _f32(target, pred)
    return ops.mean(ops.abs(pred - target))


def gradient_l1_loss(target, pred):
    """Authors' code extra: L1 between horizontal and vertical finite differences (sum of both)."""
    target, pred = _f32(target, pred)
    dh = lambda x: x[:, :, 1:, :] - x[:, :, :-1, :]
    dv = lambda x: x[:, 1:, :, :] - x[:, :-1, :, :]
    return (ops.mean(ops.abs(ops.abs(dh(pred)) - ops.abs(dh(target))))
            + ops.mean(ops.abs(ops.abs(dv(pred)) - ops.abs(dv(target)))))


def segmentation_cross_entropy(class_ids, logits):
    """SN loss (Sec. IV-A-1): mean softmax cross-entropy. class_ids int [B,H,W] or [B,H,W,1]."""
    (logits,) = _f32(logits)
    ids = ops.cast(class_ids, "int32")
    if len(ids.shape) == 4:
        ids = ids[..., 0]
    ce = keras.losses.sparse_categorical_crossentropy(ids, logits, from_logits=True)
    return ops.mean(ce)


class Vgg16Relu12(keras.layers.Layer):
    """VGG16 up to relu1_2 (conv1_1, conv1_2 + ReLU), the feature Phi of Eq. 5.

    Input images [B,H,W,3] RGB in [0,1]; converted to Caffe-style BGR 0-255 minus the ImageNet mean
    as the Keras VGG16 weights expect. Output [B,H,W,64]. Frozen (not trainable).
    """

    def __init__(self, **kwargs):
        super().__init__(trainable=False, **kwargs)
        self.conv1 = keras.layers.Conv2D(64, 3, padding="same", activation="relu", name="block1_conv1")
        self.conv2 = keras.layers.Conv2D(64, 3, padding="same", activation="relu", name="block1_conv2")

    def call(self, x):
        x = ops.cast(x, "float32") * 255.0
        x = ops.stack([x[..., 2] - _VGG_MEAN_BGR[0], x[..., 1] - _VGG_MEAN_BGR[1],
                       x[..., 0] - _VGG_MEAN_BGR[2]], axis=-1)
        return self.conv2(self.conv1(x))


def load_vgg16_relu12(weights_path=None, allow_random=False):
    """Build `Vgg16Relu12` and load its two convs from a Keras VGG16 weights file.

    weights_path: a local Keras VGG16 weights file (e.g.
    `vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5`, or a `.weights.h5` saved from
    `keras.applications.VGG16`). Nothing is downloaded. Without a path, raises unless
    `allow_random=True` (tests only): a perceptual loss on random features is not the paper's.
    """
    import os
    vgg = Vgg16Relu12(name="vgg16_relu1_2")
    # one call builds conv1/conv2 (Layer.build would leave them unbuilt, without weights to set)
    vgg(keras.ops.zeros((1, 4, 4, 3)))
    if not weights_path:
        if allow_random:
            return vgg
        raise ValueError("the perceptual loss (Eq. 5) needs ImageNet VGG16 weights: pass "
                         "--vgg16_weights=/path/to/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5 "
                         "(no download is attempted), or set --lambda_1=0 to train without L_p")
    if not os.path.exists(weights_path):
        raise FileNotFoundError(f"--vgg16_weights: file not found: {weights_path}")
    full = keras.applications.VGG16(include_top=False, weights=None, input_shape=(None, None, 3))
    try:
        full.load_weights(weights_path)
    except Exception as e:  # noqa: BLE001 - re-raise with the flag named
        raise ValueError(f"--vgg16_weights: could not load Keras VGG16 weights from {weights_path}: {e}") from e
    vgg.conv1.set_weights(full.get_layer("block1_conv1").get_weights())
    vgg.conv2.set_weights(full.get_layer("block1_conv2").get_weights())
    return vgg
