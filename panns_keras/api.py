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
                labels: list[str] | None = None, **overrides: Any):
    """Build a PANNs model by registry or reference name.

    Args:
        name: ``cnn14``, ``cnn14_decision_level_att``, or ``Cnn14_DecisionLevelAtt``.
        num_classes: output classes (527 for AudioSet).
        seed: seed for SpecAugment and dropout.
        labels: class display names in output order (kept by ``.keras`` files).
        **overrides: spec fields, e.g. ``sample_rate=16000``, ``mel_bins=128``,
            ``embedding_size=512``, ``spec_augment=False``.

    Returns:
        A built :class:`~panns_keras.models.tagger.AudioTagger` (weights created, nothing run).
    """
    from panns_keras.models.tagger import AudioTagger

    spec = apply_overrides(get_spec(name), num_classes=num_classes, **overrides)
    return AudioTagger(spec, seed=seed, labels=labels)


def load_model(path: str):
    """Load a model directory written by the converter or trainer, or a ``.keras`` file.

    The model's ``labels`` (display names) and ``label_ids`` are set in both cases.
    """
    from panns_keras.convert.model_dir import load_model_dir

    return load_model_dir(path)
