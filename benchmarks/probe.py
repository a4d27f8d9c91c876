"""The linear probe at finetune's size: 2,000 clips x 50 classes x 5 folds, 512-d embeddings.

Runs ``panns_keras.train.probe.fit_probe`` on each held-out fold as ``finetune --mode=probe``
does (C chosen by inner CV over the 4 training folds, then refit), prints per-fold time,
objective evaluations and accuracy, the total, and, where scikit-learn is installed, a
converged ``LogisticRegression`` (tol 1e-6, the probe's own gradient tolerance) at the C the
probe chose on the same fold: its accuracy and fit time (BLAS capped at one thread as for
the probe).

The embeddings are synthetic but shaped like a CNN's: 50 class clusters (means overlapping,
within-class spread) in a 256-d latent with a power-law spectrum, mapped to 512 units through
a random layer and a ReLU, a quarter of the units dead (constant 0). After standardisation
their covariance falls over five decades like the Cnn6 embeddings of the bundled FSDD clips
(eigenvalues 153, 15, 1.5, 0.37, 0.11, 0.026 at ranks 1, 5, 20, 50, 100, 200 here against
176, 8.9, 1.1, 0.16, 0.022, 0.001 there).

    python benchmarks/probe.py [--clips 2000] [--classes 50] [--folds 5] [--no-sklearn]
                               [--inner-gtol 1e-6] [--noise 0.3]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from bench_common import cpu_description


def embeddings(
    n: int,
    k: int,
    folds: int,
    e: int = 512,
    seed: int = 0,
    latent: int = 256,
    sep: float = 0.5,
    dead: int = 128,
    noise: float = 0.003,
):
    """(x (n, e), one-hot y (n, k), fold names (n,)): see the module docstring."""
    rng = np.random.default_rng(seed)
    cls = rng.permutation(np.arange(n) % k)
    spec = (1.0 + np.arange(latent)) ** -1.2
    z = (sep * rng.standard_normal((k, latent))[cls] + rng.standard_normal((n, latent))) * spec
    live = e - dead
    x = z @ rng.standard_normal((latent, live)) + 0.3 * rng.standard_normal(live)
    x = np.maximum(x + noise * rng.standard_normal((n, live)), 0.0)
    x = np.concatenate([x, np.zeros((n, dead))], axis=1)[:, rng.permutation(e)]
    return x, np.eye(k)[cls], rng.permutation(np.arange(n) % folds).astype(str)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clips", type=int, default=2000)
    ap.add_argument("--classes", type=int, default=50)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--no-sklearn", action="store_true")
    ap.add_argument(
        "--noise",
        type=float,
        default=0.003,
        help="per-unit noise: 0.003 favours the largest C, 0.3 a middle one",
    )
    ap.add_argument(
        "--inner-gtol",
        type=float,
        default=None,
        help="the inner C search's tolerance (default: the probe's INNER_GTOL)",
    )
    args = ap.parse_args()

    from panns_keras.train import probe

    sk = None
    if not args.no_sklearn:
        try:
            from sklearn.linear_model import LogisticRegression as sk
        except ImportError:
            print("scikit-learn not installed: no comparison")
    x, y, folds = embeddings(args.clips, args.classes, args.folds, noise=args.noise)
    inner_gtol = probe.INNER_GTOL if args.inner_gtol is None else args.inner_gtol
    cls = np.argmax(y, 1)
    print(
        f"CPU: {cpu_description()}; load average at start "
        f"{os.getloadavg()[0]:.1f}; {args.clips} clips x {args.classes} classes x "
        f"{args.folds} folds, {x.shape[1]}-d, noise {args.noise:g}; inner tolerance "
        f"{inner_gtol:g}"
    )
    total, ours, theirs = 0.0, [], []
    for f in sorted(set(folds)):
        tr, te = folds != f, folds == f
        start = time.monotonic()
        p = probe.fit_probe(x[tr], y[tr], groups=folds[tr], inner_gtol=inner_gtol)
        took = time.monotonic() - start
        total += took
        acc = float(np.mean(p.predict(x[te]) == cls[te]))
        ours.append(acc)
        line = (
            f"fold {f}: {took:6.1f} s, {p.evaluations} evaluations, C={p.C:g} "
            f"converged={p.converged}, accuracy {acc:.3f}"
        )
        if sk is not None:
            xs, xt = (x[tr] - p.mean) / p.scale, (x[te] - p.mean) / p.scale
            start = time.monotonic()
            with probe._blas_threads(1):  # as the probe runs: a fair clock
                ref = sk(C=p.C, tol=probe.GTOL, max_iter=20000).fit(xs, cls[tr])
            sk_took = time.monotonic() - start
            theirs.append(float(np.mean(ref.predict(xt) == cls[te])))
            agree = float(np.mean(ref.predict(xt) == p.predict(x[te])))
            line += (
                f"; scikit-learn at that C {theirs[-1]:.3f} ({sk_took:.1f} s for the one "
                f"fit, {int(np.max(ref.n_iter_))} iterations), same prediction on "
                f"{100 * agree:.1f}% of clips"
            )
        print(line, flush=True)
    print(
        f"total {total:.1f} s over {args.folds} folds; mean accuracy {np.mean(ours):.4f}"
        + (
            f", scikit-learn {np.mean(theirs):.4f} (difference "
            f"{100 * (np.mean(ours) - np.mean(theirs)):+.2f} points)"
            if theirs
            else ""
        )
        + f"; load average at end {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
