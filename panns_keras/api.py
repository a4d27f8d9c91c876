"""Public entry points: build_model, list_models, load_model."""

from __future__ import annotations

from typing import Any

from panns_keras.models.registry import get_spec
from panns_keras.models.registry import list_models as _list_models
from panns_keras.models.spec import apply_overrides


def list_models() -> list[str]:
    """Registered model names (snake case)."""
    return _list_models()


def build_model(name: str, num_classes: int = 527, *, seed: int | None = None,
                labels: list[str] | None = None, **overrides: Any):
    """Build a PANNs model by registry or reference name.

    Args:
        name: ``cnn14``, ``cnn14_decision_level_att``, or ``Cnn14_DecisionLevelAtt``.
        num_classes: output classes (527 for AudioSet).
        seed: seed for SpecAugment and dropout.
        labels: class display names in output order (kept by ``.keras`` files).
        **overrides: spec fields, e.g. ``sample_rate=16000``, ``mel_bins=128``,
            ``embedding_size=512``, ``spec_augment=False``.

    Returns:
        A built :class:`~panns_keras.models.tagger.AudioTagger` (weights created, nothing run).
    """
    from panns_keras.models.tagger import AudioTagger

    spec = apply_overrides(get_spec(name), num_classes=num_classes, **overrides)
    return AudioTagger(spec, seed=seed, labels=labels)


def load_model(path: str):
    """Load a model directory written by the converter or trainer, a ``.keras`` file, or a
    preset by name (``"cnn14"``; ``panns-keras models`` lists them), downloaded, checked and
    converted on first use, then cached. A local path always wins over a name.

    The model's ``labels`` (display names) and ``label_ids`` are set in every case.
    """
    from panns_keras.presets import load_preset

    return load_preset(path)


def _run(verb: str, model, audio, sample_rate, **kwargs):
    from panns_keras import inference as I

    engine_kw = {k: kwargs.pop(k) for k in ("window_seconds", "hop_seconds", "batch_size")}
    engine = I.InferenceEngine(model, keep_framewise=verb == "events", **engine_kw)
    sources, single = I.as_sources(audio, sample_rate, engine.sample_rate)
    if verb == "events":
        results = [r for r, _ in I.detect_events(None, sources, engine=engine, **kwargs)]
    elif verb == "embed":
        results = I.embed_files(None, sources, engine=engine)
    else:
        results = I.tag_files(None, sources, engine=engine)
    return results[0] if single else results


def tag(model, audio, sample_rate: int | None = None, *, hop_seconds: float | None = None,
        window_seconds: float = 10.0, batch_size: int = 8):  # fmt: skip
    """Clip-level tags of ``audio`` with ``model``.

    Args:
        model: a model directory, ``.keras`` file, SavedModel directory, ``.tflite`` file,
            or a loaded model (see :mod:`panns_keras.runtime`).
        audio: a file path, a NumPy waveform (1-D; 2-D = one clip per row) or a list of
            those. Arrays are at ``sample_rate`` (default: the model's) and resampled.
        hop_seconds: start of one window to the next (default: the window, no overlap).
        window_seconds: analysis window (a ``.tflite`` model fixes its own).

    Returns:
        A :class:`panns_keras.inference.FileResult` (a list for several inputs):
        ``.clipwise`` (K,) scores (max over windows), ``.top(k)`` -> ``[(label, score)]``,
        ``.window_clipwise`` / ``.window_starts`` per window, ``.labels``, ``.error``.
    """
    return _run("tag", model, audio, sample_rate, hop_seconds=hop_seconds,
                window_seconds=window_seconds, batch_size=batch_size)  # fmt: skip


def detect_events(model, audio, sample_rate: int | None = None, *, threshold: float = 0.5,
                  hop_seconds: float | None = None, median_filter=None,
                  min_duration: float = 0.0, min_gap: float = 0.0,
                  window_seconds: float = 10.0, batch_size: int = 8):  # fmt: skip
    """Sound events in ``audio`` (arguments as :func:`tag`).

    Returns results whose ``.events`` are DCASE dicts (``onset``, ``offset`` in seconds,
    ``event_label``, ``score``) and ``.frame_scores`` (T, K) the scores they came from, one
    row per ``.frame_scores_hop`` seconds (model frames for decision-level models, the hop
    for clip models). ``median_filter``: see :func:`panns_keras.inference.median_filter_sizes`.
    """
    return _run("events", model, audio, sample_rate, hop_seconds=hop_seconds,
                window_seconds=window_seconds, batch_size=batch_size, threshold=threshold,
                median_filter=median_filter, min_duration=min_duration,
                min_gap=min_gap)  # fmt: skip


def embed(model, audio, sample_rate: int | None = None, *, hop_seconds: float | None = None,
          window_seconds: float = 10.0, batch_size: int = 8):  # fmt: skip
    """Clip embeddings of ``audio`` (arguments as :func:`tag`; clip-level models only).

    Returns results with ``.embedding`` (E,) (window-length-weighted mean over windows) and
    ``.window_embeddings`` (W, E).
    """
    return _run("embed", model, audio, sample_rate, hop_seconds=hop_seconds,
                window_seconds=window_seconds, batch_size=batch_size)  # fmt: skip
