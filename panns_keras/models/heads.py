"""Classifier heads on the backbone's ``(B, T', C)`` sequence.

- Clip head (``HeadSpec.kind == 'clip'``): max + mean over time -> dropout -> ``fc1`` +
  ReLU = the embedding -> (``mlp_1``, ``mlp_2``, ... Dense + ReLU, transfer heads only) ->
  ``fc_audioset``. Returns ``embedding`` and ``logits``.
- Decision-level heads: max-pool 3 + avg-pool 3 over time -> dropout -> ``fc1`` + ReLU
  -> dropout -> per-segment ``fc_audioset`` (max / avg over time) or ``att_block``
  (attention over time). Returns ``segmentwise_output``, ``clipwise_output``, ``logits``.
"""

from __future__ import annotations

import keras
from keras import ops

from panns_keras.models import blocks as B
from panns_keras.models.spec import ModelSpec


def build_head(spec: ModelSpec, seeds: B.Seeds, channels: int) -> keras.Model:
    h, k = spec.head, spec.num_classes
    if h.hidden and h.kind != "clip":
        raise ValueError(f"{spec.name}: hidden head layers need a clip head, not {h.kind}")
    drop = B.dropout(0.5, seeds)
    x = inputs = keras.Input((None, channels), name="features")
    if h.kind == "clip":
        x = ops.max(x, axis=1) + ops.mean(x, axis=1)  # (B, C)
        if h.pre_dropout:
            x = drop(x)
        x = ops.relu(B.dense("fc1", h.embedding_size)(x))
        # The classifier reads fc1's output before the embedding dropout (reference quirk).
        c = x
        for i, width in enumerate(h.hidden, start=1):  # transfer MLP (freeze_l3)
            c = ops.relu(B.dense(f"mlp_{i}", width)(c))
        logits = ops.cast(B.dense("fc_audioset", k)(c), "float32")
        outputs = {"embedding": ops.cast(drop(x), "float32"), "logits": logits}
        return keras.Model(inputs, outputs, name="head")
    # max_pool1d(3, 1, 1) + avg_pool1d(3, 1, 1, count_include_pad=True) over time.
    xmax = ops.max_pool(ops.pad(x, [[0, 0], [1, 1], [0, 0]], mode="symmetric"), 3, 1)
    xavg = ops.average_pool(B.pad_time(x, 1), 3, 1)
    x = drop(xmax + xavg)
    x = drop(ops.relu(B.dense("fc1", h.embedding_size)(x)))
    if h.kind == "decision_att":
        logits = ops.cast(B.conv1d("att_block.cla", k, 1, use_bias=True)(x), "float32")
        att = ops.cast(B.conv1d("att_block.att", k, 1, use_bias=True)(x), "float32")
        norm_att = ops.softmax(ops.clip(att, -10.0, 10.0), axis=1)
        segmentwise = ops.sigmoid(logits)  # (B, T', K)
        clipwise = ops.sum(norm_att * segmentwise, axis=1)
    else:
        logits = ops.cast(B.dense("fc_audioset", k)(x), "float32")
        segmentwise = ops.sigmoid(logits)
        reduce = ops.max if h.kind == "decision_max" else ops.mean
        clipwise = reduce(segmentwise, axis=1)
    outputs = {"clipwise_output": clipwise, "segmentwise_output": segmentwise, "logits": logits}
    return keras.Model(inputs, outputs, name="head")


def head_unused(spec: ModelSpec) -> list:
    """``att_block.bn_att`` exists in the reference (checkpointed) but is never called."""
    if "att_block.bn_att" not in spec.unused:
        return []
    bn = B.batch_norm("att_block.bn_att")
    bn.build((None, None, spec.num_classes))
    return [bn]
