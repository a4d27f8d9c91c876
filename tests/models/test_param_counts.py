"""Trainable parameter counts equal the reference (paper Table XII for the 15 systems).

The count of each model is checked where the full-width model is built anyway:
``tests/models/test_golden.py`` (every model, against ``golden.TRAINABLE_PARAMS``).
"""

from panns_keras.models.registry import MODEL_SPECS, PAPER_SYSTEMS
from tests.helpers.golden import TRAINABLE_PARAMS


def test_table_covers_registry():
    panns = {name for name, spec in MODEL_SPECS.items() if spec.reference == "panns"}
    assert set(TRAINABLE_PARAMS) == panns  # EfficientAT: tests/models/test_efficientat.py
    assert set(PAPER_SYSTEMS) <= set(TRAINABLE_PARAMS) and len(PAPER_SYSTEMS) == 15
