"""Teacher predictions stored with the data: the one definition of their on-disk format.

``panns-keras teach`` (:mod:`panns_keras.train.distill`) writes, into its ``--out`` folder:

  <shard>.logits    one file per prepared shard (``<shard>`` is the shard's file name,
                    ``train-00000-of-00004.tfrecord.logits``): a TFRecord file with one
                    ``tf.train.Example`` per clip of the shard, in the shard's record order:
                      clip_id  bytes  the clip's id (the key; checked against the shard's)
                      logits   bytes  little-endian float16 [num_classes]: the teacher's clip
                                      logits (several teachers: the mean of their logits)
  teacher.json      the models (name as given, architecture, a SHA-256 of their weights,
                    package version), ``num_classes``, ``sample_rate``, and per shard: its
                    predictions file, clip count, the shard's size and SHA-256 and the
                    predictions file's size
  .teacher_state/   one JSON per finished shard (resume; as ``prepare``'s ``.state``)

The input pipeline (``data/pipeline.py``) reads ``<shard>.logits`` beside each shard it
reads, record for record, so every sampling mode (balanced, shuffled, folds, several
replicas) carries each clip's teacher logits with it; a clip id that differs stops training.
Nothing here imports TensorFlow (the ``tf.io`` parsing is :func:`parse_fn`, which imports it
when called).
"""

from __future__ import annotations

import hashlib
import json
import os

from panns_keras.data import formats
from panns_keras.errors import UserError

TEACHER_NAME = "teacher.json"
PREDICTIONS_SUFFIX = ".logits"
STATE_DIR = ".teacher_state"
FORMAT = "panns_keras.teacher_logits"
VERSION = 1
LOGITS = "logits"  # tf.train.Example feature: float16 little-endian bytes
CLIP_ID = formats.CLIP_ID
DTYPE = "float16"


def predictions_name(shard_path: str) -> str:
    """The predictions file name of a shard (its own file name + ``.logits``)."""
    return os.path.basename(shard_path) + PREDICTIONS_SUFFIX


def teacher_path(directory: str) -> str:
    return os.path.join(directory, TEACHER_NAME)


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_teacher(directory: str) -> dict:
    """``teacher.json`` of a predictions folder; one-line error when absent or unreadable."""
    path = teacher_path(directory)
    if not os.path.isdir(directory):
        raise UserError(
            f"{directory}: teacher predictions folder not found (make it with `panns-keras teach`)"
        )
    if not os.path.isfile(path):
        raise UserError(
            f"{directory}: no {TEACHER_NAME} (not a folder written by `panns-keras teach`)"
        )
    try:
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: unreadable ({e})") from None
    if meta.get("format") != FORMAT or int(meta.get("version", 0)) != VERSION:
        raise UserError(f"{path}: not teacher predictions of format {FORMAT} version {VERSION}")
    return meta


def prediction_files(shards: list[str], directory: str, num_classes: int | None = None) -> dict:
    """``{shard path: predictions path}`` for every shard, checked against ``teacher.json``:
    a shard without predictions, one changed since they were made (another size), a
    predictions file of another size or another class count is a one-line ``UserError``."""
    meta = read_teacher(directory)
    if num_classes is not None and int(meta["num_classes"]) != int(num_classes):
        raise UserError(
            f"{teacher_path(directory)}: teacher logits of {meta['num_classes']} "
            f"classes, but the data has {num_classes}"
        )
    entries = {e["shard"]: e for e in meta["shards"]}
    out = {}
    for shard in shards:
        name = os.path.basename(shard)
        entry = entries.get(name)
        if entry is None:
            raise UserError(
                f"{shard}: no teacher predictions in {directory} (run `panns-keras "
                f"teach --data=... --out={directory}` over it)"
            )
        path = os.path.join(directory, entry["file"])
        local = "://" not in shard
        if local and os.path.getsize(shard) != int(entry["shard_bytes"]):
            raise UserError(
                f"{shard}: changed since its teacher predictions in {directory} "
                "were made (run `panns-keras teach` again)"
            )
        if "://" not in path and (
            not os.path.isfile(path) or os.path.getsize(path) != int(entry["bytes"])
        ):
            raise UserError(
                f"{path}: missing or truncated teacher predictions of {shard} "
                "(run `panns-keras teach` again)"
            )
        out[shard] = path
    return out


def encode_record(clip_id: str, logits) -> bytes:
    """One clip's predictions as a serialized ``tf.train.Example`` (float16 logits)."""
    import numpy as np
    import tensorflow as tf

    data = np.asarray(logits, dtype="<f2").tobytes()
    feature = {
        CLIP_ID: tf.train.Feature(bytes_list=tf.train.BytesList(value=[clip_id.encode()])),
        LOGITS: tf.train.Feature(bytes_list=tf.train.BytesList(value=[data])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def parse_fn(num_classes: int):
    """``serialized -> (clip_id, float16 logits [num_classes])`` (graph-safe)."""
    import tensorflow as tf

    spec = {
        CLIP_ID: tf.io.FixedLenFeature([], tf.string),
        LOGITS: tf.io.FixedLenFeature([], tf.string),
    }

    def parse(serialized):
        parsed = tf.io.parse_single_example(serialized, spec)
        logits = tf.io.decode_raw(parsed[LOGITS], tf.float16, little_endian=True)
        return parsed[CLIP_ID], tf.ensure_shape(logits, [num_classes])

    return parse


def read_predictions(path: str) -> list[tuple[str, object]]:
    """``[(clip_id, float16 logits), ...]`` of one predictions file, in record order (tests,
    tools)."""
    import numpy as np
    import tensorflow as tf

    out = []
    for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
        f = tf.train.Example.FromString(record).features.feature
        logits = np.frombuffer(f[LOGITS].bytes_list.value[0], dtype="<f2")
        out.append((f[CLIP_ID].bytes_list.value[0].decode("utf-8"), logits))
    return out
