"""A PyTorch checkpoint (PANNs, EfficientAT) -> a model of a given class, or its model directory.

Below the model classes: the class is passed down (``cls``: the class, or a function
returning it, called only once the checks pass), as keras-hub's loaders take it.
:mod:`panns_keras.convert.converter` binds ``AudioTagger`` for the ``convert`` verb and
callers; :mod:`panns_keras.models.loader` passes its own class for presets.

The checks a user's mistake fails (no such file, not a checkpoint, an architecture the file
name does not tell) run before Keras is imported, so they answer in a fraction of a second.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from absl import logging

from panns_keras.convert.torch_format import CheckpointError, load_state_dict_from_checkpoint
from panns_keras.data.formats import read_labels_csv
from panns_keras.errors import UserError
from panns_keras.labels import audioset
from panns_keras.models.registry import (
    canonical_name,
    checkpoint_overrides,
    infer_model_name,
    list_models,
)

PANNS_CLIP_SECONDS = 10.0  # AudioSet clips, the length every PANNs checkpoint was trained on


def _num_classes(state_dict) -> int | None:
    # PANNs heads, then EfficientAT's mlp (classifier.5) and fully-convolutional (classifier.0)
    heads = ("fc_audioset", "att_block.cla", "classifier.5", "classifier.0")
    for key in (f"{head}.weight" for head in heads):
        if key in state_dict:
            return int(state_dict[key].shape[0])
    return None


def load_checkpoint_into_model(path: str | Path, model_name: str | None = None, *, cls):
    """Read ``path`` and return a ``cls`` (an AudioTagger class) holding its weights (strict,
    exact). The class is passed down: this module sits below the model classes.

    Raises:
        UserError: unreadable checkpoint, unknown model, or weights that do not fit.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: checkpoint not found")
    if path.is_dir():
        raise UserError(f"{path}: is a directory, not a checkpoint file")
    try:
        name = canonical_name(model_name) if model_name else infer_model_name(path.name)
    except KeyError as e:
        if model_name:
            raise UserError(f"--arch {model_name}: {e.args[0]}") from None
        raise UserError(
            f"{path.name}: cannot infer the architecture from the file name; pass "
            f"--arch (one of: {', '.join(list_models())})"
        ) from None
    try:
        state_dict, extra = load_state_dict_from_checkpoint(path)
    except CheckpointError as e:
        raise UserError(str(e)) from None
    # Keras (and its backend) only now: every check above answers without it.
    cls = cls if isinstance(cls, type) else cls()
    from panns_keras.convert.mapping import ConversionError, assign_state_dict
    from panns_keras.models.saving import build

    num_classes = _num_classes(state_dict) or 527
    # The released PANNs checkpoints were trained on 10 s AudioSet clips.
    # (EfficientAT's released AudioSet checkpoints were trained on the same clips.)
    overrides = checkpoint_overrides(path.name, name)
    model = build(cls, name, num_classes=num_classes, clip_seconds=PANNS_CLIP_SECONDS, **overrides)
    try:
        assign_state_dict(model, state_dict)
    except ConversionError as e:
        raise UserError(f"{path}: {e}") from None
    logging.info(
        "loaded %d tensors from %s into %s (%s)",
        len(state_dict),
        path,
        name,
        {k: v for k, v in extra.items() if np.isscalar(v)},
    )
    return model


def convert_checkpoint(
    path: str | Path,
    out_dir: str | Path,
    model_name: str | None = None,
    labels_csv: str | Path | None = None,
    *,
    cls,
    source: str | None = None,
    license: str | None = None,
) -> Path:
    """Convert ``path`` (zip or legacy torch format) into ``out_dir``, a model directory of a
    ``cls`` (an AudioTagger class).

    The output directory holds ``model.weights.h5``, ``config.json``, ``labels.csv`` and
    ``metadata.json`` (``source``, default the file name, and ``license`` of the weights) and
    loads with :func:`panns_keras.load_model`. Labels default to AudioSet's 527.
    """
    from panns_keras.models.saving import save_model_dir

    model = load_checkpoint_into_model(path, model_name, cls=cls)
    labels = read_labels_csv(labels_csv) if labels_csv else audioset()
    if len(labels) != model.spec.num_classes:
        raise UserError(
            f"the checkpoint has {model.spec.num_classes} classes but the label list has "
            f"{len(labels)}; pass --labels with a matching index,mid,display_name CSV"
        )
    # A smoke run: a converted model must give finite scores.
    x = np.random.default_rng(0).uniform(-0.1, 0.1, (1, model.spec.sample_rate)).astype("f4")
    scores = np.asarray(model(x)["clipwise_output"])
    if not np.all(np.isfinite(scores)):
        raise UserError(f"{path}: converted model gives non-finite scores")
    name = str(Path(path).name)
    return save_model_dir(
        model, out_dir, labels, extra={"source": name}, source=source or name, license=license
    )
