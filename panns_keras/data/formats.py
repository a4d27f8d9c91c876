"""Every on-disk format of a prepared dataset, defined once.

A dataset folder written by ``panns_keras.data.prepare`` holds:

  <name>-00000-of-000NN.tfrecord   shards of ``tf.train.Example`` records (fields below)
  labels.csv                       the class list (``read_labels_csv`` states the one rule)
  manifest.json                    shards, their class group and fold, counts, skips

``panns_keras.data.prepare`` (writer), ``panns_keras.data.pipeline`` (reader), the trainer
and transfer all import the names and rules from here, so they cannot drift. No TensorFlow
import (but ``list_files`` on a remote file system): data-prep workers use this module too
(the ``tf.io`` feature spec is in ``schema``).

Record fields (``tf.train.Example``):
  audio        bytes   little-endian int16 PCM, mono (float -> int16: clip to [-1, 1],
                       x 32767, round half to even; int16 -> float: / 32767, the reference's)
  num_samples  int64   true length before padding
  sample_rate  int64
  labels       int64[] class indices (possibly empty)
  clip_id      bytes   utf-8 id, unique in a dataset
  source       bytes   utf-8 source path (informational)
  fold         bytes   utf-8 cross-validation fold ("" = none). Records written before folds
                       existed lack it and read as "".

Folds. Each clip belongs to at most one fold (a free-form string: "1".."5", a speaker, ...).
``prepare`` takes it from a CSV's ``fold`` column or, for class folders, from a regular
expression on the file's path (``fold_pattern``), writes it into every record, and keeps
each shard single-fold (the manifest's shard entry names it), so the reader can select folds
by file and still filters by record. k-fold cross-validation: train with
``exclude_folds=[f]``, evaluate with ``folds=[f]`` (``fold_selected``).

Manifest versions: 1 (no folds) is read as version 2 with every fold "".
"""

from __future__ import annotations

import csv
import dataclasses
import glob
import io
import json
import os
from collections.abc import Iterable

from panns_keras.errors import UserError

MANIFEST_NAME = "manifest.json"
LABELS_NAME = "labels.csv"
LEGACY_FOLDS_NAME = "folds.json"  # {clip_id: fold} beside shards of the old transfer path
SHARD_SUFFIX = ".tfrecord"
MANIFEST_VERSION = 2  # 2: shard entries carry "fold", records carry the fold field
READABLE_MANIFEST_VERSIONS = (1, 2)

# tf.train.Example feature names
AUDIO = "audio"
NUM_SAMPLES = "num_samples"
SAMPLE_RATE = "sample_rate"
LABELS = "labels"
CLIP_ID = "clip_id"
SOURCE = "source"
FOLD = "fold"

INT16_SCALE = 32767.0
NO_FOLD = ""

LABELS_HEADER = ("index", "mid", "display_name")


class FormatError(UserError, ValueError):
    """A dataset file does not follow its format."""


# ---------------------------------------------------------------------------- shards
def shard_filename(name: str, index: int, total: int) -> str:
    return f"{name}-{index:05d}-of-{total:05d}{SHARD_SUFFIX}"


def shard_pattern(directory: str) -> str:
    """The glob of every shard in a dataset folder."""
    return os.path.join(directory, "*" + SHARD_SUFFIX)


# ---------------------------------------------------------------------------- labels.csv
@dataclasses.dataclass(frozen=True)
class Label:
    """One class: its output index, its id (an AudioSet MID or the data set's own) and its
    display name. The one in-memory shape of a label in the package: label files, models
    (``AudioTagger.class_labels``), the converter, the trainer and prepare all use it.

    ``mid`` is None for a model given display names only, ``display_name`` for one given ids
    only (``AudioTagger(labels=..., label_ids=...)``); a label file always has both.
    """

    index: int
    mid: str | None
    display_name: str | None


def to_labels(items: Iterable | None = None, ids: Iterable | None = None) -> list[Label] | None:
    """Labels numbered by position from what callers hand in: :class:`Label` objects,
    ``(mid, display_name)`` pairs (the 0.1 form), or display names, whose ids come from
    ``ids`` (else None). ``ids`` alone gives labels without names; neither gives None."""
    ids = None if ids is None else [str(m) for m in ids]
    if items is None:
        return None if ids is None else [Label(i, m, None) for i, m in enumerate(ids)]
    items = list(items)
    if ids is not None and len(ids) != len(items):
        raise ValueError(f"{len(items)} labels but {len(ids)} label ids")
    out = []
    for i, item in enumerate(items):
        if isinstance(item, Label):
            label = dataclasses.replace(item, index=i)
        elif isinstance(item, (tuple, list)) and len(item) == 2:
            label = Label(i, str(item[0]), str(item[1]))
        else:
            out.append(Label(i, ids[i] if ids is not None else None, str(item)))
            continue
        if ids is not None:
            raise ValueError("label ids go with display names, not with labels or pairs")
        out.append(label)
    return out


