"""Fixtures shared by the export tests."""

import pytest

import panns_keras
from panns_keras.convert.mapping import assign_state_dict
from tests.helpers.golden import load_golden


@pytest.fixture(scope="module")
def cnn6():
    """Cnn6 with the golden-rule weights and placeholder label names."""
    _, state, *_ = load_golden("Cnn6")
    model = panns_keras.build_model("cnn6")
    assign_state_dict(model, state)
    model.labels = tuple(f"label {i}" for i in range(527))
    return model
