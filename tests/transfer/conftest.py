"""Tiny transfer-learning fixtures: cnn6 at 8 kHz and real FSDD digit clips."""

import os

import numpy as np
import pytest
import soundfile as sf

import panns_keras
from panns_keras.transfer import ClipSet

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FSDD = os.path.join(ROOT, "demo_data", "fsdd", "recordings")
SR = 8000
SMALL = dict(sample_rate=SR, window_size=256, hop_size=80, fmax=4000, mel_bins=32)
DIGITS = {"0": "zero", "1": "one", "7": "seven"}
SPEAKERS = ("george", "jackson", "lucas", "nicolas")


def fsdd_files():
    """12 real clips: digits 0, 1, 7 by four speakers; fold = speaker."""
    out = []
    for d, name in DIGITS.items():
        for spk in SPEAKERS:
            out.append((os.path.join(FSDD, f"{d}_{spk}_0.wav"), name, spk))
    return out


@pytest.fixture(scope="session")
def fsdd_rows():
    return fsdd_files()


@pytest.fixture(scope="session")
def base():
    """The 'pretrained' base: a seeded random cnn6 (no checkpoint needed)."""
    return panns_keras.build_model("cnn6", num_classes=527, seed=3, **SMALL)


@pytest.fixture(scope="session")
def clips():
    names = sorted(DIGITS.values())
    waves, targets, ids, folds = [], [], [], []
    for path, label, spk in fsdd_files():
        x, sr = sf.read(path, dtype="float32")
        assert sr == SR
        w = np.zeros(SR, np.float32)
        w[: min(len(x), SR)] = x[:SR]
        waves.append(w)
        t = np.zeros(len(names), np.float32)
        t[names.index(label)] = 1
        targets.append(t)
        ids.append(os.path.splitext(os.path.basename(path))[0])
        folds.append(spk)
    return ClipSet(np.stack(waves), np.stack(targets), ids, folds,
                   [(n, n) for n in names], SR)  # fmt: skip
