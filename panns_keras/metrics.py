"""Audio-tagging evaluation metrics, matching the PANNs reference evaluation.

The PANNs reference (``pytorch/evaluate.py``) computes, over the whole evaluation set,

* per-class average precision with ``sklearn.metrics.average_precision_score(target,
  clipwise_output, average=None)``,
* per-class ROC AUC with ``sklearn.metrics.roc_auc_score(target, clipwise_output,
  average=None)``,

and reports ``mAP = mean(ap)``, ``mAUC = mean(auc)`` and ``d' = sqrt(2) * Phi^-1(mAUC)``.

This module re-implements exactly those definitions in numpy (vectorised over classes), so
scikit-learn is only needed by the tests that check the equivalence:

* **AP** is the step-wise (non-interpolated) area under the precision/recall curve,
  ``sum_n (R_n - R_{n-1}) P_n``, where the operating points ``n`` are the *distinct* score
  values in decreasing order (all clips tied at a score enter together, as in sklearn's
  ``precision_recall_curve``).
* **AUC** is the trapezoidal area under the ROC curve whose vertices are again the distinct
  score values (a tie between a positive and a negative clip therefore counts 1/2).

Degenerate classes (a documented choice, differing from sklearn on purpose): a class with no
positive clip has no defined AP or AUC (sklearn returns a meaningless 0 AP with a warning, and
``roc_auc_score`` raises for the whole call); a class with no negative clip has no defined
AUC (sklearn raises).  Here such classes get ``NaN`` in the per-class arrays, are left out of
the means, and are listed in ``evaluate_scores(...)["excluded_classes"]`` so the caller can
report them.  A class with positives but no negatives still has a well-defined AP (always 1.0,
as in sklearn) but is excluded from *both* means so that mAP and mAUC are averaged over the
same set of classes.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtri

__all__ = ["average_precision", "d_prime", "evaluate_scores", "roc_auc"]


def _as_2d(target, scores) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(target)
    s = np.asarray(scores, dtype=np.float64)
    if t.ndim == 1:
        t = t[:, None]
    if s.ndim == 1:
        s = s[:, None]
    if t.ndim != 2 or t.shape != s.shape:
        raise ValueError(
            f"target and scores must both be (num_clips, num_classes); got {t.shape} and {s.shape}"
        )
    if not np.all((t == 0) | (t == 1)):
        raise ValueError("target must be binary (0/1 or bool)")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite")
    return t.astype(np.float64), s


_CHUNK = 64  # classes processed together (bounds the temporary memory to ~_CHUNK * N)


def _ap_auc_chunk(target: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AP and AUC of each row of (K, N) class-major ``target`` / ``scores``.

    Clips are ranked by decreasing score; tied scores form one operating point.  For the tie
    group of every ranked clip we need the cumulative true-positive count at the group's end
    (``tp_end``), just before the group (``tp_start``), and the number of clips ranked at or
    above the group (``rank_end``).
    """
    k, n = scores.shape
    order = np.argsort(-scores, axis=1, kind="stable")
    s = np.take_along_axis(scores, order, axis=1)
    y = np.take_along_axis(target, order, axis=1)
    tp = np.cumsum(y, axis=1)

    cols = np.broadcast_to(np.arange(n), (k, n))
    new_value = np.ones((k, n), dtype=bool)
    new_value[:, 1:] = s[:, 1:] != s[:, :-1]
    # First ranked index of each clip's tie group (forward fill of group starts).
    start = np.maximum.accumulate(np.where(new_value, cols, 0), axis=1)
    # Last ranked index of each clip's tie group (backward fill of group ends).
    is_end = np.ones((k, n), dtype=bool)
    is_end[:, :-1] = new_value[:, 1:]
    end = np.minimum.accumulate(np.where(is_end, cols, n - 1)[:, ::-1], axis=1)[:, ::-1]

    tp_end = np.take_along_axis(tp, end, axis=1)
    tp_start = np.where(start > 0, np.take_along_axis(tp, np.maximum(start - 1, 0), axis=1), 0.0)
    num_pos = tp[:, -1] if n else np.zeros(k)
    num_neg = n - num_pos
    with np.errstate(invalid="ignore", divide="ignore"):
        # AP: each positive adds 1/P recall at the precision of its tie group's operating point.
        ap = np.sum(y * (tp_end / (end + 1.0)), axis=1) / num_pos
        # AUC (trapezoid): each negative moves the ROC one step right, at the mean TPR of the
        # start and the end of its tie group.
        auc = np.sum((1.0 - y) * (0.5 * (tp_start + tp_end)), axis=1) / (num_pos * num_neg)
    ap = np.where(num_pos > 0, ap, np.nan)
    auc = np.where((num_pos > 0) & (num_neg > 0), auc, np.nan)
    return ap, auc


