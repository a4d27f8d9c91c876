"""Building, saving and loading models; the model directory format.

A model directory is ``model.weights.h5`` + ``config.json`` + ``labels.csv``, written by the
converter, the trainer and fine-tuning (:func:`save_model_dir`) and read by
:func:`load_model` (which also reads ``.keras`` files). Writes are atomic: everything goes to
a temporary sibling directory that is renamed (:func:`panns_keras.fileio.atomic_dir`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from panns_keras.data.formats import (
    LABELS_NAME,
    Label,
    read_labels_csv,
    to_labels,
    write_labels_csv,
)
from panns_keras.errors import UserError
from panns_keras.fileio import atomic_dir
from panns_keras.models.registry import get_spec
from panns_keras.models.registry import list_models as _registered
from panns_keras.models.spec import apply_overrides

FORMAT = "panns_keras.model_dir/2"
LEGACY_FORMATS = ("panns_keras.model_dir/1",)  # 0.1's weight layout (models/legacy.py)
WEIGHTS = "model.weights.h5"
CONFIG = "config.json"


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
    from panns_keras.models.tagger import AudioTagger

    spec = apply_overrides(get_spec(name), num_classes=num_classes, **overrides)
    return AudioTagger(spec, seed=seed, labels=labels)


def save_model_dir(model, out_dir: str | Path, labels: Iterable[Label | tuple[str, str]],
                   extra: dict[str, Any] | None = None) -> Path:  # fmt: skip
    """Save ``model`` (an AudioTagger) with its labels (Labels, or ``(mid, display_name)``
    pairs as 0.1 took them); replaces ``out_dir`` atomically."""
    out_dir = Path(out_dir)
    labels = to_labels(labels)
    if len(labels) != model.spec.num_classes:
        raise UserError(f"{len(labels)} labels for a model with {model.spec.num_classes} classes")
    with atomic_dir(out_dir) as tmp:
        model.save_weights(str(tmp / WEIGHTS))
        config = {"format": FORMAT, "model": model.spec.name, "spec": model.spec.to_dict(),
                  "labels": LABELS_NAME, **(extra or {})}  # fmt: skip
        (tmp / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
        write_labels_csv(tmp / LABELS_NAME, labels)
    return out_dir


def read_model_config(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    cfg_path = path / CONFIG
    if not path.exists():
        raise UserError(f"{path}: model not found")
    if not cfg_path.is_file():
        raise UserError(f"{path}: not a panns-keras model directory (no {CONFIG})")
    try:
        config = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{cfg_path}: not valid JSON ({e})") from None
    if config.get("format") not in (FORMAT, *LEGACY_FORMATS):
        raise UserError(f"{cfg_path}: unknown format {config.get('format')!r}")
    return config


def check_model_path(path: str | Path) -> None:
    """The path errors :func:`load_model` raises (missing, not a model directory, unreadable
    config.json), found without importing Keras: a command checks its input in one line
    before TensorFlow loads."""
    path = Path(path)
    if path.suffix == ".keras":
        if not path.is_file():
            raise UserError(f"{path}: model file not found")
        return
    read_model_config(path)


def load_model(path: str | Path):
    """Load a model directory written by the converter or trainer, or a ``.keras`` file.

    Returns a built :class:`~panns_keras.models.tagger.AudioTagger`.

    ``model.class_labels`` holds the classes (``model.labels``: their display names,
    ``model.label_ids``: their ids), in output order (a ``.keras`` file keeps those it was
    saved with). Directories written by 0.1
    (format ``panns_keras.model_dir/1``) load through :mod:`panns_keras.models.legacy`.
    """
    import keras

    from panns_keras.models.tagger import AudioTagger

    path = Path(path)
    if path.suffix == ".keras":
        check_model_path(path)
        try:
            model = keras.saving.load_model(str(path))
        except Exception as e:  # zip / Keras errors on a damaged or foreign file
            raise UserError(f"{path}: cannot load ({type(e).__name__}: {e})") from None
        if not isinstance(model, AudioTagger):
            raise UserError(f"{path}: not a panns-keras model ({type(model).__name__})")
        _compile_for_inference(model)
        return model
    config = read_model_config(path)
    weights = path / WEIGHTS
    if not weights.is_file():
        raise UserError(f"{path}: missing {WEIGHTS}")
    labels = read_labels_csv(path / config.get("labels", LABELS_NAME))
    try:
        model = AudioTagger(config["spec"], labels=labels)
    except ValueError as e:
        raise UserError(f"{path}: {e}") from None
    target = model
    if config["format"] in LEGACY_FORMATS:
        from panns_keras.models.legacy import LegacyLayout

        target = LegacyLayout(model)
    try:
        target.load_weights(str(weights))
    except Exception as e:  # h5py / Keras errors on a damaged or mismatched file
        raise UserError(f"{weights}: cannot load weights ({type(e).__name__}: {e})") from None
    _compile_for_inference(model)
    return model


def _compile_for_inference(model) -> None:
    # predict() runs XLA-compiled: on CPU it is 1.4-3x faster than TF's default kernels for
    # the CNNs here, but XLA's depthwise convolutions are ~5x slower, so not for MobileNets
    # (BUILD_NOTES.md, "Speed"). Training code compiles the model again with its own settings.
    model.compile(jit_compile=not model.spec.family.startswith("mobilenet"))