def parse_labels_csv(text: str, source: str = LABELS_NAME) -> list[Label]:
    """The one rule for ``labels.csv`` (AudioSet's ``class_labels_indices.csv`` layout).

    Rows ``index,mid,display_name`` (CSV quoting, fields stripped); an optional first row
    that is the header ``index,mid,display_name``; blank lines ignored; rows in any order,
    but the indices must be exactly 0..N-1, each once. Returned in index order.
    """
    rows = [r for r in csv.reader(io.StringIO(text)) if r and any(c.strip() for c in r)]
    if rows and [c.strip().lower() for c in rows[0][:3]] == list(LABELS_HEADER):
        rows = rows[1:]
    labels = []
    for row in rows:
        index = row[0].strip()
        if len(row) < 3 or not index.isdigit():
            raise FormatError(f"{source}: row {row!r} is not 'index,mid,display_name'")
        labels.append(Label(int(index), row[1].strip(), row[2].strip()))
    labels.sort(key=lambda label: label.index)
    if [label.index for label in labels] != list(range(len(labels))):
        raise FormatError(f"{source}: label indices must be 0..N-1, each once")
    return labels


def read_labels_csv(path: str | os.PathLike) -> list[Label]:
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FormatError(f"{path}: label file not found")
    with open(path, encoding="utf-8", newline="") as f:
        return parse_labels_csv(f.read(), path)


def format_labels_csv(labels: Iterable[Label]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(LABELS_HEADER)
    for label in labels:
        w.writerow([label.index, label.mid or "", label.display_name or ""])
    return buf.getvalue()


def write_labels_csv(path: str | os.PathLike, labels: Iterable[Label]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(format_labels_csv(labels))


# ---------------------------------------------------------------------------- manifest.json
def manifest_path(directory: str) -> str:
    return os.path.join(directory, MANIFEST_NAME)


def parse_manifest(data: str | dict, source: str = MANIFEST_NAME) -> dict:
    """A manifest as the current version: version 1 (or unversioned) gets ``fold: ""`` on
    every shard; an unknown version is an error."""
    m = json.loads(data) if isinstance(data, str) else dict(data)
    version = int(m.get("version", 1))
    if version not in READABLE_MANIFEST_VERSIONS:
        raise FormatError(
            f"{source}: manifest version {version}; this reader knows {READABLE_MANIFEST_VERSIONS}"
        )
    m["shards"] = [dict(s, fold=str(s.get("fold", NO_FOLD))) for s in m.get("shards", [])]
    m.setdefault("fold_counts", {})
    return m


def read_manifest(directory_or_file: str) -> dict:
    """``<dir>/manifest.json`` (or the file itself), upgraded by ``parse_manifest``."""
    path = directory_or_file
    if os.path.isdir(path):
        path = manifest_path(path)
    with open(path, encoding="utf-8") as f:
        return parse_manifest(f.read(), path)


def read_legacy_folds(directory: str) -> dict[str, str]:
    """``folds.json`` ({clip_id: fold}) of folders made by the old transfer path, or {}."""
    path = os.path.join(directory, LEGACY_FOLDS_NAME)
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as f:
        return {str(k): str(v) for k, v in json.load(f).items()}


# ---------------------------------------------------------------------------- folds
def fold_list(spec) -> tuple[str, ...]:
    """``"1,2"`` / ``["1", 2]`` / ``None`` -> ``("1", "2")`` / ``()``."""
    if spec is None:
        return ()
    if isinstance(spec, str):
        items = spec.split(",")
    elif isinstance(spec, int):
        items = [spec]
    else:
        items = list(spec)
    return tuple(s for s in (str(i).strip() for i in items) if s)


def fold_selected(fold: str, folds=(), exclude_folds=()) -> bool:
    """Whether a clip of ``fold`` is in the selection: in ``folds`` when that is given (a
    clip without a fold is then never selected), and not in ``exclude_folds``. With
    ``exclude_folds`` alone, clips without a fold are kept."""
    folds, exclude_folds = fold_list(folds), fold_list(exclude_folds)
    if folds and fold not in folds:
        return False
    return fold not in exclude_folds


def check_fold_selection(folds, exclude_folds) -> None:
    both = set(fold_list(folds)) & set(fold_list(exclude_folds))
    if both:
        raise FormatError(f"fold(s) {sorted(both)} both selected and excluded")


def list_files(patterns) -> list[str]:
    """The shards a glob string (comma-separated allowed) or a list of globs names: sorted,
    unique, hidden files included, ``*.tmp`` (a shard being written) left out.

    Local paths are expanded here; a pattern on another file system (``gs://``, ``s3://``,
    ...) goes through ``tf.io.gfile`` (the only TensorFlow import of this module).

    Raises:
      FileNotFoundError: nothing matches.
    """
    if isinstance(patterns, str):
        patterns = [p for p in patterns.split(",") if p.strip()]
    patterns = [os.fspath(p).strip() for p in patterns]
    if any("://" in p for p in patterns):
        import tensorflow as tf

        found = {f for p in patterns for f in tf.io.gfile.glob(p)}
    else:
        found = {f for p in patterns for f in glob.glob(p, include_hidden=True)}
    files = sorted(f for f in found if not f.endswith(".tmp"))
    if not files:
        raise FileNotFoundError(f"no TFRecord files match {patterns!r}")
    return files
