"""Small models shared by the export and inference tests (fast to build and convert)."""

from __future__ import annotations

import dataclasses

import panns_keras


def small_sed_model():
    """A narrow decision-level (attention) Cnn14 at 16 kHz with 6 classes: it has a
    ``framewise_output`` and converts to TFLite in seconds."""
    from panns_keras.models.registry import get_spec

    backbone = dataclasses.replace(
        get_spec("cnn14_decision_level_att").backbone, widths=(8, 16, 16, 32, 32, 64)
    )
    model = panns_keras.build_model(
        "cnn14_decision_level_att",
        num_classes=6,
        seed=0,
        sample_rate=16000,
        window_size=512,
        hop_size=160,
        mel_bins=32,
        fmax=8000,
        embedding_size=32,
        backbone=backbone,
    )
    model.labels = ("Speech", "Dog", "Bird", "Rooster", "Camera", "Sheep")
    return model
