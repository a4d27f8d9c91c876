"""EfficientAT mn04 (golden weights: calibrated BatchNorm, real logits) downstream: tag and
embed, SavedModel, TFLite float32 / int8, MediaPipe int8 through its AudioClassifier, ONNX.

The exporters are the PANNs models' own (nothing EfficientAT-specific in them): each file is
re-checked against Keras on real clips by the exporter itself, and here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import panns_keras
from panns_keras.convert.golden import golden_state
from panns_keras.convert.mapping import assign_state_dict
from panns_keras.export.representative import representative_windows

ASSETS = Path(__file__).resolve().parents[1] / "assets"
AUDIO = ASSETS / "audio"


@pytest.fixture(scope="module")
def mn04():
    """mn04 with the golden weights (tests/assets/golden/efficientat/mn04.npz)."""
    z = np.load(ASSETS / "golden" / "efficientat" / "mn04.npz")
    model = panns_keras.build_model("mn04")
    assign_state_dict(model, golden_state(z, json.loads(str(z["meta"]))))
    model.labels = tuple(f"label {i}" for i in range(527))
    return model


@pytest.fixture(scope="module")
def windows():
    """1 s windows of the real test clips at 32 kHz."""
    return representative_windows(AUDIO, 32000, 32000, max_windows=8)


def test_tag_and_embed_a_file(mn04):
    clip = str(AUDIO / "ovos_rooster.wav")
    tagged = panns_keras.tag(mn04, clip)
    assert np.asarray(tagged.clipwise).shape == (527,)
    assert np.all((np.asarray(tagged.clipwise) > 0) & (np.asarray(tagged.clipwise) < 1))
    embedded = panns_keras.embed(mn04, clip)
    assert np.asarray(embedded.embedding).shape == (384,)  # mn04's pooled features.16


def test_savedmodel_keeps_outputs_and_intermediates(mn04, windows, tmp_path):
    import tensorflow as tf

    from panns_keras.export import export_savedmodel

    path = export_savedmodel(mn04, tmp_path / "sm", verify_inputs=windows[:2])
    got = tf.saved_model.load(str(path))(windows[:2, :20000])
    ref = mn04(windows[:2, :20000], return_intermediates=True)
    assert set(got) == {"clipwise_output", "embedding", "logits", "logmel"}
    assert got["logmel"].shape == (2, 1 + 19999 // 320, 128)  # EfficientAT's frame count
    np.testing.assert_allclose(got["clipwise_output"], ref["clipwise_output"], atol=1e-5)
    np.testing.assert_allclose(got["embedding"], ref["embedding"], atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("variant", ["float32", "int8"])
def test_tflite_builtin_ops_only(mn04, windows, tmp_path, variant):
    from panns_keras.export import tflite as T

    info = T.export_tflite(
        mn04, tmp_path / f"{variant}.tflite", variant, window_seconds=1.0, representative=windows
    )
    content = Path(info["path"]).read_bytes()
    T.check_builtin_only(content)  # no Flex / custom op: the STFT is a matmul
    assert "HARD_SWISH" in info["ops"] and "DEPTHWISE_CONV_2D" in info["ops"]
    assert info["outputs"] == ["clipwise_output", "embedding"]
    got = T.TfliteRunner(content, info["outputs"])(windows)
    ref = np.asarray(mn04(windows)["clipwise_output"])
    stats = T.common.compare_scores(ref, got["clipwise_output"])
    max_abs, mean_abs = T.TOLERANCES[variant]
    assert max_abs is None or stats["max_abs"] <= max_abs, stats
    assert mean_abs is None or stats["mean_abs"] <= mean_abs, stats
    assert T.read_tflite_info(content)["labels"] == list(mn04.labels)


def test_mediapipe_int8_through_audio_classifier(mn04, windows, tmp_path):
    pytest.importorskip("mediapipe")
    from mediapipe.tasks.python import audio
    from mediapipe.tasks.python.components.containers import audio_data
    from mediapipe.tasks.python.core import base_options

    from panns_keras.audio import load_audio
    from panns_keras.export import tflite as T

    info = T.export_mediapipe(
        mn04,
        tmp_path / "mp.tflite",
        window_seconds=1.0,
        variant="int8",
        representative=windows,
        verify_inputs=windows[:4],
    )
    content = Path(info["path"]).read_bytes()
    print(f"mn04 mediapipe int8: {info['bytes'] / 1e6:.2f} MB, {info['stats']}")
    options = audio.AudioClassifierOptions(
        base_options=base_options.BaseOptions(model_asset_buffer=content),
        running_mode=audio.RunningMode.AUDIO_CLIPS,
        max_results=527,
    )
    x = load_audio(AUDIO / "ovos_rooster.wav", 32000)[:32000]
    with audio.AudioClassifier.create_from_options(options) as classifier:
        (result,) = classifier.classify(audio_data.AudioData.create_from_array(x, 32000))
    (head,) = result.classifications
    scores = np.zeros(527, np.float32)
    for c in head.categories:
        assert c.category_name == mn04.labels[c.index]
        scores[c.index] = c.score
    ref = np.asarray(mn04(x[None])["clipwise_output"])
    stats = T.common.compare_scores(ref, scores[None])
    max_abs, mean_abs = T.TOLERANCES["int8"]
    assert max_abs is None or stats["max_abs"] <= max_abs, stats
    assert mean_abs is None or stats["mean_abs"] <= mean_abs, stats


def test_onnx_round_trip(mn04, windows, tmp_path):
    pytest.importorskip("tf2onnx")
    ort = pytest.importorskip("onnxruntime")
    from panns_keras.export import onnx_export as X

    info = X.export_onnx(mn04, tmp_path / "mn04.onnx", verify_inputs=windows[:2])
    assert not any(op.startswith(("DFT", "STFT")) for op in info["ops"])
    session = ort.InferenceSession(str(tmp_path / "mn04.onnx"), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    got = dict(zip(names, session.run(None, {"waveform": windows[:3]})))
    ref = mn04(windows[:3])
    np.testing.assert_allclose(got["clipwise_output"], ref["clipwise_output"], atol=1e-4)
    np.testing.assert_allclose(got["embedding"], ref["embedding"], atol=2e-4, rtol=1e-4)
