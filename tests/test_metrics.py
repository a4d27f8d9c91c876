"""panns_keras.metrics against scikit-learn's reference implementations."""

import warnings

import numpy as np
import pytest

from panns_keras import metrics

sk_metrics = pytest.importorskip("sklearn.metrics")


def _sk_ap(target, scores):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sk_metrics.average_precision_score(target, scores, average=None)


def _sk_auc(target, scores):
    return sk_metrics.roc_auc_score(target, scores, average=None)


def _random_case(rng, n=300, c=17, quantize=None):
    target = (rng.random((n, c)) < rng.uniform(0.02, 0.5, size=c)).astype(np.int64)
    target[0] = 1  # every class has a positive ...
    target[1] = 0  # ... and a negative
    scores = rng.random((n, c)) * 0.6 + 0.4 * target * rng.random((n, c))
    if quantize is not None:
        scores = np.round(scores * quantize) / quantize  # lots of ties
    return target, scores


@pytest.mark.parametrize("quantize", [None, 10, 3, 1])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_sklearn_random_and_ties(seed, quantize):
    rng = np.random.default_rng(seed)
    target, scores = _random_case(rng, quantize=quantize)
    np.testing.assert_allclose(
        metrics.average_precision(target, scores), _sk_ap(target, scores), rtol=0, atol=1e-10
    )
    np.testing.assert_allclose(
        metrics.roc_auc(target, scores), _sk_auc(target, scores), rtol=0, atol=1e-10
    )


def test_float32_scores_and_bool_target():
    rng = np.random.default_rng(5)
    target, scores = _random_case(rng, n=500, c=8)
    scores = scores.astype(np.float32)
    np.testing.assert_allclose(
        metrics.average_precision(target.astype(bool), scores),
        _sk_ap(target, scores),
        rtol=0,
        atol=1e-10,
    )
    np.testing.assert_allclose(
        metrics.roc_auc(target.astype(bool), scores), _sk_auc(target, scores), rtol=0, atol=1e-10
    )


def test_degenerate_scores_and_single_positive():
    rng = np.random.default_rng(3)
    n = 50
    target = np.zeros((n, 5), dtype=np.int64)
    target[rng.choice(n, 7, replace=False), 0] = 1
    target[rng.choice(n, 7, replace=False), 1] = 1
    target[13, 2] = 1  # a single positive
    target[rng.choice(n, 20, replace=False), 3] = 1
    target[rng.choice(n, 1, replace=False), 4] = 1
    scores = np.stack(
        [
            np.zeros(n),  # all-zero scores
            np.full(n, 0.37),  # constant scores
            rng.random(n),  # single positive, random scores
            -rng.random(n),  # negative scores
            rng.random(n),  # single positive
        ],
        axis=1,
    )
    scores[13, 2] = scores[:, 2].max() + 1.0  # the single positive ranked first (AP = AUC = 1)
    ap = metrics.average_precision(target, scores)
    auc = metrics.roc_auc(target, scores)
    np.testing.assert_allclose(ap, _sk_ap(target, scores), rtol=0, atol=1e-10)
    np.testing.assert_allclose(auc, _sk_auc(target, scores), rtol=0, atol=1e-10)
    np.testing.assert_allclose(ap[:2], target[:, :2].mean(axis=0))  # constant score: prevalence
    np.testing.assert_allclose(auc[:2], 0.5)
    assert ap[2] == 1.0 and auc[2] == 1.0


def test_single_class_1d_inputs():
    target = np.array([0, 1, 1, 0, 1, 0, 0])
    scores = np.array([0.1, 0.9, 0.4, 0.4, 0.8, 0.2, 0.9])
    assert metrics.average_precision(target, scores).shape == (1,)
    assert metrics.average_precision(target, scores)[0] == pytest.approx(
        sk_metrics.average_precision_score(target, scores), abs=1e-12
    )
    assert metrics.roc_auc(target, scores)[0] == pytest.approx(
        sk_metrics.roc_auc_score(target, scores), abs=1e-12
    )


