"""Inference on every model format, overlapping windows, median filter, sed_scores_eval
scores, consolidated embeddings and the public array API (issue 14)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import panns_keras
from panns_keras.audio import load_audio, resample
from panns_keras.convert.mapping import assign_state_dict
from panns_keras.errors import UserError
from panns_keras.inference import (
    InferenceEngine,
    apply_median_filter,
    median_filter_sizes,
    write_sed_scores,
)
from panns_keras.labels import audioset_labels
from panns_keras.models.saving import save_model_dir
from panns_keras.runtime import Runner, load_runner
from tests.helpers.golden import load_golden
from tests.helpers.small_models import small_sed_model

AUDIO = Path(__file__).resolve().parent / "assets" / "audio"
CLIPS = ["ovos_rooster.wav", "librosa_robin.wav", "ovos_sheep.wav"]


@pytest.fixture
def run(cli):
    """``run(*args, check_rc=0)``: ``panns-keras *args`` in-process, its exit code checked."""

    def run(*args, check_rc=0):
        p = cli(*args)
        if check_rc is not None:
            assert p.returncode == check_rc, p.stderr[-2000:]
        return p

    return run


@pytest.fixture(scope="module")
def cnn6():
    model = panns_keras.build_model("cnn6")
    assign_state_dict(model, load_golden("Cnn6")[1])
    model.labels = tuple(name for _, name in audioset_labels())
    return model


@pytest.fixture(scope="module")
def formats(cnn6, tmp_path_factory):
    """Golden Cnn6 as a model directory, a .keras file, a SavedModel and a float32 .tflite
    with a 2 s window (written by the exporters)."""
    from panns_keras.export import export_savedmodel, export_tflite

    d = tmp_path_factory.mktemp("formats")
    out = {"model_dir": save_model_dir(cnn6, d / "cnn6", audioset_labels())}
    cnn6.save(d / "cnn6.keras")
    out["keras"] = d / "cnn6.keras"
    out["savedmodel"] = export_savedmodel(cnn6, d / "savedmodel")
    out["tflite"] = Path(export_tflite(cnn6, d / "cnn6.tflite", window_seconds=2.0)["path"])
    return out


# ----------------------------------------------------------------------------- loaders
def test_tag_cli_on_every_format(cnn6, formats, run):
    """`tag --model` takes a model directory, .keras, SavedModel and .tflite alike."""
    files = [AUDIO / c for c in CLIPS]
    ref = [load_audio(f, 32000) for f in files]
    docs = {}
    for kind, path in formats.items():
        if kind == "model_dir":  # the CLI on model directories: tests/test_cli_infer.py
            docs[kind] = [
                {"labels": [{"label": n, "score": v} for n, v in r.top(3)]}
                for r in panns_keras.tag(path, files, window_seconds=2.0)
            ]
            continue
        p = run(
            "tag",
            *files,
            "--model",
            path,
            "--format",
            "json",
            "--top_k",
            "3",
            "--window_seconds",
            "2",
        )
        docs[kind] = json.loads(p.stdout)
        assert [Path(d["file"]).name for d in docs[kind]] == CLIPS
    for i, x in enumerate(ref):
        # Keras on the same 2 s windows (last one at its own length, min-padded).
        windows = [x[s : s + 64000] for s in range(0, len(x), 64000)]
        scores = np.max(
            [
                np.asarray(
                    cnn6(
                        np.pad(w, (0, max(0, cnn6.spec.min_samples - len(w))))[None], training=False
                    )["clipwise_output"]
                )[0]
                for w in windows
            ],
            axis=0,
        )
        for kind in ("model_dir", "keras", "savedmodel"):
            # A .keras file keeps the label list (AudioTagger's config), as the others do.
            assert_top(docs[kind][i]["labels"], scores, cnn6.labels, 1e-4)
        # TFLite: the last, shorter window is zero-padded to the model's fixed 2 s input.
        padded = np.stack([np.pad(w, (0, 64000 - len(w))) for w in windows])
        scores = np.asarray(cnn6(padded, training=False)["clipwise_output"]).max(axis=0)
        assert_top(docs["tflite"][i]["labels"], scores, cnn6.labels, 1e-4)
        assert docs["tflite"][i]["windows"] == len(windows)


def assert_top(got, scores, names, atol):
    """``got`` (``[{"label", "score"}]``, best first) is the top of ``scores`` within ``atol``
    (the golden-rule weights saturate many scores near 1, so near-ties may swap places)."""
    index = {n: i for i, n in enumerate(names)}
    values = [g["score"] for g in got]
    np.testing.assert_allclose(values, [scores[index[g["label"]]] for g in got], atol=atol)
    np.testing.assert_allclose(values, np.sort(scores)[::-1][: len(got)], atol=atol)


def test_load_runner_reads_labels_and_rate(formats):
    for kind, path in formats.items():
        r = load_runner(path)
        if kind != "keras":  # a .keras file holds no label list
            assert r.labels == [name for _, name in audioset_labels()], kind
        assert r.sample_rate == 32000 and r.outputs == ("clipwise_output", "embedding")
        assert r.input_samples == (64000 if kind == "tflite" else None)
    with pytest.raises(UserError, match="not a model"):
        load_runner(AUDIO)
    with pytest.raises(UserError, match="model not found"):
        load_runner(AUDIO / "nothing.tflite")


def test_embed_consolidated_npz(formats, tmp_path, run):
    files = [AUDIO / "ovos_sheep.wav", AUDIO / "missing.wav", AUDIO / "ovos_rooster.wav"]
    out = tmp_path / "emb" / "all.npz"
    p = run("embed", *files, "--model", formats["savedmodel"], "--out_npz", out, check_rc=1)
    assert "missing.wav: missing" in p.stderr
    with np.load(out) as z:
        assert list(z["ids"]) == [str(files[0]), str(files[2])]
        assert z["embeddings"].shape == (2, 512) and np.all(np.isfinite(z["embeddings"]))
        want = [sf.info(files[0]).duration, sf.info(files[2]).duration]
        np.testing.assert_allclose(z["durations"], want, atol=1e-3)
    assert sorted(os.listdir(out.parent)) == ["all.npz"]  # no temporary file left


# ----------------------------------------------------------------------------- windows
def _burst_runner(sample_rate=8000):
    """A stand-in clip model: score 1 for 'burst' when the window holds |x| > 0.5, and the
    window's mean |x| for 'level'."""

    def fn(x):
        peak = (np.abs(x).max(axis=1) > 0.5).astype(np.float32)
        level = np.abs(x).mean(axis=1).astype(np.float32)
        return {
            "clipwise_output": np.stack([peak, level], 1),
            "embedding": np.stack([peak, level, peak], 1),
        }

    return Runner(
        fn,
        "numpy",
        "stand_in",
        ["burst", "level"],
        sample_rate,
        400,
        ("clipwise_output", "embedding"),
    )


