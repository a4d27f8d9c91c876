"""The golden weight rule: how a golden ``.npz`` (tests/assets/golden) stores a reference
state_dict, shared by the tests and the benchmarks (neither imports the other).

Each key ``K`` of ``meta['state_dict_keys']`` is stored verbatim as ``w/<K>`` or as a seed:
``seed/<K>``, ``scale/<K>`` and ``shape/<K>``, regenerated as float32 standard normals times
the scale and checked against ``meta['seeded_sha256'][K]``.
"""

from __future__ import annotations

import hashlib

import numpy as np


def golden_state(z, meta) -> dict[str, np.ndarray]:
    """The torch-layout state_dict of a golden npz by the golden weight rule: ``w/<K>``
    verbatim, else regenerated from ``seed/<K>``, ``scale/<K>``, ``shape/<K>`` (checked
    against ``meta['seeded_sha256']``). Derived front-end buffers are left out."""
    state = {}
    for key in meta["state_dict_keys"]:
        if f"w/{key}" in z:
            state[key] = z[f"w/{key}"]
        elif f"seed/{key}" in z:
            rng = np.random.default_rng(int(z[f"seed/{key}"]))
            w = rng.standard_normal(tuple(z[f"shape/{key}"]), dtype=np.float32)
            w *= np.float32(z[f"scale/{key}"])  # in place: the same float32 products
            little = np.ascontiguousarray(w, dtype="<f4")  # no copy on little-endian machines
            digest = hashlib.sha256(memoryview(little).cast("B")).hexdigest()
            assert digest == meta["seeded_sha256"][key], f"regenerated {key} differs"
            state[key] = w
    return state
