"""panns-keras: PANNs audio tagging models in Keras 3."""

from panns_keras.api import build_model, detect_events, embed, list_models, load_model, tag

__all__ = ["build_model", "detect_events", "embed", "list_models", "load_model", "tag"]
__version__ = "0.2.0"
