"""Front end, SpecAugment, mixup and serialization of the custom layers and models."""

from pathlib import Path

import keras
import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf

import panns_keras
from panns_keras.models.layers import LogMelSpectrogram, SpecAugment, do_mixup
from tests.helpers.golden import load_golden
from tests.helpers.narrow import narrow_model

FRONTEND_CLIPS = Path(__file__).parents[1] / "assets" / "frontend"
# sample rate -> (window, hop, fmax) as the reference variants
SETTINGS = {32000: (1024, 320, 14000), 16000: (512, 160, 8000), 8000: (256, 80, 4000)}


@pytest.mark.parametrize("reference", ["Cnn14", "Cnn14_16k", "Cnn14_8k", "Cnn14_mel128"])
def test_logmel_matches_golden(reference):
    meta, _, outputs, tols, waveform = load_golden(reference)
    c = meta["config"]
    layer = LogMelSpectrogram(
        c["sample_rate"], c["window_size"], c["hop_size"], c["mel_bins"], c["fmin"], c["fmax"]
    )
    got = np.asarray(layer(waveform))
    assert got.shape == outputs["logmel"].shape
    assert np.max(np.abs(got - outputs["logmel"])) <= tols["logmel"]


@pytest.mark.parametrize("window,hop", [(1024, 320), (512, 160), (256, 80), (64, 64), (30, 40)])
@pytest.mark.parametrize("length", [0, 1, 319, 320, 3201])
def test_frames_are_the_strided_windows(window, hop, length):
    """The reshape framing equals x[t * hop : t * hop + window], also with unknown length."""
    layer = LogMelSpectrogram(32000, window, hop, 8, 50, 14000)
    padded = np.random.default_rng(length).standard_normal((2, length + window)).astype("f4")
    frames_num = 1 + length // hop
    want = np.stack([padded[:, t * hop : t * hop + window] for t in range(frames_num)], 1)
    np.testing.assert_array_equal(np.asarray(layer.frames(padded, length)), want)
    fn = tf.function(
        lambda v, n: layer.frames(v, n),
        input_signature=[tf.TensorSpec([None, None]), tf.TensorSpec([], tf.int32)],
    )
    np.testing.assert_array_equal(fn(padded, length).numpy(), want)


