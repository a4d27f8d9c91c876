"""The linear probe (panns_keras.train.probe) is fit to convergence: it finds scikit-learn's
LogisticRegression solution, and on real clips (240 FSDD spoken digits, embeddings of the
golden Cnn6, 3 folds) it reaches at least 95% of scikit-learn's best-C accuracy while choosing
its own C on the training folds only. scikit-learn is a test-only dependency.

Folds are by take (fold = take % 3; every fold holds every digit of every speaker twice):
with speaker folds the golden Cnn6's (untrained) features hardly carry the task
(scikit-learn's best is 0.29 against chance 0.10), too close to chance to compare solvers."""

import os

import numpy as np
import pytest
from golden import load_golden
from sklearn.linear_model import LogisticRegression

import panns_keras
from panns_keras import audio
from panns_keras.convert.mapping import assign_state_dict
from panns_keras.train import probe

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FSDD = os.path.join(ROOT, "demo_data", "fsdd", "recordings")
MODEL_SR = 32000
TAKES = range(6)  # 6 of the 12 takes per digit and speaker: 240 clips
SPEAKERS = ("george", "jackson", "lucas", "nicolas")
FOLDS = 3
SKLEARN_C = (0.01, 0.1, 1.0, 10.0)


@pytest.mark.parametrize("C", [0.01, 1.0])
@pytest.mark.parametrize("multi_label", [False, True])
def test_fit_finds_the_sklearn_solution(C, multi_label):
    rng = np.random.default_rng(0)
    n, e, k = 240, 32, 4
    cls = rng.integers(k, size=n)
    x = rng.standard_normal((n, e)) * rng.uniform(0.1, 10, e) + 3 * rng.standard_normal(e)
    x[:, :k] += 2 * np.eye(k)[cls]
    mean, scale = probe.standardiser(x)
    xs = (x - mean) / scale
    y = np.eye(k)[cls]
    if multi_label:
        y = np.maximum(y, rng.random((n, k)) < 0.2)  # extra positives
        w, b, ok = probe.fit_linear(xs, y, C, True)
        for c in range(k):  # per-class sigmoid BCE with a shared C = k binary problems
            sk = LogisticRegression(C=C, tol=1e-10, max_iter=10000).fit(xs, y[:, c])
            assert np.max(np.abs(w[:, c] - sk.coef_[0])) <= 1e-4 * max(1.0, np.abs(w).max())
            assert abs(b[c] - sk.intercept_[0]) <= 1e-4 * max(1.0, abs(b[c]))
    else:
        w, b, ok = probe.fit_linear(xs, y, C, False)
        sk = LogisticRegression(C=C, tol=1e-10, max_iter=10000).fit(xs, cls)
        assert np.max(np.abs(w - sk.coef_.T)) <= 1e-4 * max(1.0, np.abs(w).max())
        assert np.max(np.abs((b - b.mean()) - (sk.intercept_ - sk.intercept_.mean()))) <= 1e-3
    assert ok


def test_probe_pieces():
    x = np.array([[1.0, 5.0], [3.0, 5.0]])
    mean, scale = probe.standardiser(x)
    assert np.allclose(mean, [2, 5]) and np.allclose(scale, [1, 1])  # constant feature: 1
    y = np.eye(3)[[0, 1, 2, 0, 1, 2]]
    groups = np.array(["a", "a", "b", "b", "c", "c"])
    splits = probe.inner_splits(y, groups)
    assert [sorted(va) for _, va in splits] == [[0, 1], [2, 3], [4, 5]]
    for tr, va in probe.inner_splits(np.eye(3)[np.arange(30) % 3], None, k=5):
        assert not set(tr) & set(va) and len(tr) + len(va) == 30
    assert probe.score(np.array([[1.0, 0], [0, 1]]), np.eye(2), False) == 1.0
    assert probe.score(np.array([[0.9], [0.1], [0.5]]), np.array([[1.0], [0], [1]]), True) == 1.0


@pytest.fixture(scope="module")
def fsdd_embeddings():
    """(embeddings, one-hot targets, fold) of 240 real clips from the golden Cnn6 (weights by
    the golden rule; clips resampled to its 32 kHz, padded to 1 s; inference mode)."""
    waves, cls, fold = [], [], []
    for d in range(10):
        for s in SPEAKERS:
            for t in TAKES:
                x = audio.load_audio(os.path.join(FSDD, f"{d}_{s}_{t}.wav"), MODEL_SR)
                w = np.zeros(MODEL_SR, np.float32)
                w[: min(len(x), MODEL_SR)] = x[:MODEL_SR]
                waves.append(w)
                cls.append(d)
                fold.append(str(t % FOLDS))
    _, state, _, _, _ = load_golden("Cnn6")
    model = panns_keras.build_model("cnn6")
    assign_state_dict(model, state)
    waves = np.stack(waves)
    emb = np.concatenate([np.asarray(model(waves[i : i + 60], training=False)["embedding"])
                          for i in range(0, len(waves), 60)])  # fmt: skip
    return emb.astype(np.float64), np.eye(10)[cls], np.array(fold)


def _sklearn_accuracy(emb, cls, folds, C):
    accs = []
    for f in sorted(set(folds)):
        tr, te = folds != f, folds == f
        mean, scale = probe.standardiser(emb[tr])
        clf = LogisticRegression(C=C, max_iter=5000).fit((emb[tr] - mean) / scale, cls[tr])
        accs.append(np.mean(clf.predict((emb[te] - mean) / scale) == cls[te]))
    return float(np.mean(accs))


def test_probe_reaches_sklearn_on_real_clips(fsdd_embeddings):
    emb, y, folds = fsdd_embeddings
    cls = np.argmax(y, 1)
    ours, chosen = [], []
    for f in sorted(set(folds)):  # C chosen on the other folds only (inner CV by fold)
        tr, te = folds != f, folds == f
        p = probe.fit_probe(emb[tr], y[tr], groups=folds[tr])
        assert p.converged and not p.multi_label
        ours.append(float(np.mean(p.predict(emb[te]) == cls[te])))
        chosen.append(p.C)
        w, b = p.dense_weights()  # folded into a plain linear layer: same decisions
        assert np.mean(np.argmax(emb[te] @ w + b, 1) == p.predict(emb[te])) >= 0.99
    sk = {C: _sklearn_accuracy(emb, cls, folds, C) for C in SKLEARN_C}
    best = max(sk.values())
    print(f"probe accuracy per fold {np.round(ours, 3).tolist()} mean "
          f"{np.mean(ours):.3f} (C chosen {chosen}); scikit-learn by C {sk}, best {best:.3f}; "
          f"ratio {np.mean(ours) / best:.3f}")  # fmt: skip
    assert best > 0.2  # the features carry the task (chance is 0.1)
    assert np.mean(ours) >= 0.95 * best
