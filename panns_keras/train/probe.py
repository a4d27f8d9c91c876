"""A linear probe on fixed embeddings, fit to convergence.

The probe is the standard measure of what a frozen model's embedding holds: standardised
features (mean and scale of the training clips), one linear layer, softmax cross-entropy
(single-label data) or per-class sigmoid cross-entropy (multi-label), an L2 penalty on the
weights (not the bias), minimised full-batch in float64 until the gradient vanishes
(max |gradient| <= ``GTOL`` = 1e-6). The objective is that of scikit-learn's ``LogisticRegression``:

    mean_n loss(x_n W + b, y_n) + |W|^2 / (2 C N)   ==   (C * sum_n loss + |W|^2 / 2) / (C N)

so ``C`` means what it means there. ``C`` is chosen by an inner cross-validation on the
training clips only (by their groups, e.g. the training folds, when there are several; else
stratified splits), from ``C_GRID``; ties go to the smaller C (the stronger penalty). The
test clips are never looked at before the final score.

The solver is scipy's L-BFGS-B, run on a change of variables that leaves the minimiser as it
is: the weights on the principal axes of the standardised clips (one eigendecomposition per
set of training clips, shared by every C), scaled by the objective's curvature along each axis
(``_Basis``). Embeddings of real CNNs have a covariance spread over five decades; on the raw
coordinates L-BFGS needs thousands of iterations at large C, on these a few hundred. Axes the
clips do not span (dead units) are left out: their weight is 0 at every C. The C path is
warm-started (each C from the answer at the C below it) and the final fit from the inner
fits' mean at the chosen C. The inner search's fits are only scored, so they stop at
``INNER_GTOL`` (1e-5); the final fit, the one kept, at ``GTOL``. The convergence test is
on the gradient in the original weights, not in the solver's variables.

Measured at finetune's size (2,000 clips x 50 classes x 5 folds, 512-d; benchmarks/probe.py)
on a shared 2-core AMD EPYC: 32-52 s for all 5 folds (about 900 objective evaluations per
fold), where the numpy L-BFGS this replaced spent more than 12 minutes on the first fold.
scikit-learn is not used: on one inner split its own warm-started C path (``warm_start``,
tol 1e-5, same thread cap) took 7.0 s and 772 iterations, this one 1.9 s and 214
evaluations. No scikit-learn at run time (a test-only dependency the tests compare against).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time

import numpy as np

C_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
GTOL = 1e-6  # the final fit: max |gradient| of the objective
INNER_GTOL = 1e-5  # the inner C search's fits (scores only; see the module docstring)
NULL_VARIANCE = 1e-12  # principal axes with less variance (relative) hold no data


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
    evaluations: int = 0  # objective evaluations, inner search and final fit together

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


def _loss(z: np.ndarray, y: np.ndarray, multi_label: bool) -> tuple[float, np.ndarray]:
    """(mean over clips of the loss, its gradient in the logits ``z``)."""
    n = z.shape[0]
    if multi_label:  # sum over classes of the sigmoid cross-entropy, mean over clips
        loss = float(np.sum(np.logaddexp(0.0, z) - y * z)) / n
        return loss, (0.5 * (1.0 + np.tanh(0.5 * z)) - y) / n  # sigmoid, overflow-free
    zmax = z.max(axis=1, keepdims=True)
    lse = zmax + np.log(np.sum(np.exp(z - zmax), axis=1, keepdims=True))
    loss = float(np.sum(y * (lse - z))) / n
    return loss, (np.exp(z - lse) * y.sum(axis=1, keepdims=True) - y) / n


def objective(w: np.ndarray, b: np.ndarray, x, y, C: float, multi_label: bool):
    """The probe objective in the layer's own terms: (value, dW, db) at ``(w, b)``."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    penalty = 1.0 / (float(C) * x.shape[0])
    loss, dz = _loss(x @ w + b, y, multi_label)
    value = loss + 0.5 * penalty * float(np.sum(w * w))
    return value, x.T @ dz + penalty * w, dz.sum(axis=0)


