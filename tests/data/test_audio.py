import os
import pathlib

import numpy as np
import pytest
import soundfile as sf
import soxr

from panns_keras import audio


def _sf_reference(path, sr):
    x, orig = sf.read(path, dtype="float32", always_2d=True)
    x = x.mean(axis=1)
    if orig != sr:
        x = soxr.resample(x, orig, sr, quality="VHQ")
    return x.astype(np.float32)


@pytest.mark.parametrize(
    "name",
    [
        "ovos_sheep.wav",
        "ovos_sheep_24bit.wav",
        "ovos_rooster_44k_stereo.flac",
        "librosa_robin_48k.ogg",
        "freedesktop_camera-shutter_22k.mp3",
        "fsdd_0_george_0.wav",
    ],
)
def test_load_audio_matches_soundfile_and_soxr(assets_dir, name):
    path = os.path.join(assets_dir, name)
    x = audio.load_audio(path, 32000)
    assert x.dtype == np.float32 and x.ndim == 1
    ref = _sf_reference(path, 32000)
    np.testing.assert_allclose(x, ref, atol=1e-6)
    frames, sr = audio.audio_info(path)
    assert abs(len(x) - frames * 32000 / sr) <= 1


def test_stereo_downmix_is_channel_mean(assets_dir):
    path = os.path.join(assets_dir, "ovos_rooster_44k_stereo.flac")
    x = audio.load_audio(path, 44100)
    st, _ = sf.read(path, dtype="float32")
    np.testing.assert_allclose(x, st.mean(axis=1), atol=1e-7)
    # right channel is 0.5 x left, so the mean is 0.75 x left
    np.testing.assert_allclose(x, 0.75 * st[:, 0], atol=1e-4)


def test_24bit_equals_16bit_source(assets_dir):
    a = audio.load_audio(os.path.join(assets_dir, "ovos_sheep.wav"), 32000)
    b = audio.load_audio(os.path.join(assets_dir, "ovos_sheep_24bit.wav"), 32000)
    np.testing.assert_allclose(a, b, atol=1e-6)


def _write_random(path):
    with open(path, "wb") as f:
        f.write(np.random.default_rng(0).bytes(4000))


def _write_nan_wav(path):
    x = np.zeros(100, np.float32)
    x[10] = np.nan
    sf.write(path, x, 16000, subtype="FLOAT")


@pytest.mark.parametrize(
    "make,reason",
    [
        (lambda p: None, "missing"),
        (lambda p: pathlib.Path(p).write_bytes(b""), "zero-length"),
        (_write_random, "unreadable"),
        (_write_nan_wav, "not finite"),
        (lambda p: sf.write(p, np.zeros((0,), np.float32), 16000), "zero-length"),
        (os.mkdir, "is a directory"),
    ],
)
def test_audio_errors(tmp_path, make, reason):
    path = str(tmp_path / "bad.wav")
    make(path)
    with pytest.raises(audio.AudioError) as info:
        audio.load_audio(path, 32000)
    err = info.value
    assert err.reason == reason and err.path == path
    text = str(err)
    assert text.startswith(f"{path}: {reason}") and "\n" not in text
    with pytest.raises(audio.AudioError) as info2:
        list(audio.read_audio_blocks(path, 32000, 0.01))
    assert info2.value.reason == reason


@pytest.mark.parametrize("name", ["ovos_rooster_44k_stereo.flac", "ovos_sheep.wav"])
def test_read_audio_blocks_concatenates_to_load_audio(assets_dir, name):
    path = os.path.join(assets_dir, name)
    full = audio.load_audio(path, 32000)
    blocks = list(audio.read_audio_blocks(path, 32000, block_seconds=0.25))
    assert len(blocks) > 3
    assert max(len(b) for b in blocks) <= 0.25 * 32000 + 2000
    joined = np.concatenate(blocks)
    assert abs(len(joined) - len(full)) <= 1
    n = min(len(joined), len(full))
    np.testing.assert_allclose(joined[:n], full[:n], atol=2e-4)


def test_resampler_accuracy():
    # 1 kHz + 7 kHz sines at 44.1 kHz -> 32 kHz vs the analytic signal (edges excluded).
    t_in = np.arange(44100 * 2) / 44100
    t_out = np.arange(32000 * 2) / 32000

    def sig(t):
        return 0.5 * np.sin(2 * np.pi * 1000 * t) + 0.25 * np.sin(2 * np.pi * 7000 * t + 0.3)

    y = audio.resample(sig(t_in).astype(np.float32), 44100, 32000)
    err = np.abs(y - sig(t_out))[1000:-1000].max()
    assert err < 1e-4, err
    # 32k -> 16k -> 32k round trip of a band-limited (< 7 kHz) signal
    x = (0.5 * np.sin(2 * np.pi * 440 * t_out) + 0.3 * np.sin(2 * np.pi * 5000 * t_out)).astype(
        np.float32
    )
    rt = audio.resample(audio.resample(x, 32000, 16000), 16000, 32000)
    assert np.abs(rt - x)[1000:-1000].max() < 1e-4


def test_resample_identity_and_empty():
    x = np.arange(10, dtype=np.float32)
    assert audio.resample(x, 32000, 32000) is not None
    np.testing.assert_array_equal(audio.resample(x, 32000, 32000), x)
    assert audio.resample(np.zeros(0, np.float32), 8000, 32000).shape == (0,)


def test_audio_error_pickles():
    import pickle

    e = pickle.loads(pickle.dumps(audio.AudioError("/x.wav", "unreadable", "bad\nheader")))
    assert (e.path, e.reason, str(e)) == (
        "/x.wav",
        "unreadable",
        "/x.wav: unreadable: bad header",
    )
