"""``export --check DATA``: the Keras model and every exported file scored on labelled audio.

For each variant (the Keras model first, then each file ``export`` wrote): file size, latency
per window on this CPU at 1 thread and at all threads, top-1 accuracy and mAP on DATA
(:mod:`panns_keras.metrics`), top-1 agreement with the Keras model and the max |difference|
of the scores. Every variant is scored on the windows of its own input length (a MediaPipe
window may differ from the TFLite one), against the Keras model on the same windows. A clip
longer than the window is cut into consecutive windows (the last zero-padded) and scored as
the max over them. The report is printed as a table and written as ``check.json`` beside
the exports.

A variant whose accuracy or mAP is below ``min_relative`` of the Keras model's on the same
windows is a failure: :func:`failure_line` names them in one line (the CLI exits 1; the files
stay written).

Latency: the median of repeated single-window calls after one warm-up. TFLite and ONNX are
timed with 1 thread and with ``os.cpu_count()`` threads; TensorFlow (Keras, SavedModel) sets
its thread pools once per process, so those rows give the all-threads figure only.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from panns_keras.artifact import CLIPWISE
from panns_keras.export import common
from panns_keras.export.labelled import LabelledClips, clip_scores, read_labelled, windows
from panns_keras.fileio import atomic_write

CHECK_FILE = "check.json"
MAX_WINDOWS_PER_CLIP = 10  # a long clip: its first 10 windows


def latency_ms(
    fn: Callable[[np.ndarray], object],
    window: np.ndarray,
    min_seconds: float = 0.3,
    max_calls: int = 50,
) -> float:
    """Median ms of ``fn(window[None])`` over repeated calls (at least 3) after a warm-up."""
    x = np.asarray(window, np.float32)[None]
    fn(x)
    times, start = [], time.perf_counter()
    while len(times) < 3 or (time.perf_counter() - start < min_seconds and len(times) < max_calls):
        t = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1e3)


def _accuracy(target: np.ndarray, scores: np.ndarray) -> float:
    from panns_keras.train.evaluation import top1_accuracy

    return top1_accuracy(target, scores)


def _scores(fn, x: np.ndarray) -> np.ndarray:
    return np.asarray(common.batched(fn, x)[CLIPWISE], np.float64)


def _runners(fmt: str, entry: dict):
    """``(fn for scoring, fn at 1 thread or None, fn at all threads, input length or None)``."""
    path = entry["path"]
    threads = os.cpu_count() or 1
    if fmt == "savedmodel":
        from panns_keras.runtime.savedmodel import load_savedmodel

        fn, _, _ = load_savedmodel(path)
        return fn, None, fn, None
    if fmt == "onnx":
        from panns_keras.runtime.onnx import OnnxRunner

        many = OnnxRunner(path, num_threads=threads)
        return many, OnnxRunner(path, num_threads=1), many, None
    from panns_keras.runtime.tflite import TfliteRunner

    many = TfliteRunner(path, num_threads=threads)
    return many, TfliteRunner(path, num_threads=1), many, many.length


def _row(name, size, lat1, latn, target, scores, ref) -> dict:
    from panns_keras.metrics import evaluate_scores

    return {
        "variant": name,
        "bytes": size,
        "latency_ms_1_thread": lat1,
        "latency_ms_all_threads": latn,
        "accuracy": _accuracy(target, scores),
        "mAP": float(evaluate_scores(target, scores)["mAP"]),
        "top1_agreement": float(np.mean(scores.argmax(-1) == ref.argmax(-1))),
        "max_abs_diff": float(np.max(np.abs(scores - ref))),
    }


def check_exports(
    model,
    artifacts: dict[str, dict],
    data,
    length: int,
    out_dir=None,
    min_relative: float = 0.99,
    progress=None,
) -> dict:
    """Scores ``model`` and each exported artifact on ``data`` (see module doc).

    Args:
      artifacts: format -> the entry ``export`` returned for it (``path``, ``bytes``, ...).
      data: a path (:func:`panns_keras.export.labelled.read_labelled`) or LabelledClips.
      length: the Keras model's window in samples (the export's ``--window_seconds``).
      out_dir: where ``check.json`` is written (None: not written).

    Returns:
      dict with ``rows`` (one per variant, Keras first), ``failed`` (variants below
      ``min_relative``), the data's clip and window counts and the CPU's thread count.
    """
    clips = (
        data
        if isinstance(data, LabelledClips)
        else read_labelled(
            data, model.class_labels or getattr(model, "labels", None), model.spec.sample_rate
        )
    )
    target = clips.targets()
    cache: dict[int, tuple] = {}

    def at(n):  # windows, owner and Keras's clip scores at input length n
        if n not in cache:
            x, owner = windows(clips.audio, n, MAX_WINDOWS_PER_CLIP)
            ref = clip_scores(
                _scores(lambda v: model(v, training=False), x), owner, len(clips.audio)
            )
            cache[n] = (x, owner, ref)
        return cache[n]

    x, _, ref = at(length)
    keras_fn = lambda v: model(v, training=False)  # noqa: E731
    rows = [_row("keras", None, None, latency_ms(keras_fn, x[0]), target, ref, ref)]
    baseline = {length: rows[0]}
    failed = []
    for fmt, entry in artifacts.items():
        score_fn, one, many, n = _runners(fmt, entry)
        n = n or length
        x, owner, ref = at(n)
        if n not in baseline:
            baseline[n] = _row("keras", None, None, None, target, ref, ref)
        got = clip_scores(_scores(score_fn, x), owner, len(clips.audio))
        row = _row(
            fmt,
            entry.get("bytes") or _size(entry["path"]),
            latency_ms(one, x[0]) if one is not None else None,
            latency_ms(many, x[0]),
            target,
            got,
            ref,
        )
        row["window_samples"] = int(n)
        base = baseline[n]
        row["relative_accuracy"] = _relative(row["accuracy"], base["accuracy"])
        row["relative_mAP"] = _relative(row["mAP"], base["mAP"])
        if min(row["relative_accuracy"], row["relative_mAP"]) < min_relative:
            failed.append(fmt)
        rows.append(row)
        if progress is not None:
            progress.update(1, postfix=f"{fmt} checked", force=True)
    rows[0]["window_samples"] = int(length)
    report = {
        "data": str(data) if not isinstance(data, LabelledClips) else "(in memory)",
        "clips": len(clips.audio),
        "windows": len(at(length)[0]),
        "sample_rate": int(model.spec.sample_rate),
        "threads": os.cpu_count() or 1,
        "min_relative": float(min_relative),
        "rows": rows,
        "failed": failed,
    }
    if out_dir is not None:
        atomic_write(Path(out_dir) / CHECK_FILE, json.dumps(report, indent=2) + "\n")
    return report


def _relative(value: float, base: float) -> float:
    if not np.isfinite(base) or base <= 0:
        return float("nan")
    return float(value / base)


def _size(path) -> int:
    p = Path(path)
    if p.is_dir():
        return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    return p.stat().st_size


def format_table(report: dict) -> str:
    """The report as a fixed-width table (one row per variant)."""
    head = (
        f"{'variant':<24} {'MB':>7} {'ms 1 thr':>9} {'ms ' + str(report['threads']) + ' thr':>9}"
        f" {'accuracy':>9} {'mAP':>7} {'top1 agr':>9} {'max|diff|':>10}"
    )
    lines = [
        f"check on {report['data']}: {report['clips']} clips, {report['windows']} windows "
        f"of the Keras window",
        head,
    ]

    def num(v, fmt):
        return format(v, fmt) if v is not None and np.isfinite(v) else "-"

    for r in report["rows"]:
        mb = r["bytes"] / 1e6 if r["bytes"] else None
        lines.append(
            f"{r['variant']:<24} {num(mb, '7.2f'):>7} "
            f"{num(r['latency_ms_1_thread'], '9.2f'):>9} "
            f"{num(r['latency_ms_all_threads'], '9.2f'):>9} "
            f"{num(r['accuracy'], '9.4f'):>9} {num(r['mAP'], '7.4f'):>7} "
            f"{num(r['top1_agreement'], '9.4f'):>9} "
            f"{num(r['max_abs_diff'], '10.4g'):>10}"
        )
    return "\n".join(lines)


def failure_line(report: dict) -> str | None:
    """One line naming the variants below ``min_relative`` of the Keras accuracy or mAP."""
    if not report["failed"]:
        return None
    rows = {r["variant"]: r for r in report["rows"]}
    parts = [
        f"{v} (accuracy {rows[v]['relative_accuracy']:.3f}, mAP "
        f"{rows[v]['relative_mAP']:.3f} of Keras)"
        for v in report["failed"]
    ]
    return (
        f"--check: below --min_relative {report['min_relative']:g}: "
        + ", ".join(parts)
        + " (the files are written)"
    )
