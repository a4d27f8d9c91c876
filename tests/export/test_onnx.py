"""ONNX export (tf2onnx -> onnxruntime) against Keras on real clips (Cnn6 golden weights)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import panns_keras
from panns_keras.audio import fit_length
from panns_keras.errors import UserError
from panns_keras.export import ExportVerificationError
from panns_keras.export import onnx_export as X
from panns_keras.export.representative import representative_windows

AUDIO = Path(__file__).resolve().parents[1] / "assets" / "audio"
# Every op the Cnn6 graph needs, all in the default ONNX domain (no custom / contrib ops).
CNN6_ONNX_OPS = {
    "Add",
    "AveragePool",
    "Cast",
    "Concat",
    "Conv",
    "Gather",
    "Log",
    "MatMul",
    "Max",
    "Mul",
    "Pad",
    "ReduceMax",
    "ReduceMean",
    "Relu",
    "Reshape",
    "Shape",
    "Sigmoid",
    "Slice",
    "Squeeze",
    "Sub",
    "Transpose",
    "Unsqueeze",
    # The framing's frame count, 1 + length // hop, on a dynamic length (tf2onnx's FloorDiv).
    "And",
    "Div",
    "Equal",
    "Where",
}


@pytest.fixture(scope="module")
def clips():
    return representative_windows(AUDIO, 32000, 64000, max_windows=6)


def test_onnx_round_trip_on_real_clips(cnn6, clips, tmp_path):
    pytest.importorskip("tf2onnx")
    ort = pytest.importorskip("onnxruntime")
    info = X.export_onnx(cnn6, tmp_path / "cnn6.onnx", verify_inputs=clips[:2])
    assert set(info["ops"]) <= CNN6_ONNX_OPS, info["ops"]
    # The DFT-kernel front end: reflect Pad, framing (Reshape, Slice, Concat), DFT and mel
    # MatMuls, Log, Max (dB floor).
    assert {"Pad", "Reshape", "Concat", "MatMul", "Log", "Max"} <= set(info["ops"])
    assert not any(op.startswith(("DFT", "STFT")) for op in info["ops"])

    session = ort.InferenceSession(str(tmp_path / "cnn6.onnx"), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    assert meta["labels"].split("\n") == list(cnn6.labels) and meta["sample_rate"] == "32000"
    names = [o.name for o in session.get_outputs()]
    assert sorted(names) == ["clipwise_output", "embedding"]
    # Dynamic batch and length; 100 samples is padded to the model minimum inside the graph.
    for x in (clips, clips[:3, :12345], clips[:1, :100]):
        got = dict(zip(names, session.run(None, {"waveform": x})))
        xp = fit_length(x, max(x.shape[1], cnn6.spec.min_samples))
        ref = cnn6(xp, training=False)
        # float32 both sides; measured max |score diff| 4.6e-6, embedding 1.7e-5.
        np.testing.assert_allclose(got["clipwise_output"], ref["clipwise_output"], atol=1e-4)
        np.testing.assert_allclose(got["embedding"], ref["embedding"], atol=2e-4, rtol=1e-4)
    assert info["stats"]["max_abs"] <= X.TOLERANCE


def test_onnx_verification_rejects_wrong_model(cnn6, clips):
    pytest.importorskip("tf2onnx")
    other = X.convert(panns_keras.build_model("cnn6", seed=1))
    with pytest.raises(ExportVerificationError, match="onnx"):
        X.verify_onnx(cnn6, other, clips[:1])


def test_missing_onnx_packages_give_one_line_error(monkeypatch, tmp_path, cli):
    monkeypatch.setitem(sys.modules, "tf2onnx", None)  # import now raises ImportError
    with pytest.raises(UserError, match=r"tf2onnx.*pip install"):
        X.require_onnx()
    # Through the CLI, before any model loads (--model names nothing).
    p = cli("export", "--model", "none", "--out", tmp_path / "out", "--formats", "onnx")
    assert p.returncode != 0
    errors = [ln for ln in p.stderr.splitlines() if "error:" in ln]  # TF's own logs aside
    assert len(errors) == 1 and "Traceback" not in p.stderr, p.stderr
    assert "tf2onnx" in errors[0] and "pip install 'panns-keras[onnx]'" in errors[0]
    assert not (tmp_path / "out").exists()
