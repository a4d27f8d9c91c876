"""HEAR 2021 API contract (shapes, timestamps, input rate) on a small convnet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf
from scipy.signal import resample_poly

import panns_keras
from panns_keras import hear
from panns_keras.errors import UserError

AUDIO = Path(__file__).resolve().parent / "assets" / "audio"
LABELS = [("a", "A"), ("b", "B"), ("c", "C")]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from panns_keras.models.saving import save_model_dir

    m = panns_keras.build_model("cnn6", num_classes=3, seed=0)
    return save_model_dir(m, tmp_path_factory.mktemp("m") / "cnn6", LABELS)


@pytest.fixture(scope="module")
def model(model_dir):
    return hear.load_model(str(model_dir))


@pytest.fixture(scope="module")
def robin():
    x, sr = sf.read(AUDIO / "librosa_robin_48k.ogg", dtype="float32")
    assert sr == 48000
    return x if x.ndim == 1 else x.mean(axis=1)


def test_attributes(model):
    # A 32 kHz model takes 48 kHz audio: hear-validator 2021.0.2 accepts only these rates.
    assert isinstance(model, tf.Module)
    assert model.sample_rate == 48000 and model.sample_rate in hear.VALIDATOR_SAMPLE_RATES
    assert model.model.spec.sample_rate == 32000
    assert isinstance(model.scene_embedding_size, int) and model.scene_embedding_size == 512
    assert isinstance(model.timestamp_embedding_size, int)
    assert model.timestamp_embedding_size == 512


def test_input_rate_choice(model_dir, monkeypatch):
    assert hear.load_model(str(model_dir), sample_rate=32000).sample_rate == 32000
    monkeypatch.setenv(hear.RATE_ENV, "32000")
    assert hear.load_model(str(model_dir)).sample_rate == 32000
    monkeypatch.setenv(hear.RATE_ENV, "fast")
    with pytest.raises(UserError, match=hear.RATE_ENV):
        hear.load_model(str(model_dir))
    m16 = panns_keras.build_model(
        "cnn6", num_classes=3, seed=0, sample_rate=16000, window_size=512, hop_size=160, fmax=8000
    )
    assert hear.HearModel(m16).sample_rate == 16000  # accepted rate: used as is


@pytest.mark.parametrize("rates", [(48000, 32000), (44100, 32000), (16000, 32000), (32000, 16000)])
def test_resampler_matches_scipy(robin, rates):
    a, b = rates
    g = np.gcd(a, b)
    r = hear.Resampler(a, b)
    for x in (np.stack([robin[:40000], robin[5000:45000]]), robin[None, :7], robin[None, :1]):
        got = r(x).numpy()
        ref = resample_poly(x, b // g, a // g, axis=1)
        assert got.shape == ref.shape
        np.testing.assert_allclose(got, ref, atol=1e-6)  # measured <= 1.2e-7


def test_scene_embedding_of_48k_audio_matches_model_rate(model, robin):
    # The in-graph resampler stands in for resampling the file before the model.
    x = robin[None, :96000]
    emb = hear.get_scene_embeddings(tf.constant(x), model).numpy()
    ref = model.model(resample_poly(x, 2, 3, axis=1).astype(np.float32))["embedding"]
    np.testing.assert_allclose(emb, np.asarray(ref), atol=1e-4, rtol=1e-4)
    assert np.abs(emb).max() > 1e-3


def test_scene_embeddings(model):
    audio = tf.random.uniform((3, 60000), -0.5, 0.5, seed=0)
    emb = hear.get_scene_embeddings(audio, model)
    assert emb.shape == (3, model.scene_embedding_size) and emb.dtype == tf.float32
    short = hear.get_scene_embeddings(tf.zeros((2, 500)), model)  # padded to min length
    assert short.shape == (2, 512)


@pytest.mark.parametrize("seconds", [1.0, 2.5])
def test_timestamp_embeddings(model, seconds):
    n = int(seconds * model.sample_rate)
    audio = tf.random.uniform((2, n), -0.5, 0.5, seed=1)
    emb, ts = hear.get_timestamp_embeddings(audio, model)
    assert emb.shape[0] == 2 and emb.shape[2] == model.timestamp_embedding_size
    assert emb.dtype == tf.float32
    assert ts.shape == emb.shape[:2]
    ts = ts.numpy()
    hop = np.diff(ts, axis=1)
    assert np.all(hop > 0) and np.allclose(hop, model.timestamp_hop_ms)  # consistent hop
    assert model.timestamp_hop_ms == 160.0  # cnn6: 320 samples * 16 / 32 kHz
    assert np.allclose(ts[:, 0], model.timestamp_hop_ms / 2)  # centred frames
    assert ts[0, -1] <= 1000 * seconds  # every timestamp inside the sound
    assert np.array_equal(ts[0], ts[1])
