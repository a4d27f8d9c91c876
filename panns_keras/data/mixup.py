"""Mixup in the PANNs reference layout (graph-safe TensorFlow).

The reference (`utils/utilities.py: Mixup`, `pytorch_utils.do_mixup`) draws one
lambda ~ Beta(alpha, alpha) per pair of consecutive examples and builds the vector
[l0, 1 - l0, l1, 1 - l1, ...]; the mixed batch is
    out[i] = lam[2i] * x[2i] + lam[2i + 1] * x[2i + 1],
so a batch of 2B examples becomes B mixed examples. Targets are mixed identically.
"""

from __future__ import annotations

import tensorflow as tf


def _as_seed(seed) -> tf.Tensor:
    """An int or a shape-[2] tensor -> shape-[2] int64 stateless seed."""
    seed = tf.convert_to_tensor(seed)
    seed = tf.cast(seed, tf.int64)
    if seed.shape.rank == 0:
        seed = tf.stack([seed, tf.constant(0x5EED, tf.int64)])
    return seed


def sample_beta(shape, alpha, seed=None) -> tf.Tensor:
    """Beta(alpha, alpha) samples, float32. Stateless when `seed` is given."""
    alpha = tf.cast(alpha, tf.float32)
    if seed is None:
        g1 = tf.random.gamma(shape, alpha, dtype=tf.float32)
        g2 = tf.random.gamma(shape, alpha, dtype=tf.float32)
    else:
        seeds = tf.random.experimental.stateless_split(_as_seed(seed), num=2)
        g1 = tf.random.stateless_gamma(shape, seeds[0], alpha=alpha, dtype=tf.float32)
        g2 = tf.random.stateless_gamma(shape, seeds[1], alpha=alpha, dtype=tf.float32)
    total = g1 + g2
    # Both gammas can underflow to 0 for tiny alpha; fall back to 0.5 there.
    lam = tf.where(total > 0, g1 / tf.where(total > 0, total, 1.0), 0.5)
    return tf.clip_by_value(lam, 0.0, 1.0)


def sample_mixup_lambda(num_pairs, alpha=1.0, seed=None) -> tf.Tensor:
    """Returns float32 [2 * num_pairs]: [l0, 1 - l0, l1, 1 - l1, ...], l ~ Beta(a, a).

    Args:
      num_pairs: number of pairs (python int or scalar int tensor).
      alpha: Beta parameter (> 0).
      seed: None (stateful RNG), a python int, or a shape-[2] int tensor (stateless).
    """
    lam = sample_beta(tf.reshape(tf.cast(num_pairs, tf.int32), [1]), alpha, seed)
    return tf.reshape(tf.stack([lam, 1.0 - lam], axis=1), [-1])


def do_mixup(x, mixup_lambda) -> tf.Tensor:
    """Mixes pairs: out[i] = lam[2i] * x[2i] + lam[2i + 1] * x[2i + 1].

    Args:
      x: [2B, ...] tensor (any trailing shape).
      mixup_lambda: [2B] float tensor in the layout of `sample_mixup_lambda`.
    Returns:
      [B, ...] tensor of x's dtype.
    """
    x = tf.convert_to_tensor(x)
    lam = tf.cast(tf.convert_to_tensor(mixup_lambda), x.dtype)
    shape = tf.shape(x)
    pairs = shape[0] // 2
    # Rows 2i and 2i+1 are adjacent in memory: view them as [B, 2, N] and mix with one
    # batched [1, 2] x [2, N] matmul (several times faster than strided slicing on CPU).
    xr = tf.reshape(x[: 2 * pairs], tf.stack([pairs, 2, -1]))
    lr = tf.reshape(lam[: 2 * pairs], tf.stack([pairs, 1, 2]))
    out = tf.matmul(lr, xr)
    out = tf.reshape(out, tf.concat([[pairs], shape[1:]], axis=0))
    if x.shape.rank is not None:
        half = None if x.shape[0] is None else x.shape[0] // 2
        out = tf.ensure_shape(out, [half, *x.shape[1:]])
    return out


def mix_batch(batch: dict, alpha, seed=None, keys=("waveform", "target")) -> dict:
    """Applies one lambda vector to every key in `keys` of a [2B, ...] batch dict."""
    n = tf.shape(batch[keys[0]])[0]
    lam = sample_mixup_lambda(n // 2, alpha, seed)
    out = dict(batch)
    for k in keys:
        out[k] = do_mixup(batch[k], lam)
    return out
