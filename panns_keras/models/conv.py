"""Training-speed variants of Keras layers; the same weights, variables and outputs.

``Conv2D`` is ``keras.layers.Conv2D`` whose *training-time* 3x3 "same" convolutions on wide
channels (>= 512 in, >= 1024 out: Cnn14's blocks 5-6, the ResNets' last stages) run as one
matrix product over the nine shifted copies of the input (im2col). On CPU, oneDNN's
convolution kernels are slow for these shapes (small maps, many channels: 20-25 GFLOP/s
for Cnn14's block 6 forward + backward on 2 cores) while the matmul runs near the machine's
ceiling; forward and both gradients become matmuls (`benchmarks/train_step.py`,
BUILD_NOTES "Training"). Inference (``training`` false) keeps the plain convolution, so
XLA predict, SavedModel and TFLite graphs are unchanged.
"""

from __future__ import annotations

import keras
from keras import layers as L
from keras import ops

IM2COL_MIN_IN = 512
IM2COL_MIN_OUT = 1024


@keras.saving.register_keras_serializable(package="panns_keras")
class Conv2D(L.Conv2D):
    """``keras.layers.Conv2D`` with a matmul (im2col) training path for wide 3x3 layers."""

    def build(self, input_shape):
        super().build(input_shape)
        cin = input_shape[-1]
        self._im2col = (
            tuple(self.kernel_size) == (3, 3)
            and tuple(self.strides) == (1, 1)
            and tuple(self.dilation_rate) == (1, 1)
            and self.padding == "same"
            and self.groups == 1
            and self.data_format == "channels_last"
            and cin is not None
            and cin >= IM2COL_MIN_IN
            and self.filters >= IM2COL_MIN_OUT
        )

    def call(self, inputs, training=None):
        if training and getattr(self, "_im2col", False):
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
