"""mAP and mean AUC as Keras metrics (panns_keras/models/keras_metrics.py) against the numpy
definitions of panns_keras.metrics, eagerly and inside a compiled function, on any backend."""

import keras
import numpy as np
import pytest

from panns_keras.metrics import evaluate_scores
from panns_keras.models.keras_metrics import MeanAUC, MeanAveragePrecision


def _data(seed, n=70, c=7):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, c)) < 0.3).astype("float32")
    y[:, 5] = 0.0  # no positive clip: left out of both means
    y[:, 6] = 1.0  # no negative clip: left out of both means
    s = rng.random((n, c)).astype("float32")
    s[:, 1] = np.round(s[:, 1], 1)  # ties between positives and negatives
    s[:, 2] = 0.5  # every clip tied
    return y, s


def _feed(metric, y, s, batch, weight=None):
    metric.reset_state()
    for i in range(0, len(y), batch):
        w = None if weight is None else weight[i : i + batch]
        metric.update_state(y[i : i + batch], s[i : i + batch], sample_weight=w)
    return float(metric.result())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equal_to_panns_metrics_on_random_data(seed):
    y, s = _data(seed)
    want = evaluate_scores(y, s)
    assert want["excluded_classes"] == [5, 6]
    m_ap, m_auc = MeanAveragePrecision(7, capacity=80), MeanAUC(7, capacity=80)
    for batch in (16, 70):
        assert _feed(m_ap, y, s, batch) == pytest.approx(want["mAP"], abs=1e-6)
        assert _feed(m_auc, y, s, batch) == pytest.approx(want["mAUC"], abs=1e-6)


def test_weight_zero_rows_left_out_like_an_eval_mask():
    y, s = _data(3)
    mask = np.ones(len(y), "float32")
    mask[-6:] = 0.0  # a padded last batch
    want = evaluate_scores(y, s, mask=mask.astype(bool))
    assert _feed(MeanAveragePrecision(7, 80), y, s, 32, mask) == pytest.approx(want["mAP"], 1e-6)
    assert _feed(MeanAUC(7, 80), y, s, 32, mask) == pytest.approx(want["mAUC"], abs=1e-6)


def test_no_usable_class_and_overflow_are_nan():
    y = np.zeros((8, 3), "float32")
    s = np.random.default_rng(0).random((8, 3)).astype("float32")
    assert np.isnan(_feed(MeanAveragePrecision(3, 16), y, s, 4))
    assert np.isnan(evaluate_scores(y, s)["mAP"])
    y, s = _data(4)
    assert np.isnan(_feed(MeanAveragePrecision(7, capacity=32), y, s, 16))  # 70 clips > 32


def test_inside_a_compiled_evaluate_and_serialised():
    """In a plain Keras model's compiled test step (the traced keras.ops path: each batch's
    logs) and in evaluate's end-of-run logs (NumPy on the stored clips), the numbers of
    panns_keras.metrics; the metric round-trips through its config."""
    y, s = _data(5, n=64)
    inputs = keras.Input((7,))
    model = keras.Model(inputs, keras.layers.Identity()(inputs))
    model.compile(loss="mse", metrics=[MeanAveragePrecision(7, 64), MeanAUC(7, 64)])
    seen = []

    class LastBatch(keras.callbacks.Callback):
        def on_test_batch_end(self, batch, logs=None):
            seen.append({k: float(v) for k, v in logs.items()})

    logs = model.evaluate(s, y, batch_size=16, return_dict=True, verbose=0, callbacks=[LastBatch()])
    want = evaluate_scores(y, s)
    for got in (logs, seen[-1]):  # after the last of 4 batches: every clip
        assert got["mAP"] == pytest.approx(want["mAP"], abs=1e-6)
        assert got["mAUC"] == pytest.approx(want["mAUC"], abs=1e-6)
    first = evaluate_scores(y[:16], s[:16])
    assert seen[0]["mAP"] == pytest.approx(first["mAP"], abs=1e-6)
    again = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(MeanAveragePrecision(7, 64))
    )
    assert (again.name, again.num_classes, again.capacity) == ("mAP", 7, 64)


def test_deferred_inside_a_step_exact_after():
    """Inside keras_metrics.deferred() (AudioTagger's compiled steps) the result is NaN; the
    same state read afterwards gives the exact value."""
    from panns_keras.models import keras_metrics

    y, s = _data(6)
    metric = MeanAveragePrecision(7, 80)
    metric.update_state(y, s)
    with keras_metrics.deferred():
        assert np.isnan(float(metric.result()))
    assert float(metric.result()) == pytest.approx(evaluate_scores(y, s)["mAP"], abs=1e-6)
