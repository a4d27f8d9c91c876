"""MobileNetV1 / MobileNetV2 backbones.

``(B, T, mel, 1)`` -> stem (3x3 conv, avg-pool 2, BN) -> depthwise-separable stages
(V1) or inverted residuals (V2); a strided stage average-pools after its depthwise
convolution, as the reference does -> mean over frequency -> ``(B, T', C)``.
"""

from __future__ import annotations

import keras
from keras import ops

from panns_keras.models import blocks as B
from panns_keras.models.spec import ModelSpec


def _stem(image, width, act):
    x = B.avg_pool(B.conv2d("features.0.0", width, 3)(image), (2, 2))
    return act(B.batch_norm("features.0.2")(x))


def _depthwise(x, conv_path, bn_path, stride, act):
    x = B.avg_pool(B.depthwise2d(conv_path)(x), (stride, stride))
    return act(B.batch_norm(bn_path)(x))


def _pointwise(x, conv_path, bn_path, width, act=None):
    x = B.batch_norm(bn_path)(B.conv2d(conv_path, width, 1)(x))
    return act(x) if act is not None else x


def mobilenet_v1_backbone(spec: ModelSpec, seeds: B.Seeds) -> keras.Model:
    b = spec.backbone
    image = keras.Input((None, spec.frontend.mel_bins, 1), name="logmel")
    x = _stem(image, b.stem, ops.relu)
    for i, (out, stride) in enumerate(b.stages, start=1):
        p = f"features.{i}"
        x = _depthwise(x, f"{p}.0", f"{p}.2", stride, ops.relu)
        x = _pointwise(x, f"{p}.4", f"{p}.5", out, ops.relu)
    return keras.Model(image, ops.mean(x, axis=2), name="backbone")


def mobilenet_v2_backbone(spec: ModelSpec, seeds: B.Seeds) -> keras.Model:
    b = spec.backbone
    image = keras.Input((None, spec.frontend.mel_bins, 1), name="logmel")
    x = _stem(image, b.stem, ops.relu6)
    inp, idx = b.stem, 1
    for t, c, n, s in b.stages:
        for k in range(n):
            stride = s if k == 0 else 1
            p = f"features.{idx}.conv"
            h = x
            if t == 1:
                h = _depthwise(h, f"{p}.0", f"{p}.2", stride, ops.relu6)
                h = _pointwise(h, f"{p}.4", f"{p}.5", c)
            else:
                h = _pointwise(h, f"{p}.0", f"{p}.1", round(inp * t), ops.relu6)
                h = _depthwise(h, f"{p}.3", f"{p}.5", stride, ops.relu6)
                h = _pointwise(h, f"{p}.7", f"{p}.8", c)
            x = x + h if stride == 1 and inp == c else h
            inp, idx = c, idx + 1
    x = _pointwise(x, f"features.{idx}.0", f"features.{idx}.1", b.last, ops.relu6)
    return keras.Model(image, ops.mean(x, axis=2), name="backbone")
