"""Model directories written by panns-keras 0.1 (format panns_keras.model_dir/1) still load.

tests/assets/legacy_model_dirs/ holds one directory per reference system written by 0.1's
``save_model_dir`` (3 classes), with every variable j of the layer with index i (0.1's
creation order, ``layer_index.json``) set to the constant ``10 i + j + 1``; the HDF5 files
were repacked with those constants as fill values, keeping 0.1's group layout.
"""

import json
from pathlib import Path

import numpy as np
import pytest

import panns_keras
from panns_keras.models.blocks import layer_name
from panns_keras.models.registry import MODEL_SPECS

LEGACY = Path(__file__).parents[1] / "assets" / "legacy_model_dirs"
SMALL = {"cnn6", "cnn10", "mobilenet_v1", "mobilenet_v2", "leenet11", "leenet24", "dainet19"}


def _params():
    for name in sorted(n for n, s in MODEL_SPECS.items() if s.reference == "panns"):
        yield pytest.param(name, marks=() if name in SMALL else (pytest.mark.slow,))


@pytest.mark.parametrize("name", _params())
def test_legacy_directory_loads_every_variable(name):
    model = panns_keras.load_model(LEGACY / name)
    assert model.spec.name == name
    assert model.labels == ("class 0", "class 1", "class 2")
    index = json.loads((LEGACY / name / "layer_index.json").read_text())
    layers = model.weight_layers()
    assert sorted(layers) == sorted(layer_name(p) for p in index)
    for path, i in index.items():
        for j, var in enumerate(layers[layer_name(path)].weights):
            value = np.asarray(var)
            assert np.all(value == 10 * i + j + 1), f"{path} variable {j}"


def test_legacy_format_is_still_recognised():
    config = json.loads((LEGACY / "cnn6" / "config.json").read_text())
    assert config["format"] == "panns_keras.model_dir/1"
