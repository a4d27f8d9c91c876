"""The package's doors to a model: build a registered one, load one by path or preset name.

Both bind the model class, :class:`~panns_keras.models.tagger.AudioTagger`, and import it
only when called, so ``import panns_keras`` stays free of Keras (a command checks its flags
before TensorFlow loads). The loading itself is
:func:`panns_keras.models.loader.load_as`, below the model class; ``AudioTagger.from_preset``
calls the same loader.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from panns_keras.data.formats import Label
from panns_keras.models.registry import list_models as _registered


def list_models() -> list[str]:
    """Registered model names (snake case)."""
    return _registered()


def build_model(
    name: str,
    num_classes: int = 527,
    *,
    seed: int | None = None,
    labels: Sequence[str | Label] | None = None,
    **overrides: Any,
):
    """Build a PANNs model by registry or reference name.

    Args:
        name: ``cnn14``, ``cnn14_decision_level_att``, or ``Cnn14_DecisionLevelAtt``.
        num_classes: output classes (527 for AudioSet).
        seed: seed for SpecAugment and dropout.
        labels: the classes in output order, display names or
            :class:`~panns_keras.data.formats.Label` objects (kept by ``.keras`` files).
        **overrides: spec fields, e.g. ``sample_rate=16000``, ``mel_bins=128``,
            ``embedding_size=512``, ``spec_augment=False``.

    Returns:
        A built :class:`~panns_keras.models.tagger.AudioTagger` (weights created, nothing run).
    """
    from panns_keras.models.saving import build
    from panns_keras.models.tagger import AudioTagger

    return build(AudioTagger, name, num_classes, seed=seed, labels=labels, **overrides)


def load_model(name_or_path, tables: list[str] | None = None):
    """Load a model directory (written by the converter, the trainer or ``save_to_preset``),
    a ``.keras`` file, or a preset by name (``"cnn14"``; ``panns-keras models`` lists them),
    downloaded, checked and converted on first use, then cached. A local path always wins
    over a name. The same as ``AudioTagger.from_preset(name_or_path)``.

    The model's ``class_labels`` (and their views ``labels``, the display names, and
    ``label_ids``) are set in every case.
    """
    from panns_keras.models.tagger import AudioTagger

    return AudioTagger.from_preset(name_or_path, tables=tables)


def resolve(name_or_path, tables: list[str] | None = None):
    """``name_or_path`` unchanged when it is a path or not a preset name; else the cached
    model of that preset, fetched and converted on first use (see
    :func:`panns_keras.models.loader.resolve`)."""
    from panns_keras.models.loader import resolve as resolve_as
    from panns_keras.models.tagger import AudioTagger

    return resolve_as(AudioTagger, name_or_path, tables)
