"""The linear probe (panns_keras.train.probe) is fit to convergence: its answer has a
vanishing gradient and is the one a plain, unpreconditioned scipy L-BFGS-B finds when run to a
far tighter tolerance; the warm-started C path gives what cold starts give; finetune prints a
line per fold; at a moderate size (600 clips x 20 classes x 3 folds, 512-d) it chooses C by
inner CV and converges with a bounded number of objective evaluations. Extra checks where
scikit-learn is installed: it finds LogisticRegression's solution, and on real clips (240 FSDD
spoken digits, embeddings of the golden Cnn6, 3 folds) it reaches at least 95% of
scikit-learn's best-C accuracy while choosing its own C on the training folds only.

Folds are by take (fold = take % 3; every fold holds every digit of every speaker twice):
with speaker folds the golden Cnn6's (untrained) features hardly carry the task
(scikit-learn's best is 0.29 against chance 0.10), too close to chance to compare solvers."""

import logging
import os

import numpy as np
import pytest
from scipy.optimize import minimize

import panns_keras
from panns_keras import audio
from panns_keras.convert.mapping import assign_state_dict
from panns_keras.train import finetune, probe
from tests.helpers.golden import load_golden

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FSDD = os.path.join(ROOT, "demo_data", "fsdd", "recordings")
MODEL_SR = 32000
TAKES = range(6)  # 6 of the 12 takes per digit and speaker: 240 clips
SPEAKERS = ("george", "jackson", "lucas", "nicolas")
FOLDS = 3
SKLEARN_C = (0.01, 0.1, 1.0, 10.0)


def cnn_like(n, k, e=512, folds=3, seed=0, latent=128, dead=128, sep=0.6):
    """Embeddings shaped like a CNN's (benchmarks/probe.py): class clusters in a latent with a
    power-law spectrum, a random layer, ReLU, dead units; (x, one-hot y, fold names)."""
    rng = np.random.default_rng(seed)
    cls = rng.permutation(np.arange(n) % k)
    spec = (1.0 + np.arange(latent)) ** -1.2
    z = (sep * rng.standard_normal((k, latent))[cls] + rng.standard_normal((n, latent))) * spec
    live = e - dead
    x = z @ rng.standard_normal((latent, live)) + 0.3 * rng.standard_normal(live)
    x = np.maximum(x + 0.003 * rng.standard_normal((n, live)), 0.0)
    x = np.concatenate([x, np.zeros((n, dead))], axis=1)[:, rng.permutation(e)]
    return x, np.eye(k)[cls], rng.permutation(np.arange(n) % folds).astype(str)


def _reference(xs, y, C, multi_label):
    """The probe objective minimised by plain L-BFGS-B (no rotation, no preconditioner) to a
    gradient 100x below the probe's tolerance."""
    e, k = xs.shape[1], y.shape[1]

    def fun(p):
        v, gw, gb = probe.objective(p[: e * k].reshape(e, k), p[e * k :], xs, y, C, multi_label)
        return v, np.concatenate([gw.ravel(), gb])

    res = minimize(
        fun,
        np.zeros(e * k + k),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": 100000, "maxfun": 200000, "gtol": 1e-8, "ftol": 0.0, "maxcor": 30},
    )
    return res.x[: e * k].reshape(e, k), res.x[e * k :]


def _centred(b, multi_label):  # softmax logits are defined up to a constant per clip
    return b if multi_label else b - b.mean()


@pytest.mark.parametrize("multi_label", [False, True])
def test_fit_is_the_converged_minimiser(multi_label):
    """Ill-conditioned features (a power-law spectrum, dead units, a duplicated column) at a
    weak penalty: the probe's gradient is <= its tolerance and it lands on the reference."""
    x, y, _ = cnn_like(300, 5, e=40, latent=24, dead=6, seed=1)
    i, j = np.flatnonzero(x.std(0) > 0)[:2]
    x[:, j] = x[:, i]  # a duplicated unit: an axis the clips do not span after rotation
    if multi_label:
        y = np.maximum(y, np.random.default_rng(2).random(y.shape) < 0.2)
    mean, scale = probe.standardiser(x)
    xs = (x - mean) / scale
    for C in (0.01, 10.0):
        w, b, ok = probe.fit_linear(xs, y, C, multi_label)
        assert ok
        _, gw, gb = probe.objective(w, b, xs, y, C, multi_label)
        assert max(np.abs(gw).max(), np.abs(gb).max()) <= probe.GTOL
        rw, rb = _reference(xs, y, C, multi_label)
        scale_w = max(1.0, np.abs(rw).max())
        assert np.max(np.abs(w - rw)) <= 2e-3 * scale_w, (C, np.max(np.abs(w - rw)))
        assert np.max(np.abs(_centred(b - rb, multi_label))) <= 2e-3 * scale_w
        assert np.abs(w[i] - w[j]).max() <= 1e-6 * scale_w  # twins share the weight
        assert np.abs(w[i]).max() > 1e-3 * scale_w


