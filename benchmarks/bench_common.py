"""What the benchmarks share: the golden-rule weights of one reference class.

Imported by the benchmark scripts (run as ``python benchmarks/<name>.py``, so this folder is
on ``sys.path``). It imports no test code: the paper's FLOPs table is
``panns_keras.models.registry.PAPER_FLOPS`` and the golden weight rule
``panns_keras.convert.golden``, which the tests use too.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

GOLDEN_DIR = Path(__file__).resolve().parents[1] / "tests" / "assets" / "golden"


def cpu_description() -> str:
    """The CPU's model name, core count and the vector features CPU figures depend on."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown CPU"
    name = next(
        (ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")),
        "unknown CPU",
    )
    flags_ = info.split("flags", 1)[1].split("\n", 1)[0] if "flags" in info else ""
    has = {f: f in flags_ for f in ("avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16")}
    return (
        f"{name}, {os.cpu_count()} cores, AVX-512 {'yes' if has['avx512f'] else 'no'}, "
        f"bf16 {'yes' if has['avx512_bf16'] or has['amx_bf16'] else 'no'}, "
        f"VNNI {'yes' if has['avx512_vnni'] else 'no'}"
    )


def golden_weights(reference_name: str) -> dict[str, np.ndarray]:
    """The golden-rule state_dict of one reference class (``Cnn14``, ...)."""
    # Here, not at the top: train_step.py's reference child imports this module in a torch
    # interpreter that may lack panns_keras.
    from panns_keras.convert.golden import golden_state

    z = np.load(GOLDEN_DIR / f"{reference_name}.npz")
    return golden_state(z, json.loads(str(z["meta"])))
