"""HEAR 2021 API (https://hearbenchmark.com/hear-api.html) for panns-keras models.

``load_model(model_file_path)`` takes a model directory or ``.keras`` file; with an empty
path it builds an untrained Cnn14 (random weights, for API checks only).

* scene embedding: the model's ``embedding`` output (clip head, fc1 after max + mean
  pooling over time) of the whole sound.
* timestamp embeddings: the backbone feature map before time pooling, one vector per
  backbone time step (channels of the last block, averaged over frequency). Its hop is
  ``hop_size * time_downsampling / sample_rate`` (320 * 32 / 32000 = 0.32 s for the CNNs);
  step ``i`` covers input frames ``[i * r, (i + 1) * r)`` and its timestamp is the centre
  of that span, ``(i + 0.5) * hop`` in milliseconds.

Only log-mel convnet models (cnn6/10/14 and their variants) provide timestamp embeddings.
"""

from __future__ import annotations

import tensorflow as tf


class HearModel(tf.Module):
    """A panns-keras model with the attributes the HEAR API requires."""

    def __init__(self, model):
        super().__init__(name="panns_keras_hear")
        self.model = model
        spec = model.spec
        if spec.head.kind != "clip":
            raise ValueError(f"{spec.name}: HEAR needs a clip model with an embedding output")
        self.sample_rate = int(spec.sample_rate)
        self.scene_embedding_size = int(spec.head.embedding_size)
        self.timestamp_embedding_size = int(spec.backbone.widths[-1]) if spec.family == \
            "convnet" else None  # fmt: skip
        self.min_samples = int(spec.min_samples)
        if spec.family == "convnet" and spec.frontend is not None and spec.wavegram is None:
            ratio = 1
            for t, _ in spec.backbone.pools:
                ratio *= t
            self.time_ratio = ratio
            self.timestamp_hop_ms = 1000.0 * spec.frontend.hop_size * ratio / self.sample_rate
        else:
            self.time_ratio = None
            self.timestamp_hop_ms = None

    def _pad(self, audio):
        audio = tf.convert_to_tensor(audio, tf.float32)
        short = tf.maximum(self.min_samples - tf.shape(audio)[1], 0)
        return tf.pad(audio, [[0, 0], [0, short]])

    def scene(self, audio):
        return self.model(self._pad(audio), training=False)["embedding"]

    def frames(self, audio):
        """Backbone features ``(n, T', C)`` before time pooling (log-mel convnets)."""
        m = self.model
        x = m.logmel_extractor(self._pad(audio))
        x = m.bn0(x, training=False)[..., None]
        x = m._forward_convnet(x, None, False, None)
        return tf.reduce_mean(x, axis=2)


def load_model(model_file_path: str = "") -> HearModel:
    """Loads a model directory / ``.keras`` file (empty: untrained cnn14) for HEAR."""
    if model_file_path:
        from panns_keras.api import load_model as _load

        model = _load(model_file_path)
    else:
        from panns_keras.api import build_model

        model = build_model("cnn14", seed=0)
    return HearModel(model)


def get_scene_embeddings(audio, model: HearModel):
    """``audio`` float32 ``[n_sounds, n_samples]`` -> ``[n_sounds, scene_embedding_size]``."""
    return tf.convert_to_tensor(model.scene(audio))


def get_timestamp_embeddings(audio, model: HearModel):
    """Returns (embeddings ``[n_sounds, n_timestamps, emb]``, timestamps ms ``[n_sounds, n]``)."""
    if model.timestamp_hop_ms is None:
        raise ValueError(f"{model.model.spec.name}: no timestamp embeddings for this family")
    emb = tf.convert_to_tensor(model.frames(audio))
    n, steps = tf.shape(emb)[0], tf.shape(emb)[1]
    centres = (tf.range(steps, dtype=tf.float32) + 0.5) * model.timestamp_hop_ms
    timestamps = tf.tile(centres[None, :], [n, 1])
    return emb, timestamps
