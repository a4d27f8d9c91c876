"""``panns-keras models``: architectures and presets, mAP, size, cached or not."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_models_lists_architectures_and_presets(tmp_path, cli, monkeypatch):
    home = tmp_path / "home"
    # a preset marked cached (as fetch() leaves it), and one of a user table
    (home / "presets" / "cnn6" / "model").mkdir(parents=True)
    (home / "presets" / "cnn6" / "model" / "config.json").write_text("{}")
    from panns_keras.presets import table

    key = table.find("cnn6").key()
    (home / "presets" / "cnn6" / "preset.json").write_text(json.dumps({"key": key}))
    user = tmp_path / "ours.json"
    user.write_text(
        json.dumps(
            {
                "ours": {
                    "url": "https://models.example.com/ours.pth",
                    "arch": "cnn14",
                    "size": 12_000_000,
                }
            }
        )
    )
    monkeypatch.setenv("PANNS_KERAS_HOME", str(home))
    monkeypatch.setenv("PANNS_KERAS_PRESETS", "")
    p = cli("models", f"--presets={user}", cwd=ROOT)
    assert p.returncode == 0, p.stderr
    lines = [line.split() for line in p.stdout.splitlines() if line.startswith("  ")]
    rows = {fields[0]: fields for fields in lines}  # a preset row comes after its architecture
    assert rows["cnn14"][:5] == ["cnn14", "cnn14", "0.431", "~327", "MB"]  # the preset row
    assert rows["cnn14"][5] == "no"
    assert rows["cnn6"][:6] == ["cnn6", "cnn6", "0.343", "~24", "MB", "yes"]
    assert rows["ours"][:6] == ["ours", "cnn14", "-", "12", "MB", "no"]
    assert rows["leenet11"][:3] == ["leenet11", "LeeNet11", "0.266"]  # an architecture row
    assert f"cache: {home}" in p.stdout
    from panns_keras.models.registry import MODEL_SPECS

    # 16 PANNs presets, the EfficientAT ones and the user's; 29 PANNs classes and EfficientAT's
    assert f"presets ({17 + len(table.EFFICIENTAT)};" in p.stdout
    assert f"architectures ({len(MODEL_SPECS)};" in p.stdout and len(MODEL_SPECS) > 29
    assert rows["mn10_as"][:5] == ["mn10_as", "mn10", "0.471", "~20", "MB"]


def test_models_help_and_listed_verb(cli):
    p = cli("models", "--help", cwd=ROOT)
    assert p.returncode == 0 and "--presets" in p.stdout and "PANNS_KERAS_HOME" in p.stdout
    top = cli("--help", cwd=ROOT)
    assert "  models " in top.stdout