def test_warm_started_path_equals_cold_starts():
    x, y, _ = cnn_like(240, 6, e=48, latent=24, dead=8, seed=3)
    mean, scale = probe.standardiser(x)
    xs = (x - mean) / scale
    stats = {}
    path = probe.fit_path(xs, y, probe.C_GRID, False, stats=stats)
    assert [c for c, *_ in path] == sorted(probe.C_GRID)
    cold_evals = 0
    for c, w, b, ok in path:
        cold_stats = {}
        [(_, cw, cb, cold_ok)] = probe.fit_path(xs, y, [c], False, stats=cold_stats)
        cold_evals += cold_stats["evaluations"]
        assert ok and cold_ok
        tol = 1e-3 * max(1.0, np.abs(cw).max())
        assert np.max(np.abs(w - cw)) <= tol, (c, np.max(np.abs(w - cw)))
        assert np.max(np.abs(_centred(b - cb, False))) <= tol
    assert stats["evaluations"] < cold_evals  # the point of warm starts


@pytest.fixture
def absl_info():
    """absl at INFO (an earlier in-process CLI run may have left it at warnings only)."""
    from absl import logging as absl_logging

    previous = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.INFO)
    yield
    absl_logging.set_verbosity(previous)


def test_finetune_prints_a_line_per_fold(caplog, absl_info):
    x, y, folds = cnn_like(150, 3, e=32, latent=16, dead=4, seed=4)
    cache = {f: (x[folds == f], y[folds == f]) for f in ("0", "1", "2")}
    manifest = {"shards": [{"fold": f} for f in ("0", "1", "2")]}
    caplog.set_level(logging.INFO)
    rows = [finetune._probe_split(None, None, manifest, f, cache) for f in ("0", "1", "2")]
    lines = [r.getMessage() for r in caplog.records]
    for f, row in zip(("0", "1", "2"), rows):
        done = [m for m in lines if m.startswith(f"fold {f}: probe C=")]
        assert len(done) == 1, lines
        assert f"C={row['C']:g} on {row['train_clips']} clips" in done[0]
        assert done[0].endswith(f"accuracy {row['accuracy']:.3f}")
        inner = [m for m in lines if m.startswith(f"fold {f}: probe: inner split")]
        assert len(inner) == 2  # leave-one-fold-out over the two training folds
    assert all(r["train_clips"] == 100 and r["test_clips"] == 50 for r in rows)


def test_moderate_size_converges_with_bounded_work():
    """600 clips x 20 classes x 3 folds, 512-d: per fold, C chosen by inner CV, a converged
    final fit (checked on the objective's own gradient), accuracy far above chance (0.05)."""
    x, y, folds = cnn_like(600, 20, seed=5)
    cls = np.argmax(y, 1)
    accs, evals = [], []
    for f in ("0", "1", "2"):
        tr, te = folds != f, folds == f
        p = probe.fit_probe(x[tr], y[tr], groups=folds[tr])
        assert p.converged and not p.multi_label and p.C in probe.C_GRID
        assert set(p.cv_scores) == set(probe.C_GRID)
        _, gw, gb = probe.objective(
            p.weights, p.bias, (x[tr] - p.mean) / p.scale, y[tr], p.C, False
        )
        assert max(np.abs(gw).max(), np.abs(gb).max()) <= probe.GTOL
        accs.append(float(np.mean(p.predict(x[te]) == cls[te])))
        evals.append(p.evaluations)
    print(f"accuracy per fold {accs}, objective evaluations {evals}")
    assert np.mean(accs) >= 0.6  # 0.677 measured
    assert max(evals) <= 1200  # 666-755 measured: the preconditioner and warm starts at work


@pytest.mark.parametrize("C", [0.01, 1.0])
@pytest.mark.parametrize("multi_label", [False, True])
def test_fit_finds_the_sklearn_solution(C, multi_label):
    LogisticRegression = pytest.importorskip("sklearn.linear_model").LogisticRegression
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
    emb = np.concatenate(
        [
            np.asarray(model(waves[i : i + 60], training=False)["embedding"])
            for i in range(0, len(waves), 60)
        ]
    )
    return emb.astype(np.float64), np.eye(10)[cls], np.array(fold)


def _sklearn_accuracy(emb, cls, folds, C):
    LogisticRegression = pytest.importorskip("sklearn.linear_model").LogisticRegression
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
    print(
        f"probe accuracy per fold {np.round(ours, 3).tolist()} mean "
        f"{np.mean(ours):.3f} (C chosen {chosen}); scikit-learn by C {sk}, best {best:.3f}; "
        f"ratio {np.mean(ours) / best:.3f}"
    )
    assert best > 0.2  # the features carry the task (chance is 0.1)
    assert np.mean(ours) >= 0.95 * best
