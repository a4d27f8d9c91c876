"""Reading a SavedModel written by ``panns-keras export`` (its ``info`` and ``class_names``)."""

from __future__ import annotations

from pathlib import Path

from panns_keras.artifact import ArtifactInfo
from panns_keras.errors import UserError


def load_savedmodel(path: str | Path):
    """``(fn, "savedmodel", ArtifactInfo)`` for the SavedModel at ``path``."""
    import tensorflow as tf

    path = Path(path)
    loaded = tf.saved_model.load(str(path))
    if not hasattr(loaded, "info"):
        raise UserError(f"{path}: a SavedModel, but not one written by panns-keras export")
    labels = [n.decode() for n in loaded.class_names.numpy()]
    info = ArtifactInfo.from_json(loaded.info.numpy().decode(), labels, str(path))

    def fn(x):
        out = loaded(tf.constant(x))
        return {k: out[k].numpy() for k in info.outputs}

    return fn, "savedmodel", info
