"""mAP and mean AUC as Keras metrics, for ``fit`` / ``evaluate`` logs and callbacks.

The same definitions as :mod:`panns_keras.metrics` (the PANNs evaluation): per class, the
step-wise average precision and the trapezoidal ROC AUC, tied scores entering together;
classes without a positive or without a negative clip are left out of both means (NaN when
none is left). Both are exact, not binned (unlike ``keras.metrics.AUC``), so a metric keeps
every clip's scores of the epoch: ``capacity`` clips at most (a buffer of
``capacity x num_classes`` floats per metric); with more the result is NaN, loudly, rather
than a number over part of the data.

Written in ``keras.ops`` only, for every backend. Sorting the epoch's scores costs
O(capacity x classes log capacity) (8192 x 527: seconds on a CPU), too much for every step:
inside :func:`deferred` (``AudioTagger.compute_metrics``, i.e. ``fit`` / ``evaluate``'s
compiled steps) the result is NaN, and Keras computes the epoch's logs (``mAP``,
``val_mAP``, what callbacks see at the end of an epoch) once after the steps, from the
metric's state, outside the step. Called anywhere else, ``result()`` is exact.
"""

from __future__ import annotations

import contextlib

import keras
import numpy as np
from keras import ops

from panns_keras.metrics import evaluate_scores

DEFAULT_CAPACITY = 8192
_deferred = [0]  # > 0 while a train / test step is traced: result() is NaN there


@contextlib.contextmanager
def deferred():
    """Within, the tagging metrics' ``result()`` is NaN (traced into a compiled step); the
    exact value comes from ``result()`` called after the steps (Keras's epoch logs)."""
    _deferred[0] += 1
    try:
        yield
    finally:
        _deferred[0] -= 1


def ap_auc(y_true, y_pred, weight):
    """Per-class AP and AUC ``(C,)`` plus positive / negative counts ``(C,)`` of ``(N, C)``
    targets and scores; rows with ``weight`` 0 (N,) take no part (an unfilled buffer row)."""
    n = ops.shape(y_pred)[0]
    c = ops.shape(y_pred)[1]
    w = ops.expand_dims(ops.cast(weight, "float32"), 1)  # (N, 1)
    # Rows taking no part rank last in a tie group of their own (scores are finite).
    s = ops.where(w > 0, ops.cast(y_pred, "float32"), -float("inf"))
    order = ops.argsort(-s, axis=0)  # (N, C) ranks, best first
    s = ops.take_along_axis(s, order, axis=0)
    y = ops.take_along_axis(ops.cast(y_true, "float32") * w, order, axis=0)
    neg = ops.take_along_axis((1.0 - ops.cast(y_true, "float32")) * w, order, axis=0)
    tp = ops.cumsum(y, axis=0)  # (N, C)
    seen = ops.cumsum(y + neg, axis=0)  # clips ranked at or above, per class
    # Tie groups: a new group starts where the score changes; one segment id per class.
    new = ops.concatenate(
        [ops.ones((1, c), "int32"), ops.cast(ops.not_equal(s[1:], s[:-1]), "int32")], axis=0
    )
    group = ops.cumsum(new, axis=0) - 1 + ops.expand_dims(ops.arange(c, dtype="int32") * n, 0)
    ids = ops.reshape(ops.transpose(group), (-1,))  # class-major, (C * N,)

    def per_group(values):  # each row's group maximum of values (N, C)
        flat = ops.reshape(ops.transpose(values), (-1,))
        best = ops.segment_max(flat, ids, num_segments=n * c)
        return ops.transpose(ops.reshape(ops.take(best, ids), (c, n)))

    tp_end = per_group(tp)  # true positives down to the end of the row's tie group
    seen_end = per_group(seen)
    tp_start = -per_group(-(tp - y))  # true positives above the row's tie group
    num_pos = ops.sum(y, axis=0)
    num_neg = ops.sum(neg, axis=0)
    precision = tp_end / ops.maximum(seen_end, 1.0)
    ap = ops.sum(y * precision, axis=0) / ops.maximum(num_pos, 1.0)
    auc = ops.sum(neg * 0.5 * (tp_start + tp_end), axis=0) / ops.maximum(num_pos * num_neg, 1.0)
    return ap, auc, num_pos, num_neg


