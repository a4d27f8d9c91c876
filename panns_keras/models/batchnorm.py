"""``BatchNormalization`` with PyTorch's running-variance rule and a fused TF training kernel.

The reference's running variance is updated with the *unbiased* batch variance
(n / (n - 1)), as PyTorch's ``BatchNorm`` does; Keras updates it with the biased one. This
layer follows the reference on every backend, with the same variables as Keras's layer.
Inference is Keras's own path, untouched (XLA / SavedModel / TFLite graphs do not change).

Training step kernels (chosen in :mod:`panns_keras.models.kernels`):

- Default, every backend: two-pass batch statistics (mean, then the mean of squared
  deviations, as PyTorch) and element-wise ops in ``keras.ops``, with the backward pass
  written out (``ops.custom_gradient``) rather than differentiated op by op; this meets the
  reference training trajectories on both backends.
- Opt-in on TensorFlow (``kernels.set_fused_batchnorm(True)``): ``FusedBatchNormV3`` (oneDNN
  on CPU, cuDNN on GPU), forward in one pass and backward in one more; faster on CPU, but
  its backward is less precise than the reference's (see ``kernels``).
"""

from __future__ import annotations

import keras
from keras import layers as L
from keras import ops

from panns_keras.models.kernels import fused_batchnorm


@keras.saving.register_keras_serializable(package="panns_keras")
class BatchNormalization(L.BatchNormalization):
    """``keras.layers.BatchNormalization`` with the reference's running-variance update."""

    def _own_training_path(self, inputs, mask) -> bool:
        rank = len(inputs.shape)
        return (
            mask is None
            and not self.renorm
            and not self.synchronized
            and self.scale
            and self.center
            and self.axis in (-1, rank - 1)
            and 2 <= rank <= 4
            and inputs.shape[-1] is not None
        )

    def call(self, inputs, training=None, mask=None):
        if not (training and self.trainable) or not self._own_training_path(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        if fused_batchnorm():
            y, mean, var = _fused_tf(inputs, self.gamma, self.beta, self.epsilon)
        else:
            y, mean, var = self._ops_training(inputs)
        m = self.momentum
        self.moving_mean.assign(self.moving_mean * m + mean * (1.0 - m))
        self.moving_variance.assign(self.moving_variance * m + var * (1.0 - m))
        return ops.cast(y, self.compute_dtype)

    def _ops_training(self, inputs):
        """Normalised output, batch mean and unbiased batch variance (float32)."""
        x = ops.cast(inputs, "float32")
        gamma = ops.cast(self.gamma, "float32")
        beta = ops.cast(self.beta, "float32")
        y, mean, var = _two_pass_batchnorm(x, gamma, beta, float(self.epsilon))
        n = ops.cast(ops.size(x) // x.shape[-1], "float32")
        unbiased = var * n / ops.maximum(n - 1.0, 1.0)
        return y, ops.stop_gradient(mean), ops.stop_gradient(unbiased)


def _two_pass_batchnorm(x, gamma, beta, epsilon):
    """Batch-statistics BatchNorm over every axis but the last, with its gradient written out.

    Forward: two-pass statistics as PyTorch (mean, then the mean of squared deviations), and
    ``y = (x - mean) * (gamma / std) + beta``. Backward, the textbook form
    ``dx = gamma / std * (dy - mean(dy) - xhat * mean(dy * xhat))``, with
    ``dgamma = sum(dy * xhat)`` and ``dbeta = sum(dy)``: about half the passes over the
    tensor that automatic differentiation of the forward ops takes (Cnn14's TensorFlow CPU
    step about 5% shorter, BUILD_NOTES.md). The same quantities, rounded in another order.
    """

    @ops.custom_gradient
    def forward(x, gamma, beta):
        y, mean, var, centred, inv_std = _forward(x, gamma, beta, epsilon)

        def grad(*upstream, **_):
            dy = keras.tree.flatten(upstream)[0]  # (y, mean, var): mean and var are constants
            return _backward(dy, centred, inv_std, gamma)

        return (y, mean, var), grad

    return forward(x, gamma, beta)


def _forward(x, gamma, beta, epsilon):
    axes = tuple(range(len(x.shape) - 1))
    mean = ops.mean(x, axis=axes)
    centred = x - mean
    var = ops.mean(ops.square(centred), axis=axes)
    inv_std = ops.rsqrt(var + epsilon)
    return centred * (gamma * inv_std) + beta, mean, var, centred, inv_std


def _backward(dy, centred, inv_std, gamma):
    axes = tuple(range(len(dy.shape) - 1))
    count = ops.cast(ops.size(dy) // dy.shape[-1], "float32")
    d_beta = ops.sum(dy, axis=axes)
    d_gamma = ops.sum(dy * centred, axis=axes) * inv_std
    shift = d_beta / count
    slope = d_gamma * inv_std / count
    dx = (dy - shift - centred * slope) * (gamma * inv_std)
    return dx, d_gamma, d_beta


def _fused_tf(inputs, gamma, beta, epsilon):
    import tensorflow as tf  # only reached on the TensorFlow backend

    shape = tf.shape(inputs)
    rank = len(inputs.shape)
    x = inputs
    if x.dtype not in (tf.float32, tf.bfloat16, tf.float16):
        x = tf.cast(x, tf.float32)
    if rank < 4:  # NHWC view: (B, C) -> (B, 1, 1, C), (B, T, C) -> (B, 1, T, C)
        x = tf.reshape(x, tf.concat([shape[:1], [1] * (4 - rank), shape[1:]], 0))
    y, batch_mean, batch_var, *_ = tf.raw_ops.FusedBatchNormV3(
        x=x,
        scale=tf.cast(gamma, tf.float32),
        offset=tf.cast(beta, tf.float32),
        mean=tf.constant([], tf.float32),
        variance=tf.constant([], tf.float32),
        epsilon=epsilon,
        exponential_avg_factor=1.0,
        data_format="NHWC",
        is_training=True,
    )
    if rank < 4:
        y = tf.reshape(y, shape)
    return y, batch_mean, batch_var  # FusedBatchNormV3's batch_var is the unbiased one