def test_classes_without_positives_or_negatives_are_excluded():
    rng = np.random.default_rng(7)
    target, scores = _random_case(rng, n=120, c=6)
    target[:, 2] = 0  # no positive
    target[:, 4] = 1  # no negative (all positives)
    ap = metrics.average_precision(target, scores)
    auc = metrics.roc_auc(target, scores)
    assert np.isnan(ap[2]) and np.isnan(auc[2])
    assert ap[4] == 1.0 and np.isnan(auc[4])  # AP of an all-positive class is 1 (as sklearn)
    assert ap[4] == _sk_ap(target[:, 4], scores[:, 4])

    keep = [0, 1, 3, 5]
    result = metrics.evaluate_scores(target, scores)
    assert result["excluded_classes"] == [2, 4]
    np.testing.assert_array_equal(result["num_positives"], target.sum(axis=0))
    sk_ap = _sk_ap(target[:, keep], scores[:, keep])
    sk_auc = _sk_auc(target[:, keep], scores[:, keep])
    assert result["mAP"] == pytest.approx(np.mean(sk_ap), abs=1e-10)
    assert result["mAUC"] == pytest.approx(np.mean(sk_auc), abs=1e-10)
    np.testing.assert_allclose(result["ap"][keep], sk_ap, rtol=0, atol=1e-10)
    np.testing.assert_allclose(result["auc"][keep], sk_auc, rtol=0, atol=1e-10)


def test_evaluate_scores_matches_reference_and_mask():
    rng = np.random.default_rng(11)
    target, scores = _random_case(rng, n=400, c=10, quantize=20)
    result = metrics.evaluate_scores(target, scores)
    assert result["excluded_classes"] == []
    assert result["mAP"] == pytest.approx(np.mean(_sk_ap(target, scores)), abs=1e-10)
    assert result["mAUC"] == pytest.approx(np.mean(_sk_auc(target, scores)), abs=1e-10)
    assert result["d_prime"] == pytest.approx(metrics.d_prime(result["mAUC"]), abs=1e-12)

    mask = np.ones(len(target), dtype=bool)
    mask[-37:] = False
    padded_scores = scores.copy()
    padded_scores[~mask] = 123.0  # garbage rows must not matter
    masked = metrics.evaluate_scores(target, padded_scores, mask=mask)
    unmasked = metrics.evaluate_scores(target[mask], scores[mask])
    assert masked["mAP"] == unmasked["mAP"]
    assert masked["mAUC"] == unmasked["mAUC"]
    with pytest.raises(ValueError):
        metrics.evaluate_scores(target, scores, mask=mask[:-1])


def test_d_prime():
    assert round(metrics.d_prime(0.973), 3) == 2.725  # PANNs Cnn14: mAUC 0.973 -> d' 2.725
    assert metrics.d_prime(0.5) == pytest.approx(0.0, abs=1e-15)
    assert metrics.d_prime(0.9) == pytest.approx(-metrics.d_prime(0.1))
    arr = metrics.d_prime(np.array([0.5, 0.973]))
    assert isinstance(arr, np.ndarray) and arr.shape == (2,)
    assert metrics.d_prime(1.0) == np.inf


def test_input_validation():
    with pytest.raises(ValueError):
        metrics.average_precision(np.zeros((4, 2)), np.zeros((4, 3)))
    with pytest.raises(ValueError):
        metrics.roc_auc(np.full((4, 2), 2), np.zeros((4, 2)))
    with pytest.raises(ValueError):
        metrics.roc_auc(np.zeros((4, 2)), np.full((4, 2), np.nan))


def test_nan_metric_says_why():
    clip_metrics, nan_reason = metrics.evaluate_scores, metrics.nan_reason
    one_class = clip_metrics(np.ones((4, 1)), np.array([[0.9], [0.2], [0.7], [0.4]]))
    assert np.isnan(one_class["mAP"])
    assert nan_reason({**one_class, "num_clips": 4}) == (
        "mAP, mean AUC and d-prime are undefined: every clip is positive for every class among "
        "the 4 clips (no negatives)"
    )
    none = clip_metrics(np.zeros((3, 2)), np.full((3, 2), 0.5))
    assert nan_reason(none) == (
        "mAP, mean AUC and d-prime are undefined: no class has a positive clip"
    )
    fine = clip_metrics(np.array([[1, 0], [0, 1]]), np.array([[0.9, 0.1], [0.2, 0.8]]))
    assert fine["mAP"] == 1.0 and nan_reason(fine) is None