@pytest.mark.parametrize("hop", [0.25, 0.5, None])
def test_overlapping_windows_give_hop_resolution(tmp_path, hop):
    sr = 8000
    x = 0.01 * np.random.default_rng(0).standard_normal(60 * sr).astype(np.float32)
    truth = [(12.3, 14.8), (30.0, 31.1), (45.6, 45.7)]
    for on, off in truth:
        x[int(on * sr) : int(off * sr)] = 0.8
    path = tmp_path / "long.wav"
    sf.write(path, x, sr, subtype="FLOAT")
    eng = InferenceEngine(_burst_runner(sr), window_seconds=2.0, hop_seconds=hop, batch_size=4)
    from panns_keras.inference import detect_events

    ((res, events),) = detect_events(None, [path], engine=eng, threshold=0.5)
    step = hop or 2.0
    got = [(e["onset"], e["offset"]) for e in events if e["event_label"] == "burst"]
    # Boundaries on the hop grid: the segment holding the onset / offset, no wider.
    want = [(math.floor(on / step) * step, math.ceil(off / step) * step) for on, off in truth]
    assert got == pytest.approx(want)
    assert res.frame_scores_hop == step and res.frame_scores.shape == (round(60 / step), 2)
    assert len(res.window_starts) == round((60 - 2.0) / step) + 1
    np.testing.assert_allclose(np.diff(res.window_starts), step)


