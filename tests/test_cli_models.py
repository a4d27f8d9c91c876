"""``panns-keras models``: architectures and presets, mAP, size, cached or not."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from warm_python import python

ROOT = Path(__file__).resolve().parents[1]


def _models(*args, env=None):
    environ = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([*python(), "-m", "panns_keras", "models", *args], cwd=ROOT,
                          env=environ, capture_output=True, text=True, timeout=120)  # fmt: skip


def test_models_lists_architectures_and_presets(tmp_path):
    home = tmp_path / "home"
    # a preset marked cached (as fetch() leaves it), and one of a user table
    (home / "presets" / "cnn6" / "model").mkdir(parents=True)
    (home / "presets" / "cnn6" / "model" / "config.json").write_text("{}")
    from panns_keras.presets import table

    key = table.find("cnn6").key()
    (home / "presets" / "cnn6" / "preset.json").write_text(json.dumps({"key": key}))
    user = tmp_path / "ours.json"
    user.write_text(json.dumps({"ours": {"url": "https://models.example.com/ours.pth",
                                         "arch": "cnn14", "size": 12_000_000}}))  # fmt: skip
    p = _models(f"--presets={user}", env={"PANNS_KERAS_HOME": str(home),
                                          "PANNS_KERAS_PRESETS": ""})  # fmt: skip
    assert p.returncode == 0, p.stderr
    lines = [line.split() for line in p.stdout.splitlines() if line.startswith("  ")]
    rows = {fields[0]: fields for fields in lines}  # a preset row comes after its architecture
    assert rows["cnn14"][:5] == ["cnn14", "cnn14", "0.431", "~327", "MB"]  # the preset row
    assert rows["cnn14"][5] == "no"
    assert rows["cnn6"][:6] == ["cnn6", "cnn6", "0.343", "~24", "MB", "yes"]
    assert rows["ours"][:6] == ["ours", "cnn14", "-", "12", "MB", "no"]
    assert rows["leenet11"][:3] == ["leenet11", "LeeNet11", "0.266"]  # an architecture row
    assert f"cache: {home}" in p.stdout
    assert "presets (17;" in p.stdout and "architectures (29;" in p.stdout


def test_models_help_and_listed_verb():
    p = _models("--help")
    assert p.returncode == 0 and "--presets" in p.stdout and "PANNS_KERAS_HOME" in p.stdout
    top = subprocess.run([*python(), "-m", "panns_keras", "--help"], cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                         text=True)  # fmt: skip
    assert "  models " in top.stdout
