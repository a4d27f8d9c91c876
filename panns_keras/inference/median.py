"""Median filtering of frame scores along time, one window length per class."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from panns_keras.errors import UserError


def median_filter_sizes(spec, labels: Sequence[str], frame_hop: float) -> np.ndarray:
    """Per-class median filter lengths in rows (odd, >= 1) from ``spec``.

    ``spec`` is an int array of one length per class (used as is), or text:
      * ``"0.5"``: 0.5 s for every class; ``"7f"``: 7 frames for every class;
      * ``"Speech=1.0;Dog=0.3f"``-style per-class entries separated by ``;`` (AudioSet
        names contain commas), with an optional bare default: ``"0.2;Speech=1.0"``.
        Classes without an entry and no default are not filtered (length 1).
    Seconds become ``round(seconds / frame_hop)`` rows, made odd (a centred window) as in
    the DCASE baselines' ``scipy.ndimage.median_filter`` use.
    """
    if not isinstance(spec, str):
        sizes = np.asarray(spec, np.int64).reshape(-1)
        if sizes.size == 1:
            sizes = np.full(len(labels), int(sizes[0]))
        if sizes.size != len(labels) or (sizes < 1).any():
            raise UserError(f"median filter: need {len(labels)} lengths >= 1, got {sizes.size}")
        return sizes

    def rows(text: str) -> int:
        text = text.strip()
        try:
            if text.endswith("f"):
                n = int(text[:-1])
            else:
                n = round(float(text) / frame_hop)
        except ValueError:
            raise UserError(f"median filter: {text!r} is not seconds or <n>f frames") from None
        n = max(1, n)
        return n if n % 2 else n + 1

    index = {name: i for i, name in enumerate(labels)}
    sizes = np.ones(len(labels), np.int64)
    per_class = []
    for part in filter(None, (p.strip() for p in spec.split(";"))):
        if "=" in part:
            name, value = part.rsplit("=", 1)
            if name.strip() not in index:
                raise UserError(f"median filter: unknown class {name.strip()!r}")
            per_class.append((index[name.strip()], rows(value)))
        else:
            sizes[:] = rows(part)
    for i, n in per_class:
        sizes[i] = n
    return sizes


def apply_median_filter(scores: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Median filter along time, class k with window ``sizes[k]`` (scipy, reflect edges)."""
    from scipy.ndimage import median_filter

    out = np.array(scores, np.float32, copy=True)
    for n in np.unique(sizes):
        if n <= 1:
            continue
        cols = np.flatnonzero(sizes == n)
        out[:, cols] = median_filter(out[:, cols], size=(int(n), 1), mode="reflect")
    return out
