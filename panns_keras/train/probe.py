"""A linear probe on fixed embeddings, fit to convergence.

The probe is the standard measure of what a frozen model's embedding holds: standardised
features (mean and scale of the training clips), one linear layer, softmax cross-entropy
(single-label data) or per-class sigmoid cross-entropy (multi-label), an L2 penalty on the
weights (not the bias), minimised full-batch in float64 with L-BFGS until the gradient
vanishes (max |gradient| <= 1e-6). The L-BFGS is the textbook two-loop recursion with an
Armijo backtracking line search, in numpy: scipy's L-BFGS-B took ~13 ms per iteration of
bookkeeping on 5,000 parameters here, 20x the objective itself. The objective is that of
scikit-learn's ``LogisticRegression``:

    mean_n loss(x_n W + b, y_n) + |W|^2 / (2 C N)   ==   (C * sum_n loss + |W|^2 / 2) / (C N)

so ``C`` means what it means there. ``C`` is chosen by an inner cross-validation on the
training clips only (by their groups, e.g. the training folds, when there are several; else
stratified splits), from ``C_GRID``; ties go to the smaller C (the stronger penalty). The
test clips are never looked at before the final score.

No scikit-learn at run time (it is a test-only dependency the tests compare against).
"""

from __future__ import annotations

import dataclasses

import numpy as np

C_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)


@dataclasses.dataclass
class LinearProbe:
    """``logits(x) = ((x - mean) / scale) @ weights + bias``."""

    mean: np.ndarray  # (E,)
    scale: np.ndarray  # (E,)
    weights: np.ndarray  # (E, K)
    bias: np.ndarray  # (K,)
    C: float
    multi_label: bool
    cv_scores: dict  # C -> mean inner-CV score
    converged: bool

    def logits(self, x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x, np.float64) - self.mean) / self.scale) @ self.weights + self.bias

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Class index per clip (single-label) or multi-hot at 0.5 (multi-label)."""
        z = self.logits(x)
        return (z > 0).astype(np.int64) if self.multi_label else np.argmax(z, axis=1)

    def dense_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """(W, b) acting on raw embeddings: the standardisation folded into the layer."""
        w = self.weights / self.scale[:, None]
        return w.astype(np.float32), (self.bias - self.mean @ w).astype(np.float32)


def standardiser(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, scale) per feature; constant features get scale 1 (they stay 0)."""
    x = np.asarray(x, np.float64)
    mean, std = x.mean(axis=0), x.std(axis=0)
    floor = 1e-8 * max(float(std.max(initial=0.0)), 1e-30)
    return mean, np.where(std > floor, std, 1.0)


def _objective(params, x, y, penalty, multi_label):
    e, k = x.shape[1], y.shape[1]
    w, b = params[: e * k].reshape(e, k), params[e * k :]
    z = x @ w + b
    n = x.shape[0]
    if multi_label:  # sum over classes of the sigmoid cross-entropy, mean over clips
        loss = np.sum(np.logaddexp(0.0, z) - y * z) / n
        dz = (0.5 * (1.0 + np.tanh(0.5 * z)) - y) / n  # sigmoid, overflow-free
    else:
        zmax = z.max(axis=1, keepdims=True)
        lse = zmax + np.log(np.sum(np.exp(z - zmax), axis=1, keepdims=True))
        loss = float(np.sum(y * (lse - z))) / n
        dz = (np.exp(z - lse) * y.sum(axis=1, keepdims=True) - y) / n
    loss += 0.5 * penalty * float(np.sum(w * w))
    gw = x.T @ dz + penalty * w
    return loss, np.concatenate([gw.ravel(), dz.sum(axis=0)])


def lbfgs(fun, x0: np.ndarray, gtol: float = 1e-6, max_iter: int = 5000, memory: int = 10):
    """Minimises a smooth convex ``fun(x) -> (value, gradient)``; returns (x, converged)."""
    x = np.array(x0, np.float64)
    f, g = fun(x)
    hist: list[tuple[np.ndarray, np.ndarray, float]] = []
    stalled = 0
    for it in range(max_iter):
        if np.max(np.abs(g)) <= gtol:
            return x, True
        d = -g
        if hist:  # two-loop recursion: d = -H g
            q, alphas = g.copy(), []
            for s_, y_, rho in reversed(hist):
                a = rho * s_.dot(q)
                alphas.append(a)
                q -= a * y_
            s_, y_, _ = hist[-1]
            q *= s_.dot(y_) / y_.dot(y_)
            for (s_, y_, rho), a in zip(hist, reversed(alphas)):
                q += s_ * (a - rho * y_.dot(q))
            d = -q
        slope = g.dot(d)
        if slope >= 0:  # not a descent direction: restart from the gradient
            hist.clear()
            d, slope = -g, -g.dot(g)
        step = 1.0 if hist or it else min(1.0, 1.0 / max(np.max(np.abs(g)), 1e-12))
        while True:  # Armijo backtracking
            x_new = x + step * d
            f_new, g_new = fun(x_new)
            if f_new <= f + 1e-4 * step * slope:
                break
            step *= 0.5
            if step < 1e-20:
                return x, False
        s_, y_ = x_new - x, g_new - g
        sy = s_.dot(y_)
        if sy > 1e-12 * np.sqrt(s_.dot(s_) * y_.dot(y_)):
            hist.append((s_, y_, 1.0 / sy))
            if len(hist) > memory:
                hist.pop(0)
        stalled = stalled + 1 if f - f_new <= 1e-16 * max(abs(f), 1.0) else 0
        x, f, g = x_new, f_new, g_new
        if stalled >= 20:  # no progress at float64 resolution
            break
    return x, bool(np.max(np.abs(g)) <= gtol)


