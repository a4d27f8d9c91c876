"""ResNet22 / ResNet38 / ResNet54 backbones.

``(B, T, mel, 1)`` -> ``conv_block1`` (pool 2) -> ``resnet.layer1..4`` (basic or
bottleneck blocks; a stride-2 block average-pools first, as the reference does) ->
avg-pool 2 -> ``conv_block_after1`` -> mean over frequency -> ``(B, T', C)``.
"""

from __future__ import annotations

import keras
from keras import ops

from panns_keras.models import blocks as B
from panns_keras.models.spec import ModelSpec


def _residual_block(x, path, planes, stride, bottleneck, downsample, block_drop):
    if stride == 2:
        x = B.avg_pool(x, (2, 2))
    identity = x
    if bottleneck:
        out = ops.relu(B.batch_norm(f"{path}.bn1")(B.conv2d(f"{path}.conv1", planes, 1)(x)))
        out = ops.relu(B.batch_norm(f"{path}.bn2")(B.conv2d(f"{path}.conv2", planes, 3)(out)))
        out = block_drop(out)
        out = B.conv2d(f"{path}.conv3", planes * 4, 1)(out)
        out = B.batch_norm(f"{path}.bn3", zero_gamma=True)(out)
    else:
        out = ops.relu(B.batch_norm(f"{path}.bn1")(B.conv2d(f"{path}.conv1", planes, 3)(x)))
        out = block_drop(out)
        out = B.conv2d(f"{path}.conv2", planes, 3)(out)
        out = B.batch_norm(f"{path}.bn2", zero_gamma=True)(out)
    if downsample:
        j = 1 if stride == 2 else 0  # Sequential(AvgPool2d, conv, bn) vs Sequential(conv, bn)
        width = planes * (4 if bottleneck else 1)
        identity = B.conv2d(f"{path}.downsample.{j}", width, 1)(identity)
        identity = B.batch_norm(f"{path}.downsample.{j + 1}")(identity)
    return ops.relu(out + identity)


def resnet_backbone(spec: ModelSpec, seeds: B.Seeds) -> keras.Model:
    b = spec.backbone
    bottleneck = b.block == "bottleneck"
    expansion = 4 if bottleneck else 1
    conv_drop, block_drop = B.dropout(0.2, seeds), B.dropout(0.1, seeds)
    image = keras.Input((None, spec.frontend.mel_bins, 1), name="logmel")
    x = conv_drop(B.conv_block(image, "conv_block1", 64, 3, (2, 2)))
    inplanes = 64
    for li, (n, planes, stride) in enumerate(zip(b.layers, b.planes, b.strides), start=1):
        for bi in range(n):
            s = stride if bi == 0 else 1
            down = s != 1 or inplanes != planes * expansion
            x = _residual_block(
                x, f"resnet.layer{li}.{bi}", planes, s, bottleneck, down, block_drop
            )
            inplanes = planes * expansion
    x = conv_drop(B.avg_pool(x, (2, 2)))
    x = conv_drop(B.conv_block(x, "conv_block_after1", b.after_width, 3, (1, 1)))
    return keras.Model(image, ops.mean(x, axis=2), name="backbone")
