"""Inference on audio files and arrays: tagging, sound event detection and embeddings.

engine.py   windowing engine (:class:`InferenceEngine`), input normalisation, tag / embed
events.py   event detection from frame scores, the event and score table writers
median.py   per-class median filter over time
calls.py    the public ``tag`` / ``detect_events`` / ``embed`` (see :mod:`panns_keras.api`)
"""

from panns_keras.inference.engine import (
    DEFAULT_WINDOW_SECONDS,
    FileResult,
    InferenceEngine,
    Source,
    as_sources,
    embed_files,
    tag_files,
)
from panns_keras.inference.events import (
    detect_events,
    events_from_framewise,
    write_events_tsv,
    write_sed_scores,
)
from panns_keras.inference.median import apply_median_filter, median_filter_sizes

__all__ = [
    "DEFAULT_WINDOW_SECONDS",
    "FileResult",
    "InferenceEngine",
    "Source",
    "apply_median_filter",
    "as_sources",
    "detect_events",
    "embed_files",
    "events_from_framewise",
    "median_filter_sizes",
    "tag_files",
    "write_events_tsv",
    "write_sed_scores",
]
