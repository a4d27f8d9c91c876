"""EfficientAT ``mn``: the MobileNetV3 audio taggers of Schmid et al. (mn01 .. mn40).

``(B, T, mel, 1)`` log-mel (the EfficientAT front end's output) -> transposed to the
reference's ``(B, mel, T, 1)`` (height = mel, width = time, so every torch kernel maps with
the plain layout transpose) -> ``features.0``: 3x3 stride-2 conv, BN, hard-swish -> fifteen
inverted residuals (``features.1`` .. ``features.15``: 1x1 expand, depthwise k x k,
squeeze-excitation on channels where the table says so, 1x1 project, residual where shape
allows) -> ``features.16``: 1x1 conv to 6x the last width, BN, hard-swish -> mean over
frequency -> ``(B, T', C)``. The heads (:func:`mn_head`) take that sequence.

Layer names are the reference's state_dict module paths with ``.`` -> ``_``
(``features_3_block_2_conc_se_layers_0_fc1``, ``classifier_5``), so a released ``.pt`` file
maps by name. Reference details kept on purpose: BatchNorm eps 1e-3 (momentum 0.01) in the
features, torch's default eps 1e-5 (momentum 0.1) in the fully-convolutional head;
convolutions padded ``(k - 1) // 2`` on both sides (not Keras's "same" for stride 2); the
reference's pooled "features" (mean over frequency and time of ``features.16``) are the
embedding; hard-swish ``x * relu6(x + 3) / 6``.
"""

from __future__ import annotations

import keras
from keras import layers as L
from keras import ops

from panns_keras.models import blocks as B
from panns_keras.models.batchnorm import BatchNormalization
from panns_keras.models.conv import Conv2D
from panns_keras.models.initializers import NumpyGlorotUniform
from panns_keras.models.spec import MNSpec, ModelSpec, make_divisible

FEATURES_BN = dict(epsilon=1e-3, momentum=0.99)  # torch BatchNorm2d(eps=0.001, momentum=0.01)
HEAD_BN = dict(epsilon=1e-5, momentum=0.9)  # torch BatchNorm2d defaults

# MobileNetV3-Large (input, kernel, expanded, output, squeeze-excitation, hard-swish, stride
# slot, dilated): stride slot i takes MNSpec.strides[i] (None: stride 1).
_TABLE = (
    (16, 3, 16, 16, False, False, None, False),
    (16, 3, 64, 24, False, False, 0, False),
    (24, 3, 72, 24, False, False, None, False),
    (24, 5, 72, 40, True, False, 1, False),
    (40, 5, 120, 40, True, False, None, False),
    (40, 5, 120, 40, True, False, None, False),
    (40, 3, 240, 80, False, True, 2, False),
    (80, 3, 200, 80, False, True, None, False),
    (80, 3, 184, 80, False, True, None, False),
    (80, 3, 184, 80, False, True, None, False),
    (80, 3, 480, 112, True, True, None, False),
    (112, 3, 672, 112, True, True, None, False),
    (112, 5, 672, 160, True, True, 3, True),
    (160, 5, 960, 160, True, True, None, True),
    (160, 5, 960, 160, True, True, None, True),
)


