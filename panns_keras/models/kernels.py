"""Where the backend-specific fast kernels are chosen: the one place that asks the backend.

The model code is ``keras.layers`` / ``keras.ops`` only and runs on every Keras backend. On
TensorFlow, two layers can switch to faster kernels with the same variables and the same
outputs (to float rounding):

- wide 3x3 convolutions as one im2col matmul (:class:`panns_keras.models.conv.Conv2D`),
  always on TensorFlow;
- BatchNorm's training step as ``FusedBatchNormV3``
  (:class:`panns_keras.models.batchnorm.BatchNormalization`), only when asked for
  (:func:`set_fused_batchnorm`, the trainer's ``train.fused_batchnorm``): its backward is
  less precise than the reference's in elements whose gradient is near Adam's epsilon, enough
  to fail the reference training-trajectory check on Wavegram-Logmel-CNN14, so the default is
  the two-pass ``keras.ops`` path that meets it.

TensorFlow itself is imported only inside those kernels, when the backend is TensorFlow.
"""

from __future__ import annotations

import keras


def xla_small_map_im2col() -> bool:
    """True on JAX, whose XLA swaps the operands of a convolution whose map has fewer positions
    than its kernel has taps onto a slow CPU loop; :class:`panns_keras.models.conv.Conv2D` then
    runs such a layer as im2col. Not on TensorFlow: without XLA its own convolution is faster
    there (``benchmarks/conv_layers.py``)."""
    return keras.backend.backend() == "jax"


def tensorflow_kernels() -> bool:
    """True when the TensorFlow-specific kernels are used (the backend is TensorFlow)."""
    return keras.backend.backend() == "tensorflow"


_FUSED_BATCHNORM = [False]


def set_fused_batchnorm(enabled: bool) -> bool:
    """Use ``FusedBatchNormV3`` for BatchNorm training steps (TensorFlow only); returns the
    previous setting. Process-wide, like Keras's dtype policy."""
    previous = _FUSED_BATCHNORM[0]
    _FUSED_BATCHNORM[0] = bool(enabled)
    return previous


def fused_batchnorm() -> bool:
    """Whether BatchNorm training steps use the fused TensorFlow kernel now."""
    return _FUSED_BATCHNORM[0] and tensorflow_kernels()
