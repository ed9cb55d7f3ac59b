"""The CycleGAN history pool (Shrivastava et al. 2017; Zhu et al. Sec. 4): discriminators are
updated with a mix of current and previously generated images, which damps oscillation.

TensorFlow training machinery (not a model): the buffer is a `tf.Variable`, so it is checkpointed
with the rest of the training state and can be queried inside a `tf.function` train step.
Per image of a batch: while the pool holds fewer than `size` images, the image is stored and
returned; once full, with probability 0.5 a random stored image is returned and replaced by the
new one, otherwise the new image is returned unchanged. size 0 disables the pool.
"""
from __future__ import annotations

import tensorflow as tf


class ImagePool(tf.Module):
    """History of generated images. query(images [B,H,W,C]) -> [B,H,W,C] (same dtype as the buffer)."""

    def __init__(self, size=50, image_shape=(256, 256, 3), seed=0, name=None):
        super().__init__(name=name)
        self.size = int(size)
        self.image_shape = tuple(int(s) for s in image_shape)
        buf_shape = (max(self.size, 1),) + self.image_shape
        self.buffer = tf.Variable(tf.zeros(buf_shape, tf.float32), trainable=False, name="buffer")
        self.count = tf.Variable(0, dtype=tf.int32, trainable=False, name="count")
        self.rng = tf.random.Generator.from_seed(seed)

    def query(self, images):
        if self.size == 0:
            return images
        images = tf.convert_to_tensor(images)
        dtype = images.dtype
        images = tf.cast(images, tf.float32)
        batch = images.shape[0]
        if batch is None:
            raise ValueError("ImagePool.query needs a static batch size")
        if tuple(images.shape[1:]) != self.image_shape:
            raise ValueError(f"ImagePool holds images of shape {self.image_shape}, "
                             f"got {tuple(images.shape[1:])}")
        outputs = []
        for b in range(batch):
            image = images[b]
            outputs.append(tf.cond(self.count < self.size,
                                   lambda image=image: self._insert(image),
                                   lambda image=image: self._swap(image)))
        return tf.cast(tf.stack(outputs), dtype)

    def _insert(self, image):
        self.buffer.scatter_nd_update([[self.count]], image[None])
        self.count.assign_add(1)
        return tf.identity(image)

    def _swap(self, image):
        p = self.rng.uniform([], 0.0, 1.0)
        idx = self.rng.uniform([], 0, self.size, dtype=tf.int32)

        def swap():
            old = tf.identity(self.buffer[idx])
            with tf.control_dependencies([old]):
                self.buffer.scatter_nd_update([[idx]], image[None])
            return old

        return tf.cond(p > 0.5, swap, lambda: tf.identity(image))
