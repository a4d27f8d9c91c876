"""Speed variants of Keras layers; the same weights, variables and outputs.

On the TensorFlow backend (:mod:`panns_keras.models.kernels`), ``Conv2D`` is
``keras.layers.Conv2D`` whose 3x3 "same" convolutions on wide channels
(>= 512 in, >= 1024 out: Cnn14's blocks 5-6, the ResNets' last stages) run as one matrix
product over the nine shifted copies of the input (im2col). On CPU, oneDNN's convolution
kernels are slow for these shapes (small maps, many channels: 20-25 GFLOP/s for Cnn14's
block 6 on 2 cores) while the matmul runs near the machine's ceiling. Training: forward and
both gradients become matmuls (Cnn14 step CPU time 7.85 s -> 6.08 s). Inference in a TF
graph without XLA (SavedModel, eager): Cnn14 466 ms -> 107 ms per 10 s clip; with XLA
unchanged (106 vs 112 ms). Outputs agree with the convolution to float rounding (6e-8).

TFLite and ONNX conversion trace the model inside :func:`plain_convolutions`, so their
graphs keep a single CONV_2D / Conv op (XNNPACK's and onnxruntime's convolutions are fast,
and quantization treats them as convolutions).
"""

from __future__ import annotations

import contextlib

import keras
from keras import layers as L
from keras import ops

from panns_keras.models.kernels import tensorflow_kernels

IM2COL_MIN_IN = 512
IM2COL_MIN_OUT = 1024
_plain = [0]  # > 0 inside plain_convolutions()


@contextlib.contextmanager
def plain_convolutions():
    """Within this context (while tracing for TFLite / ONNX) wide layers trace as convolutions."""
    _plain[0] += 1
    try:
        yield
    finally:
        _plain[0] -= 1


@keras.saving.register_keras_serializable(package="panns_keras")
class Conv2D(L.Conv2D):
    """``keras.layers.Conv2D`` computed as one matmul (im2col) for wide 3x3 layers."""

    def build(self, input_shape):
        super().build(input_shape)
        cin = input_shape[-1]
        self._im2col = (
            tensorflow_kernels()
            and tuple(self.kernel_size) == (3, 3)
            and tuple(self.strides) == (1, 1)
            and tuple(self.dilation_rate) == (1, 1)
            and self.padding == "same"
            and self.groups == 1
            and self.data_format == "channels_last"
            and cin is not None
            and cin >= IM2COL_MIN_IN
            and self.filters >= IM2COL_MIN_OUT
        )

    def call(self, inputs):
        if getattr(self, "_im2col", False) and not _plain[0]:
            return self._im2col_call(inputs)
        return super().call(inputs)

    def _im2col_call(self, x):
        shape = ops.shape(x)
        h, w, cin = shape[1], shape[2], x.shape[-1]
        xp = ops.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
        # Channel index (i * 3 + j) * cin + c matches the kernel's (3, 3, cin, out) layout.
        cols = ops.concatenate(
            [xp[:, i : i + h, j : j + w, :] for i in range(3) for j in range(3)], axis=-1
        )
        kernel = ops.reshape(self.kernel, (9 * cin, self.filters))
        y = ops.matmul(ops.reshape(cols, (-1, 9 * cin)), kernel)
        if self.use_bias:
            y = y + self.bias
        y = ops.reshape(y, (shape[0], h, w, self.filters))
        return self.activation(y) if self.activation is not None else y
