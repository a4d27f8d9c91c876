"""Public entry points, re-exported: build / list / load models, tag, detect events, embed."""

from panns_keras.inference.calls import detect_events, embed, tag
from panns_keras.models.build import build_model, list_models, load_model

__all__ = ["build_model", "detect_events", "embed", "list_models", "load_model", "tag"]
