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

Input rate: the public ``hear-validator`` (hearvalidator 2021.0.2) accepts only 16000, 22050,
44100 and 48000 Hz. A model at another rate (the 32 kHz PANNs) takes 48 kHz audio by default
and resamples it to its own rate inside the graph (polyphase FIR, the same filter as
``scipy.signal.resample_poly``); ``load_model(path, sample_rate=32000)`` or the environment
variable ``PANNS_KERAS_HEAR_SAMPLE_RATE=32000`` feeds the model its own rate instead.
Timestamps are unchanged by resampling (the filter is delay-compensated).
"""

from __future__ import annotations

import math
import os

import numpy as np
import tensorflow as tf

from panns_keras.errors import UserError

# Rates hear-validator 2021.0.2 accepts (``ValidateModel.ACCEPTABLE_SAMPLE_RATE``).
VALIDATOR_SAMPLE_RATES = (16000, 22050, 44100, 48000)
DEFAULT_INPUT_RATE = 48000
RATE_ENV = "PANNS_KERAS_HEAR_SAMPLE_RATE"


class Resampler:
    """Polyphase resampling of ``[n, samples]`` float32 audio in TensorFlow ops.

    Same result as ``scipy.signal.resample_poly(x, up, down, axis=1)`` (Kaiser 5.0 low-pass,
    ``20 * max(up, down) + 1`` taps, output length ``ceil(samples * up / down)``), computed
    as one strided ``conv1d``: output ``q * up + r`` is ``sum_s W[s, r] x[q * down + s]``,
    so each of the ``up`` output phases is a channel and nothing is zero-stuffed.
    """

    def __init__(self, in_rate: int, out_rate: int):
        from scipy.signal import firwin

        g = math.gcd(int(in_rate), int(out_rate))
        up, down = int(out_rate) // g, int(in_rate) // g
        self.up, self.down = up, down
        if up == down:
            return
        half_len = 10 * max(up, down)
        h = firwin(2 * half_len + 1, 1.0 / max(up, down), window=("kaiser", 5.0)) * up
        pre_pad = down - half_len % down  # scipy's alignment of the filter centre
        h = np.concatenate([np.zeros(pre_pad), h])
        pre_remove = (half_len + pre_pad) // down
        # y[q*up + r] = sum_s x[q*down + s] * h[(r + pre_remove) * down - s * up]
        centre = (np.arange(up) + pre_remove) * down
        self.s_min = int(-((len(h) - 1 - centre.min()) // up))  # ceil((c - K + 1) / up)
        s_max = int(centre.max() // up)
        taps = centre[None, :] - np.arange(self.s_min, s_max + 1)[:, None] * up
        inside = (taps >= 0) & (taps < len(h))
        w = np.where(inside, h[np.clip(taps, 0, len(h) - 1)], 0.0)
        self.width = w.shape[0]
        self.kernel = tf.constant(w.astype(np.float32)[:, None, :])  # (width, 1, up)

    def __call__(self, audio):
        x = tf.convert_to_tensor(audio, tf.float32)
        if self.up == self.down:
            return x
        n, length = tf.shape(x)[0], tf.shape(x)[1]
        if self.s_min < 0:
            x = tf.pad(x, [[0, 0], [-self.s_min, 0]])
        else:
            x = x[:, self.s_min :]
        x = tf.pad(x, [[0, 0], [0, self.width + 2 * self.down]])
        y = tf.nn.conv1d(x[..., None], self.kernel, stride=self.down, padding="VALID")
        n_out = (length * self.up + self.down - 1) // self.down
        return tf.reshape(y, [n, -1])[:, :n_out]


class HearModel(tf.Module):
    """A panns-keras model with the attributes the HEAR API requires."""

    def __init__(self, model, sample_rate: int | None = None):
        super().__init__(name="panns_keras_hear")
        self.model = model
        spec = model.spec
        if spec.head.kind != "clip":
            raise UserError(f"{spec.name}: HEAR needs a clip model with an embedding output")
        model_rate = int(spec.sample_rate)
        if sample_rate is None:
            sample_rate = model_rate if model_rate in VALIDATOR_SAMPLE_RATES else DEFAULT_INPUT_RATE
        self.sample_rate = int(sample_rate)
        if self.sample_rate < 8000:
            raise UserError(f"HEAR input rate {self.sample_rate} Hz is too low")
        self.resampler = Resampler(self.sample_rate, model_rate)
        self.scene_embedding_size = int(spec.head.embedding_size)
        self.timestamp_embedding_size = (
            int(spec.backbone.widths[-1]) if spec.family == "convnet" else None
        )
        if spec.family == "convnet" and spec.frontend is not None and spec.wavegram is None:
            ratio = 1
            for t, _ in spec.backbone.pools:
                ratio *= t
            self.time_ratio = ratio
            self.timestamp_hop_ms = 1000.0 * spec.frontend.hop_size * ratio / model_rate
        else:
            self.time_ratio = None
            self.timestamp_hop_ms = None

    def scene(self, audio):
        # HEAR input rate -> model rate (identity if equal); the model pads short clips.
        return self.model(self.resampler(audio), training=False)["embedding"]

    def frames(self, audio):
        """Backbone features ``(n, T', C)`` before time pooling (log-mel convnets)."""
        return self.model.frame_embeddings(self.resampler(audio))


def load_model(model_file_path: str = "", sample_rate: int | None = None) -> HearModel:
    """Loads a model directory / ``.keras`` file / preset name (empty: untrained cnn14) for HEAR.

    ``sample_rate``: the audio rate ``get_*_embeddings`` will receive (default: the
    environment variable PANNS_KERAS_HEAR_SAMPLE_RATE, else the model's rate when
    hear-validator accepts it, else 48000); audio is resampled to the model's rate.
    """
    if sample_rate is None and os.environ.get(RATE_ENV):
        try:
            sample_rate = int(os.environ[RATE_ENV])
        except ValueError:
            raise UserError(f"{RATE_ENV}={os.environ[RATE_ENV]!r} is not a sample rate") from None
    if model_file_path:
        from panns_keras.models.build import load_model  # a path or a preset name

        model = load_model(model_file_path)
    else:
        from panns_keras.models.build import build_model

        model = build_model("cnn14", seed=0)
    return HearModel(model, sample_rate)


def get_scene_embeddings(audio, model: HearModel):
    """``audio`` float32 ``[n_sounds, n_samples]`` -> ``[n_sounds, scene_embedding_size]``."""
    return tf.convert_to_tensor(model.scene(audio))


def get_timestamp_embeddings(audio, model: HearModel):
    """Returns (embeddings ``[n_sounds, n_timestamps, emb]``, timestamps ms ``[n_sounds, n]``)."""
    if model.timestamp_hop_ms is None:
        raise UserError(f"{model.model.spec.name}: no timestamp embeddings for this family")
    emb = tf.convert_to_tensor(model.frames(audio))
    n, steps = tf.shape(emb)[0], tf.shape(emb)[1]
    centres = (tf.range(steps, dtype=tf.float32) + 0.5) * model.timestamp_hop_ms
    timestamps = tf.tile(centres[None, :], [n, 1])
    return emb, timestamps
