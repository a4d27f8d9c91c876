"""Inference on audio files: tagging, sound event detection and embeddings.

Audio of any format / rate / channel count is decoded with :mod:`panns_keras.audio`,
down-mixed to mono and resampled to the model's rate. Each file is cut into consecutive,
non-overlapping windows of ``window_seconds`` (10 s by default, the PANNs training clip
length) that are read block by block, so memory stays bounded for hours-long recordings.
Full windows from one or many files are batched together and run through a
``tf.function(jit_compile=True)`` (XLA), which on CPU is several times faster than the
default graph; the shorter last window of a file (and clips shorter than a window) run at
their own length (zero-padded up to ``spec.min_samples`` when shorter than that).

Pooling over windows (documented choice):
  * ``clipwise``: max over windows. A label present anywhere in a long recording is
    reported with the score of its best window (a mean would dilute short events).
    ``window_clipwise`` keeps the per-window scores.
  * ``embedding``: mean over windows, weighted by window length.
  * ``framewise`` (decision-level models): windows' frames concatenated on one time axis,
    frame ``i`` centred at ``i * hop_size / sample_rate`` seconds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

import numpy as np
import tensorflow as tf

from panns_keras.audio import AudioError, read_audio_blocks

DEFAULT_WINDOW_SECONDS = 10.0


@dataclasses.dataclass
class FileResult:
    """Results for one input file; ``error`` is a one-line message when it failed."""

    path: str
    error: str | None = None
    duration: float = 0.0  # seconds of audio at the model's rate
    clipwise: np.ndarray | None = None  # (K,) max over windows
    window_clipwise: np.ndarray | None = None  # (W, K)
    window_starts: np.ndarray | None = None  # (W,) seconds
    embedding: np.ndarray | None = None  # (E,) mean over windows (clip models)
    window_embeddings: np.ndarray | None = None  # (W, E)
    framewise: np.ndarray | None = None  # (T, K) decision-level models
    frame_hop: float | None = None  # seconds between framewise rows

    @property
    def ok(self) -> bool:
        return self.error is None

    def top(self, k: int, labels: Sequence[str]) -> list[tuple[str, float]]:
        order = np.argsort(-self.clipwise, kind="stable")[:k]
        return [(labels[i], float(self.clipwise[i])) for i in order]


class InferenceEngine:
    """Runs an AudioTagger over files in fixed windows with an XLA-compiled predict step.

    Args:
      model: an AudioTagger.
      window_seconds: window length; <= 0 means whole files in one window (not bounded).
      batch_size: full windows per batch.
      jit_compile: compile the full-window step with XLA.
      keep_framewise: collect framewise outputs (decision-level models only).
    """

    def __init__(self, model, window_seconds: float = DEFAULT_WINDOW_SECONDS, batch_size: int = 8,
                 jit_compile: bool = True, keep_framewise: bool = False):  # fmt: skip
        self.model = model
        self.spec = model.spec
        self.sample_rate = int(self.spec.sample_rate)
        self.window = (
            max(round(window_seconds * self.sample_rate), int(self.spec.min_samples))
            if window_seconds and window_seconds > 0 else None
        )  # fmt: skip
        self.batch_size = max(1, int(batch_size))
        self.keep_framewise = keep_framewise and self.spec.head.kind != "clip"
        self.has_embedding = self.spec.head.kind == "clip"
        self.hop = self.spec.frontend.hop_size if self.spec.frontend is not None else None
        keys = ["clipwise_output"] + (["embedding"] if self.has_embedding else [])
        if self.keep_framewise:
            keys.append("framewise_output")
        self.keys = tuple(keys)
        self.progress = None  # a panns_keras.progress.Progress counting seconds of audio

        def step(x):
            out = model(x, training=False)
            return {k: out[k] for k in self.keys}

        self._eager_step = step
        sig = [tf.TensorSpec([None, self.window], tf.float32)]
        self._window_step = tf.function(step, input_signature=sig, jit_compile=jit_compile)
        self._any_step = tf.function(step, reduce_retracing=True)

    # ------------------------------------------------------------------ core
    def predict(self, batch: np.ndarray, eager: bool = False) -> dict[str, np.ndarray]:
        """Runs one batch ``[B, samples]`` and returns numpy outputs (the model pads inputs
        shorter than its minimum itself)."""
        batch = np.asarray(batch, np.float32)
        if eager:
            fn = self._eager_step
        elif self.window is not None and batch.shape[1] == self.window:
            fn = self._window_step
        else:
            fn = self._any_step
        return {k: np.asarray(v) for k, v in fn(tf.constant(batch)).items()}

    def _segments(self, path):
        """Yields ``(start_sample, window)`` of a file; full windows then the remainder."""
        if self.window is None:
            from panns_keras.audio import load_audio

            yield 0, load_audio(path, self.sample_rate)
            return
        block_seconds = max(self.window / self.sample_rate, 10.0)
        buf = np.zeros(0, np.float32)
        start = 0
        for block in read_audio_blocks(path, self.sample_rate, block_seconds):
            buf = np.concatenate([buf, block]) if buf.size else block
            while buf.size >= self.window:
                yield start, buf[: self.window]
                buf = buf[self.window :]
                start += self.window
        if buf.size or start == 0:
            yield start, buf

    def run(self, paths: Iterable) -> list[FileResult]:
        """Processes files in order; failures become ``FileResult.error`` (one line)."""
        results: list[FileResult] = []
        acc: dict[int, dict[str, list]] = {}
        pending: list[tuple[int, int, np.ndarray]] = []

        def flush():
            if not pending:
                return
            out = self.predict(np.stack([w for _, _, w in pending]))
            for j, (idx, start, w) in enumerate(pending):
                self._add(acc[idx], start, len(w), {k: v[j] for k, v in out.items()}, True)
            pending.clear()

        for idx, path in enumerate(paths):
            path = str(path)
            results.append(FileResult(path=path))
            acc[idx] = {"starts": [], "lengths": [], "full": []}
            try:
                for start, w in self._segments(path):
                    if self.progress is not None:
                        self.progress.update(len(w) / self.sample_rate)
                    if self.window is not None and len(w) == self.window:
                        pending.append((idx, start, w))
                        if len(pending) >= self.batch_size:
                            flush()
                    else:
                        out = self.predict(w[None])
                        self._add(acc[idx], start, len(w), {k: v[0] for k, v in out.items()}, False)
            except AudioError as e:
                results[idx].error = str(e)
                if self.progress is not None:
                    self.progress.update(0, failed=1)
                pending[:] = [p for p in pending if p[0] != idx]
                acc[idx] = None
        flush()
        for idx, res in enumerate(results):
            if res.error is None:
                self._finish(res, acc[idx])
        return results

    # ------------------------------------------------------------------ pooling
    def _add(self, a, start, length, out, full):
        a["starts"].append(start)
        a["lengths"].append(length)
        a["full"].append(full)
        for k, v in out.items():
            a.setdefault(k, []).append(v)

    def _finish(self, res: FileResult, a) -> None:
        order = np.argsort(a["starts"], kind="stable")
        lengths = np.asarray(a["lengths"], np.float64)[order]
        res.window_starts = np.asarray(a["starts"], np.float64)[order] / self.sample_rate
        res.duration = float(lengths.sum() / self.sample_rate)
        res.window_clipwise = np.stack([a["clipwise_output"][i] for i in order])
        res.clipwise = res.window_clipwise.max(axis=0)
        if self.has_embedding:
            res.window_embeddings = np.stack([a["embedding"][i] for i in order])
            wts = np.maximum(lengths, 1.0)
            res.embedding = (res.window_embeddings * wts[:, None]).sum(0) / wts.sum()
            res.embedding = res.embedding.astype(np.float32)
        if self.keep_framewise:
            frames = []
            for n, i in enumerate(order):
                f = a["framewise_output"][i]
                # A window of L samples has 1 + L // hop frames; the last one is centred on
                # the next window's first sample, so full windows keep L // hop frames.
                # The last segment keeps 1 + L // hop (frames of zero padding are dropped).
                length = int(a["lengths"][i])
                keep = length // self.hop + (0 if n < len(order) - 1 else 1)
                frames.append(f[:keep])
            res.framewise = np.concatenate(frames)
            res.frame_hop = self.hop / self.sample_rate


def _engine(model, engine, **kwargs):
    return engine if engine is not None else InferenceEngine(model, **kwargs)


def tag_files(model, paths, *, window_seconds=DEFAULT_WINDOW_SECONDS, batch_size=8,
              engine: InferenceEngine | None = None) -> list[FileResult]:  # fmt: skip
    """Clip-level scores for each file (``FileResult.clipwise``; ``.top(k, labels)``)."""
    return _engine(model, engine, window_seconds=window_seconds, batch_size=batch_size).run(paths)


def embed_files(model, paths, *, window_seconds=DEFAULT_WINDOW_SECONDS, batch_size=8,
                engine: InferenceEngine | None = None) -> list[FileResult]:  # fmt: skip
    """Clip embeddings (``FileResult.embedding``, per window in ``window_embeddings``)."""
    if model.spec.head.kind != "clip":
        from panns_keras.errors import UserError

        raise UserError(f"{model.spec.name} has no embedding output (decision-level model)")
    return _engine(model, engine, window_seconds=window_seconds, batch_size=batch_size).run(paths)


def events_from_framewise(framewise, frame_hop, labels, threshold=0.5, min_duration=0.0,
                          min_gap=0.0, filename="") -> list[dict]:  # fmt: skip
    """Thresholds ``framewise`` (T, K) into DCASE-style events.

    A frame at index i covers ``[i * hop, (i + 1) * hop)``. Runs of frames above
    ``threshold`` form events; events of one class separated by less than ``min_gap``
    seconds are merged, then events shorter than ``min_duration`` dropped. ``score`` is the
    event's maximum frame score. Sorted by onset, then label.
    """
    events = []
    active = np.asarray(framewise) >= threshold
    for k in np.flatnonzero(active.any(axis=0)):
        col = np.concatenate([[False], active[:, k], [False]]).astype(np.int8)
        d = np.diff(col)
        runs = list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)))
        merged = []
        for on, off in runs:
            if merged and (on - merged[-1][1]) * frame_hop < min_gap:
                merged[-1] = (merged[-1][0], off)
            else:
                merged.append((on, off))
        for on, off in merged:
            if (off - on) * frame_hop < min_duration:
                continue
            events.append({
                "filename": filename, "onset": round(on * frame_hop, 3),
                "offset": round(off * frame_hop, 3), "event_label": labels[k],
                "score": float(np.max(framewise[on:off, k])),
            })  # fmt: skip
    events.sort(key=lambda e: (e["onset"], e["event_label"]))
    return events


def detect_events(model, paths, *, labels=None, threshold=0.5, min_duration=0.0,
                  min_gap=0.0, window_seconds=DEFAULT_WINDOW_SECONDS, batch_size=8,
                  engine: InferenceEngine | None = None):  # fmt: skip
    """Sound event detection: ``[(FileResult, events)]`` with DCASE event dicts.

    Decision-level models give frame scores directly. Clip models fall back to per-window
    scores (frames of ``window_seconds``), a coarse but honest time resolution.
    """
    import os

    labels = list(labels or getattr(model, "labels", None) or
                  [f"class_{i}" for i in range(model.spec.num_classes)])  # fmt: skip
    eng = _engine(model, engine, window_seconds=window_seconds, batch_size=batch_size,
                  keep_framewise=True)  # fmt: skip
    out = []
    for res in eng.run(paths):
        events = []
        if res.ok:
            if res.framewise is not None:
                frames, hop = res.framewise, res.frame_hop
            else:
                frames, hop = res.window_clipwise, (eng.window or 0) / eng.sample_rate
                hop = hop or res.duration
            events = events_from_framewise(frames, hop, labels, threshold, min_duration,
                                           min_gap, os.path.basename(res.path))  # fmt: skip
            for e in events:
                e["offset"] = min(e["offset"], round(res.duration, 3))
        out.append((res, events))
    return out
