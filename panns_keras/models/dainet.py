"""DaiNet19 backbone: a very deep 1-D residual CNN on the raw waveform.

``(B, L)`` -> ``conv0`` (k80, s4) + ``bn0`` (no ReLU) -> four residual blocks of four
conv-BN (kernel 3), max-pool 4 between blocks -> ``(B, T', C)``.
"""

from __future__ import annotations

import keras
from keras import ops

from panns_keras.models import blocks as B
from panns_keras.models.spec import ModelSpec


def dainet_backbone(spec: ModelSpec, seeds: B.Seeds) -> keras.Model:
    b = spec.backbone
    wave = keras.Input((None,), name="waveform")
    x = B.conv1d("conv0", b.widths[0], b.conv0_kernel, strides=b.conv0_stride)(
        ops.expand_dims(wave, -1)
    )
    x = B.batch_norm("bn0")(x)  # no ReLU (reference)
    channels = b.widths[0]
    for i, width in enumerate(b.widths, start=1):
        p = f"conv_block{i}"
        if i > 1:
            x = ops.max_pool(x, b.pool, strides=b.pool, padding="valid")
        h = x
        for j in range(1, 5):
            h = B.conv1d(f"{p}.conv{j}", width, 3)(B.pad_time(h, 1))
            h = B.batch_norm(f"{p}.bn{j}", zero_gamma=j == 4)(h)
            if j < 4:
                h = ops.relu(h)
        if width != channels:
            x = B.batch_norm(f"{p}.bn_downsample")(B.conv1d(f"{p}.downsample", width, 1)(x))
        x = ops.relu(h + x)
        channels = width
    return keras.Model(wave, x, name="backbone")


def dainet_unused(spec: ModelSpec) -> list:
    """Blocks whose width does not change create a downsample the reference never calls."""
    layers, channels = [], spec.backbone.widths[0]
    for i, width in enumerate(spec.backbone.widths, start=1):
        p = f"conv_block{i}"
        if f"{p}.downsample" in spec.unused:
            conv, bn = B.conv1d(f"{p}.downsample", width, 1), B.batch_norm(f"{p}.bn_downsample")
            conv.build((None, None, channels))
            bn.build((None, None, width))
            layers += [conv, bn]
        channels = width
    return layers
