"""A built-in EfficientAT preset downloaded from a mirror on 127.0.0.1, checked, converted
and loaded by name (panns_keras/presets/table.py's EFFICIENTAT entries)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

import panns_keras
from panns_keras.presets import find

ASSETS = Path(__file__).resolve().parents[1] / "assets"
GOLDEN = ASSETS / "golden" / "efficientat"


def test_builtin_efficientat_preset_downloads_and_loads_by_name(env, server, monkeypatch):
    """``load_model("mn04_as")`` against a mirror serving the mn04 golden checkpoint (the
    released format, ``torch.save(state_dict)``) under the released file name: downloaded
    once, its sha256 recorded (none is published), converted as mn04 with the MIT licence
    in its metadata, and the golden's outputs."""
    data = (ASSETS / "ckpt" / "mn04_golden.pt").read_bytes()
    server.files["mn04_as_mAP_432.pt"] = data
    monkeypatch.setenv("PANNS_KERAS_PRESET_BASE_URL", server.base_url + "/")
    assert find("mn04_as").url == server.url("mn04_as_mAP_432.pt")

    model = panns_keras.load_model("mn04_as")
    assert model.spec.name == "mn04" and model.spec.reference == "efficientat"
    assert server.full_gets("mn04_as_mAP_432.pt") == 1
    folder = env.home / "presets" / "mn04_as"
    marker = json.loads((folder / "preset.json").read_text())
    assert marker["digests"]["sha256"] == hashlib.sha256(data).hexdigest()
    meta = json.loads((folder / "model" / "metadata.json").read_text())
    assert meta["weights_license"] == "MIT"

    z = np.load(GOLDEN / "mn04.npz")
    wave = np.load(GOLDEN / "input_32k.npz")["waveform"].astype(np.float32) / 32768
    got = np.asarray(model(wave)["clipwise_output"])
    assert np.max(np.abs(got - z["out/clipwise_output"])) <= float(z["tol/clipwise_output"])
    panns_keras.load_model("mn04_as")  # cached: no second download
    assert server.full_gets("mn04_as_mAP_432.pt") == 1
