"""Load a model for evaluation from a model directory, a training workdir or a checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import ml_collections
import tensorflow as tf

from panns_keras.errors import UserError


def _checkpoint_and_workdir(path: Path) -> tuple[str, Path]:
    if path.is_dir() and (path / "checkpoints").is_dir():
        path = path / "checkpoints"
    if path.is_dir():
        latest = tf.train.latest_checkpoint(str(path))
        if not latest:
            raise UserError(f"{path}: no checkpoint found")
        return latest, path.parent
    if Path(f"{path}.index").is_file():
        return str(path), path.parent.parent
    raise UserError(f"{path}: not a model directory, training workdir or checkpoint prefix")


def load_for_eval(path: str | Path):
    """Returns (model, display names). ``path``: model dir, workdir, checkpoints dir or
    ``.../checkpoints/ckpt-N``. For checkpoints the workdir's config.json rebuilds the model."""
    from panns_keras.models.build import load_model, resolve
    from panns_keras.models.saving import CONFIG

    path = Path(resolve(path))
    if not path.exists() and not Path(f"{path}.index").is_file():
        raise UserError(f"{path}: not found")
    if (
        path.is_dir()
        and (path / CONFIG).is_file()
        and "format" in json.loads((path / CONFIG).read_text())
    ):
        model = load_model(path)
        return model, list(model.labels)
    prefix, workdir = _checkpoint_and_workdir(path)
    cfg_path = workdir / "config.json"
    if not cfg_path.is_file():
        raise UserError(f"{cfg_path}: training config not found beside the checkpoints")
    from panns_keras.train.config import base_config
    from panns_keras.train.inputs import load_labels
    from panns_keras.train.warm_start import build_model_from_config

    config = base_config()
    config.update_from_flattened_dict(_flatten(json.loads(cfg_path.read_text())))
    config.model.disable_dropout = False
    config.train.sync_batchnorm = False
    model = build_model_from_config(config)
    tf.train.Checkpoint(model=model).restore(prefix).expect_partial()
    labels_csv = workdir / "model" / "labels.csv"
    if labels_csv.is_file():
        from panns_keras.data.formats import read_labels_csv

        labels = read_labels_csv(labels_csv)
    else:
        labels = load_labels(config)
    return model, [label.display_name for label in labels]


def trained_step(path: str | Path) -> int:
    """The training step of what ``load_for_eval(path)`` loads: a trained model directory's
    ``step``, a checkpoint's number; 0 when unknown (a converted model)."""
    from panns_keras.models.saving import CONFIG

    path = Path(path)
    if path.is_dir() and (path / CONFIG).is_file():
        config = json.loads((path / CONFIG).read_text())
        if "format" in config:
            return int(config.get("step", 0) or 0)
    prefix, _ = _checkpoint_and_workdir(path)
    number = prefix.rsplit("-", 1)[-1]
    return int(number) if number.isdigit() else 0


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def eval_data_config(pattern: str, model, batch_size: int) -> ml_collections.ConfigDict:
    """A data config for ``make_eval_dataset`` from the shards' manifest and the model."""
    from panns_keras.data.config import default_config
    from panns_keras.data.pipeline import list_files, read_manifest

    try:
        files = list_files(pattern)
    except FileNotFoundError:
        raise UserError(f"--data {pattern!r}: no TFRecord files match") from None
    c = default_config()
    c.data.eval_files = pattern
    c.data.num_classes = int(model.spec.num_classes)
    c.train.batch_size = int(batch_size)
    try:
        manifest = read_manifest(str(Path(files[0]).parent))
    except (tf.errors.NotFoundError, FileNotFoundError, json.JSONDecodeError):
        manifest = {}
    c.data.sample_rate = int(manifest.get("sample_rate", model.spec.sample_rate))
    c.data.clip_samples = int(manifest.get("clip_samples", 10 * c.data.sample_rate))
    if c.data.sample_rate != model.spec.sample_rate:
        raise UserError(
            f"--data: clips at {c.data.sample_rate} Hz, but the model runs at "
            f"{model.spec.sample_rate} Hz"
        )
    return c