@pytest.mark.parametrize("path", sorted(FRONTEND_CLIPS.glob("*.wav")), ids=lambda p: p.name)
def test_logmel_matches_librosa_on_real_clips(path):
    librosa = pytest.importorskip("librosa")
    x, sr = sf.read(path, dtype="float32")
    window, hop, fmax = SETTINGS[sr]
    mel = librosa.feature.melspectrogram(
        y=x.astype(np.float64),
        sr=sr,
        n_fft=window,
        hop_length=hop,
        window="hann",
        center=True,
        pad_mode="reflect",
        power=2.0,
        n_mels=64,
        fmin=50,
        fmax=fmax,
        htk=False,
        norm="slaney",
    )
    ref = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None).T
    got = np.asarray(LogMelSpectrogram(sr, window, hop, 64, 50, fmax)(x[None]))[0]
    assert got.shape == ref.shape == (1 + len(x) // hop, 64)
    assert np.max(np.abs(got - ref)) <= 2e-3


def test_mel_matrix_matches_librosa():
    librosa = pytest.importorskip("librosa")
    for sr, (window, _, fmax) in SETTINGS.items():
        for mels in (32, 64, 128):
            ref = librosa.filters.mel(sr=sr, n_fft=window, n_mels=mels, fmin=50, fmax=fmax).T
            layer = LogMelSpectrogram(sr, window, window // 4, mels, 50, fmax)
            np.testing.assert_allclose(layer.mel_matrix, ref, atol=1e-8)


def test_logmel_silence_floor_and_float32_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = panns_keras.build_model("cnn6", num_classes=3)
        out = model(np.zeros((1, 32000), "float32"), return_intermediates=True)
        assert all(v.dtype == "float32" for v in out.values())
        np.testing.assert_array_equal(np.asarray(out["logmel"]), -100.0)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_specaugment_identity_at_inference_and_bounds_in_training():
    layer = SpecAugment(
        time_drop_width=64, time_stripes_num=2, freq_drop_width=8, freq_stripes_num=2, seed=3
    )
    x = np.random.default_rng(0).normal(1.0, 0.1, (64, 501, 64)).astype("float32") + 5
    np.testing.assert_array_equal(np.asarray(layer(x)), x)
    np.testing.assert_array_equal(np.asarray(layer(x, training=False)), x)
    y = np.asarray(layer(x, training=True))
    zero = y == 0
    time_zero = zero.all(axis=2)  # whole frames dropped
    freq_zero = zero.all(axis=1)  # whole bins dropped
    # every zero is inside a dropped frame or bin (masks are stripes, nothing else)
    assert np.array_equal(zero, time_zero[:, :, None] | freq_zero[:, None, :])
    # per-example masks differ, and at most 2 stripes of < 64 frames / < 8 bins
    assert len({tuple(r) for r in time_zero}) > 1
    assert time_zero.sum(axis=1).max() <= 2 * 63 and freq_zero.sum(axis=1).max() <= 2 * 7
    assert time_zero.sum() > 0 and freq_zero.sum() > 0
    for row in freq_zero:  # stripes are contiguous runs of width <= 7 (two may merge: <= 14)
        runs = np.diff(np.flatnonzero(np.diff(np.r_[0, row.astype(int), 0])))[::2]
        assert all(r <= 14 for r in runs)


def test_specaugment_seeded_and_in_tf_function():
    x = np.ones((4, 100, 64), "float32")
    a = np.asarray(SpecAugment(seed=7)(x, training=True))
    b = np.asarray(SpecAugment(seed=7)(x, training=True))
    np.testing.assert_array_equal(a, b)
    layer = SpecAugment(seed=7)
    fn = tf.function(lambda t: layer(t, training=True), jit_compile=True)
    c = np.asarray(fn(x))
    assert ((c == 0).mean() > 0) and ((c == 0).mean() < 0.6)


def test_do_mixup_reference_layout():
    x = np.arange(8, dtype="float32").reshape(4, 2)
    lam = np.array([0.3, 0.7, 1.0, 0.0], "float32")
    out = np.asarray(do_mixup(x, lam))
    np.testing.assert_allclose(out, [0.3 * x[0] + 0.7 * x[1], x[2]])


def test_model_mixup_halves_batch():
    model = panns_keras.build_model("cnn6", num_classes=5, seed=0)
    lam = np.array([0.5, 0.5, 0.2, 0.8], "float32")
    out = model(np.zeros((4, 16000), "float32"), training=True, mixup_lambda=lam)
    assert out["clipwise_output"].shape == (2, 5)


def test_layer_config_round_trip():
    for layer in (
        LogMelSpectrogram(16000, 512, 160, 32, 20, 7000),
        SpecAugment(32, 1, 4, 3, seed=1),
    ):
        clone = type(layer).from_config(layer.get_config())
        assert clone.get_config() == layer.get_config()
    x = np.random.default_rng(0).normal(size=(2, 8000)).astype("float32")
    layer = LogMelSpectrogram(16000, 512, 160, 32, 20, 7000)
    clone = LogMelSpectrogram.from_config(layer.get_config())
    np.testing.assert_array_equal(np.asarray(layer(x)), np.asarray(clone(x)))


@pytest.mark.parametrize(
    "name",
    [
        "cnn6",
        "resnet22",
        "mobilenet_v1",
        "mobilenet_v2",
        "leenet24",
        "dainet19",
        "res1dnet31",
        "cnn14_decision_level_att",
        "wavegram_cnn14",
        "wavegram_logmel_cnn14",
    ],
)
def test_keras_file_round_trip(name, tmp_path):
    labels = [f"sound {i}" for i in range(7)]
    model = narrow_model(name, num_classes=7, seed=1, labels=labels)
    for i, v in enumerate(model.weights):  # non-trivial BN statistics and weights
        v.assign(np.random.default_rng(i).normal(0.5, 0.1, v.shape).astype(v.dtype))
    x = np.random.default_rng(1).normal(0, 0.1, (2, 32000)).astype("float32")
    ref = model(x)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = panns_keras.load_model(path)
    assert loaded.labels == tuple(labels) and loaded.spec == model.spec
    out = loaded(x)
    assert set(out) == set(ref)
    for k in ref:
        np.testing.assert_array_equal(np.asarray(out[k]), np.asarray(ref[k]))
    # SpecAugment / dropout are identity at inference: repeated calls agree exactly.
    np.testing.assert_array_equal(
        np.asarray(loaded(x)["clipwise_output"]), np.asarray(ref["clipwise_output"])
    )
