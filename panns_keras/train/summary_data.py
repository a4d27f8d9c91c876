"""What the run's summaries show, computed without a writer: the flat hparams of a config,
TensorBoard-safe tag names, PR-curve tables and the per-class AP chart.

:mod:`panns_keras.train.summaries` writes these (TensorBoard, or JSON lines without TF).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence

import numpy as np

PR_THRESHOLDS = 201  # TensorBoard's default for PR curves

# The config fields shown as hparams (besides model, mode, fold, backend): the ones runs
# are compared by. Paths as in --config.x.y=...
_HPARAM_FIELDS = (
    "seed",
    "model.init",
    "model.base_lr_scale",
    "model.disable_dropout",
    "train.batch_size",
    "train.num_steps",
    "train.precision",
    "train.optimizer",
    "train.learning_rate",
    "train.schedule",
    "train.warmup_steps",
    "train.min_lr_ratio",
    "train.weight_decay",
    "train.amsgrad",
    "train.clipnorm",
    "train.loss",
    "train.jit_compile",
    "train.fused_batchnorm",
    "data.mixup",
    "data.mixup_alpha",
    "data.balanced",
    "data.sample_rate",
    "data.clip_samples",
    "data.num_classes",
)


def tag_name(text: str) -> str:
    """A tag from free text (a class name): no ``/`` or spaces, at most 60 characters."""
    return re.sub(r"[^0-9A-Za-z_.-]+", "_", text).strip("_")[:60] or "x"


def _get(config, path: str):
    node = config
    for key in path.split("."):
        if key not in node:
            return None
        node = node[key]
    return node


def flat_hparams(config, model_name: str | None = None) -> dict[str, bool | int | float | str]:
    """The run's hyperparameters as a flat dict (values: bool, int, float or str).

    ``model``: ``model_name`` (the built model's name, which a warm start takes from its
    initial model) or ``config.model.name``; ``mode``: the transfer mode; ``fold``: the held-out
    fold(s) (``data.eval_folds``; ``none`` when unset); ``backend``: the Keras backend; then the
    fields of ``_HPARAM_FIELDS`` that are set, and the model overrides that are set.
    """
    out: dict[str, bool | int | float | str] = {
        "model": str(model_name or _get(config, "model.name") or ""),
        "mode": str(_get(config, "model.mode") or "scratch"),
        "fold": str(_get(config, "data.eval_folds") or "none"),
        "backend": os.environ.get("KERAS_BACKEND", "tensorflow"),
    }
    try:
        import keras

        out["backend"] = keras.backend.backend()
    except ImportError:
        pass
    for path in _HPARAM_FIELDS:
        value = _get(config, path)
        if value is None:
            continue
        out[path] = value if isinstance(value, (bool, int, float, str)) else str(value)
    overrides = _get(config, "model.overrides") or {}
    for key, value in overrides.items():
        if value is not None:
            out[f"model.overrides.{key}"] = value
    return out


def pr_curve_data(
    labels: np.ndarray, scores: np.ndarray, num_thresholds: int = PR_THRESHOLDS
) -> np.ndarray:
    """[6, num_thresholds] float32: TP, FP, TN, FN, precision, recall at the thresholds
    ``i / (num_thresholds - 1)`` (a score counts as positive at thresholds <= it), the
    layout of TensorBoard's PR curve plugin."""
    bucket = np.floor(np.clip(scores, 0.0, 1.0) * (num_thresholds - 1)).astype(np.int64)
    pos = np.asarray(labels, np.float64) > 0
    tp_b = np.bincount(bucket[pos], minlength=num_thresholds).astype(np.float64)
    fp_b = np.bincount(bucket[~pos], minlength=num_thresholds).astype(np.float64)
    tp = np.cumsum(tp_b[::-1])[::-1]
    fp = np.cumsum(fp_b[::-1])[::-1]
    tn, fn = fp[0] - fp, tp[0] - tp
    precision = tp / np.maximum(1e-7, tp + fp)
    recall = tp / np.maximum(1e-7, tp + fn)
    return np.stack([tp, fp, tn, fn, precision, recall]).astype(np.float32)


def pr_curve_classes(result: Mapping, limit: int) -> list[int]:
    """Classes that get a PR curve: those with positives and negatives (not excluded), the
    ``limit`` with the most positives (all of them when there are no more than ``limit``)."""
    excluded = set(int(i) for i in result["excluded_classes"])
    positives = np.asarray(result["num_positives"])
    keep = [i for i in range(positives.size) if i not in excluded and positives[i] > 0]
    keep.sort(key=lambda i: (-positives[i], i))
    return sorted(keep[: max(0, int(limit))])


def ap_chart(result: Mapping, names: Sequence[str], dpi: int = 80) -> np.ndarray:
    """The per-class AP chart of ``evaluation.write_report`` as a [H, W, 3] uint8 image."""
    from panns_keras.train.evaluation import ap_figure

    fig = ap_figure(result, names)
    try:
        fig.set_dpi(dpi)
        fig.canvas.draw()
        return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    finally:
        from matplotlib import pyplot as plt

        plt.close(fig)
