"""Audio decoding and resampling shared by data preparation and inference.

Everything returns mono float32 in [-1, 1] (integer PCM is scaled by soundfile's
convention, i.e. int16 / 32768). Resampling uses soxr at 'VHQ' quality.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import soundfile as sf
import soxr

RESAMPLE_QUALITY = "VHQ"
# What soundfile/libsndfile raise on bad input (LibsndfileError is a RuntimeError).
_DECODE_ERRORS = (
    RuntimeError,
    ValueError,
    OSError,
    EOFError,
    TypeError,
    sf.SoundFileError,
)

REASON_MISSING = "missing"
REASON_UNREADABLE = "unreadable"
REASON_ZERO_LENGTH = "zero-length"
REASON_NOT_FINITE = "not finite"
REASON_DIRECTORY = "is a directory"
REASONS = (
    REASON_MISSING,
    REASON_UNREADABLE,
    REASON_ZERO_LENGTH,
    REASON_NOT_FINITE,
    REASON_DIRECTORY,
)


class AudioError(Exception):
    """An input audio file that cannot be used.

    Attributes:
      path: the file's path (str).
      reason: one of REASONS.
      detail: optional extra text (e.g. the decoder's message).
    """

    def __init__(self, path, reason: str, detail: str = ""):
        if reason not in REASONS:
            raise ValueError(f"unknown AudioError reason {reason!r}")
        self.path = str(path)
        self.reason = reason
        self.detail = " ".join(str(detail).split())  # keep it on one line
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.path}: {self.reason}"
        if self.detail:
            text += f": {self.detail}"
        return text

    def __reduce__(self):  # picklable across multiprocessing
        return (AudioError, (self.path, self.reason, self.detail))


def _check_path(path) -> str:
    path = os.fspath(path)
    if os.path.isdir(path):
        raise AudioError(path, REASON_DIRECTORY)
    if not os.path.exists(path):
        raise AudioError(path, REASON_MISSING)
    if os.path.getsize(path) == 0:
        raise AudioError(path, REASON_ZERO_LENGTH, "empty file")
    return path


def check_audio_path(path) -> str:
    """``path`` when it names a non-empty file, else :class:`AudioError` (missing, a
    directory, empty): the checks a command runs on its inputs before a model loads."""
    return _check_path(path)


def _to_mono(data: np.ndarray) -> np.ndarray:
    if data.ndim == 2:
        data = data.mean(axis=1, dtype=np.float64) if data.shape[1] > 1 else data[:, 0]
    return np.ascontiguousarray(data, dtype=np.float32)


def resample(x: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resamples a mono (or [time, channels]) float signal with soxr VHQ."""
    x = np.asarray(x, dtype=np.float32)
    if int(orig_sr) == int(target_sr):
        return x
    if x.shape[0] == 0:
        return x
    y = soxr.resample(x, int(orig_sr), int(target_sr), quality=RESAMPLE_QUALITY)
    return np.asarray(y, dtype=np.float32)


def load_audio(path, sample_rate: int) -> np.ndarray:
    """Loads any file soundfile decodes as mono float32 at `sample_rate`.

    Raises:
      AudioError: missing, directory, unreadable, zero-length or non-finite input.
    """
    path = _check_path(path)
    try:
        data, sr = sf.read(path, dtype="float32", always_2d=True)
    except _DECODE_ERRORS as e:
        raise AudioError(path, REASON_UNREADABLE, f"{type(e).__name__}: {e}") from None
    if data.shape[0] == 0:
        raise AudioError(path, REASON_ZERO_LENGTH, "no frames")
    if not np.all(np.isfinite(data)):
        raise AudioError(path, REASON_NOT_FINITE)
    mono = _to_mono(data)
    return resample(mono, sr, sample_rate)


def audio_info(path) -> tuple[int, int]:
    """Returns (frames, sample_rate) of a file without decoding it."""
    path = _check_path(path)
    try:
        info = sf.info(path)
    except _DECODE_ERRORS as e:
        raise AudioError(path, REASON_UNREADABLE, f"{type(e).__name__}: {e}") from None
    return int(info.frames), int(info.samplerate)


def read_audio_blocks(path, sample_rate: int, block_seconds: float = 60.0) -> Iterator[np.ndarray]:
    """Streams a (long) file as mono float32 blocks at `sample_rate`.

    Memory is bounded by one block: the file is read `block_seconds` of source
    audio at a time and resampled with a streaming soxr resampler, so the
    concatenation of all blocks equals (to float rounding) `load_audio`'s output.
    Blocks may have slightly different lengths; empty blocks are not yielded.

    Raises:
      AudioError: as `load_audio` (non-finite is detected per block, zero-length
        when the file holds no frames).
    """
    path = _check_path(path)
    if block_seconds <= 0:
        raise ValueError("block_seconds must be > 0")
    try:
        f = sf.SoundFile(path)
    except _DECODE_ERRORS as e:
        raise AudioError(path, REASON_UNREADABLE, f"{type(e).__name__}: {e}") from None
    with f:
        sr = int(f.samplerate)
        frames = max(1, round(block_seconds * sr))
        stream = None
        if sr != int(sample_rate):
            stream = soxr.ResampleStream(
                sr, int(sample_rate), 1, dtype="float32", quality=RESAMPLE_QUALITY
            )
        total = 0
        while True:
            try:
                data = f.read(frames, dtype="float32", always_2d=True)
            except _DECODE_ERRORS as e:
                raise AudioError(path, REASON_UNREADABLE, f"{type(e).__name__}: {e}") from None
            last = data.shape[0] < frames
            total += data.shape[0]
            if data.shape[0] and not np.all(np.isfinite(data)):
                raise AudioError(path, REASON_NOT_FINITE)
            mono = _to_mono(data)
            if stream is not None:
                out = stream.resample_chunk(mono, last=last)
            else:
                out = mono
            if out.shape[0]:
                yield np.asarray(out, dtype=np.float32)
            if last:
                break
        if total == 0:
            raise AudioError(path, REASON_ZERO_LENGTH, "no frames")


def fit_length(x, length: int) -> np.ndarray:
    """Trims or zero-pads the last axis of ``x`` to ``length`` samples (dtype kept)."""
    x = np.asarray(x)
    if x.shape[-1] >= length:
        return x[..., :length]
    pad = [(0, 0)] * (x.ndim - 1) + [(0, length - x.shape[-1])]
    return np.pad(x, pad)
