"""CLI tag / sed / embed on real clips, bad inputs, and a 30-minute recording (peak RSS)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import panns_keras
from panns_keras.convert.mapping import assign_state_dict
from panns_keras.labels import audioset_labels
from panns_keras.models.registry import get_spec
from panns_keras.models.saving import save_model_dir
from tests.helpers.golden import load_golden

AUDIO = Path(__file__).resolve().parent / "assets" / "audio"
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
# Peak RSS allowed for tagging a 30-minute file: measured 1054 MB with the narrow 32 kHz Cnn14
# used here (session 6; ~1.0 GB with MobileNetV1 before). A decoded 30-min 32 kHz float32
# signal alone is 230 MB, so loading the file whole would exceed this bound.
MAX_RSS_MB = 1250


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    model = panns_keras.build_model("cnn6")
    assign_state_dict(model, load_golden("Cnn6")[1])
    return save_model_dir(model, tmp_path_factory.mktemp("models") / "cnn6", audioset_labels())


@pytest.fixture
def run(cli):
    """``run(*args, check_rc=None)``: ``panns-keras *args`` in-process, its exit code checked."""

    def run(*args, check_rc=None):
        p = cli(*args)
        if check_rc is not None:
            assert p.returncode == check_rc, p.stderr[-2000:]
        return p

    return run


def test_tag_formats_and_errors(model_dir, tmp_path, run):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    nan = tmp_path / "nan.wav"
    sf.write(nan, np.full(8000, np.nan, np.float32), 16000, subtype="FLOAT")
    files = [
        AUDIO / "ovos_rooster_44k_stereo.flac",
        AUDIO / "librosa_robin_48k.ogg",
        AUDIO / "fsdd_1_jackson_0.wav",
        tmp_path / "missing.wav",
        empty,
        nan,
        tmp_path,
    ]
    p = run(
        "tag",
        *files,
        "--model",
        model_dir,
        "--format",
        "json",
        "--top_k",
        "3",
        "--window_seconds",
        "2",
        check_rc=1,
    )
    doc = json.loads(p.stdout)
    assert [Path(d["file"]).name for d in doc] == [f.name for f in files[:3]]
    assert all(len(d["labels"]) == 3 for d in doc)
    errors = [line for line in p.stderr.splitlines() if "error:" in line]
    assert len(errors) == 4
    # missing, empty files and directories are reported before the model loads
    for line, want in zip(errors, ["missing", "zero-length", "is a directory", "not finite"]):
        assert want in line and "Traceback" not in p.stderr
    p = run(
        "tag",
        AUDIO / "ovos_rooster.wav",
        "--model",
        model_dir,
        "--format",
        "csv",
        "--top_k",
        "2",
        check_rc=0,
    )
    assert p.stdout.splitlines()[0] == "file,rank,label,score" and len(p.stdout.splitlines()) == 3
    p = run("tag", AUDIO / "ovos_rooster.wav", check_rc=2)  # usage: a required flag is missing
    assert "--model" in p.stderr


def test_sed_csv_and_plot(tmp_path, run):
    model = panns_keras.build_model("cnn14_decision_level_max", seed=0)
    labels = audioset_labels()
    d = save_model_dir(model, tmp_path / "sed_model", labels)
    out_tsv, png = tmp_path / "ev.tsv", tmp_path / "sed.png"
    run(
        "sed",
        AUDIO / "ovos_rooster.wav",
        "--model",
        d,
        "--out_tsv",
        out_tsv,
        "--plot",
        png,
        "--threshold",
        "0.3",
        "--window_seconds",
        "1",
        check_rc=0,
    )
    rows = [r.split("\t") for r in out_tsv.read_text().splitlines()]
    assert rows[0] == ["filename", "onset", "offset", "event_label", "score"]
    names = {n for _, n in labels}
    for r in rows[1:]:
        assert r[0] == "ovos_rooster.wav" and 0 <= float(r[1]) < float(r[2]) <= 2.33
        assert r[3] in names
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_embed(model_dir, tmp_path, run):
    out = tmp_path / "emb"
    run(
        "embed",
        AUDIO / "ovos_sheep.wav",
        AUDIO / "freedesktop_camera-shutter_22k.mp3",
        "--model",
        model_dir,
        "--out",
        out,
        "--window_embeddings",
        check_rc=0,
    )
    e = np.load(out / "ovos_sheep.npy")
    assert e.shape == (512,) and np.all(np.isfinite(e))
    assert np.load(out / "freedesktop_camera-shutter_22k.windows.npy").shape == (1, 512)


def test_thirty_minute_recording_bounded_memory(tmp_path):
    sr, minutes = 8000, 30
    path = tmp_path / "long.wav"
    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", sr, 1, subtype="PCM_16") as f:
        for _ in range(minutes):
            t = np.arange(60 * sr) / sr
            f.write(0.2 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size))
    # A narrow Cnn14 at 32 kHz: the 32 kHz front end and the windowing engine are what this
    # measures, not the width of the convolutions.
    backbone = dataclasses.replace(get_spec("cnn14").backbone, widths=(8, 16, 16, 32, 32, 64))
    model = panns_keras.build_model("cnn14", seed=0, embedding_size=32, backbone=backbone)
    d = save_model_dir(model, tmp_path / "narrow", audioset_labels())
    code = (
        "import resource, subprocess, sys\n"
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        "print(p.stdout)\n"
    )
    p = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            sys.executable,
            "-m",
            "panns_keras",
            "tag",
            str(path),
            "--model",
            str(d),
            "--format",
            "json",
            "--batch_size",
            "4",
        ],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=600,
    )
    head, body = p.stdout.split("\n", 1)
    rc, rss_kb = map(int, head.split())
    assert rc == 0, p.stdout
    doc = json.loads(body)
    assert doc[0]["windows"] == minutes * 6 and doc[0]["duration"] == pytest.approx(1800, abs=0.1)
    print(f"peak RSS tagging a {minutes}-minute file: {rss_kb / 1024:.0f} MB")
    assert rss_kb / 1024 < MAX_RSS_MB
