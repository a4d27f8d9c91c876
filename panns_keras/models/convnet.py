"""CNN6 / CNN10 / CNN14 backbones (and the trunk the Wavegram models share).

``(B, T, mel, 1)`` log-mel image -> conv blocks -> mean over frequency -> ``(B, T', C)``.
Wavegram models feed the Wavegram features ``(B, T / 2, F, 64)`` in place of
``conv_block1``'s output (Wavegram-CNN14) or beside it along channels
(Wavegram-Logmel-CNN14).
"""

from __future__ import annotations

import keras
from keras import ops

from panns_keras.models import blocks as B
from panns_keras.models.spec import ModelSpec


def convnet_backbone(spec: ModelSpec, seeds: B.Seeds) -> keras.Model:
    b = spec.backbone
    inputs, x = [], None
    drop = B.dropout(spec.conv_dropout, seeds)
    if spec.frontend is not None:
        image = keras.Input((None, spec.frontend.mel_bins, 1), name="logmel")
        inputs.append(image)
        x = image
    if spec.wavegram is not None:
        w = spec.wavegram
        wave = keras.Input((None, w.widths[-1] // w.groups, w.block4_width), name="wavegram")
        inputs.append(wave)
        if x is not None:  # [log-mel branch, Wavegram] along channels
            x = B.conv_block(x, "conv_block1", b.widths[0], b.kernel, b.pools[0])
            x = ops.concatenate([x, ops.cast(wave, x.dtype)], axis=-1)
        else:
            x = wave
        x = drop(x)
    for i in range(b.first_block - 1, len(b.widths)):
        if spec.wavegram is not None and i == 0:
            continue
        x = B.conv_block(x, f"conv_block{i + 1}", b.widths[i], b.kernel, b.pools[i])
        x = drop(x)
    x = ops.mean(x, axis=2)  # over frequency: (B, T', C)
    return keras.Model(inputs if len(inputs) > 1 else inputs[0], x, name="backbone")


def convnet_unused(spec: ModelSpec) -> list:
    """Wavegram-CNN14 creates ``conv_block1`` (checkpointed) but never calls it."""
    if "conv_block1" not in spec.unused:
        return []
    return B.built_conv_block("conv_block1", 1, spec.backbone.widths[0], spec.backbone.kernel)


def time_ratio(spec: ModelSpec) -> int:
    """Log-mel frames per backbone step (the product of the time pools)."""
    ratio = 1
    for t, _ in spec.backbone.pools:
        ratio *= t
    return ratio
