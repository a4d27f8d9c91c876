"""Golden reference data (tests/assets/golden, copied from the project's shared goldens)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from panns_keras.convert.golden import golden_state

GOLDEN_DIR = Path(__file__).resolve().parents[1] / "assets" / "golden"

# Paper Table XII (= reference code, measured) and reference variants (§11 of the spec).
TRAINABLE_PARAMS = {
    "cnn6": 4_837_455,
    "cnn10": 5_219_279,
    "cnn14": 80_753_615,
    "resnet22": 63_675_087,
    "resnet38": 73_783_247,
    "resnet54": 104_318_159,
    "mobilenet_v1": 4_796_303,
    "mobilenet_v2": 4_075_343,
    "dainet19": 4_385_807,
    "leenet11": 748_367,
    "leenet24": 10_003_791,
    "res1dnet31": 80_464_463,
    "res1dnet51": 106_538_063,
    "wavegram_cnn14": 80_991_759,
    "wavegram_logmel_cnn14": 81_065_487,
    "cnn14_no_specaug": 80_753_615,
    "cnn14_no_dropout": 80_753_615,
    "cnn14_mixup_time_domain": 80_753_615,
    "cnn14_16k": 80_753_615,
    "cnn14_8k": 80_753_615,
    "cnn14_mel32": 80_753_551,
    "cnn14_mel128": 80_753_743,
    "cnn14_emb512": 76_796_879,
    "cnn14_emb128": 75_807_695,
    "cnn14_emb32": 75_560_399,
    "cnn14_decision_level_max": 80_753_615,
    "cnn14_decision_level_avg": 80_753_615,
    "cnn14_decision_level_att": 81_834_492,
    "wavegram_logmel128_cnn14": 81_262_735,
}


def trainable_params(model) -> int:
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


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
