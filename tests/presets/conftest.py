"""Fixtures: the checkpoint server on 127.0.0.1, a fresh cache, a preset table pointing at it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from panns_keras.presets import download
from tests.helpers.checkpoint_server import CKPT, FILE, CheckpointServer


@pytest.fixture(scope="session")
def ckpt_bytes() -> bytes:
    return CKPT.read_bytes()


@pytest.fixture(scope="session")
def ckpt_sha256(ckpt_bytes) -> str:
    return hashlib.sha256(ckpt_bytes).hexdigest()


@pytest.fixture
def server(ckpt_bytes):
    s = CheckpointServer({FILE: ckpt_bytes})
    yield s
    s.stop()


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A fresh PANNS_KERAS_HOME, online, quick retries; returns a table writer."""
    home = tmp_path / "home"
    monkeypatch.setenv("PANNS_KERAS_HOME", str(home))
    monkeypatch.delenv("PANNS_KERAS_OFFLINE", raising=False)
    monkeypatch.delenv("PANNS_KERAS_PRESET_BASE_URL", raising=False)
    monkeypatch.setenv("PANNS_KERAS_DOWNLOAD_RETRIES", "3")
    monkeypatch.setenv("PANNS_KERAS_DOWNLOAD_TIMEOUT", "20")
    monkeypatch.setattr(download, "RETRY_WAIT", 0.01)

    def write_table(entries: dict, name: str = "presets.json") -> Path:
        path = tmp_path / name
        path.write_text(json.dumps({"presets": entries}))
        monkeypatch.setenv("PANNS_KERAS_PRESETS", str(path))
        return path

    write_table.home = home
    return write_table


@pytest.fixture
def tiny(server, ckpt_sha256) -> dict:
    """A preset entry for the served checkpoint (sha256 checked)."""
    return {"url": server.url(FILE), "sha256": ckpt_sha256, "arch": "leenet11", "map": 0.266}
