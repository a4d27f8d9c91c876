"""Convert an official PANNs (or EfficientAT) PyTorch checkpoint into a panns-keras model.

The ``convert`` verb's and the trainer's door: :mod:`panns_keras.convert.checkpoint` does the
work for any model class, and this module passes ``AudioTagger`` (imported only once the
checks a user's mistake fails have passed, so those answer in a fraction of a second).
"""

from __future__ import annotations

from pathlib import Path

from panns_keras.convert import checkpoint
from panns_keras.convert.checkpoint import PANNS_CLIP_SECONDS

__all__ = ["PANNS_CLIP_SECONDS", "convert_checkpoint", "load_checkpoint_into_model"]


def _tagger():
    from panns_keras.models.tagger import AudioTagger

    return AudioTagger


def load_checkpoint_into_model(path: str | Path, model_name: str | None = None, cls=None):
    """Read ``path`` and return an AudioTagger (or ``cls``) holding its weights (strict, exact).

    Raises:
        UserError: unreadable checkpoint, unknown model, or weights that do not fit.
    """
    return checkpoint.load_checkpoint_into_model(path, model_name, cls=cls or _tagger)


def convert_checkpoint(
    path: str | Path,
    out_dir: str | Path,
    model_name: str | None = None,
    labels_csv: str | Path | None = None,
    *,
    cls=None,
    source: str | None = None,
    license: str | None = None,
) -> Path:
    """Convert ``path`` (zip or legacy torch format) into ``out_dir``.

    The output directory holds ``model.weights.h5``, ``config.json``, ``labels.csv`` and
    ``metadata.json`` (``source``, default the file name, and ``license`` of the weights) and
    loads with :func:`panns_keras.load_model`. Labels default to AudioSet's 527.
    """
    return checkpoint.convert_checkpoint(
        path, out_dir, model_name, labels_csv, cls=cls or _tagger, source=source, license=license
    )