def inverted_residual_table(b: MNSpec) -> list[tuple[int, int, int, int, bool, bool, int, int]]:
    """The fifteen blocks of ``b`` after width scaling: (input, kernel, expanded, output,
    squeeze-excitation, hard-swish, stride, dilation)."""
    if len(b.strides) != 4 or any(s not in (1, 2) for s in b.strides):
        raise ValueError(f"mn strides must be four values of 1 or 2, not {b.strides}")
    tail = 2 if b.reduced_tail else 1
    rows = []
    for i, (inp, k, exp, out, se, hs, slot, tail_block) in enumerate(_TABLE):
        if tail_block:  # the tail (from C4's output on) shrinks with reduced_tail
            out = out // tail
            inp, exp = (inp // tail, exp // tail) if i > 12 else (inp, exp)
        width = [make_divisible(c * b.width_mult, 8) for c in (inp, exp, out)]
        stride = 1 if slot is None else b.strides[slot]
        dilation = 2 if tail_block and b.dilated else 1
        rows.append((width[0], k, width[1], width[2], se, hs, stride, dilation))
    return rows


def hard_swish(x):
    """``x * relu6(x + 3) / 6`` (torch ``nn.Hardswish``)."""
    return x * ops.relu6(x + 3.0) / 6.0


def _act(hs: bool):
    return hard_swish if hs else ops.relu


def _bn(path: str, **kw) -> BatchNormalization:
    return BatchNormalization(axis=-1, name=B.layer_name(path), **{**FEATURES_BN, **kw})


def _pad(x, k: int, dilation: int = 1):
    """Symmetric zero padding ``(k - 1) // 2 * dilation`` of both spatial axes (torch)."""
    p = (k - 1) // 2 * dilation
    return ops.pad(x, [[0, 0], [p, p], [p, p], [0, 0]]) if p else x


def _conv(x, path: str, filters: int, k: int = 1, stride: int = 1):
    """``ConvNormActivation``'s conv: k x k, torch padding, no bias."""
    if stride == 1:  # odd kernels: "same" pads (k - 1) / 2 on both sides, as torch
        return Conv2D(
            filters,
            k,
            padding="same",
            use_bias=False,
            name=B.layer_name(path),
            kernel_initializer=NumpyGlorotUniform(),
        )(x)
    return Conv2D(
        filters,
        k,
        strides=stride,
        padding="valid",
        use_bias=False,
        name=B.layer_name(path),
        kernel_initializer=NumpyGlorotUniform(),
    )(_pad(x, k))


def _depthwise(x, path: str, k: int, stride: int, dilation: int):
    stride = 1 if dilation > 1 else stride  # the reference's rule for dilated blocks
    if stride == 1 and dilation == 1:
        return L.DepthwiseConv2D(
            k,
            padding="same",
            use_bias=False,
            name=B.layer_name(path),
            depthwise_initializer=NumpyGlorotUniform(),
        )(x)
    return L.DepthwiseConv2D(
        k,
        strides=stride,
        dilation_rate=dilation,
        padding="valid",
        use_bias=False,
        name=B.layer_name(path),
        depthwise_initializer=NumpyGlorotUniform(),
    )(_pad(x, k, dilation))


def squeeze_excitation(x, path: str, channels: int, ratio: int):
    """Channel squeeze-excitation (``ConcurrentSEBlock`` with one channel layer: its max over
    one tensor is the identity): mean over frequency and time, fc1, ReLU, fc2, sigmoid,
    scale."""
    squeeze = make_divisible(channels // ratio, 8)
    s = ops.mean(x, axis=(1, 2))  # (B, C)
    s = ops.relu(B.dense(f"{path}.conc_se_layers.0.fc1", squeeze)(s))
    s = ops.sigmoid(B.dense(f"{path}.conc_se_layers.0.fc2", channels)(s))
    return x * s[:, None, None, :]


def inverted_residual(x, path: str, row, b: MNSpec):
    """One ``InvertedResidual``: its ``block`` Sequential numbered as the reference numbers it
    (no expand layer when expanded == input)."""
    inp, k, exp, out, se, hs, stride, dilation = row
    act, j, h = _act(hs), 0, x
    if exp != inp:
        h = act(_bn(f"{path}.block.{j}.1")(_conv(h, f"{path}.block.{j}.0", exp)))
        j += 1
    h = act(_bn(f"{path}.block.{j}.1")(_depthwise(h, f"{path}.block.{j}.0", k, stride, dilation)))
    j += 1
    if se and b.se_dims == "c":
        h = squeeze_excitation(h, f"{path}.block.{j}", exp, b.se_r)
        j += 1
    h = _bn(f"{path}.block.{j}.1")(_conv(h, f"{path}.block.{j}.0", out))
    return h + x if stride == 1 and inp == out else h


def mn_backbone(spec: ModelSpec, seeds: B.Seeds) -> keras.Model:
    """``(B, T, mel, 1)`` -> ``(B, T', C)``: the ``features`` of the reference, frequency
    averaged (C = 6 x the last block's width: 960 for mn10)."""
    b = spec.backbone
    if b.se_dims not in ("c", "none"):
        raise ValueError(f"{spec.name}: se_dims {b.se_dims!r}; supported: 'c', 'none'")
    rows = inverted_residual_table(b)
    image = keras.Input((None, spec.frontend.mel_bins, 1), name="logmel")
    x = ops.transpose(image, (0, 2, 1, 3))  # (B, mel, T, 1): the reference's H = mel, W = T
    x = hard_swish(_bn("features.0.1")(_conv(x, "features.0.0", rows[0][0], 3, 2)))
    for i, row in enumerate(rows, start=1):
        x = inverted_residual(x, f"features.{i}", row, b)
    last = len(rows) + 1
    x = hard_swish(_bn(f"features.{last}.1")(_conv(x, f"features.{last}.0", 6 * rows[-1][3])))
    return keras.Model(image, ops.mean(x, axis=1), name="backbone")  # (B, T', C)


def mn_last_channel(b: MNSpec) -> int:
    """Hidden width of the mlp head (``last_channel``: 1280 scaled, 640 with reduced_tail)."""
    return make_divisible(1280 // (2 if b.reduced_tail else 1) * b.width_mult, 8)


def mn_head(spec: ModelSpec, seeds: B.Seeds, channels: int) -> keras.Model:
    """The reference ``classifier`` on ``(B, T', C)`` -> ``{'embedding', 'logits'}``.

    ``spec.head.hidden`` (transfer mode freeze_l3, mlp head only) inserts Dense + ReLU layers
    ``mlp_1``, ``mlp_2``, ... before ``classifier.5``.

    The embedding is the reference's second output (``features.16`` averaged over frequency
    and time). 'mlp': ``classifier.2`` (Linear), hard-swish, dropout, ``classifier.5``.
    'fully_convolutional': ``classifier.0`` (1x1 conv, no bias), ``classifier.1`` (BN),
    mean over time (the reference's mean over frequency and time: both are linear, so the
    frequency mean taken first gives the same result); its per-frame logits are returned as
    ``frame_logits`` ``(B, T', classes)``.
    """
    b, k = spec.backbone, spec.num_classes
    if spec.head.hidden and b.head_type != "mlp":
        raise ValueError(f"{spec.name}: extra head layers (hidden) need the mlp head")
    x = inputs = keras.Input((None, channels), name="features")
    embedding = ops.mean(x, axis=1)  # (B, C)
    if b.head_type == "mlp":
        h = hard_swish(B.dense("classifier.2", mn_last_channel(b))(embedding))
        h = L.Dropout(b.dropout, seed=seeds.next())(h)
        for i, width in enumerate(spec.head.hidden, start=1):  # transfer MLP (freeze_l3)
            h = ops.relu(B.dense(f"mlp_{i}", width)(h))
        logits = B.dense("classifier.5", k)(h)
        outputs = {"embedding": embedding, "logits": logits}
    elif b.head_type == "fully_convolutional":
        h = Conv2D(
            k, 1, use_bias=False, name="classifier_0", kernel_initializer=NumpyGlorotUniform()
        )(x[:, :, None, :])  # (B, T', 1, K)
        h = BatchNormalization(axis=-1, name="classifier_1", **HEAD_BN)(h)[:, :, 0, :]
        outputs = {"embedding": embedding, "logits": ops.mean(h, axis=1), "frame_logits": h}
    else:
        raise ValueError(
            f"{spec.name}: head_type {b.head_type!r}; supported: 'mlp', 'fully_convolutional'"
        )
    outputs = {key: ops.cast(v, "float32") for key, v in outputs.items()}
    return keras.Model(inputs, outputs, name="head")


def dymn_backbone(spec: ModelSpec, seeds: B.Seeds) -> keras.Model:
    """EfficientAT ``dymn`` (:mod:`panns_keras.models.dymn`) as the tagger's backbone:
    ``(B, T, mel, 1)`` -> ``(B, T', C)``, its ``(B, T', F', C)`` map averaged over frequency
    (as :func:`mn_backbone`: the heads take the same sequence)."""
    from panns_keras.models.dymn import dymn_backbone as build

    inner = build(spec.backbone, spec.frontend.mel_bins, seeds)
    image = keras.Input((None, spec.frontend.mel_bins, 1), name="logmel")
    return keras.Model(image, ops.mean(inner(image), axis=2), name="backbone")


def dymn_head(spec: ModelSpec, seeds: B.Seeds, channels: int) -> keras.Model:
    """The ``dymn`` classifier on ``(B, T', C)``: :func:`panns_keras.models.dymn.dymn_head`
    on the frequency-averaged map ``(B, T', 1, C)`` (its means over frequency and time, and its
    1x1 conv and BN, are linear: the same result as on the full map)."""
    from panns_keras.models.dymn import dymn_head as build

    if spec.head.hidden:
        raise ValueError(f"{spec.name}: extra head layers (hidden) need a PANNs clip head")
    inner = build(spec.backbone, channels, spec.num_classes, seeds)
    x = keras.Input((None, channels), name="features")
    out = inner(x[:, :, None, :])
    return keras.Model(x, {k: ops.cast(v, "float32") for k, v in out.items()}, name="head")