@contextlib.contextmanager
def _blas_threads(n: int):
    """Caps BLAS at ``n`` threads where threadpoolctl is installed (else a no-op). The
    solver's vector work (L-BFGS-B's two-loop on ~25,000 numbers) is small: threaded, on a
    busy 2-core machine, it spent 300 ms per evaluation waiting for threads, 5 ms on one,
    and a fold of benchmarks/probe.py took 95-124 s instead of 12-39 s."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=n, user_api="blas"):
        yield


class _Basis:
    """The principal axes of standardised ``x``, shared by every C of a path.

    In the rotated coordinates ``W = V R`` the penalty is unchanged (``|W| = |R|``, V
    orthogonal) and the data's curvature is diagonal to first order: ``var_i`` along axis
    ``i``. L-BFGS then runs on ``U = R * sqrt(h)``, ``h_i = curv * var_i + penalty``, the
    objective's curvature along each axis, so it sees a problem of condition ~1 instead of
    the embedding's (real embeddings decay over five decades). A change of variables: the
    minimiser is the same, and convergence is tested on the gradient in W.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, multi_label: bool):
        self.y, self.multi_label = y, multi_label
        var, v = np.linalg.eigh(x.T @ x / x.shape[0])
        # Axes the clips do not span (dead units, fewer clips than dimensions) carry no data:
        # there the minimiser is 0, so they are left out of the search (fewer dimensions).
        keep = var > NULL_VARIANCE * max(float(var.max(initial=0.0)), 1e-300)
        self.var, self.v = var[keep], v[:, keep]
        self.xv = x @ self.v  # (N, R): the clips on the principal axes
        k = y.shape[1]
        self.curv = 0.25 if multi_label or k < 2 else 1.0 / k  # the loss's, at the origin


def _solve(basis: _Basis, C: float, r0: np.ndarray, b0: np.ndarray, gtol: float, max_iter: int):
    """Minimises at one C from (R, b) = (r0, b0) in the rotated coordinates; returns
    (R, b, converged, objective evaluations)."""
    from scipy.optimize import minimize

    n, e = basis.xv.shape
    k, full = basis.y.shape[1], basis.v.shape[0]
    penalty = 1.0 / (float(C) * n)
    d = 1.0 / np.sqrt(basis.curv * basis.var + penalty)  # R = d * U
    bd = 1.0 / np.sqrt(basis.curv)  # b = bd * u_b
    xd = basis.xv * d
    pd2 = penalty * d * d
    best, evals = {}, [0]

    class _Done(Exception):
        pass

    def fun(p):
        evals[0] += 1
        u, ub = p[: e * k].reshape(e, k), p[e * k :]
        loss, dz = _loss(xd @ u + bd * ub, basis.y, basis.multi_label)
        value = loss + 0.5 * float(np.sum(pd2[:, None] * u * u))
        gu = xd.T @ dz + pd2[:, None] * u
        gb = dz.sum(axis=0)
        # The gradient in W is V (gu / d): max |.| >= column norm / sqrt(E), so test exactly
        # only when that bound allows convergence.
        gr = gu / d[:, None]
        near = np.max(np.abs(gb)) <= gtol and np.max(np.sum(gr * gr, 0)) <= full * gtol**2
        if near and np.max(np.abs(basis.v @ gr)) <= gtol:
            best["p"] = p.copy()
            raise _Done
        return value, np.concatenate([gu.ravel(), bd * gb])

    p0 = np.concatenate([(r0 / d[:, None]).ravel(), b0 / bd])
    try:
        res = minimize(
            fun,
            p0,
            jac=True,
            method="L-BFGS-B",
            options={
                "maxiter": max_iter,
                "maxfun": 4 * max_iter,
                "gtol": 0.0,
                "ftol": 1e-15,
                "maxcor": 20,
            },
        )
        p, ok = res.x, False
    except _Done:
        p, ok = best["p"], True
    return d[:, None] * p[: e * k].reshape(e, k), bd * p[e * k :], ok, evals[0]


