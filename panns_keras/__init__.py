"""panns-keras: PANNs audio tagging models in Keras 3."""

from panns_keras.api import build_model, list_models, load_model

__all__ = ["build_model", "list_models", "load_model"]
__version__ = "0.2.0"
