"""Pieces shared by the SavedModel and TFLite exporters: output order, padding, checks."""

from __future__ import annotations

import numpy as np

from panns_keras.artifact import CLIPWISE, EMBEDDING, FRAMEWISE
from panns_keras.data.formats import to_labels
from panns_keras.errors import UserError


class ExportVerificationError(UserError):
    """A re-loaded export disagrees with the Keras model beyond its tolerance."""


def output_keys(model) -> tuple[str, ...]:
    """The exported outputs, in a fixed order: scores first, then embedding / framewise."""
    keys = [CLIPWISE]
    if model.spec.head.kind == "clip":
        keys.append(EMBEDDING)
    else:
        keys.append(FRAMEWISE)
    return tuple(keys)


def label_names(model, labels=None) -> list[str]:
    """Display names from ``labels`` (Labels, (mid, name) pairs or names) or ``model.labels``."""
    if labels is None:
        labels = getattr(model, "labels", None)
    if labels is None:
        return [f"class_{i}" for i in range(model.spec.num_classes)]
    names = [label.display_name for label in to_labels(labels)]
    if len(names) != model.spec.num_classes:
        raise UserError(f"labels: {len(names)} labels for a model with {model.spec.num_classes} "
                        "classes")  # fmt: skip
    return names


def synthetic_windows(sample_rate: int, length: int, count: int = 3, seed: int = 0):
    """Deterministic test signals (tones + noise bursts) used when no real audio is given."""
    rng = np.random.default_rng(seed)
    t = np.arange(length) / sample_rate
    out = []
    for i in range(count):
        f0 = 220.0 * (i + 1)
        x = 0.3 * np.sin(2 * np.pi * f0 * t) * (1 + np.sin(2 * np.pi * 0.5 * t))
        x += 0.05 * rng.standard_normal(length) * (t % 1.0 < 0.3)
        out.append(x.astype(np.float32))
    return np.stack(out)


VERIFY_BATCH = 2  # windows per call in the post-export checks (see batched)


def batched(fn, x: np.ndarray, batch: int = VERIFY_BATCH) -> dict[str, np.ndarray]:
    """``fn(x)`` (a dict of arrays) computed ``batch`` rows at a time and concatenated.

    The post-export checks run Keras and the exported model on the verification windows a
    few at a time: Cnn14 on 16 windows of 10 s in one call holds ~2 GB of activations,
    which set the export's peak memory (ONNX through the CLI: 5.4 GB).
    """
    outs = [{k: np.asarray(v) for k, v in fn(x[i : i + batch]).items()}
            for i in range(0, len(x), batch)]  # fmt: skip
    return {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}


def compare_scores(ref: np.ndarray, got: np.ndarray, top_k: int = 5) -> dict:
    """Max / mean |diff| and top-k agreement (mean overlap fraction) of score arrays (N, K)."""
    ref = np.asarray(ref, np.float64).reshape(-1, ref.shape[-1])
    got = np.asarray(got, np.float64).reshape(-1, got.shape[-1])
    diff = np.abs(ref - got)
    k = min(top_k, ref.shape[-1])
    overlap = [len(set(np.argsort(-r)[:k]) & set(np.argsort(-g)[:k])) / k for r, g in zip(ref, got)]
    top1 = float(np.mean(np.argmax(ref, -1) == np.argmax(got, -1)))
    return {
        "max_abs": float(diff.max()) if np.all(np.isfinite(got)) else float("inf"),
        "mean_abs": float(diff.mean()) if np.all(np.isfinite(got)) else float("inf"),
        f"top{k}_agreement": float(np.mean(overlap)),
        "top1_agreement": top1,
    }


def check(name: str, stats: dict, max_abs: float | None, mean_abs: float | None) -> None:
    """Raise :class:`ExportVerificationError` when ``stats`` exceed the tolerances."""
    bad = []
    if not np.isfinite(stats["max_abs"]):
        bad.append("non-finite outputs")
    if max_abs is not None and stats["max_abs"] > max_abs:
        bad.append(f"max |diff| {stats['max_abs']:.3g} > {max_abs:g}")
    if mean_abs is not None and stats["mean_abs"] > mean_abs:
        bad.append(f"mean |diff| {stats['mean_abs']:.3g} > {mean_abs:g}")
    if bad:
        raise ExportVerificationError(
            f"{name}: re-loaded export differs from Keras: " + "; ".join(bad)
        )
