"""The TFRecord schema as ``tf.io`` parsing: the field names and rules are in
``panns_keras.data.formats`` (the one module that owns every dataset format).

int16 -> float: divide by 32767 (as the PANNs reference does).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from panns_keras.data import example_codec, formats
from panns_keras.data.formats import AUDIO, CLIP_ID, FOLD, LABELS, NUM_SAMPLES, SAMPLE_RATE, SOURCE

INT16_SCALE = formats.INT16_SCALE

FEATURE_SPEC = {
    AUDIO: tf.io.FixedLenFeature([], tf.string),
    NUM_SAMPLES: tf.io.FixedLenFeature([], tf.int64),
    SAMPLE_RATE: tf.io.FixedLenFeature([], tf.int64),
    LABELS: tf.io.VarLenFeature(tf.int64),
    CLIP_ID: tf.io.FixedLenFeature([], tf.string, default_value=""),
    SOURCE: tf.io.FixedLenFeature([], tf.string, default_value=""),
    FOLD: tf.io.FixedLenFeature([], tf.string, default_value=formats.NO_FOLD),
}


float_to_int16 = example_codec.float_to_int16


def int16_to_float(pcm: np.ndarray) -> np.ndarray:
    return np.asarray(pcm, dtype=np.int16).astype(np.float32) / np.float32(INT16_SCALE)


# One clip -> `tf.train.Example` bytes (the numpy-only encoder prepare's workers use).
serialize_example = example_codec.serialize_clip


def parse_example(serialized) -> dict:
    """Parses one serialized Example (graph-safe). `labels` comes back dense int64 [n]."""
    parsed = tf.io.parse_single_example(serialized, FEATURE_SPEC)
    parsed[LABELS] = tf.sparse.to_dense(parsed[LABELS])
    return parsed


def decode_audio(parsed: dict) -> tf.Tensor:
    """float32 waveform [clip_samples] from a parsed example (int16 / 32767)."""
    pcm = tf.io.decode_raw(parsed[AUDIO], tf.int16, little_endian=True)
    return tf.cast(pcm, tf.float32) / INT16_SCALE


def multi_hot(labels, num_classes: int) -> tf.Tensor:
    """float32 [num_classes] multi-hot target from int64 indices (out-of-range ignored)."""
    labels = tf.cast(labels, tf.int32)
    valid = tf.logical_and(labels >= 0, labels < num_classes)
    labels = tf.boolean_mask(labels, valid)
    hot = tf.reduce_sum(tf.one_hot(labels, num_classes, dtype=tf.float32), axis=0)
    return tf.minimum(hot, 1.0)  # duplicates count once; empty labels give zeros


def example_to_numpy(serialized: bytes) -> dict:
    """Decodes a serialized Example with protobuf only (tests, tools; no TF graph)."""
    ex = tf.train.Example.FromString(serialized)
    f = ex.features.feature
    return {
        AUDIO: np.frombuffer(f[AUDIO].bytes_list.value[0], dtype="<i2").astype(np.int16),
        NUM_SAMPLES: int(f[NUM_SAMPLES].int64_list.value[0]),
        SAMPLE_RATE: int(f[SAMPLE_RATE].int64_list.value[0]),
        LABELS: [int(i) for i in f[LABELS].int64_list.value],
        CLIP_ID: f[CLIP_ID].bytes_list.value[0].decode("utf-8"),
        SOURCE: f[SOURCE].bytes_list.value[0].decode("utf-8"),
        FOLD: f[FOLD].bytes_list.value[0].decode("utf-8") if FOLD in f else formats.NO_FOLD,
    }