def fit_linear(x, y, C: float, multi_label: bool, init=None, gtol: float = 1e-6,
               max_iter: int = 5000):  # fmt: skip
    """Minimises the probe objective on standardised ``x`` (N, E) and targets ``y`` (N, K);
    returns (W, b, converged). ``C`` as in scikit-learn; ``init`` warm-starts (W, b)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    e, k = x.shape[1], y.shape[1]
    x0 = np.zeros(e * k + k) if init is None else np.concatenate([init[0].ravel(), init[1]])
    penalty = 1.0 / (float(C) * x.shape[0])
    params, ok = lbfgs(lambda p: _objective(p, x, y, penalty, multi_label), x0, gtol, max_iter)
    return params[: e * k].reshape(e, k), params[e * k :], ok


def score(logits: np.ndarray, y: np.ndarray, multi_label: bool) -> float:
    """Accuracy (single-label) or mean average precision over classes with positives."""
    if not multi_label:
        return float(np.mean(np.argmax(logits, 1) == np.argmax(y, 1)))
    aps = []
    for c in range(y.shape[1]):
        pos = y[:, c] > 0.5
        if not pos.any():
            continue
        order = np.argsort(-logits[:, c], kind="stable")
        hits = pos[order]
        precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
        aps.append(float(np.sum(precision[hits]) / hits.sum()))
    return float(np.mean(aps)) if aps else float("nan")


def inner_splits(y: np.ndarray, groups=None, k: int = 5, seed: int = 0):
    """Validation splits of the training clips: leave-one-group-out when ``groups`` has at
    least two values (one split per group), else ``k`` splits that spread every class."""
    n = len(y)
    if groups is not None:
        groups = np.asarray(groups)
        names = sorted(set(groups.tolist()))
        if len(names) >= 2:
            return [(np.flatnonzero(groups != g), np.flatnonzero(groups == g)) for g in names]
    rng = np.random.default_rng(seed)
    fold = np.empty(n, np.int64)
    key = np.argmax(y, axis=1) if y.ndim == 2 else np.asarray(y)
    for c in np.unique(key):  # stratified: each class dealt round-robin after a shuffle
        idx = rng.permutation(np.flatnonzero(key == c))
        fold[idx] = (np.arange(len(idx)) + rng.integers(k)) % k
    return [(np.flatnonzero(fold != j), np.flatnonzero(fold == j)) for j in range(k)
            if (fold == j).any() and (fold != j).any()]  # fmt: skip


def fit_probe(x, y, multi_label: bool | None = None, groups=None, c_grid=C_GRID,
              inner_folds: int = 5, seed: int = 0) -> LinearProbe:  # fmt: skip
    """Standardise, choose C by inner CV on these (training) clips, refit on all of them.

    Args:
      x: (N, E) embeddings of the training clips.
      y: (N, K) multi-hot / one-hot targets.
      multi_label: None = decided from ``y`` (any clip with more than one label).
      groups: optional (N,) group of each clip (e.g. its fold) for the inner CV.
      c_grid: candidate C values (scikit-learn's meaning).
    """
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    if multi_label is None:
        multi_label = bool(np.any(y.sum(axis=1) > 1))
    grid = sorted(float(c) for c in c_grid)
    scores = {c: [] for c in grid}
    for tr, va in inner_splits(y, groups, inner_folds, seed):
        mean, scale = standardiser(x[tr])
        xtr, xva = (x[tr] - mean) / scale, (x[va] - mean) / scale
        init = None
        for c in grid:  # small C first: each fit warm-starts the next, less penalised one
            w, b, _ = fit_linear(xtr, y[tr], c, multi_label, init)
            init = (w, b)
            scores[c].append(score(xva @ w + b, y[va], multi_label))
    mean_scores = {c: float(np.mean(v)) if v else float("nan") for c, v in scores.items()}
    finite = {c: s for c, s in mean_scores.items() if np.isfinite(s)}
    best = max(finite, key=lambda c: (finite[c], -c)) if finite else 1.0
    mean, scale = standardiser(x)
    w, b, ok = fit_linear((x - mean) / scale, y, best, multi_label)
    return LinearProbe(mean, scale, w, b, best, multi_label, mean_scores, ok)
