"""The backbones' kernel initialiser: Glorot-uniform (the reference's ``init_layer``,
``xavier_uniform_``) drawn with NumPy.

The distribution is Keras's ``GlorotUniform``; only the generator differs. Under JAX, Keras
draws each kernel with ``jax.random``, which compiles one XLA program per weight shape: about
5 of the 7 seconds of building a Cnn14-sized model, work thrown away whenever weights are
loaded or the trainer redraws them (``train/warm_start.seeded_glorot``). NumPy compiles
nothing. Seeding is Keras's: an initialiser made without a seed takes one from Python's
``random`` (``keras.utils.set_random_seed`` seeds it), so builds stay reproducible.
"""

from __future__ import annotations

import keras
import numpy as np


def glorot_limit(shape) -> float:
    """``sqrt(6 / (fan_in + fan_out))`` with Keras's fans (a kernel's receptive field times
    its input / output channels)."""
    shape = tuple(int(d) for d in shape)
    if len(shape) < 2:
        fan_in = fan_out = shape[0] if shape else 1
    else:
        field = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
        fan_in, fan_out = shape[-2] * field, shape[-1] * field
    return float(np.sqrt(6.0 / max(1, fan_in + fan_out)))


@keras.saving.register_keras_serializable(package="panns_keras")
class NumpyGlorotUniform(keras.initializers.GlorotUniform):
    """``keras.initializers.GlorotUniform`` drawn by NumPy's generator (see the module)."""

    def __call__(self, shape, dtype=None):
        seed = self.seed if isinstance(self.seed, int) else None
        limit = glorot_limit(shape)
        values = np.random.default_rng(seed).random(tuple(shape), dtype=np.float32)
        values *= np.float32(2 * limit)  # in place: one float32 array, no float64 copy
        values -= np.float32(limit)
        return keras.ops.convert_to_tensor(values, dtype=dtype or keras.config.floatx())
