"""Inference API: XLA == eager, windowing / pooling, batching, bad inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import panns_keras
from panns_keras.convert.mapping import assign_state_dict
from panns_keras.inference import (
    InferenceEngine,
    embed_files,
    events_from_framewise,
    tag_files,
)
from tests.helpers.golden import load_golden

AUDIO = Path(__file__).resolve().parent / "assets" / "audio"


@pytest.fixture(scope="module")
def cnn6():
    model = panns_keras.build_model("cnn6")
    assign_state_dict(model, load_golden("Cnn6")[1])
    return model


def test_xla_matches_eager(cnn6):
    eng = InferenceEngine(cnn6, window_seconds=2.0)
    x = np.random.default_rng(0).standard_normal((2, 64000)).astype(np.float32) * 0.1
    xla, eager = eng.predict(x), eng.predict(x, eager=True)
    for k in xla:
        np.testing.assert_allclose(xla[k], eager[k], atol=1e-5, rtol=1e-5)


def test_windows_pooling_and_batching(cnn6, tmp_path):
    sr = 32000
    x = np.random.default_rng(1).uniform(-0.3, 0.3, int(5.5 * sr)).astype(np.float32)
    long = tmp_path / "long.wav"
    sf.write(long, x, sr, subtype="FLOAT")
    short = AUDIO / "fsdd_0_george_0.wav"  # 0.3 s at 8 kHz: shorter than min_samples
    eng = InferenceEngine(cnn6, window_seconds=2.0, batch_size=2)
    both = eng.run([long, short])
    r = both[0]
    assert r.ok and r.window_clipwise.shape == (3, 527)
    np.testing.assert_allclose(r.window_starts, [0.0, 2.0, 4.0])
    np.testing.assert_allclose(r.clipwise, r.window_clipwise.max(0))
    assert r.duration == pytest.approx(5.5, abs=1e-3)
    ref = eng.predict(x[None, 2 * sr : 4 * sr], eager=True)["clipwise_output"][0]
    np.testing.assert_allclose(r.window_clipwise[1], ref, atol=1e-5)
    alone = InferenceEngine(cnn6, window_seconds=2.0, batch_size=1).run([short])[0]
    np.testing.assert_allclose(both[1].clipwise, alone.clipwise, atol=1e-5)
    assert alone.embedding.shape == (512,)


def test_framewise_concatenation(tmp_path):
    model = panns_keras.build_model("cnn14_decision_level_max", seed=0)
    sr = 32000
    path = tmp_path / "x.wav"
    sf.write(path, np.random.default_rng(2).uniform(-0.2, 0.2, 3 * sr + 5000), sr)
    eng = InferenceEngine(model, window_seconds=1.0, keep_framewise=True)
    r = eng.run([path])[0]
    # 3 full windows keep 100 frames each; the 5000-sample tail has 1 + 5000 // 320 frames
    assert r.framewise.shape == (300 + 1 + 5000 // 320, 527)
    assert r.frame_hop == pytest.approx(0.01)


def test_events_from_framewise():
    f = np.zeros((10, 2), np.float32)
    f[2:5, 0] = 0.9
    f[6:7, 0] = 0.8
    f[1:9, 1] = 0.6
    ev = events_from_framewise(f, 0.1, ["a", "b"], 0.5, min_duration=0.15, filename="x")
    assert [(e["event_label"], e["onset"], e["offset"]) for e in ev] == [
        ("b", 0.1, 0.9),
        ("a", 0.2, 0.5),
    ]
    merged = events_from_framewise(f, 0.1, ["a", "b"], 0.5, min_gap=0.15)
    assert [(e["onset"], e["offset"]) for e in merged if e["event_label"] == "a"] == [(0.2, 0.7)]


def test_formats_and_rates(cnn6):
    files = [
        "ovos_rooster.wav",
        "ovos_rooster_44k_stereo.flac",
        "librosa_robin_48k.ogg",
        "freedesktop_camera-shutter_22k.mp3",
        "ovos_sheep_24bit.wav",
        "fsdd_7_theo_0.wav",
    ]
    res = tag_files(cnn6, [AUDIO / f for f in files], window_seconds=2.0)
    assert all(r.ok for r in res), [r.error for r in res]
    # stereo FLAC at 44.1 kHz (right = 0.5 left) ~ the 32 kHz mono original, up to scale
    assert np.corrcoef(res[0].clipwise, res[1].clipwise)[0, 1] > 0.9


def test_bad_inputs(cnn6, tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not audio at all" * 10)
    nan = tmp_path / "nan.wav"
    sf.write(nan, np.full(32000, np.nan, np.float32), 32000, subtype="FLOAT")
    noframes = tmp_path / "noframes.wav"
    sf.write(noframes, np.zeros(0, np.float32), 32000)
    good = AUDIO / "ovos_rooster.wav"
    paths = [tmp_path / "missing.wav", empty, junk, nan, noframes, tmp_path, good]
    res = embed_files(cnn6, paths, window_seconds=2.0)
    reasons = [r.error for r in res]
    for r, want in zip(
        reasons,
        ["missing", "zero-length", "unreadable", "not finite", "zero-length", "is a directory"],
    ):
        assert want in r and "\n" not in r
    assert res[-1].ok and res[-1].embedding.shape == (512,)
