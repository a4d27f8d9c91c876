"""Representative windows for full-integer calibration: TFRecords or a folder of audio.

A path is read as:
  * a directory: audio files in it (recursively; anything soundfile decodes), or the
    ``*.tfrecord*`` files in it when it holds no audio;
  * a ``.tfrecord`` / ``.tfrecords`` file, or a glob pattern matching TFRecord shards;
  * a ``path,labels[,fold]`` CSV: the audio files it lists;
  * a single audio file.
Each clip gives consecutive windows of ``length`` samples (the last one zero-padded).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from panns_keras.audio import fit_length
from panns_keras.errors import UserError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".au", ".opus")


def _is_tfrecord(path: str) -> bool:
    name = os.path.basename(path)
    return ".tfrecord" in name


def _windows(x: np.ndarray, length: int, max_per_clip: int) -> Iterator[np.ndarray]:
    n = max(1, min(max_per_clip, -(-len(x) // length)))
    for i in range(n):
        yield fit_length(np.asarray(x[i * length : (i + 1) * length], np.float32), length)


def _from_tfrecords(files, sample_rate, length, max_per_clip) -> Iterator[np.ndarray]:
    import tensorflow as tf

    from panns_keras.audio import resample
    from panns_keras.data import schema

    for record in tf.data.TFRecordDataset(files):
        parsed = schema.parse_example(record)
        x = schema.decode_audio(parsed).numpy()
        n = int(parsed[schema.NUM_SAMPLES].numpy()) or len(x)
        x = resample(x[:n], int(parsed[schema.SAMPLE_RATE].numpy()), sample_rate)
        yield from _windows(x, length, max_per_clip)


def _from_audio(files, sample_rate, length, max_per_clip) -> Iterator[np.ndarray]:
    from panns_keras.audio import AudioError, load_audio

    for f in files:
        try:
            x = load_audio(f, sample_rate)
        except AudioError:
            continue  # calibration just skips unusable files
        yield from _windows(x, length, max_per_clip)


def representative_windows(
    path, sample_rate: int, length: int, max_windows: int = 100, max_per_clip: int = 3
) -> np.ndarray:
    """float32 ``[n, length]`` windows from ``path`` (see module doc), at most ``max_windows``.

    Raises:
      UserError: nothing usable at ``path``.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        files = sorted(
            str(p)
            for p in Path(path).rglob("*")
            if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS
        )
        records = sorted(str(p) for p in Path(path).rglob("*") if _is_tfrecord(str(p)))
        source = _from_audio if files else _from_tfrecords
        files = files or records
    elif os.path.isfile(path) and path.lower().endswith(".csv"):  # path,labels[,fold]
        from panns_keras.data.prepare.inputs import list_generic_csv

        files, source = [c.source for c in list_generic_csv(path).clips], _from_audio
    elif _is_tfrecord(path) or any(c in path for c in "*?["):
        files, source = sorted(glob.glob(path)), _from_tfrecords
    elif os.path.isfile(path):
        files, source = [path], _from_audio
    else:
        raise UserError(f"{path}: representative data not found")
    out = []
    if files:
        for w in source(files, sample_rate, length, max_per_clip):
            out.append(w)
            if len(out) >= max_windows:
                break
    if not out:
        raise UserError(f"{path}: no usable audio or TFRecords for representative data")
    return np.stack(out).astype(np.float32)


def calibration_windows(path, model, length: int, count: int) -> np.ndarray:
    """``count`` float32 ``[count, length]`` calibration windows drawn from ``path``.

    Labelled audio (a class folder, a ``path,labels`` CSV or a folder written by ``prepare``;
    :mod:`panns_keras.export.labelled`) is drawn round-robin across its classes, up to 3
    windows per clip; anything else is read as :func:`representative_windows` reads it.

    Raises:
      UserError: fewer than ``count`` windows in ``path`` (one line, naming the flag).
    """
    from panns_keras.export.labelled import is_labelled, read_labelled, windows

    sr = model.spec.sample_rate
    if is_labelled(path):
        labels = model.class_labels or getattr(model, "labels", None)
        clips = read_labelled(path, labels, sr, max_clips=count)
        out = windows(clips.audio, length, max_per_clip=3)[0][:count]
    else:
        out = representative_windows(path, sr, length, max_windows=count)
    if len(out) < count:
        raise UserError(
            f"--representative: {path} holds {len(out)} windows of {length / sr:g} s, fewer "
            f"than --representative_windows {count} (give more audio or lower the flag)"
        )
    return out
