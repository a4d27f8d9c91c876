"""`convert` of a genuine PANNs checkpoint and a 2-step training run, each through the command
line (the installed entry point, in a fresh interpreter): part of the smoke subset `make
test-pythons` runs under every supported Python (and `make test` under the main one)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.helpers.golden import check_outputs, load_golden
from tests.helpers.train_data import write_data

REPO = Path(__file__).resolve().parents[1]

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}


def test_convert_a_genuine_checkpoint_from_the_command_line(tmp_path):
    """The LeeNet11 torch.save file (zip format), architecture from the file name; the
    converted directory reproduces the reference's golden outputs."""
    import panns_keras

    pth = tmp_path / "LeeNet11_mAP=0.000.pth"
    pth.write_bytes((REPO / "tests/assets/ckpt/LeeNet11_golden_zip.pth").read_bytes())
    cmd = [sys.executable, "-m", "panns_keras", "convert", str(pth), "--out", "m"]
    p = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=600, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout == f"converted {pth} -> m\n"
    model = panns_keras.load_model(tmp_path / "m")
    assert model.spec.name == "leenet11"
    _, _, outputs, tols, waveform = load_golden("LeeNet11")
    check_outputs(model, outputs, tols, np.asarray(waveform), "clip")


def test_two_step_train_from_the_command_line(tmp_path):
    write_data(str(tmp_path / "data"), clips_per_class=4, sample_rate=8000, clip=8000)
    cmd = [
        sys.executable,
        "-m",
        "panns_keras",
        "train",
        "--config=demo",
        f"--config.data.train_files={tmp_path / 'data'}/*.tfrecord",
        "--config.data.num_classes=3",
        "--config.train.num_steps=2",
        "--config.train.batch_size=4",
        "--config.train.log_every=1",
        "--config.eval.every=0",
        "--config.train.image_every=0",
        f"--out={tmp_path / 'run'}",
    ]
    p = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=600, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("trained to step 2 (loss "), p.stdout
    loss = float(p.stdout.split("(loss ")[1].split(")")[0])
    assert 0.0 < loss < 5.0  # BCE of a fresh 3-class model on two batches
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["train"]["num_steps"] == 2 and saved["model"]["name"] == "cnn6"
