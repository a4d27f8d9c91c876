"""What the trainer reads: the data source, the labels, and data errors as one line.

``config.data.source``:

* ``tfrecord`` (default): the ``tf.data`` pipeline over ``config.data.train_files`` (needs
  TensorFlow, also under ``KERAS_BACKEND=jax``);
* ``synthetic``: one random batch of the config's shapes, made on the device and fed every
  step, for throughput measurements where TensorFlow (or data) is absent. No evaluation.

TensorFlow is imported only when a ``tfrecord`` source is read: :func:`preflight` checks
local shards, their manifest and the labels without it, so `panns-keras train` reports such a
mistake in one line before TensorFlow loads.
"""

from __future__ import annotations

import os
import re

import ml_collections

from panns_keras.data import formats
from panns_keras.errors import UserError

SOURCES = ("tfrecord", "synthetic")
_SHARD = re.compile(r"([^\s'\"\[\]]+\.tfrecords?(?:[-.][^\s'\"\[\],]*)?)")


def is_synthetic(config) -> bool:
    return str(config.data.get("source", "tfrecord")) == "synthetic"


def train_files(config) -> list[str]:
    """The training shards; one-line error when the glob matches nothing."""
    try:
        files = formats.list_files(config.data.train_files)
    except FileNotFoundError:
        files = []
    if not files:
        raise UserError(
            f"config.data.train_files: {config.data.train_files!r} matches no "
            "TFRecord file (check the path, or run `panns-keras prepare`)"
        )
    return files


def preflight(config) -> None:
    """The data mistakes :func:`check_shards` and :func:`load_labels` find, checked before
    any model or TensorFlow loads (the trainer checks them again)."""
    load_labels(config)
    check_shards(config, int(config.data.sample_rate))


def check_shards(config, model_sample_rate: int) -> None:
    """Before training: the shards exist, and their manifest's sample rate and class count
    match the config and the model (a clip at another rate would train silently wrong)."""
    if is_synthetic(config):
        return
    files = train_files(config)
    check_teacher(config, files)
    manifest_dir = config.data.get("manifest_dir", "") or os.path.dirname(files[0])
    path = formats.manifest_path(manifest_dir)
    if not os.path.isfile(path):
        return  # shards written without a manifest: nothing to compare
    try:
        manifest = formats.read_manifest(manifest_dir)
    except (ValueError, OSError) as e:
        raise UserError(f"{path}: unreadable manifest ({e})") from None
    rate = manifest.get("sample_rate")
    if rate is not None and int(rate) != int(config.data.sample_rate):
        raise UserError(
            f"{path}: clips at {rate} Hz, but config.data.sample_rate is "
            f"{config.data.sample_rate} (re-run prepare with "
            f"--sample_rate={model_sample_rate}, or fix the config)"
        )
    k = manifest.get("num_classes")
    if k is not None and int(k) != int(config.data.num_classes):
        raise UserError(
            f"{path}: {k} classes, but config.data.num_classes is {config.data.num_classes}"
        )


def check_teacher(config, files: list[str]) -> None:
    """With ``config.data.teacher``: every training shard of the selected folds has its
    predictions there, for the data's classes (one line naming the first that has not)."""
    if not config.data.get("teacher", ""):
        return
    from panns_keras.data import teacher

    folds = formats.fold_list(config.data.get("train_folds", ""))
    held = formats.fold_list(config.data.get("eval_folds", ""))
    manifest_dir = config.data.get("manifest_dir", "") or os.path.dirname(files[0])
    if folds or held:  # held-out shards need no predictions
        entries = {}
        if os.path.isfile(formats.manifest_path(manifest_dir)):
            entries = {s["file"]: s for s in formats.read_manifest(manifest_dir)["shards"]}

        def keep(f):  # as pipeline.select_fold_files: shards without a fold are read
            fold = entries.get(os.path.basename(f), {}).get("fold", formats.NO_FOLD)
            return fold == formats.NO_FOLD or formats.fold_selected(fold, folds, held)

        files = [f for f in files if keep(f)]
    teacher.prediction_files(files, str(config.data.teacher), int(config.data.num_classes))


def dataset_fn(config):
    """``make(seed_offset, input_context) -> tf.data.Dataset`` of training batches."""

    def make(seed_offset: int = 0, input_context=None):
        from panns_keras.data.pipeline import make_train_dataset

        cfg = ml_collections.ConfigDict(config.to_dict())
        cfg.seed = int(config.seed) + int(seed_offset)
        return make_train_dataset(cfg, input_context)

    return make


def load_labels(config: ml_collections.ConfigDict) -> list[formats.Label]:
    """Labels from config.data.labels, else labels.csv beside the shards, else generic."""
    from panns_keras import labels as labels_lib

    k = int(config.data.num_classes)
    candidates = [config.data.labels] if config.data.labels else []
    if not candidates and not is_synthetic(config) and config.data.train_files:
        try:
            first = formats.list_files(config.data.train_files)[0]
            candidates.append(os.path.join(os.path.dirname(first), formats.LABELS_NAME))
        except (FileNotFoundError, IndexError):
            pass
    for path in candidates:
        if path and os.path.isfile(path):
            labels = formats.read_labels_csv(path)
            if len(labels) != k:
                raise UserError(f"{path}: {len(labels)} labels for num_classes={k}")
            return labels
    if config.data.labels:
        raise UserError(f"{config.data.labels}: label file not found")
    if k == 527:
        return labels_lib.audioset()
    return [formats.Label(i, f"class_{i}", f"class_{i}") for i in range(k)]


def data_error(exc: BaseException) -> UserError | None:
    """A one-line :class:`UserError` for a data error raised while training, else None."""
    try:
        import tensorflow as tf
    except ImportError:
        return None
    if not isinstance(exc, tf.errors.OpError):
        return None
    text = str(getattr(exc, "message", "") or exc)
    found = _SHARD.search(text)
    where = found.group(1) if found else "a training shard"
    if "corrupted or truncated" in text or isinstance(exc, tf.errors.DataLossError):
        return UserError(
            f"{where}: corrupted or truncated TFRecord shard (re-create it with "
            "`panns-keras prepare`, or skip it with "
            "--config.data.skip_corrupt=true)"
        )
    if isinstance(exc, tf.errors.NotFoundError):
        return UserError(f"{where}: not found while training (a shard was moved or deleted)")
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return UserError(
        f"{where}: unreadable training data ({first[:200]}; "
        "--config.data.skip_corrupt=true skips bad records)"
    )
