"""Inference on audio files and arrays: tagging, sound event detection and embeddings.

  engine.py   windowing engine (:class:`InferenceEngine`), input normalisation, tag / embed
  events.py   event detection from frame scores, the event and score table writers
  median.py   per-class median filter over time
  calls.py    the public ``tag`` / ``detect_events`` / ``embed`` (see :mod:`panns_keras.api`)

The names below are loaded on first use, so ``import panns_keras`` stays light (audio
decoding and the runtime load when inference first runs).
"""

import importlib

_HOMES = {
    "DEFAULT_WINDOW_SECONDS": "engine",
    "FileResult": "engine",
    "InferenceEngine": "engine",
    "Source": "engine",
    "as_sources": "engine",
    "embed_files": "engine",
    "tag_files": "engine",
    "detect_events": "events",
    "events_from_framewise": "events",
    "write_events_tsv": "events",
    "write_sed_scores": "events",
    "apply_median_filter": "median",
    "median_filter_sizes": "median",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
