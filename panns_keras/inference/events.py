"""Sound event detection on top of the windowing engine, and the event / score tables.

:func:`detect_events` turns frame scores into DCASE events; :func:`write_events_tsv` (event
lists) and :func:`write_sed_scores` (frame scores, sed_scores_eval layout) are the writers
of those tables, used by the Python API and ``panns-keras sed`` alike.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence

import numpy as np

from panns_keras.errors import UserError
from panns_keras.fileio import atomic_write
from panns_keras.inference.engine import InferenceEngine, engine_for
from panns_keras.inference.median import apply_median_filter, median_filter_sizes

EVENT_COLUMNS = ("filename", "onset", "offset", "event_label", "score")


def events_from_framewise(
    framewise, frame_hop, labels, threshold=0.5, min_duration=0.0, min_gap=0.0, filename=""
) -> list[dict]:
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
            events.append(
                {
                    "filename": filename,
                    "onset": round(float(on * frame_hop), 3),
                    "offset": round(float(off * frame_hop), 3),
                    "event_label": labels[k],
                    "score": float(np.max(framewise[on:off, k])),
                }
            )
    events.sort(key=lambda e: (e["onset"], e["event_label"]))
    return events


def detect_events(
    model,
    paths,
    *,
    labels=None,
    threshold=0.5,
    min_duration=0.0,
    min_gap=0.0,
    window_seconds=None,
    hop_seconds=None,
    median_filter=None,
    batch_size=8,
    engine: InferenceEngine | None = None,
):
    """Sound event detection: ``[(FileResult, events)]`` with DCASE event dicts.

    Decision-level models give frame scores directly (averaged where windows overlap).
    Clip models give scores per hop (:meth:`InferenceEngine.clip_frame_scores`); their
    default hop is a quarter of the window (the model's clip length by default), so events
    start and end on a quarter-window grid.
    ``median_filter``: per-class window lengths in rows (an int array of K, or anything
    :func:`median_filter_sizes` takes) applied to those scores before thresholding. Each
    result keeps the (filtered) scores in ``frame_scores`` / ``frame_scores_hop``.
    """
    eng = engine_for(
        model,
        engine,
        window_seconds=window_seconds,
        hop_seconds=hop_seconds,
        batch_size=batch_size,
        keep_framewise=True,
    )
    if engine is None and hop_seconds is None:
        eng.use_sed_hop()
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
            events = events_from_framewise(
                frames, hop, labels, threshold, min_duration, min_gap, os.path.basename(res.path)
            )
            for e in events:
                e["offset"] = min(e["offset"], round(res.duration, 3))
        res.events = events
        out.append((res, events))
    return out


def write_events_tsv(path, events) -> None:
    """DCASE-style events (:data:`EVENT_COLUMNS`), tab-separated, written atomically."""
    out = io.StringIO()
    w = csv.writer(out, delimiter="\t", lineterminator="\n")
    w.writerow(EVENT_COLUMNS)
    for e in events:
        w.writerow(
            [
                e["filename"],
                f"{e['onset']:.3f}",
                f"{e['offset']:.3f}",
                e["event_label"],
                f"{e['score']:.4f}",
            ]
        )
    atomic_write(path, out.getvalue())


def write_sed_scores(
    path, scores: np.ndarray, frame_hop: float, labels: Sequence[str], duration: float | None = None
) -> None:
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
    atomic_write(path, "\n".join(lines) + "\n")
