"""LeeNet11 / LeeNet24 backbones: sample-level 1-D CNNs on the raw waveform.

``(B, L)`` -> per block one (LeeNet11) or two (LeeNet24) conv-BN-ReLU of kernel 3, the
first strided, then max-pool -> ``(B, T', C)``.
"""

from __future__ import annotations

import keras
from keras import ops

from panns_keras.models import blocks as B
from panns_keras.models.spec import ModelSpec


def leenet_backbone(spec: ModelSpec, seeds: B.Seeds) -> keras.Model:
    b = spec.backbone
    drop = B.dropout(b.dropout, seeds)
    wave = keras.Input((None,), name="waveform")
    x = ops.expand_dims(wave, -1)  # (B, L, 1)
    for i, (out, stride, pool) in enumerate(b.blocks, start=1):
        p = f"conv_block{i}"
        x = B.conv1d(f"{p}.conv1", out, 3, strides=stride)(B.pad_time(x, 1))
        x = ops.relu(B.batch_norm(f"{p}.bn1")(x))
        if b.convs_per_block == 2:
            x = ops.relu(B.batch_norm(f"{p}.bn2")(B.conv1d(f"{p}.conv2", out, 3)(B.pad_time(x, 1))))
        if pool != 1:  # max_pool1d(k, stride k, padding k // 2); inputs >= 0, so zero-pad
            x = ops.max_pool(B.pad_time(x, pool // 2), pool, strides=pool)
        if i <= b.dropout_blocks:
            x = drop(x)
    return keras.Model(wave, x, name="backbone")
