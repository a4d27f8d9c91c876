"""Export round trips: Keras vs SavedModel vs TFLite variants on real clips (Cnn6 golden)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from golden import load_golden

import panns_keras
from panns_keras.convert.mapping import assign_state_dict
from panns_keras.export import ExportVerificationError, export_savedmodel
from panns_keras.export import tflite as T
from panns_keras.export.representative import representative_windows

AUDIO = Path(__file__).resolve().parents[1] / "assets" / "audio"
WINDOW_S = 2.0
BUILTIN_FLOAT_OPS = {
    "ADD", "AVERAGE_POOL_2D", "CONV_2D", "FULLY_CONNECTED", "LOG", "LOGISTIC", "MAXIMUM",
    "MEAN", "MIRROR_PAD", "MUL", "REDUCE_MAX", "RESHAPE", "SQUARE", "STRIDED_SLICE",
}  # fmt: skip


@pytest.fixture(scope="module")
def cnn6():
    _, state, *_ = load_golden("Cnn6")
    model = panns_keras.build_model("cnn6")
    assign_state_dict(model, state)
    model.labels = tuple(f"label {i}" for i in range(527))
    return model


@pytest.fixture(scope="module")
def clips():
    return representative_windows(AUDIO, 32000, int(WINDOW_S * 32000), max_windows=12)


def test_savedmodel_round_trip(cnn6, clips, tmp_path):
    path = export_savedmodel(cnn6, tmp_path / "sm", verify_inputs=clips[:4])
    loaded = tf.saved_model.load(str(path))
    fn = loaded.signatures["serving_default"]
    for length in (clips.shape[1], 12345, 100):  # dynamic length, short input padded
        x = clips[:3, :length]
        got = fn(waveform=tf.constant(x))
        xp = np.pad(x, [(0, 0), (0, max(0, cnn6.spec.min_samples - length))])
        ref = cnn6(xp, training=False)
        assert set(got) == {"clipwise_output", "embedding"}
        np.testing.assert_allclose(got["clipwise_output"], ref["clipwise_output"], atol=1e-5)
        np.testing.assert_allclose(got["embedding"], ref["embedding"], atol=1e-4, rtol=1e-5)
    labels = Path(loaded.labels_file.asset_path.numpy().decode()).read_text().splitlines()
    assert labels == list(cnn6.labels)


@pytest.mark.parametrize("variant", ["float32", "dynamic_int8", "int8"])
def test_tflite_variants(cnn6, clips, tmp_path, variant):
    info = T.export_tflite(cnn6, tmp_path / f"{variant}.tflite", variant,
                           window_seconds=WINDOW_S, representative=clips)  # fmt: skip
    content = Path(info["path"]).read_bytes()
    ops = set(T.op_names(content))
    extra = {"QUANTIZE", "DEQUANTIZE"} if variant == "int8" else set()
    assert ops <= BUILTIN_FLOAT_OPS | extra, ops  # builtin ops only, no Flex / custom
    runner = T.TfliteRunner(content, info["outputs"])
    got = runner(clips)
    ref = cnn6(clips, training=False)
    stats = T.common.compare_scores(np.asarray(ref["clipwise_output"]), got["clipwise_output"])
    max_abs, mean_abs = T.TOLERANCES[variant]
    if max_abs is not None:
        assert stats["max_abs"] <= max_abs
    assert mean_abs is None or stats["mean_abs"] <= mean_abs
    assert got["embedding"].shape == (len(clips), 512)
    if variant == "float32":
        np.testing.assert_allclose(got["embedding"], ref["embedding"], atol=1e-3, rtol=1e-4)


def test_int8_keeps_frontend_float(cnn6, clips):
    content = T.convert(cnn6, "int8", clips.shape[1], representative=clips[:4])
    from tensorflow.lite.python import schema_py_generated as fb

    m = fb.ModelT.InitFromPackedBuf(bytearray(content), 0)
    g = m.subgraphs[0]
    for op in g.operators:
        for i in op.outputs:
            t = g.tensors[i]
            if b"logmel_extractor" in t.name:
                assert t.type == fb.TensorType.FLOAT32, t.name


def test_float16_failure_is_caught(cnn6, clips, tmp_path):
    # Known: float16 constants flush the front end's amin (1e-10) to 0 -> log(0); the
    # post-export check must refuse the artifact rather than write a broken model.
    with pytest.raises(ExportVerificationError):
        T.export_tflite(cnn6, tmp_path / "f16.tflite", "float16", window_seconds=WINDOW_S,
                        verify_inputs=clips[:4])  # fmt: skip
    assert not (tmp_path / "f16.tflite").exists()


def test_mediapipe_window_model(cnn6, clips, tmp_path):
    from panns_keras.export.tflite_metadata import read_metadata

    info = T.export_mediapipe(cnn6, tmp_path / "mp.tflite", window_seconds=1.0,
                              verify_inputs=clips[:2])  # fmt: skip
    content = Path(info["path"]).read_bytes()
    runner = T.TfliteRunner(content, info["outputs"])
    assert runner.length == 32000
    assert info["outputs"] == ["clipwise_output"]
    assert len(runner.outputs) == 1 and tuple(runner.outputs[0]["shape"]) == (1, 527)
    meta = read_metadata(content)
    assert meta["labels"] == list(cnn6.labels)


def test_waveform_model_tflite(tmp_path):
    _, state, *_ = load_golden("LeeNet11")
    model = panns_keras.build_model("leenet11")
    assign_state_dict(model, state)
    info = T.export_tflite(model, tmp_path / "lee.tflite", "float32", window_seconds=1.0)
    assert info["stats"]["max_abs"] <= 1e-4
    assert not any(o.startswith("CUSTOM") for o in info["ops"])


def test_verification_rejects_wrong_model(cnn6, clips):
    other = panns_keras.build_model("cnn6", seed=1)
    content = T.convert(other, "float32", clips.shape[1])
    with pytest.raises(ExportVerificationError):
        T.verify_tflite(cnn6, content, "float32", clips[:2])
