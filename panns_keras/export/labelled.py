"""Labelled audio for ``export --check`` and class-balanced calibration (``--representative``).

A path is read as (the layouts ``prepare`` and ``finetune`` take, through the same readers):
  * a folder written by ``prepare`` (``manifest.json``, ``labels.csv``, TFRecord shards);
  * a class folder: one sub-folder of audio per class;
  * a ``path,labels[,fold]`` CSV (a ``labels.csv`` beside it fixes the class list).

Class names are matched to the model's classes by display name or id (case-insensitive), as
``prepare`` matches them; a class the model does not know is a one-line error.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from panns_keras.audio import fit_length
from panns_keras.data import formats
from panns_keras.errors import UserError


@dataclasses.dataclass
class LabelledClips:
    """Clips and their classes, in the model's class order.

    Attributes:
      sources: where each clip came from (file path, or ``shard:record``).
      audio: one float32 waveform per clip at the model's sample rate.
      classes: the model's class indices of each clip.
      num_classes: the model's number of classes.
    """

    sources: list[str]
    audio: list[np.ndarray]
    classes: list[tuple[int, ...]]
    num_classes: int

    def targets(self) -> np.ndarray:
        """``(clips, num_classes)`` 0/1 targets."""
        t = np.zeros((len(self.classes), self.num_classes), np.float32)
        for i, c in enumerate(self.classes):
            t[i, list(c)] = 1.0
        return t


def is_labelled(path) -> bool:
    """True when ``path`` looks like labelled audio (prepared folder, class folder or CSV)."""
    p = Path(path)
    if p.is_file():
        return p.suffix.lower() == ".csv"
    if not p.is_dir():
        return False
    if (p / formats.MANIFEST_NAME).is_file():
        return True
    return any(e.is_dir() and not e.name.startswith(".") for e in p.iterdir())


def _resolver(model_labels: Sequence):
    from panns_keras.data.prepare.inputs import LabelResolver

    labels = [
        dataclasses.replace(
            label, mid=label.mid or label.display_name, display_name=label.display_name or label.mid
        )
        for label in formats.to_labels(model_labels)
    ]
    return LabelResolver(labels)


def _model_classes(labels: Sequence, model_labels, where: str) -> list[int]:
    """The model's index of each data class (by id, else display name); a one-line error for
    a class the model lacks."""
    if model_labels is None:
        raise UserError(f"{where}: the model has no class names to match the data's labels")
    resolve = _resolver(model_labels)
    out = []
    for label in formats.to_labels(labels):
        i = resolve(label.mid) if label.mid else None
        i = resolve(label.display_name) if i is None and label.display_name else i
        if i is None:
            raise UserError(
                f"{where}: class {label.display_name!r} is not one of the model's "
                f"{len(model_labels)} classes"
            )
        out.append(i)
    return out


def _listing(path: Path):
    from panns_keras.data.prepare import inputs

    if path.is_dir():
        return inputs.list_class_folders(str(path))
    beside = path.parent / formats.LABELS_NAME
    return inputs.list_generic_csv(str(path), str(beside) if beside.is_file() else "")


def read_labelled(path, model_labels, sample_rate: int, max_clips: int = 0) -> LabelledClips:
    """Every readable clip of ``path`` (see module doc) at ``sample_rate``.

    Args:
      model_labels: the model's classes (``model.class_labels`` or display names).
      max_clips: stop after this many clips (0: all), drawn across classes.

    Raises:
      UserError: ``path`` missing or in no known layout, a class the model lacks, or no clip.
    """
    p = Path(path)
    if not p.exists():
        raise UserError(f"{path}: not found")
    if not is_labelled(p):
        raise UserError(
            f"{path}: not labelled audio (a class folder, a path,labels CSV or a "
            "folder written by prepare)"
        )
    num_classes = len(model_labels) if model_labels is not None else 0
    if p.is_dir() and (p / formats.MANIFEST_NAME).is_file():
        clips = _read_prepared(p, model_labels, sample_rate, max_clips)
    else:
        clips = _read_listed(p, model_labels, sample_rate, max_clips)
    if not clips:
        raise UserError(f"{path}: no readable labelled clip")
    sources, audio, classes = (list(v) for v in zip(*clips))
    return LabelledClips(sources, audio, classes, num_classes)


def _across_classes(items: list, key) -> list:
    """``items`` reordered round-robin over classes (first class of each), order kept within."""
    groups: dict[int, list] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    order, queues = [], [groups[k] for k in sorted(groups)]
    for i in range(max((len(q) for q in queues), default=0)):
        order += [q[i] for q in queues if i < len(q)]
    return order


def _read_listed(p: Path, model_labels, sample_rate: int, max_clips: int) -> list:
    from panns_keras.audio import AudioError, load_audio

    listing = _listing(p)
    index = _model_classes(listing.labels, model_labels, str(p))
    clips = _across_classes(listing.clips, lambda c: c.labels[0] if c.labels else -1)
    out = []
    for clip in clips:
        if not clip.labels:
            continue
        try:
            x = load_audio(clip.source, sample_rate)
        except AudioError:
            continue  # counted below: the check reports how many clips it scored
        out.append(
            (clip.source, np.asarray(x, np.float32), tuple(sorted(index[i] for i in clip.labels)))
        )
        if max_clips and len(out) >= max_clips:
            break
    return out


def _read_prepared(p: Path, model_labels, sample_rate: int, max_clips: int) -> list:
    import tensorflow as tf

    from panns_keras.audio import resample
    from panns_keras.data import schema

    labels = formats.read_labels_csv(p / formats.LABELS_NAME)
    index = _model_classes(labels, model_labels, str(p))
    files = formats.list_files(formats.shard_pattern(str(p)))
    if not files:
        raise UserError(f"{p}: no TFRecord shards")
    out = []
    for n, record in enumerate(tf.data.TFRecordDataset(files)):
        parsed = schema.parse_example(record)
        x = schema.decode_audio(parsed).numpy()
        count = int(parsed[schema.NUM_SAMPLES].numpy()) or len(x)
        x = resample(x[:count], int(parsed[schema.SAMPLE_RATE].numpy()), sample_rate)
        classes = tuple(sorted(index[int(i)] for i in parsed[schema.LABELS].numpy()))
        if classes:
            out.append((f"{p}:{n}", np.asarray(x, np.float32), classes))
    out = _across_classes(out, lambda c: c[2][0])
    return out[:max_clips] if max_clips else out


def windows(audio: Sequence[np.ndarray], length: int, max_per_clip: int = 0):
    """Consecutive ``length``-sample windows of each clip (the last zero-padded).

    Returns:
      ``(windows [n, length] float32, clip index of each window [n])``.
    """
    rows, owner = [], []
    for i, x in enumerate(audio):
        for w in _clip_windows(x, length, max_per_clip):
            rows.append(w)
            owner.append(i)
    return np.stack(rows).astype(np.float32), np.asarray(owner, np.int64)


def _clip_windows(x: np.ndarray, length: int, max_per_clip: int) -> Iterator[np.ndarray]:
    n = max(1, -(-len(x) // length))
    if max_per_clip:
        n = min(n, max_per_clip)
    for k in range(n):
        yield fit_length(np.asarray(x[k * length : (k + 1) * length], np.float32), length)


def clip_scores(window_scores: np.ndarray, owner: np.ndarray, num_clips: int) -> np.ndarray:
    """Clip scores: the max over each clip's windows (``(clips, classes)``)."""
    out = np.full((num_clips, window_scores.shape[-1]), -np.inf, np.float64)
    np.maximum.at(out, owner, window_scores.astype(np.float64))
    return out