def fit_path(
    x,
    y,
    c_grid,
    multi_label: bool,
    init=None,
    gtol: float = GTOL,
    max_iter: int = 5000,
    stats: dict | None = None,
) -> list:
    """Fits every C of ``c_grid`` in increasing order on standardised ``x``, each
    warm-started from the fit before (the first from ``init`` = (W, b), or zero); one
    eigendecomposition serves the whole path. Returns [(C, W, b, converged), ...];
    ``stats["evaluations"]`` counts objective evaluations."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    with _blas_threads(1):
        basis = _Basis(x, y, multi_label)
        k = y.shape[1]
        r = np.zeros((basis.v.shape[1], k)) if init is None else basis.v.T @ init[0]
        b = np.zeros(k) if init is None else np.asarray(init[1], np.float64)
        out = []
        for c in sorted(float(c) for c in c_grid):
            r, b, ok, n = _solve(basis, c, r, b, gtol, max_iter)
            out.append((c, basis.v @ r, b, ok))
            if stats is not None:
                stats["evaluations"] = stats.get("evaluations", 0) + n
    return out


def fit_linear(
    x, y, C: float, multi_label: bool, init=None, gtol: float = GTOL, max_iter: int = 5000
):
    """Minimises the probe objective on standardised ``x`` (N, E) and targets ``y`` (N, K);
    returns (W, b, converged). ``C`` as in scikit-learn; ``init`` warm-starts (W, b)."""
    [(_, w, b, ok)] = fit_path(x, y, [C], multi_label, init, gtol, max_iter)
    return w, b, ok


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
    return [
        (np.flatnonzero(fold != j), np.flatnonzero(fold == j))
        for j in range(k)
        if (fold == j).any() and (fold != j).any()
    ]


def fit_probe(
    x,
    y,
    multi_label: bool | None = None,
    groups=None,
    c_grid=C_GRID,
    inner_folds: int = 5,
    seed: int = 0,
    gtol: float = GTOL,
    inner_gtol: float = INNER_GTOL,
    log=None,
) -> LinearProbe:
    """Standardise, choose C by inner CV on these (training) clips, refit on all of them.

    Args:
      x: (N, E) embeddings of the training clips.
      y: (N, K) multi-hot / one-hot targets.
      multi_label: None = decided from ``y`` (any clip with more than one label).
      groups: optional (N,) group of each clip (e.g. its fold) for the inner CV.
      c_grid: candidate C values (scikit-learn's meaning).
      gtol: the final fit's tolerance on max |gradient|.
      inner_gtol: the inner search's (its fits are only scored, never kept).
      log: optional ``callable(str)``, called once per inner split with its progress.
    """
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    if multi_label is None:
        multi_label = bool(np.any(y.sum(axis=1) > 1))
    grid = sorted(float(c) for c in c_grid)
    scores = {c: [] for c in grid}
    fits = {c: [] for c in grid}
    stats: dict = {}
    splits = inner_splits(y, groups, inner_folds, seed)
    for i, (tr, va) in enumerate(splits):
        start = time.monotonic()
        mean, scale = standardiser(x[tr])
        xtr, xva = (x[tr] - mean) / scale, (x[va] - mean) / scale
        for c, w, b, _ in fit_path(xtr, y[tr], grid, multi_label, None, inner_gtol, stats=stats):
            scores[c].append(score(xva @ w + b, y[va], multi_label))
            fits[c].append((w, b))
        if log is not None:
            log(
                f"probe: inner split {i + 1}/{len(splits)} ({len(tr)} clips, "
                f"{len(grid)} C values) {time.monotonic() - start:.1f} s"
            )
    mean_scores = {c: float(np.mean(v)) if v else float("nan") for c, v in scores.items()}
    finite = {c: s for c, s in mean_scores.items() if np.isfinite(s)}
    best = max(finite, key=lambda c: (finite[c], -c)) if finite else 1.0
    # The final fit starts from the inner fits' mean at that C: near the answer, not it
    # (the answer is unique: the objective is strictly convex in W, see the tests).
    init = None
    if fits.get(best):
        init = (np.mean([w for w, _ in fits[best]], 0), np.mean([b for _, b in fits[best]], 0))
    mean, scale = standardiser(x)
    [(_, w, b, ok)] = fit_path((x - mean) / scale, y, [best], multi_label, init, gtol, stats=stats)
    return LinearProbe(
        mean, scale, w, b, best, multi_label, mean_scores, ok, int(stats.get("evaluations", 0))
    )
