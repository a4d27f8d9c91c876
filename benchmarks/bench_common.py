"""What the benchmarks share: the golden-rule weights of one reference class.

Imported by the benchmark scripts (run as ``python benchmarks/<name>.py``, so this folder is
on ``sys.path``). It imports no test code: the paper's FLOPs table is
``panns_keras.models.registry.PAPER_FLOPS`` and the golden weight rule
``panns_keras.convert.golden``, which the tests use too.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from panns_keras.convert.golden import golden_state

GOLDEN_DIR = Path(__file__).resolve().parents[1] / "tests" / "assets" / "golden"


def golden_weights(reference_name: str) -> dict[str, np.ndarray]:
    """The golden-rule state_dict of one reference class (``Cnn14``, ...)."""
    z = np.load(GOLDEN_DIR / f"{reference_name}.npz")
    return golden_state(z, json.loads(str(z["meta"])))
