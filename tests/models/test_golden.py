"""Every reference model reproduces its golden outputs (weights by the golden rule) and has
the reference's trainable parameter count."""

import pytest

import panns_keras
from panns_keras.convert.mapping import assign_state_dict
from panns_keras.models.registry import MODEL_SPECS
from tests.helpers.golden import TRAINABLE_PARAMS, check_outputs, load_golden, trainable_params

SMALL = {"cnn6", "cnn10", "mobilenet_v1", "mobilenet_v2", "leenet11", "leenet24", "dainet19"}


def _params(spec):
    marks = () if spec.name in SMALL else (pytest.mark.slow,)
    return pytest.param(spec.name, id=spec.reference_name, marks=marks)


# The PANNs classes; the EfficientAT goldens are tests/models/test_efficientat.py's.
@pytest.mark.parametrize(
    "name", [_params(s) for s in MODEL_SPECS.values() if s.reference == "panns"]
)
def test_golden_outputs(name):
    spec = MODEL_SPECS[name]
    meta, state, outputs, tols, waveform = load_golden(spec.reference_name)
    assert meta["config"]["sample_rate"] == spec.sample_rate
    if spec.frontend is not None:
        fe = spec.frontend
        cfg = meta["config"]
        assert (fe.window_size, fe.hop_size, fe.mel_bins) == (
            cfg["window_size"],
            cfg["hop_size"],
            cfg["mel_bins"],
        )
    model = panns_keras.build_model(name)
    assert trainable_params(model) == TRAINABLE_PARAMS[name]
    assign_state_dict(model, state)
    # Output keys of the reference's own dict (one clip of 1 s is enough to see them).
    expected_keys = set(meta["output_dict_keys"])
    assert set(model(waveform[:1, : spec.sample_rate]).keys()) == expected_keys
    check_outputs(model, outputs, tols, waveform, spec.head.kind)
