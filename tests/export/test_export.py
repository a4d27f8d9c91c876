"""Export round trips: Keras vs SavedModel vs TFLite variants on real clips (Cnn6 golden)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import panns_keras
from panns_keras.audio import fit_length
from panns_keras.convert.mapping import assign_state_dict
from panns_keras.export import ExportVerificationError, common, export_savedmodel, tflite_rewrite
from panns_keras.export import tflite as T
from panns_keras.export.representative import representative_windows
from tests.helpers.golden import load_golden
from tests.helpers.small_models import small_sed_model

AUDIO = Path(__file__).resolve().parents[1] / "assets" / "audio"
WINDOW_S = 2.0
BUILTIN_FLOAT_OPS = {
    "ADD",
    "AVERAGE_POOL_2D",
    "CONCATENATION",
    "CONV_2D",
    "FULLY_CONNECTED",
    "LOG",
    "LOGISTIC",
    "MAXIMUM",
    "MEAN",
    "MIRROR_PAD",
    "MUL",
    "PAD",
    "REDUCE_MAX",
    "RESHAPE",
    "SQUARE",
    "STRIDED_SLICE",
}  # (PAD, CONCATENATION: the front end's framing)


@pytest.fixture(scope="module")
def clips():
    return representative_windows(AUDIO, 32000, int(WINDOW_S * 32000), max_windows=12)


def test_savedmodel_round_trip(cnn6, clips, tmp_path):
    path = export_savedmodel(cnn6, tmp_path / "sm", verify_inputs=clips[:4])
    loaded = tf.saved_model.load(str(path))
    fn = loaded.signatures["serving_default"]
    keys = {"clipwise_output", "embedding", "logits", "logmel"}
    for length in (clips.shape[1], 12345, 100):  # dynamic length, short input padded
        x = clips[:3, :length]
        xp = np.pad(x, [(0, 0), (0, max(0, cnn6.spec.min_samples - length))])
        ref = cnn6(xp, training=False, return_intermediates=True)
        # The loaded object is callable (YAMNet style), and the signature gives the same dict.
        for got in (loaded(x), fn(waveform=tf.constant(x))):
            assert set(got) == keys
            np.testing.assert_allclose(got["clipwise_output"], ref["clipwise_output"], atol=1e-5)
            np.testing.assert_allclose(got["embedding"], ref["embedding"], atol=1e-4, rtol=1e-5)
            np.testing.assert_allclose(got["logits"], ref["logits"], atol=1e-4, rtol=1e-5)
            frames = 1 + xp.shape[1] // cnn6.spec.frontend.hop_size
            assert got["logmel"].shape == (3, frames, 64)
            np.testing.assert_allclose(got["logmel"], ref["logmel"], atol=1e-3, rtol=1e-5)
    labels = Path(loaded.labels_file.asset_path.numpy().decode()).read_text().splitlines()
    assert labels == list(cnn6.labels)
    assert [n.decode() for n in loaded.class_names.numpy()] == list(cnn6.labels)
    assert int(loaded.sample_rate.numpy()) == 32000


@pytest.mark.parametrize("variant", ["float32", "float16", "dynamic_int8", "int8"])
def test_tflite_variants(cnn6, clips, tmp_path, variant):
    info = T.export_tflite(
        cnn6, tmp_path / f"{variant}.tflite", variant, window_seconds=WINDOW_S, representative=clips
    )
    content = Path(info["path"]).read_bytes()
    ops = set(T.op_names(content))
    extra = {
        "int8": {"QUANTIZE", "DEQUANTIZE"},
        "float16": {"DEQUANTIZE"},
        "dynamic_int8": {"DEQUANTIZE"},
    }.get(variant, set())
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
    _check_names_and_metadata(content, cnn6, ["clipwise_output", "embedding"], variant)


def _check_names_and_metadata(content, model, keys, variant):
    """Signature names, get_output_details() order and metadata of one exported file."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=content)
    sig = it.get_signature_list()["serving_default"]
    assert sig["inputs"] == ["waveform"] and sig["outputs"] == keys
    details = it.get_output_details()
    assert [d["name"] for d in details] == keys  # scores first, for apps that read output 0
    assert details[0]["shape"][-1] == model.spec.num_classes
    assert T.output_order(content) == {"tensors": keys, "signature": keys}
    info = T.read_tflite_info(content)
    assert info["labels"] == list(model.labels) and len(info["labels"]) == model.spec.num_classes
    assert info["sample_rate"] == info["metadata_sample_rate"] == model.spec.sample_rate
    assert info["outputs"] == keys and info["variant"] == variant
    assert info["input_samples"] == it.get_input_details()[0]["shape"][-1]


