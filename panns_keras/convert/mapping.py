"""Strict mapping of a PANNs PyTorch ``state_dict`` onto an :class:`AudioTagger`.

Every key must be consumed, every shape must match, and the frozen front-end tensors
stored in official checkpoints are compared with the layer's own (they are not loaded:
the layer computes them).
"""

from __future__ import annotations

from collections.abc import Mapping

import keras
import numpy as np

from panns_keras.models.blocks import layer_name

FRONTEND_TOLERANCE = {  # max |stored - computed|; the reference builds them the same way
    "spectrogram_extractor.stft.conv_real.weight": 1e-5,
    "spectrogram_extractor.stft.conv_imag.weight": 1e-5,
    "logmel_extractor.melW": 1e-6,
}


class ConversionError(ValueError):
    """A checkpoint does not fit the model (missing, unexpected or mis-shaped tensors)."""


def _frontend_expected(model, key: str) -> np.ndarray:
    fe = model.logmel_extractor  # public part of the AudioTagger
    if key.endswith("conv_real.weight"):
        return fe.stft_real.T[:, None, :]  # (bins, 1, n_fft) torch layout
    if key.endswith("conv_imag.weight"):
        return fe.stft_imag.T[:, None, :]
    return fe.mel_matrix  # (bins, mel)


def _keras_values(layer, params: dict[str, np.ndarray], path: str) -> list[np.ndarray]:
    """Torch tensors of one module -> the layer's weights in ``layer.weights`` order."""

    def need(name):
        if name not in params:
            raise ConversionError(f"checkpoint lacks {path}.{name}")
        return params.pop(name)

    own = getattr(layer, "torch_values", None)
    if own is not None:  # a layer with a reference layout of its own (EfficientAT's dymn)
        try:
            return own(need)
        except ConversionError:
            raise
        except ValueError as err:
            raise ConversionError(f"{path}: {err}") from None
    if isinstance(layer, keras.layers.BatchNormalization):
        params.pop("num_batches_tracked", None)  # not used in inference; tolerated if absent
        return [need("weight"), need("bias"), need("running_mean"), need("running_var")]
    w = need("weight")
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        values = [w.transpose(2, 3, 0, 1)]  # (C, 1, kh, kw) -> (kh, kw, C, 1)
    elif isinstance(layer, keras.layers.Conv2D):
        values = [w.transpose(2, 3, 1, 0)]  # (out, in, kh, kw) -> (kh, kw, in, out)
    elif isinstance(layer, keras.layers.Conv1D):
        values = [w.transpose(2, 1, 0)]  # (out, in, k) -> (k, in, out)
    elif isinstance(layer, keras.layers.Dense):
        values = [w.T]
    else:  # pragma: no cover - the model only creates the layer types above
        raise ConversionError(f"no mapping for layer type {type(layer).__name__} ({path})")
    if layer.use_bias:
        values.append(need("bias"))
    return values


def _weight_layers(model) -> dict[str, keras.layers.Layer]:
    """``model.weight_layers()`` (the AudioTagger's), or for a plain functional model (the
    ``dymn`` builders) every layer holding weights, nested models walked, by name."""
    if hasattr(model, "weight_layers"):
        return model.weight_layers()
    found: dict[str, keras.layers.Layer] = {}
    for layer in model.layers:
        inner = _weight_layers(layer) if isinstance(layer, keras.Model) else {}
        if layer.weights and not isinstance(layer, keras.Model):
            inner = {layer.name: layer}
        for name, found_layer in inner.items():
            if name in found:
                raise ValueError(f"two layers named {name} in {model.name}")
            found[name] = found_layer
    return found


def assign_state_dict(model, state_dict: Mapping[str, np.ndarray]) -> None:
    """Load a torch-layout ``state_dict`` (numpy arrays) into ``model``, strictly.

    Raises:
        ConversionError: naming the first tensor that is missing, unexpected, mis-shaped,
            or (front end) differs from the layer's own computation.
    """
    label = getattr(getattr(model, "spec", None), "name", None) or model.name
    grouped: dict[str, dict[str, np.ndarray]] = {}
    for key, value in state_dict.items():
        if key in FRONTEND_TOLERANCE:
            if getattr(model, "logmel_extractor", None) is None:
                raise ConversionError(
                    f"unexpected tensor {key}: model {label} has no log-mel front end "
                    "(a checkpoint of another architecture?)"
                )
            expected = _frontend_expected(model, key)
            value = np.asarray(value)
            if value.shape != expected.shape:
                raise ConversionError(
                    f"front-end tensor {key} has shape {value.shape}, model "
                    f"{label} computes {expected.shape} (other sample rate, window "
                    "or mel bins?)"
                )
            err = float(np.max(np.abs(value.astype(np.float64) - expected)))
            if err > FRONTEND_TOLERANCE[key]:
                raise ConversionError(
                    f"front-end tensor {key} differs from the model's own by {err:.3g} "
                    f"(tolerance {FRONTEND_TOLERANCE[key]:g}): other front-end settings?"
                )
            continue
        module, _, param = key.rpartition(".")
        grouped.setdefault(module, {})[param] = np.asarray(value)
    layers = _weight_layers(model)  # by Keras name = module path with '.' -> '_'
    grouped = {layer_name(m): (m, params) for m, params in grouped.items()}
    unexpected = sorted(grouped[n][0] for n in grouped if n not in layers)
    if unexpected:
        keys = [f"{m}.{p}" for m in unexpected for p in grouped[layer_name(m)][1]]
        raise ConversionError(
            f"{len(keys)} unexpected tensor(s) for model {label}, first "
            f"{keys[0]} (a checkpoint of another architecture?)"
        )
    missing = [m for m in layers if m not in grouped]
    if missing:
        raise ConversionError(
            f"checkpoint lacks {len(missing)} module(s) of model {label}, first "
            f"{missing[0]} (a checkpoint of another architecture?)"
        )
    assignments = []
    for name, layer in layers.items():
        path, params = grouped[name]
        values = _keras_values(layer, params, path)
        if params:
            raise ConversionError(f"unexpected tensor {path}.{sorted(params)[0]}")
        for var, val in zip(layer.weights, values):
            if tuple(var.shape) != val.shape:
                raise ConversionError(
                    f"tensor for {path} ({var.name}) has shape {val.shape} after layout "
                    f"conversion, model expects {tuple(var.shape)}"
                )
            assignments.append((var, val))
    for var, val in assignments:  # nothing is assigned unless everything fits
        var.assign(val.astype(var.dtype))
