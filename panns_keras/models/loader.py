"""Loading a model by path or preset name: the one loader, below the model classes.

keras-hub's layout: the model class is passed down (``AudioTagger.from_preset`` passes
itself; :func:`panns_keras.load_model` passes ``AudioTagger``), and this module imports no
model class. Files come from :mod:`panns_keras.presets` (find, download, verify, cache; file
work only); a PyTorch checkpoint preset is converted once by
:func:`panns_keras.convert.checkpoint.convert_checkpoint`, given the same class, which this
module passes down to the preset cache.
"""

from __future__ import annotations

from pathlib import Path

from panns_keras.data.formats import LABELS_NAME, read_labels_csv
from panns_keras.errors import UserError
from panns_keras.models.saving import (
    LEGACY_FORMATS,
    PANNS_LICENSE,
    WEIGHTS,
    check_model_path,
    read_model_config,
)


def _convert(cls):
    """The checkpoint conversion :mod:`panns_keras.presets` runs for a ``.pth`` preset."""

    def convert(preset, checkpoint: Path, out_dir: Path) -> None:
        from panns_keras.convert.checkpoint import convert_checkpoint

        # the entry's own (EfficientAT: MIT), else the PANNs release's for a built-in one
        license = getattr(preset, "license", None) or (
            PANNS_LICENSE if preset.source == "built-in" else None
        )
        convert_checkpoint(
            checkpoint,
            out_dir,
            preset.arch,
            preset.labels,
            cls=cls,
            source=preset.location,
            license=license,
        )

    return convert


def resolve(cls, name_or_path, tables: list[str] | None = None):
    """``name_or_path`` unchanged when it is a path (a local path always wins) or not a preset
    name; else the cached model of that preset, downloaded, checked and (a PyTorch checkpoint)
    converted into a ``cls`` model directory on first use."""
    from panns_keras import presets

    return presets.resolve(name_or_path, tables, convert=_convert(cls))


def load_as(cls, name_or_path, tables: list[str] | None = None):
    """A built ``cls`` (an AudioTagger class) from a model directory, a ``.keras`` file or a
    preset name (:func:`resolve`); the one loader behind ``panns_keras.load_model`` and
    ``AudioTagger.from_preset``.

    ``model.class_labels`` holds the classes (``model.labels``: their display names,
    ``model.label_ids``: their ids), in output order (a ``.keras`` file keeps those it was
    saved with). Directories written by 0.1 (format ``panns_keras.model_dir/1``) load
    through :mod:`panns_keras.models.legacy`; folders without ``metadata.json`` load as well.
    """
    import keras

    path = Path(resolve(cls, name_or_path, tables))
    if path.suffix == ".keras":
        check_model_path(path)
        try:
            model = keras.saving.load_model(str(path))
        except Exception as e:  # zip / Keras errors on a damaged or foreign file
            raise UserError(f"{path}: cannot load ({type(e).__name__}: {e})") from None
        if not isinstance(model, cls):
            raise UserError(f"{path}: not a {cls.__name__} ({type(model).__name__})")
        _compile_for_inference(model)
        return model
    config = read_model_config(path)
    weights = path / WEIGHTS
    if not weights.is_file():
        raise UserError(f"{path}: missing {WEIGHTS}")
    labels = read_labels_csv(path / config.get("labels", LABELS_NAME))
    try:
        model = cls(config["spec"], labels=labels)
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
    # (BUILD_NOTES.md, "Speed"). Training code compiles the model again with its own settings;
    # no metrics here (mAP / mAUC keep an epoch of scores: model.compile() makes them).
    model.compile(jit_compile=not model.spec.family.startswith("mobilenet"), metrics=[])
