"""The Wavegram front end: a learned time-frequency map from the waveform.

``(B, L)`` -> ``pre_conv0`` (k11, s5) -> three dilated 1-D blocks with max-pool 4 ->
channels regrouped into (frequency, groups) -> ``pre_block4`` (2-D ConvBlock, pool (2, 1))
-> ``(B, T, F, 64)``, on the log-mel branch's time grid after its first pool.
"""

from __future__ import annotations

import keras
from keras import layers as L
from keras import ops

from panns_keras.models import blocks as B
from panns_keras.models.spec import ModelSpec


def wavegram_frontend(spec: ModelSpec) -> keras.Model:
    w = spec.wavegram
    wave = keras.Input((None,), name="waveform")
    a = B.pad_time(ops.expand_dims(wave, -1), 5)  # (B, L + 10, 1)
    a = ops.relu(B.batch_norm("pre_bn0")(B.conv1d("pre_conv0", w.widths[0], 11, strides=5)(a)))
    for i, width in enumerate(w.widths[1:], start=1):
        p = f"pre_block{i}"
        a = B.conv1d(f"{p}.conv1", width, 3)(B.pad_time(a, 1))
        a = ops.relu(B.batch_norm(f"{p}.bn1")(a))
        a = B.conv1d(f"{p}.conv2", width, 3, dilation=2)(B.pad_time(a, 2))
        a = ops.relu(B.batch_norm(f"{p}.bn2")(a))
        a = ops.max_pool(a, 4, strides=4, padding="valid")
    channels = w.widths[-1]
    # (B, T, C) -> (B, T, G, C / G) -> (B, T, C / G, G): channel c -> (g, f) = divmod(c, C / G)
    a = L.Reshape((-1, w.groups, channels // w.groups))(a)
    a = ops.transpose(a, (0, 1, 3, 2))
    a = B.conv_block(a, "pre_block4", w.block4_width, 3, (2, 1))
    return keras.Model(wave, a, name="wavegram")
