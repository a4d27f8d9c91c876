"""``BatchNormalization`` whose training step is TensorFlow's fused kernel.

Keras 3 normalises in training mode with ``moments`` plus five element-wise ops, and the
gradient of that graph is a dozen more full-size passes (``Tile``, ``Mul``, ``Sub``) over
every activation; TensorFlow's ``FusedBatchNormV3`` (oneDNN on CPU, cuDNN on GPU) does the
forward in one pass and the backward in one more. Same variables, same inference path
(Keras's, untouched, so XLA / SavedModel / TFLite graphs do not change), same outputs in
training mode up to float rounding.

One deliberate difference from Keras: the moving variance is updated with the *unbiased*
batch variance (n / (n - 1)), which is what PyTorch's ``BatchNorm`` does and so what the
PANNs reference's running statistics are; Keras updates with the biased one.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers as L


@keras.saving.register_keras_serializable(package="panns_keras")
class BatchNormalization(L.BatchNormalization):
    """``keras.layers.BatchNormalization`` with a fused training path (TensorFlow backend)."""

    def _fused_ok(self, inputs, mask) -> bool:
        rank = len(inputs.shape)
        return (
            keras.backend.backend() == "tensorflow"
            and mask is None
            and not self.renorm
            and not self.synchronized
            and self.scale
            and self.center
            and self.axis in (-1, rank - 1)
            and 2 <= rank <= 4
            and inputs.shape[-1] is not None
        )

    def call(self, inputs, training=None, mask=None):
        if not (training and self.trainable) or not self._fused_ok(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        shape = tf.shape(inputs)
        rank = len(inputs.shape)
        x = inputs
        if x.dtype not in (tf.float32, tf.bfloat16, tf.float16):
            x = tf.cast(x, tf.float32)
        if rank < 4:  # NHWC view: (B, C) -> (B, 1, 1, C), (B, T, C) -> (B, 1, T, C)
            x = tf.reshape(x, tf.concat([shape[:1], [1] * (4 - rank), shape[1:]], 0))
        y, batch_mean, batch_var, *_ = tf.raw_ops.FusedBatchNormV3(
            x=x, scale=tf.cast(self.gamma, tf.float32), offset=tf.cast(self.beta, tf.float32),
            mean=tf.constant([], tf.float32), variance=tf.constant([], tf.float32),
            epsilon=self.epsilon, exponential_avg_factor=1.0, data_format="NHWC",
            is_training=True,
        )  # fmt: skip
        m = self.momentum
        self.moving_mean.assign(self.moving_mean * m + batch_mean * (1.0 - m))
        self.moving_variance.assign(self.moving_variance * m + batch_var * (1.0 - m))
        if rank < 4:
            y = tf.reshape(y, shape)
        return tf.cast(y, self.compute_dtype)
