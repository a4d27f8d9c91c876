"""One loader for every model format inference takes: ``load_runner(path_or_model)``.

Accepted (``tag``, ``sed``, ``embed`` and the Python API take the same):
  * a model directory (``config.json`` + weights, written by ``convert`` / ``train``);
  * a ``.keras`` file;
  * a SavedModel directory written by ``export`` (``saved_model.pb``);
  * a ``.tflite`` file written by ``export`` (any variant, MediaPipe ones included);
  * an already built / loaded Keras model (an ``AudioTagger``).

Each becomes a :class:`Runner`: a callable ``waveform [batch, samples] float32 -> dict of
numpy outputs`` with the labels, sample rate and output names the inference code needs. A
TFLite model has a fixed input length (``input_samples``): inference then uses that window.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from panns_keras.artifact import CLIPWISE, EMBEDDING, FRAMEWISE, ArtifactInfo
from panns_keras.errors import UserError


@dataclasses.dataclass
class Runner:
    """A loaded model, whatever its format.

    Attributes:
      fn: ``waveform [batch, samples] float32 -> {output name: numpy array}``.
      kind: ``keras``, ``savedmodel`` or ``tflite``.
      name: the model's registry name (``cnn14``, ...).
      labels: display names, one per class, in output order.
      sample_rate: Hz the model expects.
      min_samples: shortest input the model takes (shorter input is zero-padded).
      outputs: output names (``clipwise_output`` first).
      frame_hop_samples: samples between ``framewise_output`` rows (decision-level models).
      input_samples: fixed input length (TFLite) or None (any length).
      model: the Keras model for ``kind == "keras"``, else None.
      clip_samples: the length of the clips the model was trained on, or None (unknown):
        inference windows default to it and shorter input is zero-padded to it.
    """

    fn: Callable[[np.ndarray], dict]
    kind: str
    name: str
    labels: list[str]
    sample_rate: int
    min_samples: int
    outputs: tuple[str, ...]
    frame_hop_samples: int | None = None
    input_samples: int | None = None
    model: object = None
    clip_samples: int | None = None

    @property
    def clip_seconds(self) -> float | None:
        """``clip_samples`` in seconds (None when unknown)."""
        return None if not self.clip_samples else self.clip_samples / self.sample_rate

    def __call__(self, waveform) -> dict[str, np.ndarray]:
        return self.fn(np.asarray(waveform, np.float32))

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def has_embedding(self) -> bool:
        return EMBEDDING in self.outputs

    @property
    def has_framewise(self) -> bool:
        return FRAMEWISE in self.outputs


def _default_labels(n: int) -> list[str]:
    return [f"class_{i}" for i in range(n)]


def from_keras(model) -> Runner:
    """A Runner over an ``AudioTagger`` (eager calls; :mod:`inference` adds XLA)."""
    spec = model.spec
    labels = getattr(model, "labels", None)
    names = [x[1] if isinstance(x, (tuple, list)) else str(x) for x in labels or []]
    names = names or _default_labels(spec.num_classes)
    outputs = (CLIPWISE, EMBEDDING) if spec.head.kind == "clip" else (CLIPWISE, FRAMEWISE)

    def fn(x):
        out = model(x, training=False)
        return {k: np.asarray(out[k]) for k in outputs}

    hop = spec.frontend.hop_size if spec.frontend is not None else None
    return Runner(
        fn,
        "keras",
        spec.name,
        names,
        int(spec.sample_rate),
        int(spec.min_samples),
        outputs,
        hop,
        None,
        model,
        spec.clip_samples,
    )


def from_artifact(fn: Callable[[np.ndarray], dict], kind: str, info: ArtifactInfo) -> Runner:
    """A Runner over an exported file's ``fn`` and its :class:`ArtifactInfo`."""
    return Runner(
        fn,
        kind,
        info.model,
        list(info.labels),
        info.sample_rate,
        info.min_samples,
        info.outputs,
        info.frame_hop_samples,
        info.input_samples,
        clip_samples=info.clip_samples,
    )


def load_runner(model, num_threads: int | None = None) -> Runner:
    """A :class:`Runner` for ``model``: a path (see module doc), a Keras model or a Runner.

    Raises:
      UserError: a path that is missing or not one of the accepted formats (one line).
    """
    if isinstance(model, Runner):
        return model
    if hasattr(model, "spec") and callable(model):
        return from_keras(model)
    if not isinstance(model, (str, os.PathLike)):
        raise UserError(f"cannot use {type(model).__name__} as a model (give a path)")
    from panns_keras.models.build import resolve

    path = Path(resolve(model))  # a preset name -> its cached model directory
    if not path.exists():
        raise UserError(
            f"{path}: model not found (no such path, and not a preset name: see panns-keras models)"
        )
    if path.is_file() and path.suffix == ".tflite":
        from panns_keras.runtime.tflite import load_tflite

        return from_artifact(*load_tflite(path, num_threads))
    if path.is_dir() and (path / "saved_model.pb").is_file():
        from panns_keras.runtime.savedmodel import load_savedmodel

        return from_artifact(*load_savedmodel(path))
    if path.suffix == ".keras" or (path / "config.json").is_file():
        from panns_keras.models.build import load_model

        return from_keras(load_model(str(path)))
    raise UserError(
        f"{path}: not a model (expected a model directory, a .keras file, a SavedModel "
        "directory or a .tflite file)"
    )