def _ap_auc(target: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    num_classes = target.shape[1]
    ap = np.empty(num_classes)
    auc = np.empty(num_classes)
    for c0 in range(0, num_classes, _CHUNK):
        sl = slice(c0, c0 + _CHUNK)
        ap[sl], auc[sl] = _ap_auc_chunk(
            np.ascontiguousarray(target[:, sl].T), np.ascontiguousarray(scores[:, sl].T)
        )
    return ap, auc


def average_precision(target, scores) -> np.ndarray:
    """Per-class average precision, sklearn ``average_precision_score(average=None)`` semantics.

    Args:
      target: (N, C) binary ground truth (a 1-D array is treated as a single class).
      scores: (N, C) real-valued scores (higher means more likely positive).

    Returns:
      (C,) float64 array; ``NaN`` for classes without any positive clip.
    """
    return _ap_auc(*_as_2d(target, scores))[0]


def roc_auc(target, scores) -> np.ndarray:
    """Per-class ROC AUC, sklearn ``roc_auc_score(average=None)`` semantics.

    Args:
      target: (N, C) binary ground truth (a 1-D array is treated as a single class).
      scores: (N, C) real-valued scores.

    Returns:
      (C,) float64 array; ``NaN`` for classes without a positive or without a negative clip.
    """
    return _ap_auc(*_as_2d(target, scores))[1]


def d_prime(auc):
    """Sensitivity index ``d' = sqrt(2) * Phi^-1(auc)`` (PANNs / AudioSet convention).

    Accepts a scalar (returns a float) or an array (returns an array).  ``auc`` of 0 or 1
    gives -inf / +inf; NaN stays NaN.
    """
    value = math.sqrt(2.0) * ndtri(np.asarray(auc, dtype=np.float64))
    return float(value) if np.ndim(value) == 0 else value


def evaluate_scores(target, scores, mask=None) -> dict:
    """Evaluation summary as reported by PANNs.

    Args:
      target: (N, C) binary ground truth.
      scores: (N, C) clip-wise scores (e.g. ``clipwise_output``).
      mask: optional (N,) boolean array selecting the clips to evaluate (e.g. to drop padding
        rows of the last batch).  ``None`` evaluates every clip.

    Returns:
      dict with
        ``mAP``, ``mAUC``, ``d_prime``: floats over the included classes (NaN if none),
        ``ap``, ``auc``: (C,) per-class arrays (NaN where undefined),
        ``num_positives``: (C,) int array of positive clips per class,
        ``excluded_classes``: sorted list of class indices left out of the means (no positive
        or no negative clip among the evaluated clips).
    """
    t, s = _as_2d(target, scores)
    if mask is not None:
        m = np.asarray(mask)
        if m.shape != (t.shape[0],):
            raise ValueError(f"mask must have shape ({t.shape[0]},); got {m.shape}")
        m = m.astype(bool)
        t, s = t[m], s[m]
    ap, auc = _ap_auc(t, s)
    num_pos = t.sum(axis=0).astype(np.int64)
    included = (num_pos > 0) & (num_pos < t.shape[0])
    if np.any(included):
        m_ap = float(np.mean(ap[included]))
        m_auc = float(np.mean(auc[included]))
    else:
        m_ap = m_auc = float("nan")
    return {
        "mAP": m_ap,
        "mAUC": m_auc,
        "d_prime": d_prime(m_auc),
        "ap": ap,
        "auc": auc,
        "num_positives": num_pos,
        "excluded_classes": [int(c) for c in np.flatnonzero(~included)],
    }


def nan_reason(result: dict) -> str | None:
    """Why ``result["mAP"]`` (from :func:`clip_metrics`) is NaN, for the summary line; None
    when it is a number."""
    m_ap = result.get("mAP")
    if m_ap is None or not np.isnan(m_ap):
        return None
    num_pos = np.asarray(result.get("num_positives", []))
    clips = result.get("num_clips")
    among = f" among the {clips} clips" if clips is not None else ""
    if num_pos.size and np.all(num_pos == 0):
        why = f"no class has a positive clip{among}"
    elif num_pos.size and clips is not None and np.all(num_pos >= clips):
        why = f"every clip is positive for every class{among} (no negatives)"
    else:
        why = f"no class has both a positive and a negative clip{among}"
    return f"mAP, mean AUC and d-prime are undefined: {why}"
