"""Dependency-free (numpy only) encoder for the clip `tf.train.Example`.

Data preparation workers use it so they never import TensorFlow. It writes the
protobuf wire format of `tf.train.Example` directly, with the features in a fixed
order, so the same clip always gives the same bytes (shard sha256s are stable).
The field layout is described in `panns_keras.data.formats`.
"""

from __future__ import annotations

import numpy as np

from panns_keras.audio import fit_length
from panns_keras.data import formats

INT16_SCALE = formats.INT16_SCALE


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative int64 -> two's complement, 10 bytes
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return _varint((number << 3) | 2) + _varint(len(payload)) + payload


def _bytes_feature(values) -> bytes:
    return _field(1, b"".join(_field(1, v) for v in values))  # Feature.bytes_list


def _int64_feature(values) -> bytes:
    packed = b"".join(_varint(int(v)) for v in values)
    inner = _field(1, packed) if packed else b""
    return _field(3, inner)  # Feature.int64_list


def encode_example(features: dict) -> bytes:
    """Encodes {name: ('bytes'|'int64', [values])} as a serialized tf.train.Example."""
    entries = []
    for name, (kind, values) in features.items():
        feature = _bytes_feature(values) if kind == "bytes" else _int64_feature(values)
        entry = _field(1, name.encode("utf-8")) + _field(2, feature)
        entries.append(_field(1, entry))  # Features.feature (map entry)
    return _field(1, b"".join(entries))  # Example.features


def float_to_int16(waveform) -> np.ndarray:
    """Clips to [-1, 1], scales by 32767 and rounds to the nearest integer."""
    x = np.clip(np.asarray(waveform, dtype=np.float64), -1.0, 1.0)
    return np.rint(x * INT16_SCALE).astype(np.int16)


def serialize_clip(
    waveform,
    labels,
    clip_id: str,
    source: str = "",
    sample_rate: int = 32000,
    clip_samples: int | None = None,
    fold: str = "",
) -> bytes:
    """Serializes one clip as `tf.train.Example` bytes (fields: `panns_keras.data.schema`).

    Args:
      waveform: 1-D float waveform in [-1, 1] (or int16 PCM, taken as is).
      labels: iterable of int class indices.
      clip_id: clip identifier.
      source: source path (informational).
      sample_rate: the waveform's sample rate.
      clip_samples: fixed length (zero-padded / trimmed); None keeps the waveform's length.
      fold: cross-validation fold; "" writes no fold field (byte-identical to records
        written before folds existed, which read as fold "").
    """
    waveform = np.asarray(waveform)
    if waveform.ndim != 1:
        raise ValueError(f"waveform must be 1-D, got shape {waveform.shape}")
    pcm = waveform if waveform.dtype == np.int16 else float_to_int16(waveform)
    if clip_samples is None:
        clip_samples = pcm.shape[0]
    n = min(int(np.shape(pcm)[0]), int(clip_samples))
    pcm = fit_length(pcm, int(clip_samples))
    features = {
        formats.AUDIO: ("bytes", [pcm.astype("<i2").tobytes()]),
        formats.NUM_SAMPLES: ("int64", [n]),
        formats.SAMPLE_RATE: ("int64", [int(sample_rate)]),
        formats.LABELS: ("int64", sorted({int(i) for i in labels})),
        formats.CLIP_ID: ("bytes", [str(clip_id).encode("utf-8")]),
        formats.SOURCE: ("bytes", [str(source).encode("utf-8")]),
    }
    if fold:
        features[formats.FOLD] = ("bytes", [str(fold).encode("utf-8")])
    return encode_example(features)