class _ClipScores(keras.metrics.Metric):
    """Keeps every clip's targets (int8; -1: a row left out) and scores (float32) of an
    epoch, up to ``capacity`` clips."""

    def __init__(self, num_classes: int, capacity: int = DEFAULT_CAPACITY, name=None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.num_classes = int(num_classes)
        self.capacity = int(capacity)
        shape = (self.capacity, self.num_classes)
        self.targets = self.add_variable(shape, "zeros", dtype="int8", name="targets")
        self.scores = self.add_variable(shape, "zeros", dtype="float32", name="scores")
        self.count = self.add_variable((), "zeros", dtype="int32", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.reshape(ops.cast(y_true, "int8"), (-1, self.num_classes))
        y_pred = ops.reshape(ops.cast(y_pred, "float32"), (-1, self.num_classes))
        b = ops.shape(y_true)[0]
        if sample_weight is not None:  # rows of weight 0 (a padded eval batch) are left out
            keep = ops.reshape(ops.cast(sample_weight, "float32"), (-1, 1)) > 0
            y_true = ops.where(keep, y_true, ops.cast(-1, "int8"))
        start = self.count.value
        # An overflowing batch is counted (the result is then NaN), not stored.
        at = ops.where(start + b <= self.capacity, start, 0)
        self.targets.assign(ops.slice_update(self.targets.value, (at, 0), y_true))
        self.scores.assign(ops.slice_update(self.scores.value, (at, 0), y_pred))
        self.count.assign(start + b)

    def _concrete_count(self):
        """The clip count when known (eager), else None (inside a traced function)."""
        try:
            return int(ops.convert_to_numpy(self.count.value))
        except Exception:  # a symbolic tensor: TensorFlow graph or JAX tracer
            return None

    def _means(self):
        """(mAP, mAUC) of the stored clips, as panns_keras.metrics.evaluate_scores."""
        count = self._concrete_count()
        if count is not None:  # eager (Keras's epoch logs): NumPy on the filled rows
            if count > self.capacity:
                return float("nan"), float("nan")
            target = ops.convert_to_numpy(self.targets.value[:count])
            scores = ops.convert_to_numpy(self.scores.value[:count])
            rows = np.all(target >= 0, axis=1)
            res = evaluate_scores(target[rows], scores[rows])
            return res["mAP"], res["mAUC"]
        filled = ops.arange(self.capacity, dtype="int32") < self.count.value
        target = self.targets.value
        weight = ops.cast(ops.logical_and(filled, ops.all(target >= 0, axis=1)), "float32")
        ap, auc, num_pos, num_neg = ap_auc(ops.maximum(target, 0), self.scores.value, weight)
        included = ops.cast(ops.logical_and(num_pos > 0, num_neg > 0), "float32")
        total = ops.sum(included)
        ok = ops.logical_and(total > 0, self.count.value <= self.capacity)
        return tuple(
            ops.where(ok, ops.sum(v * included) / ops.maximum(total, 1.0), float("nan"))
            for v in (ap, auc)
        )

    def _result(self, which: int):
        if _deferred[0]:
            return ops.convert_to_tensor(float("nan"), "float32")
        return ops.convert_to_tensor(self._means()[which], "float32")

    def reset_state(self):
        self.targets.assign(ops.zeros(self.targets.shape, "int8"))
        self.scores.assign(ops.zeros(self.scores.shape, "float32"))
        self.count.assign(0)

    def get_config(self):
        return {
            "num_classes": self.num_classes,
            "capacity": self.capacity,
            "name": self.name,
            "dtype": self.dtype,
        }


@keras.saving.register_keras_serializable(package="panns_keras")
class MeanAveragePrecision(_ClipScores):
    """mAP over the epoch's clips: :func:`panns_keras.metrics.evaluate_scores`'s ``mAP``.

    Args:
        num_classes: output classes.
        capacity: clips kept per epoch (more: the result is NaN).
        name: log name (``"mAP"``: ``val_mAP`` in ``fit``'s logs).

    Example:
        >>> model.compile(metrics=[MeanAveragePrecision(10)])  # AudioTagger's default
    """

    def __init__(self, num_classes: int, capacity: int = DEFAULT_CAPACITY, name="mAP", dtype=None):
        super().__init__(num_classes, capacity, name=name, dtype=dtype)

    def result(self):
        return self._result(0)


@keras.saving.register_keras_serializable(package="panns_keras")
class MeanAUC(_ClipScores):
    """Mean ROC AUC over the epoch's clips: :func:`panns_keras.metrics.evaluate_scores`'s
    ``mAUC`` (the same classes as :class:`MeanAveragePrecision`).

    Args:
        num_classes: output classes.
        capacity: clips kept per epoch (more: the result is NaN).
        name: log name (``"mAUC"``).
    """

    def __init__(self, num_classes: int, capacity: int = DEFAULT_CAPACITY, name="mAUC", dtype=None):
        super().__init__(num_classes, capacity, name=name, dtype=dtype)

    def result(self):
        return self._result(1)
