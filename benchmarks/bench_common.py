"""What the benchmarks share: the paper's FLOPs table and the golden-rule weights.

Imported by the benchmark scripts (run as ``python benchmarks/<name>.py``, so this folder is
on ``sys.path``) and by ``tests/golden.py``; it imports no test code.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

GOLDEN_DIR = Path(__file__).resolve().parents[1] / "tests" / "assets" / "golden"

# The PANNs paper's multiply-adds per 10 s clip at 32 kHz, x 2 (FLOPs): Cnn14 is 21.1 G
# multiply-adds (20.0 G in its convolutions, 1.05 G in the STFT), so 42.22e9.
PAPER_FLOPS = {
    "cnn14": 42.22e9, "cnn6": 21.986e9, "cnn10": 28.166e9, "mobilenet_v1": 3.614e9,
    "wavegram_logmel_cnn14": 53.51e9, "resnet38": 48.962e9,
}  # fmt: skip


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
            w = w * np.float32(z[f"scale/{key}"])
            digest = hashlib.sha256(np.ascontiguousarray(w, dtype="<f4").tobytes()).hexdigest()
            assert digest == meta["seeded_sha256"][key], f"regenerated {key} differs"
            state[key] = w
    return state


def golden_weights(reference_name: str) -> dict[str, np.ndarray]:
    """The golden-rule state_dict of one reference class (``Cnn14``, ...)."""
    z = np.load(GOLDEN_DIR / f"{reference_name}.npz")
    return golden_state(z, json.loads(str(z["meta"])))