def test_sed_model_overlap_averages_frames(tmp_path):
    model = small_sed_model()
    x = load_audio(AUDIO / "ovos_rooster.wav", 16000)
    x = np.concatenate([x, x[::-1], x])  # 6.98 s
    a = InferenceEngine(model, window_seconds=2.0, keep_framewise=True).run([_as_source(x)])[0]
    b = InferenceEngine(model, window_seconds=2.0, hop_seconds=1.0, keep_framewise=True).run(
        [_as_source(x)]
    )[0]
    frames = 1 + len(x) // 160
    assert a.framewise.shape == b.framewise.shape == (frames, 6)
    # Frames 0-99 are seen by the first window only: the same numbers with and without hop.
    np.testing.assert_allclose(a.framewise[:100], b.framewise[:100], atol=1e-5)
    # Frames 100-199 average the windows at 0 s and 1 s.
    w1 = np.asarray(model(x[None, 16000:48000], training=False)["framewise_output"])[0]
    np.testing.assert_allclose(
        b.framewise[100:200], (a.framewise[100:200] + w1[:100]) / 2, atol=1e-5
    )


def _as_source(x):
    from panns_keras.inference import Source

    return Source(name="<array>", array=x)


def test_hop_errors():
    with pytest.raises(UserError, match="hop_seconds 3 must be"):
        InferenceEngine(_burst_runner(), window_seconds=2.0, hop_seconds=3.0)
    with pytest.raises(UserError, match="needs a window"):
        InferenceEngine(_burst_runner(), window_seconds=0, hop_seconds=1.0)


# ----------------------------------------------------------------------------- median filter
def test_median_filter_sizes_and_effect():
    labels = ["Speech", "Dog", "Child speech, kid speaking"]
    np.testing.assert_array_equal(median_filter_sizes("0.5", labels, 0.1), [5, 5, 5])
    np.testing.assert_array_equal(median_filter_sizes("4f", labels, 0.1), [5, 5, 5])  # odd
    np.testing.assert_array_equal(
        median_filter_sizes("0.3;Dog=1.0;Child speech, kid speaking=7f", labels, 0.1), [3, 11, 7]
    )
    np.testing.assert_array_equal(median_filter_sizes("Dog=0.2", labels, 0.1), [1, 3, 1])
    with pytest.raises(UserError, match="unknown class 'Cat'"):
        median_filter_sizes("Cat=1", labels, 0.1)
    with pytest.raises(UserError, match="not seconds"):
        median_filter_sizes("abc", labels, 0.1)
    s = np.zeros((20, 3), np.float32)
    s[5, :] = 1.0  # one-frame spike: removed by a 3-frame median
    s[10:14, :] = 1.0  # 4-frame event: kept by 3 and 7, removed by 11
    out = apply_median_filter(s, np.array([3, 7, 11]))
    assert out[5].tolist() == [0, 0, 0]
    np.testing.assert_array_equal(out[10:14, 0], 1)
    np.testing.assert_array_equal(out[10:14, 1], 1)
    assert out[:, 2].max() == 0
    from scipy.signal import medfilt

    r = np.random.default_rng(0).random((50, 3)).astype(np.float32)
    np.testing.assert_allclose(
        apply_median_filter(r, np.array([5, 5, 5]))[2:-2], medfilt(r, (5, 1))[2:-2]
    )


# ----------------------------------------------------------------------------- sed_scores_eval
def read_sed_scores_dir(path):
    """Parser written from sed_scores_eval's published format (``base_modules/io.py`` and
    ``utils/scores.py``: ``read_sed_scores``, ``validate_score_dataframe``,
    ``lazy_sed_scores_loader``): a directory holding only ``<audio_id>.tsv`` files; each a
    tab-separated table with a header ``onset, offset, <class>...`` (at least 3 columns),
    one row per frame, no zero-length frame, and every onset equal to the previous row's
    offset. Returns ``{audio_id: (timestamps (T + 1,), classes, scores (T, K))}``."""
    out = {}
    for f in sorted(Path(path).iterdir()):
        assert f.is_file() and f.name.endswith(".tsv"), f"not a .tsv file: {f}"
        lines = f.read_text().splitlines()
        header = lines[0].split("\t")
        assert len(header) >= 3 and header[:2] == ["onset", "offset"], header
        rows = np.array([[float(v) for v in ln.split("\t")] for ln in lines[1:]])
        assert rows.shape[1] == len(header)
        onset, offset = rows[:, 0], rows[:, 1]
        assert not (onset == offset).any(), "zero-length frame"
        assert (offset[:-1] == onset[1:]).all(), "onsets must equal the previous offsets"
        out[f.name[: -len(".tsv")]] = (np.append(onset, offset[-1]), header[2:], rows[:, 2:])
    return out


