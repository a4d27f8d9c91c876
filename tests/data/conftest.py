"""Shared helpers for the data tests (assets live in tests/assets/audio)."""

import os

import pytest

ASSETS = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets", "audio"
)


@pytest.fixture
def assets_dir():
    return ASSETS
