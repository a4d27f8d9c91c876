"""The model directory format, below the model classes (it imports none: they are passed).

A model directory (a keras-hub style preset folder) is ``model.weights.h5`` + ``config.json``
+ ``labels.csv`` + ``metadata.json``, written by the converter, the trainer, fine-tuning and
``AudioTagger.save_to_preset`` (:func:`save_model_dir`) and read by
:func:`panns_keras.models.loader.load_as`. Folders without ``metadata.json`` (written before
it) load the same. Writes are atomic: everything goes to a temporary sibling directory that is
renamed (:func:`panns_keras.fileio.atomic_dir`).
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from panns_keras.data.formats import (
    LABELS_NAME,
    Label,
    to_labels,
    write_labels_csv,
)
from panns_keras.errors import UserError
from panns_keras.fileio import atomic_dir
from panns_keras.models.registry import get_spec
from panns_keras.models.spec import apply_overrides

FORMAT = "panns_keras.model_dir/2"
LEGACY_FORMATS = ("panns_keras.model_dir/1",)  # 0.1's weight layout (models/legacy.py)
WEIGHTS = "model.weights.h5"
CONFIG = "config.json"
METADATA = "metadata.json"  # versions, parameter count, date, source and licence (optional)
# The licence of the released PANNs checkpoints (Zenodo record 3987831).
PANNS_LICENSE = "CC-BY-4.0"


def build(
    cls,
    name: str,
    num_classes: int = 527,
    *,
    seed: int | None = None,
    labels: Sequence[str | Label] | None = None,
    **overrides: Any,
):
    """A ``cls`` (an AudioTagger class) of registered model ``name`` with spec ``overrides``
    (see :func:`panns_keras.build_model`, which passes ``AudioTagger``)."""
    spec = apply_overrides(get_spec(name), num_classes=num_classes, **overrides)
    return cls(spec, seed=seed, labels=labels)


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def model_metadata(model, source: str | None = None, license: str | None = None) -> dict:
    """What ``metadata.json`` records of ``model``: versions, parameter count, date, the
    source and licence of its weights, sample rate and class count."""
    import keras

    return {
        "keras_version": keras.__version__,
        "keras_backend": keras.backend.backend(),
        "panns_keras_version": _version("panns-keras"),
        "model": model.spec.name,
        "class": keras.saving.get_registered_name(type(model)),
        "parameter_count": int(model.count_params()),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "weights_source": source,
        "weights_license": license,
        "sample_rate": int(model.spec.sample_rate),
        "num_classes": int(model.spec.num_classes),
    }


def read_metadata(path: str | Path) -> dict | None:
    """``metadata.json`` of model directory ``path`` (None for folders written before it)."""
    meta = Path(path) / METADATA
    if not meta.is_file():
        return None
    try:
        return json.loads(meta.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{meta}: not valid JSON ({e})") from None


def save_model_dir(
    model,
    out_dir: str | Path,
    labels: Iterable[Label | tuple[str, str]],
    extra: dict[str, Any] | None = None,
    *,
    source: str | None = None,
    license: str | None = None,
) -> Path:
    """Save ``model`` (an AudioTagger) with its labels (Labels, or ``(mid, display_name)``
    pairs as 0.1 took them) and ``metadata.json`` (``source`` and ``license``: where its
    weights come from and under which licence); replaces ``out_dir`` atomically."""
    out_dir = Path(out_dir)
    labels = to_labels(labels)
    if len(labels) != model.spec.num_classes:
        raise UserError(f"{len(labels)} labels for a model with {model.spec.num_classes} classes")
    meta = model_metadata(model, source, license)
    with atomic_dir(out_dir) as tmp:
        model.save_weights(str(tmp / WEIGHTS))
        config = {
            "format": FORMAT,
            "model": model.spec.name,
            "spec": model.spec.to_dict(),
            "labels": LABELS_NAME,
            **(extra or {}),
        }
        (tmp / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
        write_labels_csv(tmp / LABELS_NAME, labels)
        (tmp / METADATA).write_text(json.dumps(meta, indent=2) + "\n")
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
    """The path errors :func:`load_as` raises (missing, not a model directory, unreadable
    config.json), found without importing Keras: a command checks its input in one line
    before TensorFlow loads."""
    path = Path(path)
    if path.suffix == ".keras":
        if not path.is_file():
            raise UserError(f"{path}: model file not found")
        return
    read_model_config(path)
