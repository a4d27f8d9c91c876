"""Inference on audio files and arrays: tagging, sound event detection and embeddings.

Models come through :func:`panns_keras.runtime.load_runner`: a model directory, ``.keras``
file, SavedModel directory, ``.tflite`` file or a Keras model. Audio of any format / rate /
channel count is decoded with :mod:`panns_keras.audio`, down-mixed to mono and resampled to
the model's rate; NumPy arrays are taken at ``sample_rate`` (resampled when it differs).

Windows: each input is cut into windows of ``window_seconds`` (10 s by default, the PANNs
training clip length; a ``.tflite`` model fixes it to its input length) starting every
``hop_seconds`` (default: the window length, i.e. no overlap). Files are read block by
block, so memory stays bounded for hours-long recordings. Full windows from one or many
inputs are batched; for Keras models they run through a ``tf.function(jit_compile=True)``
(XLA), several times faster than the default graph on CPU. The shorter last window (and
clips shorter than a window) run at their own length (zero-padded up to
``spec.min_samples``; a TFLite model zero-pads to its fixed length). A last window is only
run when it holds samples no earlier window covered.

Pooling over windows (documented choice):
  * ``clipwise``: max over windows. A label present anywhere in a long recording is
    reported with the score of its best window (a mean would dilute short events).
    ``window_clipwise`` keeps the per-window scores.
  * ``embedding``: mean over windows, weighted by window length.
  * ``framewise`` (decision-level models): each window's frames placed on one time axis
    (frame ``i`` at ``i * hop_size / sample_rate`` seconds) and averaged where windows
    overlap (the hop is rounded to a whole number of frames).
  * event scores of clip models (:func:`clip_frame_scores`): the time axis is cut into
    segments of one hop; a segment's score is the *minimum* over the windows that cover
    it. A window scores high when the event is anywhere inside it, so the minimum keeps
    only the segments that every covering window agrees on: an event's boundaries land on
    the segment grid, i.e. at the hop's resolution (a mean or max would smear them by up to
    a window length).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Sequence

import numpy as np

from panns_keras.audio import AudioError, read_audio_blocks
from panns_keras.errors import UserError
from panns_keras.runtime import Runner, load_runner

DEFAULT_WINDOW_SECONDS = 10.0


@dataclasses.dataclass
class FileResult:
    """Results for one input (a file or an array); ``error`` is a one-line message on failure.

    ``path`` is the file's path, or ``<array i>`` for the i-th array given.
    """

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
    labels: Sequence[str] | None = None  # class names, in score order
    events: list[dict] | None = None  # detect_events: DCASE event dicts
    frame_scores: np.ndarray | None = None  # detect_events: (T, K) scores the events came from
    frame_scores_hop: float | None = None  # seconds per frame_scores row

    @property
    def ok(self) -> bool:
        return self.error is None

    def top(self, k: int = 5, labels: Sequence[str] | None = None) -> list[tuple[str, float]]:
        """The ``k`` best ``(label, score)`` pairs of ``clipwise``."""
        labels = labels if labels is not None else self.labels
        order = np.argsort(-self.clipwise, kind="stable")[:k]
        return [(labels[i], float(self.clipwise[i])) for i in order]


@dataclasses.dataclass
class _Source:
    name: str
    path: str | None = None
    array: np.ndarray | None = None


class InferenceEngine:
    """Runs a model over files or arrays in (overlapping) windows.

    Args:
      model: anything :func:`panns_keras.runtime.load_runner` takes (path, Keras model).
      window_seconds: window length; <= 0 means whole inputs in one window (not bounded).
        Ignored for ``.tflite`` models, whose input length is fixed.
      hop_seconds: start of one window to the next (default: ``window_seconds``).
      batch_size: full windows per batch.
      jit_compile: compile the Keras full-window step with XLA.
      keep_framewise: collect framewise outputs (decision-level models only).
    """

    def __init__(self, model, window_seconds: float = DEFAULT_WINDOW_SECONDS, batch_size: int = 8,
                 jit_compile: bool = True, keep_framewise: bool = False,
                 hop_seconds: float | None = None):  # fmt: skip
        self.runner: Runner = load_runner(model)
        r = self.runner
        self.sample_rate = int(r.sample_rate)
        self.min_samples = int(r.min_samples)
        if r.input_samples:
            self.window = int(r.input_samples)
        elif window_seconds and window_seconds > 0:
            self.window = max(round(window_seconds * self.sample_rate), self.min_samples)
        else:
            self.window = None
        self.batch_size = max(1, int(batch_size))
        self.keep_framewise = keep_framewise and r.has_framewise
        self.has_embedding = r.has_embedding
        self.hop = r.frame_hop_samples
        self.step = self._step(hop_seconds)
        keys = ["clipwise_output"] + (["embedding"] if self.has_embedding else [])
        if self.keep_framewise:
            keys.append("framewise_output")
        self.keys = tuple(keys)
        self.progress = None  # a panns_keras.progress.Progress counting seconds of audio
        self._window_step = self._any_step = None
        if r.kind == "keras" and r.model is not None:
            self._keras_steps(r.model, jit_compile)

    def _step(self, hop_seconds) -> int | None:
        """Samples from one window start to the next."""
        if not hop_seconds:
            return self.window
        if self.window is None:
            raise UserError("--hop_seconds needs a window (--window_seconds > 0)")
        step = round(float(hop_seconds) * self.sample_rate)
        if self.runner.has_framewise and self.hop:
            step = max(1, round(step / self.hop)) * self.hop  # whole frames
        if not 0 < step <= self.window:
            raise UserError(
                f"--hop_seconds {hop_seconds:g} must be > 0 and at most the window "
                f"({self.window / self.sample_rate:g} s)"
            )
        return step

    def _keras_steps(self, model, jit_compile):
        import tensorflow as tf

        keys = self.keys

        def step(x):
            out = model(x, training=False)
            return {k: out[k] for k in keys}

        self._eager_step = step
        sig = [tf.TensorSpec([None, self.window], tf.float32)]
        self._window_step = tf.function(step, input_signature=sig, jit_compile=jit_compile)
        self._any_step = tf.function(step, reduce_retracing=True)

    # ------------------------------------------------------------------ core
    def predict(self, batch: np.ndarray, eager: bool = False) -> dict[str, np.ndarray]:
        """Runs one batch ``[B, samples]`` and returns numpy outputs (the model pads inputs
        shorter than its minimum itself)."""
        batch = np.asarray(batch, np.float32)
        if self._any_step is None:  # an exported artifact (TFLite, SavedModel), not a model
            if batch.shape[1] < self.min_samples:  # fixed-shape artifacts need the length
                batch = np.pad(batch, [(0, 0), (0, self.min_samples - batch.shape[1])])
            out = self.runner(batch)
            return {k: np.asarray(out[k]) for k in self.keys}
        import tensorflow as tf

        if eager:
            fn = self._eager_step
        elif self.window is not None and batch.shape[1] == self.window:
            fn = self._window_step
        else:
            fn = self._any_step
        return {k: np.asarray(v) for k, v in fn(tf.constant(batch)).items()}

    def _blocks(self, src: _Source):
        if src.array is not None:
            n = max(self.window or 0, 10 * self.sample_rate)
            for i in range(0, len(src.array), n):
                yield src.array[i : i + n]
            return
        block_seconds = max((self.window or 0) / self.sample_rate, 10.0)
        yield from read_audio_blocks(src.path, self.sample_rate, block_seconds)

    def _segments(self, src: _Source):
        """Yields ``(start_sample, window)``: windows every ``step`` samples, then a last
        shorter one when it holds samples the earlier windows did not cover."""
        if self.window is None:
            if src.array is not None:
                yield 0, src.array
                return
            from panns_keras.audio import load_audio

            yield 0, load_audio(src.path, self.sample_rate)
            return
        buf = np.zeros(0, np.float32)
        start = 0
        emitted = False
        for block in self._blocks(src):
            buf = np.concatenate([buf, block]) if buf.size else block
            while buf.size >= self.window:
                yield start, buf[: self.window]
                emitted = True
                buf = buf[self.step :]
                start += self.step
        if not emitted or buf.size > self.window - self.step:
            yield start, buf

    def run(self, inputs: Iterable) -> list[FileResult]:
        """Processes inputs (paths, or ``_Source``) in order; failures become ``.error``."""
        results: list[FileResult] = []
        acc: dict[int, dict[str, list]] = {}
        pending: list[tuple[int, int, np.ndarray]] = []

        def flush():
            if not pending:
                return
            out = self.predict(np.stack([w for _, _, w in pending]))
            for j, (idx, start, w) in enumerate(pending):
                self._add(acc[idx], start, len(w), {k: v[j] for k, v in out.items()})
            pending.clear()

        for idx, src in enumerate(inputs):
            if not isinstance(src, _Source):
                src = _Source(name=str(src), path=str(src))
            results.append(FileResult(path=src.name, labels=self.runner.labels))
            acc[idx] = {"starts": [], "lengths": []}
            try:
                for start, w in self._segments(src):
                    if self.progress is not None:
                        self.progress.update(len(w) / self.sample_rate)
                    if self.window is not None and len(w) == self.window:
                        pending.append((idx, start, w))
                        if len(pending) >= self.batch_size:
                            flush()
                    else:
                        out = self.predict(w[None])
                        self._add(acc[idx], start, len(w), {k: v[0] for k, v in out.items()})
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
    def _add(self, a, start, length, out):
        a["starts"].append(start)
        a["lengths"].append(length)
        for k, v in out.items():
            a.setdefault(k, []).append(v)

    def _finish(self, res: FileResult, a) -> None:
        order = np.argsort(a["starts"], kind="stable")
        starts = np.asarray(a["starts"], np.int64)[order]
        lengths = np.asarray(a["lengths"], np.int64)[order]
        res.window_starts = starts / self.sample_rate
        res.duration = float((starts[-1] + lengths[-1]) / self.sample_rate)
        res.window_clipwise = np.stack([a["clipwise_output"][i] for i in order])
        res.clipwise = res.window_clipwise.max(axis=0)
        if self.has_embedding:
            res.window_embeddings = np.stack([a["embedding"][i] for i in order])
            wts = np.maximum(lengths.astype(np.float64), 1.0)
            res.embedding = (res.window_embeddings * wts[:, None]).sum(0) / wts.sum()
            res.embedding = res.embedding.astype(np.float32)
        if self.keep_framewise:
            # A window of L samples has frames 0 .. L // hop (frame i at i * hop); frames of
            # zero padding are dropped, and frames where windows overlap are averaged.
            keep = [min(1 + int(n) // self.hop, len(a["framewise_output"][i]))
                    for n, i in zip(lengths, order)]  # fmt: skip
            offsets = [int(s) // self.hop for s in starts]
            total = max(o + k for o, k in zip(offsets, keep))
            width = a["framewise_output"][order[0]].shape[-1]
            acc = np.zeros((total, width), np.float64)
            count = np.zeros((total, 1), np.float64)
            for o, k, i in zip(offsets, keep, order):
                acc[o : o + k] += a["framewise_output"][i][:k]
                count[o : o + k] += 1
            res.framewise = (acc / np.maximum(count, 1)).astype(np.float32)
            res.frame_hop = self.hop / self.sample_rate

    def clip_frame_scores(self, res: FileResult) -> tuple[np.ndarray, float]:
        """``(scores (T, K), seconds per row)`` of a clip model at the hop's resolution.

        Segment i covers ``[i * hop, (i + 1) * hop)``; its score is the minimum over the
        windows covering it (see the module doc).
        """
        step = self.step or round(res.duration * self.sample_rate) or 1
        starts = np.round(res.window_starts * self.sample_rate).astype(np.int64)
        total = round(res.duration * self.sample_rate)
        n_seg = max(1, -(-total // step))
        scores = np.full((n_seg, res.window_clipwise.shape[1]), np.inf, np.float32)
        for k, s in enumerate(starts):
            end = min(s + (self.window or total), total)
            first, last = s // step, -(-end // step)
            scores[first:last] = np.minimum(scores[first:last], res.window_clipwise[k])
        return scores, step / self.sample_rate


def as_sources(audio, sample_rate: int | None, model_rate: int) -> tuple[list, bool]:
    """``(sources, single)`` for the public API: paths and/or NumPy arrays.

    ``audio``: a path, a 1-D array (one clip), a 2-D array (one clip per row) or a list of
    those. Arrays are float waveforms at ``sample_rate`` (default: the model's rate),
    resampled to ``model_rate``; multi-channel clips are given as separate inputs.
    """
    from panns_keras.audio import REASON_NOT_FINITE, REASON_ZERO_LENGTH, resample

    single = isinstance(audio, (str, os.PathLike)) or (
        isinstance(audio, np.ndarray) and audio.ndim == 1
    )
    items = [audio] if single else list(audio)
    sources, n = [], 0
    for item in items:
        if isinstance(item, (str, os.PathLike)):
            sources.append(str(item))
            continue
        x = np.asarray(item, np.float32)
        if x.ndim not in (1, 2):
            raise UserError(f"audio arrays must be [samples] or [clips, samples]; got {x.shape}")
        for row in x if x.ndim == 2 else [x]:
            name = f"<array {n}>"
            n += 1
            if row.size == 0:
                raise UserError(str(AudioError(name, REASON_ZERO_LENGTH, "empty array")))
            if not np.all(np.isfinite(row)):
                raise UserError(str(AudioError(name, REASON_NOT_FINITE)))
            rate = int(sample_rate or model_rate)
            sources.append(_Source(name=name, array=resample(row, rate, model_rate)))
    return sources, single and len(sources) == 1


def _engine(model, engine, **kwargs):
    return engine if engine is not None else InferenceEngine(model, **kwargs)


def tag_files(model, paths, *, window_seconds=DEFAULT_WINDOW_SECONDS, hop_seconds=None,
              batch_size=8, engine: InferenceEngine | None = None) -> list[FileResult]:  # fmt: skip
    """Clip-level scores for each file (``FileResult.clipwise``; ``.top(k)``)."""
    return _engine(model, engine, window_seconds=window_seconds, hop_seconds=hop_seconds,
                   batch_size=batch_size).run(paths)  # fmt: skip


def embed_files(model, paths, *, window_seconds=DEFAULT_WINDOW_SECONDS, hop_seconds=None,
                batch_size=8, engine: InferenceEngine | None = None):  # fmt: skip
    """Clip embeddings (``FileResult.embedding``, per window in ``window_embeddings``)."""
    eng = _engine(model, engine, window_seconds=window_seconds, hop_seconds=hop_seconds,
                  batch_size=batch_size)  # fmt: skip
    if not eng.has_embedding:
        raise UserError(f"{eng.runner.name} has no embedding output (decision-level model)")
    return eng.run(paths)


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
                "filename": filename, "onset": round(float(on * frame_hop), 3),
                "offset": round(float(off * frame_hop), 3), "event_label": labels[k],
                "score": float(np.max(framewise[on:off, k])),
            })  # fmt: skip
    events.sort(key=lambda e: (e["onset"], e["event_label"]))
    return events


def detect_events(model, paths, *, labels=None, threshold=0.5, min_duration=0.0,
                  min_gap=0.0, window_seconds=DEFAULT_WINDOW_SECONDS, hop_seconds=None,
                  median_filter=None, batch_size=8,
                  engine: InferenceEngine | None = None):  # fmt: skip
    """Sound event detection: ``[(FileResult, events)]`` with DCASE event dicts.

    Decision-level models give frame scores directly (averaged where windows overlap).
    Clip models give scores per hop (:meth:`InferenceEngine.clip_frame_scores`): without
    ``hop_seconds`` that is one row per window, a coarse but honest time resolution.
    ``median_filter``: per-class window lengths in rows (an int array of K, or anything
    :func:`median_filter_sizes` takes) applied to those scores before thresholding. Each
    result keeps the (filtered) scores in ``frame_scores`` / ``frame_scores_hop``.
    """
    eng = _engine(model, engine, window_seconds=window_seconds, hop_seconds=hop_seconds,
                  batch_size=batch_size, keep_framewise=True)  # fmt: skip
    labels = list(labels or eng.runner.labels)
    out = []
    for res in eng.run(paths):
        events = []
        if res.ok:
            if res.framewise is not None:
                frames, hop = res.framewise, res.frame_hop
            else:
                frames, hop = eng.clip_frame_scores(res)
            if median_filter is not None:
                sizes = median_filter_sizes(median_filter, labels, hop)
                frames = apply_median_filter(frames, sizes)
            res.frame_scores, res.frame_scores_hop = frames, hop
            events = events_from_framewise(frames, hop, labels, threshold, min_duration,
                                           min_gap, os.path.basename(res.path))  # fmt: skip
            for e in events:
                e["offset"] = min(e["offset"], round(res.duration, 3))
        res.events = events
        out.append((res, events))
    return out


# ---------------------------------------------------------------------- median filter
def median_filter_sizes(spec, labels: Sequence[str], frame_hop: float) -> np.ndarray:
    """Per-class median filter lengths in rows (odd, >= 1) from ``spec``.

    ``spec`` is an int array of one length per class (used as is), or text:
      * ``"0.5"``: 0.5 s for every class; ``"7f"``: 7 frames for every class;
      * ``"Speech=1.0;Dog=0.3f"``-style per-class entries separated by ``;`` (AudioSet
        names contain commas), with an optional bare default: ``"0.2;Speech=1.0"``.
        Classes without an entry and no default are not filtered (length 1).
    Seconds become ``round(seconds / frame_hop)`` rows, made odd (a centred window) as in
    the DCASE baselines' ``scipy.ndimage.median_filter`` use.
    """
    if not isinstance(spec, str):
        sizes = np.asarray(spec, np.int64).reshape(-1)
        if sizes.size == 1:
            sizes = np.full(len(labels), int(sizes[0]))
        if sizes.size != len(labels) or (sizes < 1).any():
            raise UserError(f"median filter: need {len(labels)} lengths >= 1, got {sizes.size}")
        return sizes

    def rows(text: str) -> int:
        text = text.strip()
        try:
            if text.endswith("f"):
                n = int(text[:-1])
            else:
                n = round(float(text) / frame_hop)
        except ValueError:
            raise UserError(f"median filter: {text!r} is not seconds or <n>f frames") from None
        n = max(1, n)
        return n if n % 2 else n + 1

    index = {name: i for i, name in enumerate(labels)}
    sizes = np.ones(len(labels), np.int64)
    per_class = []
    for part in filter(None, (p.strip() for p in spec.split(";"))):
        if "=" in part:
            name, value = part.rsplit("=", 1)
            if name.strip() not in index:
                raise UserError(f"median filter: unknown class {name.strip()!r}")
            per_class.append((index[name.strip()], rows(value)))
        else:
            sizes[:] = rows(part)
    for i, n in per_class:
        sizes[i] = n
    return sizes


def apply_median_filter(scores: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Median filter along time, class k with window ``sizes[k]`` (scipy, reflect edges)."""
    from scipy.ndimage import median_filter

    out = np.array(scores, np.float32, copy=True)
    for n in np.unique(sizes):
        if n <= 1:
            continue
        cols = np.flatnonzero(sizes == n)
        out[:, cols] = median_filter(out[:, cols], size=(int(n), 1), mode="reflect")
    return out


# ---------------------------------------------------------------------- sed_scores_eval
def write_sed_scores(path, scores: np.ndarray, frame_hop: float, labels: Sequence[str],
                     duration: float | None = None) -> None:  # fmt: skip
    """Writes frame scores as a sed_scores_eval TSV (``onset``, ``offset``, one column per class).

    Row i covers ``[i * frame_hop, (i + 1) * frame_hop)``; the last offset is cut at
    ``duration`` when that is earlier (and after the onset). Times are written with 6
    decimals from the same numbers, so each onset equals the previous offset exactly, as
    sed_scores_eval's validator requires. Tabs in class names are refused. Written
    atomically (temporary file, then rename).
    """
    bad = [n for n in labels if "\t" in n or "\n" in n]
    if bad:
        raise UserError(f"class names with tabs or newlines cannot go in a TSV: {bad[:3]}")
    scores = np.asarray(scores, np.float64)
    times = np.arange(len(scores) + 1) * float(frame_hop)
    if duration is not None and times[-2] < duration < times[-1]:
        times[-1] = duration
    stamps = [f"{t:.6f}" for t in times]
    lines = ["\t".join(["onset", "offset", *labels])]
    for i, row in enumerate(scores):
        lines.append("\t".join([stamps[i], stamps[i + 1], *(f"{v:.6f}" for v in row)]))
    _atomic_write_text(path, "\n".join(lines) + "\n")


def _atomic_write_text(path, text: str) -> None:
    from pathlib import Path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