@pytest.mark.parametrize("variant", ["float32", "float16", "dynamic_int8", "int8"])
def test_sed_tflite_outputs_named_in_order(tmp_path, variant):
    model = small_sed_model()
    rep = representative_windows(AUDIO, 16000, 32000, max_windows=6)
    info = T.export_tflite(
        model, tmp_path / "sed.tflite", variant, window_seconds=2.0, representative=rep
    )
    content = Path(info["path"]).read_bytes()
    keys = ["clipwise_output", "framewise_output"]
    _check_names_and_metadata(content, model, keys, variant)
    got = T.TfliteRunner(content)(rep[:2])
    ref = model(rep[:2], training=False)
    assert got["framewise_output"].shape == tuple(ref["framewise_output"].shape) == (2, 201, 6)
    if variant == "float32":
        np.testing.assert_allclose(got["framewise_output"], ref["framewise_output"], atol=1e-4)


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
    conv = T.converter(cnn6, clips.shape[1], keys)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    hybrid = T.TfliteRunner(conv.convert(), keys)(clips)["clipwise_output"]
    err_ours = np.abs(ours - ref).mean()
    err_hybrid = np.abs(hybrid - ref).mean()
    print(f"dynamic int8 mean |diff|: front end float {err_ours:.4f}, hybrid {err_hybrid:.4f}")
    assert err_ours < 0.5 * err_hybrid


def test_float16_exports_and_agrees_on_real_clips(cnn6, clips, tmp_path):
    from tensorflow.lite.python import schema_py_generated as fb

    info = T.export_tflite(
        cnn6, tmp_path / "f16.tflite", "float16", window_seconds=WINDOW_S, verify_inputs=clips[:4]
    )
    content = Path(info["path"]).read_bytes()
    assert set(info["ops"]) <= BUILTIN_FLOAT_OPS | {"DEQUANTIZE"}, info["ops"]
    f32 = T.convert(cnn6, "float32", clips.shape[1])
    assert len(content) < 0.65 * len(f32)  # measured 14.0 MB vs 23.7 MB (front end float32)
    # Backbone weights stored as float16, the front end's constants (DFT kernels, mel
    # matrix, dB floor) and bn0 as float32.
    g = fb.ModelT.InitFromPackedBuf(bytearray(content), 0).subgraphs[0]
    half = [t.name.decode() for t in g.tensors if t.type == fb.TensorType.FLOAT16]
    assert any("conv_block1_conv1" in n for n in half) and any("fc_audioset" in n for n in half)
    assert not any(f in n for n in half for f in tflite_rewrite.FLOAT_NODES), half
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


@pytest.fixture(scope="module")
def mediapipe_files(cnn6, tmp_path_factory):
    """The four MediaPipe variants of golden Cnn6 with 1 s windows (calibrated on real clips)."""
    out = tmp_path_factory.mktemp("mediapipe")
    rep = representative_windows(AUDIO, 32000, 32000, max_windows=16)
    return {
        v: T.export_mediapipe(
            cnn6,
            out / f"mp_{v}.tflite",
            window_seconds=1.0,
            variant=v,
            representative=rep,
            verify_inputs=rep[:4],
        )
        for v in T.VARIANTS
    }


def test_mediapipe_int8_size(mediapipe_files):
    size = {v: info["bytes"] for v, info in mediapipe_files.items()}
    print("mediapipe sizes (MB):", {v: round(b / 1e6, 2) for v, b in size.items()})
    assert size["int8"] <= 0.35 * size["float32"]  # measured 7.1 / 23.7 MB = 0.30
    assert size["dynamic_int8"] <= 0.35 * size["float32"]
    assert size["float16"] <= 0.65 * size["float32"]


