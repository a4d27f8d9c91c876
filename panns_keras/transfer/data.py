"""Clip sets for transfer learning: load TFRecords (or prepare a folder / CSV) into memory.

Transfer-learning datasets (ESC-50, GTZAN, FSDD, ...) are small, so the clips are held in
memory as one ``(N, samples)`` float32 array; that makes folds, cached embeddings and the
data hash simple. Each record carries its fold (``panns_keras.data.formats``); folders written
before that keep theirs in ``folds.json`` beside the shards, still read.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import os

import numpy as np
from absl import logging

from panns_keras.data import formats
from panns_keras.errors import UserError

MANIFEST = formats.MANIFEST_NAME
LABELS = formats.LABELS_NAME


@dataclasses.dataclass
class ClipSet:
    """Clips in memory. ``folds[i]`` is "" when the data has no fold column."""

    waveforms: np.ndarray  # (N, samples) float32
    targets: np.ndarray  # (N, K) float32 multi-hot
    clip_ids: list[str]
    folds: list[str]
    labels: list[tuple[str, str]]  # (mid, display name)
    sample_rate: int

    def __len__(self) -> int:
        return len(self.clip_ids)

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def multi_label(self) -> bool:
        """True when any clip has more than one label (sigmoid + mAP, else softmax + acc)."""
        return bool(np.any(self.targets.sum(axis=1) > 1))

    def subset(self, idx) -> ClipSet:
        idx = np.asarray(idx, dtype=np.int64)
        return ClipSet(self.waveforms[idx], self.targets[idx],
                       [self.clip_ids[i] for i in idx], [self.folds[i] for i in idx],
                       self.labels, self.sample_rate)  # fmt: skip

    def data_hash(self) -> str:
        h = hashlib.sha256()
        h.update(json.dumps([self.clip_ids, self.sample_rate]).encode())
        h.update(np.ascontiguousarray(self.waveforms).tobytes())
        h.update(np.ascontiguousarray(self.targets).tobytes())
        return h.hexdigest()[:16]


def prepare_into(data: str, out_dir: str, sample_rate: int, clip_seconds: float,
                 num_workers: int = 1) -> str:  # fmt: skip
    """Runs data_prep on a class folder or a CSV into ``out_dir``; returns ``out_dir``."""
    from data_prep.prepare import prepare

    kw = {"class_dir": data} if os.path.isdir(data) else {"generic_csv": data}
    labels_csv = os.path.join(os.path.dirname(os.path.abspath(data)), LABELS)
    if "generic_csv" in kw and os.path.isfile(labels_csv):
        kw["labels_csv"] = labels_csv  # a labels.csv beside the CSV fixes the class order
    manifest = prepare(out_dir, sample_rate=sample_rate, clip_seconds=clip_seconds,
                       num_workers=num_workers, **kw)  # fmt: skip
    skipped = manifest.get("skipped") or []
    if skipped:
        logging.warning("prepare skipped %d input(s), e.g. %s", len(skipped), skipped[0])
    return out_dir


def read_tfrecord_dir(directory: str) -> ClipSet:
    """All clips of a data_prep output folder, in file order."""
    import tensorflow as tf

    from panns_keras.data import schema
    from panns_keras.labels import read_label_file

    files = sorted(glob.glob(formats.shard_pattern(directory)))
    if not files:
        raise UserError(f"{directory}: no *{formats.SHARD_SUFFIX} files")
    labels = read_label_file(os.path.join(directory, LABELS))
    legacy_folds = formats.read_legacy_folds(directory)
    waves, targets, ids, folds, rates = [], [], [], [], set()
    for rec in tf.data.TFRecordDataset(files).map(schema.parse_example):
        waves.append(schema.decode_audio(rec).numpy())
        hot = np.zeros(len(labels), np.float32)
        hot[rec[schema.LABELS].numpy()] = 1.0
        targets.append(hot)
        ids.append(rec[schema.CLIP_ID].numpy().decode("utf-8"))
        folds.append(rec[schema.FOLD].numpy().decode("utf-8") or legacy_folds.get(ids[-1], ""))
        rates.add(int(rec[schema.SAMPLE_RATE].numpy()))
    if len(rates) != 1:
        raise UserError(f"{directory}: clips with several sample rates {sorted(rates)}")
    if len({w.shape for w in waves}) != 1:
        raise UserError(f"{directory}: clips of different lengths")
    return ClipSet(np.stack(waves), np.stack(targets), ids, folds, labels, rates.pop())


def load_clips(data: str, workdir: str, sample_rate: int, clip_seconds: float = 10.0,
               num_workers: int = 1) -> ClipSet:  # fmt: skip
    """TFRecord folder (has manifest.json) as is; a class folder or CSV is prepared first
    into ``workdir/data`` at the model's sample rate."""
    if not os.path.exists(data):
        raise UserError(f"{data}: not found")
    if os.path.isdir(data) and os.path.isfile(os.path.join(data, MANIFEST)):
        clips = read_tfrecord_dir(data)
    else:
        out = os.path.join(workdir, "data")
        clips = read_tfrecord_dir(prepare_into(data, out, sample_rate, clip_seconds,
                                               num_workers))  # fmt: skip
    if clips.sample_rate != sample_rate:
        raise UserError(f"{data}: clips at {clips.sample_rate} Hz, model expects {sample_rate} "
                        "Hz (prepare the data at the model's rate)")  # fmt: skip
    return clips


def _holdout(clip_id: str, fraction: float) -> bool:
    h = int(hashlib.sha1(clip_id.encode()).hexdigest()[:8], 16)
    return h / 0xFFFFFFFF < fraction


def make_splits(clips: ClipSet, folds: str = "", holdout: float = 0.2):
    """``[(name, train_idx, test_idx), ...]``.

    folds: "all" (each fold in turn is the test fold), "a,b" (those test folds), "none"
      (train on everything, no test), or "" (fold "test" if present, else a deterministic
      ``holdout`` fraction chosen by clip-id hash).
    """
    ids = np.asarray(clips.clip_ids)
    fold_arr = np.asarray(clips.folds)
    known = sorted({f for f in clips.folds if f})
    if folds == "none":
        return [("all", np.arange(len(ids)), np.arange(0))]
    if folds in ("all", "") and not (folds == "" and "test" not in known):
        wanted = known if folds == "all" else ["test"]
    elif folds:
        wanted = [f.strip() for f in folds.split(",") if f.strip()]
    else:
        test = np.array([_holdout(i, holdout) for i in ids], bool)
        return [("holdout", np.flatnonzero(~test), np.flatnonzero(test))]
    if not known:
        raise UserError("--folds: the data has no fold names (give a CSV with a fold column)")
    missing = [f for f in wanted if f not in known]
    if missing:
        raise UserError(f"--folds: unknown fold(s) {missing}; the data has {known}")
    splits = []
    for f in wanted:
        test = fold_arr == f
        train = ~test & (fold_arr != "")  # clips without a fold never enter CV training
        tr, te = np.flatnonzero(train), np.flatnonzero(test)
        if set(ids[tr]) & set(ids[te]):  # clip ids are unique; this guards future changes
            raise AssertionError(f"fold {f}: test clips leak into training")
        splits.append((f"fold_{f}", tr, te))
    return splits
