"""Res1dNet31 / Res1dNet51 backbones: 1-D ResNets on the raw waveform.

``(B, L)`` -> ``conv0`` (k11, s5, pad 5) + ``bn0`` (no ReLU) -> ``resnet.layer1..7`` of
basic blocks (the second conv dilated 2; a strided block max-pools its input first and
average-pools the shortcut) -> ``(B, T', C)``.
"""

from __future__ import annotations

import keras
from keras import ops

from panns_keras.models import blocks as B
from panns_keras.models.spec import ModelSpec


def _block(x, path, planes, stride, downsample, drop):
    out = x if stride == 1 else ops.max_pool(x, stride, strides=stride, padding="valid")
    out = ops.relu(
        B.batch_norm(f"{path}.bn1")(B.conv1d(f"{path}.conv1", planes, 3)(B.pad_time(out, 1)))
    )
    out = drop(out)
    out = B.conv1d(f"{path}.conv2", planes, 3, dilation=2)(B.pad_time(out, 2))
    out = B.batch_norm(f"{path}.bn2", zero_gamma=True)(out)
    identity = x
    if downsample:
        j = 1 if stride != 1 else 0  # Sequential(AvgPool1d, conv, bn) vs (conv, bn)
        if stride != 1:
            identity = ops.average_pool(identity, stride, strides=stride, padding="valid")
        identity = B.conv1d(f"{path}.downsample.{j}", planes, 1)(identity)
        identity = B.batch_norm(f"{path}.downsample.{j + 1}")(identity)
    return ops.relu(out + identity)


def res1dnet_backbone(spec: ModelSpec, seeds: B.Seeds) -> keras.Model:
    b = spec.backbone
    drop = B.dropout(0.1, seeds)
    wave = keras.Input((None,), name="waveform")
    x = B.conv1d("conv0", 64, 11, strides=5)(B.pad_time(ops.expand_dims(wave, -1), 5))
    x = B.batch_norm("bn0")(x)  # no ReLU (reference)
    inplanes = 64
    for li, (n, planes, stride) in enumerate(zip(b.layers, b.planes, b.strides), start=1):
        for bi in range(n):
            s = stride if bi == 0 else 1
            x = _block(x, f"resnet.layer{li}.{bi}", planes, s, s != 1 or inplanes != planes, drop)
            inplanes = planes
    return keras.Model(wave, x, name="backbone")