def test_sed_scores_dir_round_trip(formats, tmp_path, run):
    files = [AUDIO / "ovos_rooster.wav", AUDIO / "librosa_robin.wav"]
    scores_dir = tmp_path / "scores"
    p = run(
        "sed",
        *files,
        "--model",
        formats["tflite"],
        "--scores_dir",
        scores_dir,
        "--out_csv",
        tmp_path / "ev.tsv",
        "--hop_seconds",
        "0.5",
        "--median_filter",
        "1.0",
    )
    assert "2 score files" in p.stdout
    parsed = read_sed_scores_dir(scores_dir)
    assert sorted(parsed) == ["librosa_robin", "ovos_rooster"]
    labels = [name for _, name in audioset_labels()]
    res = panns_keras.detect_events(formats["tflite"], files, hop_seconds=0.5, median_filter="1.0")
    for r in res:
        stamps, classes, scores = parsed[Path(r.path).stem]
        assert classes == labels
        np.testing.assert_allclose(scores, r.frame_scores, atol=1e-6)
        assert stamps[0] == 0 and stamps[-1] == pytest.approx(r.duration, abs=1e-6)
        np.testing.assert_allclose(np.diff(stamps)[:-1], 0.5)
        assert len(scores) == math.ceil(r.duration / 0.5)


def test_write_sed_scores_refuses_tabs(tmp_path):
    with pytest.raises(UserError, match="tabs"):
        write_sed_scores(tmp_path / "a.tsv", np.zeros((2, 1)), 0.1, ["a\tb"])


# ----------------------------------------------------------------------------- array API
def test_array_api_at_several_rates(cnn6):
    path = AUDIO / "ovos_rooster.wav"
    ref = panns_keras.tag(cnn6, path, window_seconds=1.0)
    x = load_audio(path, 32000)
    assert ref.path == str(path) and ref.labels[0] == "Speech"
    for sr, tol in ((32000, 1e-6), (44100, 1e-3), (48000, 1e-3), (22050, 0.1)):
        y = resample(x, 32000, sr)
        got = panns_keras.tag(cnn6, y, sample_rate=sr, window_seconds=1.0)
        assert got.path == "<array 0>" and len(got.window_starts) == len(ref.window_starts)
        assert np.abs(got.clipwise - ref.clipwise).max() <= tol, sr
        top = [{"label": n, "score": v} for n, v in got.top(3)]
        assert_top(top, ref.clipwise, ref.labels, tol)
    # A 16 kHz array holds nothing above 8 kHz: the same top label, other scores move.
    y16 = resample(x, 32000, 16000)
    got = panns_keras.tag(cnn6, y16, sample_rate=16000, window_seconds=1.0)
    assert got.top(1)[0][0] == ref.top(1)[0][0]
    # Lists mix paths and arrays; a 2-D array is one clip per row.
    many = panns_keras.tag(cnn6, [path, np.stack([x[:32000], x[32000:64000]])], window_seconds=1.0)
    assert [r.path for r in many] == [str(path), "<array 0>", "<array 1>"]
    np.testing.assert_allclose(many[1].clipwise, ref.window_clipwise[0], atol=1e-5)
    emb = panns_keras.embed(cnn6, x, window_seconds=1.0, hop_seconds=0.5)
    assert emb.embedding.shape == (512,) and emb.window_embeddings.shape == (4, 512)
    with pytest.raises(UserError, match="not finite"):
        panns_keras.tag(cnn6, np.full(1000, np.nan, np.float32))
