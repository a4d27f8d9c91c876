"""Public entry points: build_model, list_models, load_model."""

from __future__ import annotations

from typing import Any

from panns_keras.models.registry import get_spec
from panns_keras.models.registry import list_models as _list_models
from panns_keras.models.spec import apply_overrides


def list_models() -> list[str]:
    """Registered model names (snake case)."""
    return _list_models()


def build_model(name: str, num_classes: int = 527, *, seed: int | None = None,
                build: bool = True, **overrides: Any):
    """Build a PANNs model by registry or reference name.

    Args:
        name: ``cnn14``, ``cnn14_decision_level_att``, or ``Cnn14_DecisionLevelAtt``.
        num_classes: output classes (527 for AudioSet).
        seed: seed for SpecAugment and dropout.
        build: create the weights now (symbolically, nothing is run).
        **overrides: spec fields, e.g. ``sample_rate=16000``, ``mel_bins=128``,
            ``embedding_size=512``, ``spec_augment=False``.

    Returns:
        An :class:`~panns_keras.models.tagger.AudioTagger`.
    """
    from panns_keras.models.tagger import AudioTagger

    spec = apply_overrides(get_spec(name), num_classes=num_classes, **overrides)
    model = AudioTagger(spec, seed=seed)
    if build:
        model.build((None, None))
    return model


def load_model(path: str):
    """Load a model directory written by the converter or trainer, or a ``.keras`` file."""
    from panns_keras.convert.model_dir import load_model_dir

    return load_model_dir(path)
