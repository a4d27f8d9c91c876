"""TFLite metadata writer: round trip, LiteRT equivalence and the MediaPipe AudioClassifier."""

import io
import zipfile

import numpy as np
import pytest

from panns_keras.export import tflite_metadata as tm
from panns_keras.runtime.tflite_metadata import read_metadata

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")
litert = pytest.importorskip("ai_edge_litert.interpreter")

SAMPLE_RATE = 16000
NUM_SAMPLES = 16000
LABELS = ["Speech", "Dog", "Music", "Car alarm", "Silence, room tone"]


def _tiny_model(two_outputs: bool):
    keras.utils.set_random_seed(0)
    inp = keras.Input((NUM_SAMPLES,), batch_size=1, name="waveform")
    x = keras.layers.Reshape((100, NUM_SAMPLES // 100))(inp)
    x = keras.layers.Dense(8, activation="relu")(x)
    emb = keras.layers.GlobalAveragePooling1D(name="embedding")(x)
    out = keras.layers.Dense(len(LABELS), activation="sigmoid", name="clipwise_output")(emb)
    if two_outputs:
        return keras.Model(inp, {"clipwise_output": out, "embedding": emb})
    return keras.Model(inp, out)


@pytest.fixture(scope="module")
def tiny_tflite():
    """Single-output float32 [1, 16000] -> [1, 5] model (frozen concrete function)."""
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    model = _tiny_model(two_outputs=False)

    @tf.function(input_signature=[tf.TensorSpec([1, NUM_SAMPLES], tf.float32, name="waveform")])
    def serve(waveform):
        return {"clipwise_output": model(waveform)}

    # Keras 3 variables must be frozen: converting the non-frozen concrete function leaves
    # uninitialised resource variables in the .tflite (garbage outputs).
    frozen = convert_variables_to_constants_v2(serve.get_concrete_function())
    return tf.lite.TFLiteConverter.from_concrete_functions([frozen]).convert()


@pytest.fixture(scope="module")
def two_output_tflite(tmp_path_factory):
    """clipwise_output + embedding, with signature names (Keras SavedModel export)."""
    model = _tiny_model(two_outputs=True)
    path = str(tmp_path_factory.mktemp("sm") / "model")
    model.export(path, format="tf_saved_model", verbose=False)
    return tf.lite.TFLiteConverter.from_saved_model(path).convert()


def _with_metadata(tflite_bytes, labels=LABELS, **kwargs):
    return tm.add_audio_classifier_metadata(
        tflite_bytes,
        labels=labels,
        sample_rate=SAMPLE_RATE,
        model_name="tiny",
        description="Tiny test classifier.",
        version="v0.1",
        **kwargs,
    )


def _run_litert(tflite_bytes, waveform):
    interpreter = litert.Interpreter(model_content=tflite_bytes)
    interpreter.allocate_tensors()
    interpreter.set_tensor(
        interpreter.get_input_details()[0]["index"], waveform.reshape(1, -1).astype(np.float32)
    )
    interpreter.invoke()
    return [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]


def _waveform(num_samples, seed=0):
    return (np.random.default_rng(seed).standard_normal(num_samples) * 0.3).astype(np.float32)


def _metadata_buffer(tflite_bytes):
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.Model.GetRootAs(bytearray(tflite_bytes), 0)
    entries = [model.Metadata(i) for i in range(model.MetadataLength())]
    found = [e for e in entries if e.Name() == b"TFLITE_METADATA"]
    assert len(found) == 1
    return model.Buffers(found[0].Buffer()).DataAsNumpy().tobytes(), model


def test_round_trip(tiny_tflite):
    out = _with_metadata(tiny_tflite, author="panns-keras", license_text="Apache-2.0")
    md = read_metadata(out)
    assert (md["name"], md["description"], md["version"]) == (
        "tiny",
        "Tiny test classifier.",
        "v0.1",
    )
    assert (md["author"], md["license"]) == ("panns-keras", "Apache-2.0")
    assert md["min_parser_version"] == "1.3.0"
    (subgraph,) = md["subgraphs"]
    (inp,) = subgraph["inputs"]
    assert inp["name"] == "waveform"
    assert inp["content"] == {"type": "AudioProperties", "sample_rate": 16000, "channels": 1}
    (score,) = subgraph["outputs"]
    assert score["name"] == "clipwise_output"
    assert score["content"] == {"type": "FeatureProperties"}
    assert score["process_units"] == []  # no score calibration / thresholding
    assert [(f["name"], f["type"]) for f in score["associated_files"]] == [
        ("labels.txt", "TENSOR_AXIS_LABELS")
    ]
    assert md["labels"] == LABELS
    assert set(md["files"]) == {"labels.txt"}

    buf, _ = _metadata_buffer(out)
    assert buf[4:8] == b"M001"
    # The model flatbuffer is unchanged up to the appended zip; the zip is stored uncompressed
    # (MediaPipe requires it) with offsets counted from the start of the file.
    with zipfile.ZipFile(io.BytesIO(out)) as zf:
        (info,) = zf.infolist()
        assert info.compress_type == zipfile.ZIP_STORED
        header = info.header_offset
        assert out[header : header + 4] == b"PK\x03\x04"
        name_len, extra_len = np.frombuffer(out[header + 26 : header + 30], "<u2")
        start = header + 30 + int(name_len) + int(extra_len)
        assert out[start : start + info.file_size] == ("\n".join(LABELS) + "\n").encode()


def test_metadata_parses_with_generated_schema(tiny_tflite):
    """Cross-check the hand-built flatbuffer with flatc-generated code (shipped by MediaPipe)."""
    mfb = pytest.importorskip("mediapipe.tasks.metadata.metadata_schema_py_generated")
    buf, _ = _metadata_buffer(_with_metadata(tiny_tflite))
    assert mfb.ModelMetadata.ModelMetadataBufferHasIdentifier(buf, 0)
    md = mfb.ModelMetadataT.InitFromPackedBuf(bytearray(buf), 0)
    assert md.name == b"tiny" and md.minParserVersion == b"1.3.0"
    sg = md.subgraphMetadata[0]
    content = sg.inputTensorMetadata[0].content
    assert content.contentPropertiesType == mfb.ContentProperties.AudioProperties
    assert content.contentProperties.sampleRate == SAMPLE_RATE
    assert content.contentProperties.channels == 1
    out = sg.outputTensorMetadata[0]
    assert out.content.contentPropertiesType == mfb.ContentProperties.FeatureProperties
    assert out.associatedFiles[0].name == b"labels.txt"
    assert out.associatedFiles[0].type == mfb.AssociatedFileType.TENSOR_AXIS_LABELS


def test_litert_outputs_unchanged_and_buffers_aligned(tiny_tflite):
    out = _with_metadata(tiny_tflite)
    for seed in range(3):
        waveform = _waveform(NUM_SAMPLES, seed)
        (expected,) = _run_litert(tiny_tflite, waveform)
        (got,) = _run_litert(out, waveform)
        np.testing.assert_array_equal(got, expected)
        assert np.all(np.isfinite(got))

    _, model = _metadata_buffer(out)
    for i in range(model.BuffersLength()):
        tab = model.Buffers(i)._tab
        o = tab.Offset(4)  # Buffer.data
        if o and tab.VectorLen(o):
            assert tab.Vector(o) % 16 == 0, f"buffer {i} data not 16-byte aligned"


def test_rewriting_replaces_metadata(tiny_tflite):
    first = _with_metadata(tiny_tflite)
    new_labels = [f"class {i}" for i in range(len(LABELS))]
    second = _with_metadata(first, labels=new_labels)
    md = read_metadata(second)
    assert md["labels"] == new_labels
    _metadata_buffer(second)  # exactly one TFLITE_METADATA entry
    assert len(second) < len(first) + 1024  # the old zip is not carried along
    waveform = _waveform(NUM_SAMPLES)
    np.testing.assert_array_equal(_run_litert(second, waveform)[0], _run_litert(first, waveform)[0])


def test_two_output_model_finds_scores_by_name(two_output_tflite):
    with pytest.warns(UserWarning, match="classification head"):
        out = _with_metadata(two_output_tflite)
    outputs = read_metadata(out)["subgraphs"][0]["outputs"]
    assert sorted(o["name"] for o in outputs) == ["clipwise_output", "embedding"]
    interpreter = litert.Interpreter(model_content=out)
    shapes = [tuple(d["shape"]) for d in interpreter.get_output_details()]
    for meta, shape in zip(outputs, shapes, strict=True):
        labelled = bool(meta["associated_files"])
        assert labelled == (meta["name"] == "clipwise_output")
        assert shape == ((1, len(LABELS)) if labelled else (1, 8))


def test_invalid_inputs(tiny_tflite, two_output_tflite):
    with pytest.raises(ValueError, match="labels"):
        _with_metadata(tiny_tflite, labels=LABELS[:-1])
    with pytest.raises(ValueError, match="single-line"):
        _with_metadata(tiny_tflite, labels=["a", "b\nc", "d", "e", "f"])
    with pytest.raises(ValueError, match="TFL3"):
        _with_metadata(b"\0" * 64)
    with pytest.raises(ValueError, match="multiple of channels"):
        _with_metadata(tiny_tflite, channels=3)
    with pytest.raises(ValueError, match="cannot find score output"):
        _with_metadata(two_output_tflite, output_name="logits")
    with pytest.raises(ValueError, match="no TFLITE_METADATA"):
        read_metadata(tiny_tflite)


def test_mediapipe_audio_classifier(tiny_tflite):
    pytest.importorskip("mediapipe")
    from mediapipe.tasks.python import audio
    from mediapipe.tasks.python.components.containers import audio_data
    from mediapipe.tasks.python.core import base_options

    model = _with_metadata(tiny_tflite)
    options = audio.AudioClassifierOptions(
        base_options=base_options.BaseOptions(model_asset_buffer=model),
        running_mode=audio.RunningMode.AUDIO_CLIPS,
        max_results=len(LABELS),
    )
    # 2.25 windows: MediaPipe cuts the clip into consecutive, non-overlapping windows of the
    # model's input length and zero-pads the last partial window.
    clip = _waveform(2 * NUM_SAMPLES + NUM_SAMPLES // 4, seed=3)
    with audio.AudioClassifier.create_from_options(options) as classifier:
        results = classifier.classify(audio_data.AudioData.create_from_array(clip, SAMPLE_RATE))
    assert [r.timestamp_ms for r in results] == [0, 1000, 2000]
    for k, result in enumerate(results):
        window = np.zeros(NUM_SAMPLES, np.float32)
        part = clip[k * NUM_SAMPLES : (k + 1) * NUM_SAMPLES]
        window[: len(part)] = part
        (expected,) = _run_litert(model, window)
        (head,) = result.classifications
        assert head.head_index == 0 and head.head_name == "clipwise_output"
        assert len(head.categories) == len(LABELS)
        scores = np.zeros(len(LABELS))
        for category in head.categories:
            assert category.category_name == LABELS[category.index]
            scores[category.index] = category.score
        np.testing.assert_allclose(scores, expected[0], rtol=0, atol=1e-4)
        got_order = [c.score for c in head.categories]
        assert got_order == sorted(got_order, reverse=True)