@pytest.mark.parametrize("variant", ["float32", "float16", "dynamic_int8", "int8"])
def test_mediapipe_variant_through_audio_classifier(cnn6, mediapipe_files, variant):
    """MediaPipe's own AudioClassifier on real clips, window by window, against Keras."""
    pytest.importorskip("mediapipe")
    from mediapipe.tasks.python import audio
    from mediapipe.tasks.python.components.containers import audio_data
    from mediapipe.tasks.python.core import base_options

    from panns_keras.audio import load_audio

    info = mediapipe_files[variant]
    content = Path(info["path"]).read_bytes()
    assert info["outputs"] == ["clipwise_output"] and info["input_samples"] == 32000
    assert T.read_tflite_info(content)["labels"] == list(cnn6.labels)
    options = audio.AudioClassifierOptions(
        base_options=base_options.BaseOptions(model_asset_buffer=content),
        running_mode=audio.RunningMode.AUDIO_CLIPS,
        max_results=527,
    )
    got, ref = [], []
    with audio.AudioClassifier.create_from_options(options) as classifier:
        for name in ("ovos_rooster.wav", "librosa_robin.wav", "ovos_sheep.wav"):
            x = load_audio(AUDIO / name, 32000)
            results = classifier.classify(audio_data.AudioData.create_from_array(x, 32000))
            n = -(-len(x) // 32000)
            assert [r.timestamp_ms for r in results] == [1000 * k for k in range(n)]
            windows = fit_length(
                np.stack(
                    [x[k * 32000 : (k + 1) * 32000] for k in range(n - 1)]
                    + [fit_length(x[(n - 1) * 32000 :], 32000)]
                ),
                32000,
            )
            ref.append(np.asarray(cnn6(windows, training=False)["clipwise_output"]))
            for r in results:
                (head,) = r.classifications
                assert head.head_name == "clipwise_output" and len(head.categories) == 527
                scores = np.zeros(527, np.float32)
                for c in head.categories:
                    assert c.category_name == cnn6.labels[c.index]
                    scores[c.index] = c.score
                got.append(scores)
    stats = T.common.compare_scores(np.concatenate(ref), np.stack(got))
    print(f"mediapipe {variant}: {len(got)} windows, {stats}")
    max_abs, mean_abs = T.TOLERANCES[variant]
    assert max_abs is None or stats["max_abs"] <= max_abs, stats
    assert mean_abs is None or stats["mean_abs"] <= mean_abs, stats


@pytest.mark.parametrize("cin,parts,bias", [(8, 2, True), (12, 3, False), (10, 1, True)])
def test_split_wide_convolutions(cin, parts, bias):
    """A float CONV_2D wider than the limit becomes SPLIT -> convs -> ADD, same output."""
    import keras

    inp = keras.Input((7, 5, cin), batch_size=1)
    out = keras.layers.Conv2D(6, 3, padding="same", activation="relu", use_bias=bias)(inp)
    model = keras.Model(inp, out)
    rng = np.random.default_rng(cin)
    model.set_weights([rng.standard_normal(w.shape).astype("f4") for w in model.weights])
    fn = tf.function(lambda v: model(v), input_signature=[tf.TensorSpec((1, 7, 5, cin))])
    module = tf.Module()
    module.v = [w.value for w in model.weights]
    content = tf.lite.TFLiteConverter.from_concrete_functions(
        [fn.get_concrete_function()], module
    ).convert()
    split = T.split_wide_convolutions(content, max_input_channels=4)
    ops = T.op_names(split)
    if parts == 1:  # 10 channels do not split into equal groups of at most 4: left as is
        assert split == content
    else:
        assert {"SPLIT", "ADD", "CONV_2D"} <= set(ops)
        counts = _op_list(split)
        assert counts.count("CONV_2D") == parts and counts.count("ADD") == parts - 1
    x = rng.standard_normal((1, 7, 5, cin)).astype("f4")
    got = [_run(c, x) for c in (content, split)]
    np.testing.assert_allclose(got[1], got[0], atol=1e-5 * np.abs(got[0]).max())
    np.testing.assert_allclose(got[0], np.asarray(model(x)), atol=1e-4)
    assert got[1].min() >= 0  # the fused ReLU survived the move to the last ADD


def _op_list(content):
    from tensorflow.lite.python import schema_py_generated as fb

    m = fb.ModelT.InitFromPackedBuf(bytearray(content), 0)
    names = {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_")}
    return [
        names[
            max(
                m.operatorCodes[o.opcodeIndex].builtinCode,
                m.operatorCodes[o.opcodeIndex].deprecatedBuiltinCode,
            )
        ]
        for o in m.subgraphs[0].operators
    ]


def _run(content, x):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=content)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"])


@pytest.mark.slow  # full-width Cnn14 conversion: the size is the point
def test_cnn14_float_tflite_splits_block6():
    """Cnn14's block 6 conv2 (2048 input channels) runs as two 1024-channel halves."""
    model = panns_keras.build_model("cnn14")
    content = T.convert(model, "float32", 32000)
    ops = _op_list(content)
    assert ops.count("CONV_2D") == 13 and ops.count("SPLIT") == 1
    assert len(content) < 4 * model.count_params() + 10e6  # the whole kernel (151 MB) is gone
    x = common.synthetic_windows(32000, 32000, count=1)
    got = T.TfliteRunner(content)(x)["clipwise_output"]
    np.testing.assert_allclose(
        got, np.asarray(model(x, training=False)["clipwise_output"]), atol=1e-5
    )


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


def test_readme_android_facts(cnn6, mediapipe_files):
    """Each fact the Android section of docs/deployment.md states, against files exported
    here."""
    import re

    from ai_edge_litert.interpreter import Interpreter

    docs = Path(__file__).resolve().parents[2] / "docs"
    text = (docs / "deployment.md").read_text(encoding="utf-8")
    section = text[text.index("\n## Android") :]
    section = section[: section.index("\n## ", 5)] if "\n## " in section[5:] else section
    # What to ship: the file name export writes for --formats mediapipe_int8.
    name = re.search(r"writes\s+`export/(\S+\.tflite)`", section).group(1)
    assert name == f"{cnn6.spec.name}_mediapipe_int8.tflite"
    for fmt in ("mediapipe_float16", "mediapipe_dynamic_int8"):
        assert f"`{fmt}`" in section
    # Sizes of the four MediaPipe variants, to the page's 0.1 MB.
    sizes = re.search(
        r"Measured Cnn6 sizes: float32 ([\d.]+) MB, float16 ([\d.]+) MB, "
        r"dynamic int8 ([\d.]+) MB, int8 ([\d.]+) MB",
        section,
    )
    for variant, mb in zip(T.VARIANTS, sizes.groups()):
        assert abs(mediapipe_files[variant]["bytes"] / 1e6 - float(mb)) <= 0.05, variant
    # Input: [1, 32000] for a 1 s window of a 32 kHz model; one output [1, 527] for MediaPipe.
    assert "`[1, 32000]` for a 1 s window of a 32 kHz model" in section
    it = Interpreter(model_path=mediapipe_files["int8"]["path"])
    assert it.get_input_details()[0]["shape"].tolist() == [1, 32000]
    assert [(d["name"], d["shape"].tolist()) for d in it.get_output_details()] == [
        ("clipwise_output", [1, 527])
    ]
    # Plain TFLite: output 0 clipwise_output [1, 527], output 1 embedding [1, 512] (Cnn6).
    assert (
        "output 0 `clipwise_output` `[1, 527]` and output 1 `embedding` (`[1, 512]` for Cnn6"
        in (" ".join(section.split()))
    )
    it = Interpreter(model_content=T.convert(cnn6, "float32", 32000))
    assert it.get_signature_list()["serving_default"]["outputs"] == ["clipwise_output", "embedding"]
    assert [d["shape"].tolist() for d in it.get_output_details()] == [[1, 527], [1, 512]]
    # Minimum window.
    assert "at least 0.32 s" in section
    assert cnn6.spec.min_samples / cnn6.spec.sample_rate == 0.32
