"""Inference on audio files and arrays: tagging, sound event detection and embeddings.

Models come through :func:`panns_keras.runtime.load_runner`: a model directory, ``.keras``
file, SavedModel directory, ``.tflite`` file or a Keras model. Audio of any format / rate /
channel count is decoded with :mod:`panns_keras.audio`, down-mixed to mono and resampled to
the model's rate; NumPy arrays are taken at ``sample_rate`` (resampled when it differs).

Windows: each input is cut into windows of ``window_seconds`` starting every
``hop_seconds`` (default: the window length, i.e. no overlap). The default window is the
length of the clips the model was trained on (``clip_samples``, recorded by the converter,
the trainer and finetune: 10 s for the PANNs checkpoints), else 10 s; a ``.tflite`` model
fixes it to its input length. Files are read block by block, so memory stays bounded for
hours-long recordings. Full windows from one or many inputs are batched; for Keras models
they run through a ``tf.function(jit_compile=True)`` (XLA), several times faster than the
default graph on CPU. A window shorter than the model's clip length (a short clip, the last
window of a file) is zero-padded to that length, as the training clips were, so every
format (Keras, SavedModel, TFLite, ONNX) scores it the same; when the clip length is
unknown it runs at its own length (zero-padded to ``spec.min_samples``; a TFLite model
zero-pads to its fixed length). A last window is only run when it holds samples no earlier
window covered.

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

DEFAULT_WINDOW_SECONDS = 10.0  # when the model does not record its clip length
# sed with a clip-level model: windows start every 1/4 window by default, so event
# boundaries fall on a quarter-window grid (clip_frame_scores)
SED_HOPS_PER_WINDOW = 4


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
class Source:
    """One input of :meth:`InferenceEngine.run`: a file ``path`` or an in-memory ``array``."""

    name: str
    path: str | None = None
    array: np.ndarray | None = None


class InferenceEngine:
    """Runs a model over files or arrays in (overlapping) windows.

    Args:
      model: anything :func:`panns_keras.runtime.load_runner` takes (path, Keras model).
      window_seconds: window length; None: the model's clip length (``runner.clip_samples``),
        else 10 s; <= 0 means whole inputs in one window (not bounded). Ignored for
        ``.tflite`` models, whose input length is fixed.
      hop_seconds: start of one window to the next (default: ``window_seconds``).
      batch_size: full windows per batch.
      jit_compile: compile the Keras full-window step with XLA.
      keep_framewise: collect framewise outputs (decision-level models only).
    """

    def __init__(
        self,
        model,
        window_seconds: float | None = None,
        batch_size: int = 8,
        jit_compile: bool = True,
        keep_framewise: bool = False,
        hop_seconds: float | None = None,
    ):
        self.runner: Runner = load_runner(model)
        r = self.runner
        self.sample_rate = int(r.sample_rate)
        self.min_samples = int(r.min_samples)
        # shorter windows are zero-padded to the training clip length (0: no padding)
        self.pad_to = int(r.clip_samples or 0)
        if window_seconds is None:
            window_seconds = r.clip_seconds or DEFAULT_WINDOW_SECONDS
        self.window_seconds = float(window_seconds)
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

    def use_sed_hop(self) -> None:
        """Event detection with a clip-level model: windows start every
        1 / :data:`SED_HOPS_PER_WINDOW` of a window unless a hop was given (decision-level
        models keep theirs: their frame scores need no overlap)."""
        if self.runner.has_framewise or self.window is None or self.step != self.window:
            return
        self.step = self._step(self.window / self.sample_rate / SED_HOPS_PER_WINDOW)

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
        sig = [tf.TensorSpec([None, self._padded(self.window)], tf.float32)]
        self._window_step = tf.function(
            step, input_signature=sig, jit_compile=jit_compile, autograph=False
        )
        self._any_step = tf.function(step, reduce_retracing=True, autograph=False)

    # ------------------------------------------------------------------ core
    def predict(self, batch: np.ndarray, eager: bool = False) -> dict[str, np.ndarray]:
        """Runs one batch ``[B, samples]`` and returns numpy outputs (the model pads inputs
        shorter than its minimum itself)."""
        batch = np.asarray(batch, np.float32)
        if batch.shape[1] < self.pad_to:  # as the training clips were
            batch = np.pad(batch, [(0, 0), (0, self.pad_to - batch.shape[1])])
        if self._any_step is None:  # an exported artifact (TFLite, SavedModel), not a model
            if batch.shape[1] < self.min_samples:  # fixed-shape artifacts need the length
                batch = np.pad(batch, [(0, 0), (0, self.min_samples - batch.shape[1])])
            out = self.runner(batch)
            return {k: np.asarray(out[k]) for k in self.keys}
        import tensorflow as tf

        if eager:
            fn = self._eager_step
        elif self.window is not None and batch.shape[1] == self._padded(self.window):
            fn = self._window_step
        else:
            fn = self._any_step
        return {k: np.asarray(v) for k, v in fn(tf.constant(batch)).items()}

    def _padded(self, length: int | None) -> int | None:
        """The length a window of ``length`` samples runs at (the clip length at least)."""
        return None if length is None else max(int(length), self.pad_to)

    def _blocks(self, src: Source):
        if src.array is not None:
            n = max(self.window or 0, 10 * self.sample_rate)
            for i in range(0, len(src.array), n):
                yield src.array[i : i + n]
            return
        block_seconds = max((self.window or 0) / self.sample_rate, 10.0)
        yield from read_audio_blocks(src.path, self.sample_rate, block_seconds)

    def _segments(self, src: Source):
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
        """Processes inputs (paths, or ``Source``) in order; failures become ``.error``."""
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
            if not isinstance(src, Source):
                src = Source(name=str(src), path=str(src))
            results.append(FileResult(path=src.name, labels=self.runner.labels))
            acc[idx] = {"starts": [], "lengths": []}
            covered = 0  # samples of this input counted by the progress (overlaps once)
            try:
                for start, w in self._segments(src):
                    if self.progress is not None:
                        new = max(0, start + len(w) - covered)
                        covered += new
                        self.progress.update(new / self.sample_rate)
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
            keep = [
                min(1 + int(n) // self.hop, len(a["framewise_output"][i]))
                for n, i in zip(lengths, order)
            ]
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
            sources.append(Source(name=name, array=resample(row, rate, model_rate)))
    return sources, single and len(sources) == 1


def engine_for(model, engine, **kwargs):
    """``engine`` when given, else a new :class:`InferenceEngine` over ``model``."""
    return engine if engine is not None else InferenceEngine(model, **kwargs)


def tag_files(
    model,
    paths,
    *,
    window_seconds=None,
    hop_seconds=None,
    batch_size=8,
    engine: InferenceEngine | None = None,
) -> list[FileResult]:
    """Clip-level scores for each file (``FileResult.clipwise``; ``.top(k)``)."""
    return engine_for(
        model, engine, window_seconds=window_seconds, hop_seconds=hop_seconds, batch_size=batch_size
    ).run(paths)


def embed_files(
    model,
    paths,
    *,
    window_seconds=None,
    hop_seconds=None,
    batch_size=8,
    engine: InferenceEngine | None = None,
):
    """Clip embeddings (``FileResult.embedding``, per window in ``window_embeddings``)."""
    eng = engine_for(
        model, engine, window_seconds=window_seconds, hop_seconds=hop_seconds, batch_size=batch_size
    )
    if not eng.has_embedding:
        raise UserError(f"{eng.runner.name} has no embedding output (decision-level model)")
    return eng.run(paths)
