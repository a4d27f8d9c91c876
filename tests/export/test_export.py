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


@pytest.mark.parametrize("variant", ["float32", "float16", "dynamic_int8", "int8"])
def test_tflite_variants(cnn6, clips, tmp_path, variant):
    info = T.export_tflite(cnn6, tmp_path / f"{variant}.tflite", variant,
                           window_seconds=WINDOW_S, representative=clips)  # fmt: skip
    content = Path(info["path"]).read_bytes()
    ops = set(T.op_names(content))
    extra = {"int8": {"QUANTIZE", "DEQUANTIZE"}, "float16": {"DEQUANTIZE"}}.get(variant, set())
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


def test_dynamic_int8_keeps_frontend_float(cnn6, clips):
    from tensorflow.lite.python import schema_py_generated as fb

    content = T.convert(cnn6, "dynamic_int8", clips.shape[1])
    m = fb.ModelT.InitFromPackedBuf(bytearray(content), 0)
    g = m.subgraphs[0]
    kinds = {}
    for op in g.operators:
        for i in op.inputs:
            t = g.tensors[i] if i >= 0 else None
            if t is not None and t.buffer and m.buffers[t.buffer].data is not None:
                kinds.setdefault(b"logmel_extractor" in t.name, set()).add(t.type)
    assert fb.TensorType.INT8 not in kinds[True]  # DFT kernel, mel matrix: float ops
    assert fb.TensorType.INT8 in kinds[False]  # the backbone's weights are int8
    # Against the converter's own output (hybrid front end), on real clips.
    keys = tuple(T.common.output_keys(cnn6))
    ref = np.asarray(cnn6(clips, training=False)["clipwise_output"])
    ours = T.TfliteRunner(content, keys)(clips)["clipwise_output"]
    conv = T._converter(cnn6, clips.shape[1], keys)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    hybrid = T.TfliteRunner(conv.convert(), keys)(clips)["clipwise_output"]
    err_ours = np.abs(ours - ref).mean()
    err_hybrid = np.abs(hybrid - ref).mean()
    print(f"dynamic int8 mean |diff|: front end float {err_ours:.4f}, hybrid {err_hybrid:.4f}")
    assert err_ours < 0.5 * err_hybrid


def test_float16_exports_and_agrees_on_real_clips(cnn6, clips, tmp_path):
    from tensorflow.lite.python import schema_py_generated as fb

    info = T.export_tflite(cnn6, tmp_path / "f16.tflite", "float16", window_seconds=WINDOW_S,
                           verify_inputs=clips[:4])  # fmt: skip
    content = Path(info["path"]).read_bytes()
    assert set(info["ops"]) <= BUILTIN_FLOAT_OPS | {"DEQUANTIZE"}, info["ops"]
    f32 = T.convert(cnn6, "float32", clips.shape[1])
    assert len(content) < 0.65 * len(f32)  # measured 14.0 MB vs 23.7 MB (front end float32)
    # Backbone weights stored as float16, the front end's constants (DFT kernels, mel
    # matrix, dB floor) and bn0 as float32.
    g = fb.ModelT.InitFromPackedBuf(bytearray(content), 0).subgraphs[0]
    half = [t.name.decode() for t in g.tensors if t.type == fb.TensorType.FLOAT16]
    assert any("conv_block1_conv1" in n for n in half) and any("fc_audioset" in n for n in half)
    assert not any(f in n for n in half for f in T.FLOAT_NODES), half
    # Reloaded from disk, on real clips: max |score diff| 0.0040, mean 1.8e-4 measured.
    got = T.TfliteRunner(tmp_path / "f16.tflite", info["outputs"])(clips)
    ref = cnn6(clips, training=False)
    stats = T.common.compare_scores(np.asarray(ref["clipwise_output"]), got["clipwise_output"])
    assert np.all(np.isfinite(got["clipwise_output"])) and np.all(np.isfinite(got["embedding"]))
    assert stats["max_abs"] <= 1e-2 and stats["mean_abs"] <= 1e-3, stats
    np.testing.assert_allclose(got["embedding"], ref["embedding"], atol=0.1)  # |emb| <= 39


def test_frontend_survives_converter_float16_constants(clips):
    # TFLite's own float16 mode stores every float constant as float16, where the 1e-10
    # amplitude floor is 0: the dB floor is held as -100 dB instead (exact in float16).
    import tensorflow as tf

    from panns_keras.models.layers import LogMelSpectrogram

    layer = LogMelSpectrogram()
    x = np.concatenate([clips[:2, :32000], np.zeros((1, 32000), np.float32)])

    @tf.function(input_signature=[tf.TensorSpec([1, 32000], tf.float32)])
    def fn(w):
        return layer(w)

    conv = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()])
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.target_spec.supported_types = [tf.float16]
    runner = T.TfliteRunner(conv.convert())
    got = runner(x)["output_0"]
    ref = np.asarray(layer(x))
    assert np.all(np.isfinite(got))
    np.testing.assert_array_equal(got[2], -100.0)  # silence sits on the floor
    np.testing.assert_array_equal(ref[2], -100.0)
    loud = ref[:2] > -40  # float16 DFT kernels: leakage floor ~-66 dB under loud bins
    assert np.abs(got[:2] - ref[:2])[loud].max() < 0.5


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
