"""Where the backend-specific fast kernels are chosen: the one place that asks the backend.

The model code is ``keras.layers`` / ``keras.ops`` only and runs on every Keras backend. On
TensorFlow, two layers switch to faster kernels with the same variables and the same
outputs (to float rounding): wide 3x3 convolutions as one im2col matmul
(:class:`panns_keras.models.conv.Conv2D`) and BatchNorm's training step as
``FusedBatchNormV3`` (:class:`panns_keras.models.batchnorm.BatchNormalization`).
TensorFlow itself is imported only inside those kernels, when the backend is TensorFlow.
"""

from __future__ import annotations

import keras


def tensorflow_kernels() -> bool:
    """True when the TensorFlow-specific kernels are used (the backend is TensorFlow)."""
    return keras.backend.backend() == "tensorflow"
