"""The model layer is backend-agnostic: goldens and converted checkpoints on any Keras backend.

`make test` runs this file twice: in the main environment (TensorFlow backend) and, by
`make test-jax`, in a virtual environment that has no TensorFlow at all, under
``KERAS_BACKEND=jax``. ``test_runs_without_tensorflow`` also proves it inside one process
tree by making ``import tensorflow`` fail.
"""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import pytest

import panns_keras
from panns_keras.convert.converter import convert_checkpoint
from panns_keras.convert.mapping import assign_state_dict
from tests.helpers.golden import check_outputs, load_golden

TESTS = Path(__file__).resolve().parents[1]
BACKEND_GOLDENS = [
    "cnn6",
    "resnet22",
    "mobilenet_v1",
    "res1dnet31",
    "wavegram_logmel_cnn14",
    "cnn14_decision_level_att",
]


@pytest.mark.parametrize("name", BACKEND_GOLDENS)
def test_golden_on_this_backend(name):
    if keras.backend.backend() == "tensorflow":
        pytest.skip("the TensorFlow backend: tests/models/test_golden.py checks every model")
    model = panns_keras.build_model(name)
    _, state, outputs, tols, waveform = load_golden(model.spec.reference_name)
    assign_state_dict(model, state)
    check_outputs(model, outputs, tols, waveform, model.spec.head.kind)


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_converted_checkpoint_on_this_backend(cnn6_ckpts, fmt, tmp_path):
    out = convert_checkpoint(cnn6_ckpts[fmt], tmp_path / "cnn6")
    model = panns_keras.load_model(out)
    assert model.labels[0] == "Speech"
    _, _, outputs, tols, waveform = load_golden("Cnn6")
    check_outputs(model, outputs, tols, waveform, model.spec.head.kind)


def test_backend_is_the_one_asked_for():
    assert keras.backend.backend() == os.environ.get("KERAS_BACKEND", "tensorflow")


def test_runs_without_tensorflow(tmp_path):
    """Where TensorFlow is installed, a JAX process that cannot import it still converts,
    loads and scores (`make test-jax`'s environment has no TensorFlow at all, so there the
    rest of this file already proves it)."""
    pytest.importorskip("jax")
    if importlib.util.find_spec("tensorflow") is None:
        pytest.skip("no TensorFlow here: every test of this file already runs without it")
    script = textwrap.dedent(f"""
        import json, sys
        sys.modules["tensorflow"] = None  # any `import tensorflow` now raises ImportError
        import keras
        import panns_keras
        from tests.helpers.golden import check_outputs, load_golden
        from panns_keras.convert.converter import convert_checkpoint

        out = convert_checkpoint({str(TESTS / "assets/ckpt/LeeNet11_golden_zip.pth")!r},
                                 {str(tmp_path / "leenet11")!r})
        model = panns_keras.load_model(out)
        _, _, outputs, tols, waveform = load_golden("LeeNet11")
        check_outputs(model, outputs, tols, waveform, model.spec.head.kind)
        panns_keras.build_model("wavegram_logmel_cnn14", num_classes=3)
        print(json.dumps({{"backend": keras.backend.backend(), "label": model.labels[0],
                          "tf": [m for m in sys.modules if m.split(".")[0] == "tensorflow"]}}))
    """)
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(TESTS.parent)}
    run = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result == {"backend": "jax", "label": "Speech", "tf": ["tensorflow"]}
