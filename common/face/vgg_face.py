"""VGG-Face (Parkhi et al. 2015) descriptor for paper 3's feature distance (UMSN Table IV).

The network is VGG-16 with 2622 identity outputs; the descriptor is the L2-normalised fc7
(4096-D). Its weights are not available offline, so the user gives a Keras weights file with
--vgg_face_weights=PATH (e.g. converted from the Oxford release into this layout's layer names);
without it an error names the flag. `allow_random=True` builds random weights (tests only).
"""
from __future__ import annotations

import os

import numpy as np

from common.face.base import Box, IdentityModel, as_uint8_rgb, l2_normalize

# Mean of the VGG-Face training set, RGB order (the Caffe model subtracts it in BGR).
VGG_FACE_MEAN_RGB = (129.1863, 104.7624, 93.5940)
FLAG = "--vgg_face_weights"


def build_vgg_face(input_size: int = 224, num_classes: int = 2622):
    """keras.Model float [B, S, S, 3] (mean-subtracted RGB) -> {'fc7': [B, 4096], 'fc8': [B, C]}."""
    import keras
    from keras import layers

    inputs = keras.Input((input_size, input_size, 3), name="image")
    x = inputs
    for block, (filters, convs) in enumerate([(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)], 1):
        for i in range(1, convs + 1):
            x = layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"conv{block}_{i}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{block}")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(4096, activation="relu", name="fc6")(x)
    fc7 = layers.Dense(4096, activation="relu", name="fc7")(x)
    fc8 = layers.Dense(num_classes, name="fc8", dtype="float32")(fc7)
    return keras.Model(inputs, {"fc7": fc7, "fc8": fc8}, name="vgg_face")


class VGGFace(IdentityModel):
    """VGG-Face fc7 descriptor (4096-D, L2-normalised) of a face crop.

    Args:
      weights: path to a Keras weights file (.weights.h5) for `build_vgg_face()`; required
        unless allow_random.
      allow_random: build with random weights (for tests of the plumbing only).
      input_size: network input side (224 in the paper).
    """

    name = "vgg_face"
    dim = 4096

    def __init__(self, weights: str | None = None, allow_random: bool = False, input_size: int = 224):
        if not weights and not allow_random:
            raise ValueError(
                f"VGG-Face weights are not shipped and never downloaded: pass {FLAG}=PATH to a Keras "
                f"weights file for common.face.vgg_face.build_vgg_face(), or use the dlib identity "
                f"model (--identity_model=dlib_resnet) and label the table accordingly.")
        if weights and not os.path.isfile(weights):
            raise FileNotFoundError(f"{FLAG}={weights}: no such file")
        self.input_size = int(input_size)
        self.model = build_vgg_face(self.input_size)
        if weights:
            try:
                self.model.load_weights(weights)
            except Exception as e:  # keras raises several types for a wrong file
                raise ValueError(f"{FLAG}={weights} could not be loaded into build_vgg_face(): {e}") from e
        self.weights = weights

    def preprocess(self, image, box: Box | None = None) -> np.ndarray:
        from PIL import Image
        img = as_uint8_rgb(image)
        if box is not None:
            h, w = img.shape[:2]
            l, t = max(int(round(box.left)), 0), max(int(round(box.top)), 0)
            r, b = min(int(round(box.right)), w), min(int(round(box.bottom)), h)
            if r > l and b > t:
                img = img[t:b, l:r]
        img = np.asarray(Image.fromarray(img).resize((self.input_size, self.input_size), Image.BILINEAR))
        return img.astype(np.float32) - np.asarray(VGG_FACE_MEAN_RGB, np.float32)

    def embed(self, image, box: Box | None = None) -> np.ndarray:
        return self.embed_many([image], [box])[0]

    def embed_many(self, images, boxes=None) -> np.ndarray:
        boxes = boxes if boxes is not None else [None] * len(images)
        x = np.stack([self.preprocess(im, b) for im, b in zip(images, boxes)])
        fc7 = np.asarray(self.model(x, training=False)["fc7"], np.float32)
        return np.stack([l2_normalize(v) for v in fc7])
