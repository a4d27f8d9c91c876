"""The reference recipe's loss in ``keras.ops``: one definition for every backend.

The TensorFlow trainer (:func:`panns_keras.train.trainer.per_example_loss`) and the JAX
training-step benchmark (``benchmarks/train_step_jax.py``) both call it.
"""

from __future__ import annotations

from keras import ops


def clamped_log(x):
    """``max(log(x), -100)`` (torch's clamp in ``binary_cross_entropy``), finite gradient.

    The plain ``maximum(log(x), -100)`` has the right value but a NaN gradient where x is
    exactly 0 (``0 * d log(x)/dx = 0 * inf``), which a float32 sigmoid reaches as soon as it
    saturates (p == 1.0 once its logit passes ~16.6, so 1 - p == 0). Where x == 0 the value
    is -100 and the gradient 0; elsewhere both are unchanged.
    """
    positive = x > 0.0
    safe = ops.where(positive, x, ops.ones_like(x))
    return ops.where(positive, ops.maximum(ops.log(safe), -100.0), ops.full_like(x, -100.0))


def binary_crossentropy_on_probabilities(target, p):
    """Per-example BCE of probabilities ``p`` against ``target`` (mean over the last axis),
    as ``torch.nn.functional.binary_cross_entropy``; float32."""
    p = ops.cast(p, "float32")
    target = ops.cast(target, "float32")
    return -ops.mean(target * clamped_log(p) + (1.0 - target) * clamped_log(1.0 - p), axis=-1)
