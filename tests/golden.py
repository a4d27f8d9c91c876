"""Golden reference data (tests/assets/golden, copied from the project's shared goldens)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from panns_keras.convert.golden import golden_state

GOLDEN_DIR = Path(__file__).parent / "assets" / "golden"


def load_golden(reference_name: str):
    """(meta, state_dict, outputs, tolerances, input waveform) of one reference class."""
    z = np.load(GOLDEN_DIR / f"{reference_name}.npz")
    meta = json.loads(str(z["meta"]))
    state = golden_state(z, meta)
    outputs = {k[4:]: z[k] for k in z.files if k.startswith("out/")}
    tols = {k[4:]: float(z[k]) for k in z.files if k.startswith("tol/")}
    inp = np.load(GOLDEN_DIR / meta["input_file"])
    waveform = inp["waveform"].astype(np.float32) / 32768
    return meta, state, outputs, tols, waveform


def check_outputs(model, outputs, tols, waveform, head_kind):
    y = model(waveform, return_intermediates=True)
    assert set(outputs) <= set(y), f"missing outputs {set(outputs) - set(y)}"
    for key, ref in outputs.items():
        got = np.asarray(y[key])
        if key == "logits" and head_kind == "decision_att":
            got = got.transpose(0, 2, 1)  # golden stores att_block.cla output as (B, K, T')
        assert got.shape == ref.shape, key
        err = float(np.max(np.abs(got - ref)))
        assert err <= tols[key], f"{key}: max |diff| {err:.3g} > tol {tols[key]:.3g}"
