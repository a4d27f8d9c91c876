"""A tiny teacher and its stored predictions over the training tests' shards
(``train_data.write_data``)."""

from __future__ import annotations

import os

from tests.helpers.train_data import NUM_CLASSES, SAMPLE_RATE


def tiny_teacher(model_dir: str, seed: int = 3) -> str:
    """An untrained tiny cnn6 at the test data's rate and classes, saved as a model
    directory; returns its path."""
    from panns_keras.data.formats import Label
    from panns_keras.models.build import build_model
    from panns_keras.models.saving import save_model_dir

    if not os.path.isdir(model_dir):
        model = build_model(
            "cnn6",
            num_classes=NUM_CLASSES,
            seed=seed,
            sample_rate=SAMPLE_RATE,
            window_size=256,
            hop_size=80,
            fmax=4000.0,
            mel_bins=32,
            embedding_size=32,
        )
        labels = [Label(i, f"/m/tone{i}", f"tone {i}") for i in range(NUM_CLASSES)]
        save_model_dir(model, model_dir, labels)
    return model_dir


def make_teacher(data_dir: str, out: str, model_dir: str) -> dict:
    """``panns-keras teach`` (the library call) of the tiny teacher over ``data_dir``."""
    from panns_keras.train.distill import teach

    return teach([tiny_teacher(model_dir)], data_dir, out, batch_size=8, progress=False)
