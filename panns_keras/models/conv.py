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

On JAX, a convolution whose feature map is smaller than its kernel (fewer positions than
taps, e.g. Cnn6's 5x5 block 4 on the 6 x 4 map of a 1 s clip) also runs as im2col when the
map's size is known at trace time. XLA swaps the operands of such a convolution
(``AlgebraicSimplifier`` treats the smaller operand as the kernel) and the swapped form has no
fast CPU kernel: 3.9 s for that layer's forward on 32 clips against 0.05 s as a matmul
(``benchmarks/conv_layers.py``, 2-core AVX-512 EPYC). TensorFlow without XLA keeps its
convolution there (0.03 s; the im2col form is slower on it).

TFLite and ONNX conversion trace the model inside :func:`plain_convolutions`, so their
graphs keep a single CONV_2D / Conv op (XNNPACK's and onnxruntime's convolutions are fast,
and quantization treats them as convolutions).
"""

from __future__ import annotations

import contextlib

import keras
from keras import layers as L
from keras import ops

from panns_keras.models.kernels import tensorflow_kernels, xla_small_map_im2col

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
    """``keras.layers.Conv2D`` computed as one matmul (im2col) for wide 3x3 layers and for
    maps smaller than the kernel."""

    def build(self, input_shape):
        super().build(input_shape)
        cin = input_shape[-1]
        kh, kw = self.kernel_size
        self._plain_same = (
            tuple(self.strides) == (1, 1)
            and tuple(self.dilation_rate) == (1, 1)
            and self.padding == "same"
            and kh % 2 == 1
            and kw % 2 == 1
            and self.groups == 1
            and self.data_format == "channels_last"
            and cin is not None
        )
        self._small_map_im2col = self._plain_same and xla_small_map_im2col()
        self._im2col = (
            self._plain_same
            and tensorflow_kernels()
            and (kh, kw) == (3, 3)
            and cin >= IM2COL_MIN_IN
            and self.filters >= IM2COL_MIN_OUT
        )

    def _map_smaller_than_kernel(self, x) -> bool:
        if not self._small_map_im2col:
            return False
        h, w = x.shape[1], x.shape[2]
        kh, kw = self.kernel_size
        return h is not None and w is not None and h * w < kh * kw

    def uses_im2col(self, inputs) -> bool:
        """Whether a call on ``inputs`` (a tensor of the shape to run) takes the im2col path."""
        fast = getattr(self, "_plain_same", False) and not _plain[0]
        return bool(fast and (self._im2col or self._map_smaller_than_kernel(inputs)))

    def call(self, inputs):
        if self.uses_im2col(inputs):
            return self._im2col_call(inputs)
        return super().call(inputs)

    def _im2col_call(self, x):
        shape = ops.shape(x)
        h, w, cin = shape[1], shape[2], x.shape[-1]
        kh, kw = self.kernel_size
        ph, pw = kh // 2, kw // 2
        xp = ops.pad(x, [[0, 0], [ph, ph], [pw, pw], [0, 0]])
        # Channel index (i * kw + j) * cin + c matches the kernel's (kh, kw, cin, out) layout.
        cols = ops.concatenate(
            [xp[:, i : i + h, j : j + w, :] for i in range(kh) for j in range(kw)], axis=-1
        )
        kernel = ops.reshape(self.kernel, (kh * kw * cin, self.filters))
        y = ops.matmul(ops.reshape(cols, (-1, kh * kw * cin)), kernel)
        if self.use_bias:
            y = y + self.bias
        y = ops.reshape(y, (shape[0], h, w, self.filters))
        return self.activation(y) if self.activation is not None else y
