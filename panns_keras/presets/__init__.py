"""Pretrained PANNs by name: the preset table, download, check, conversion and cache.

``panns_keras.load_model("cnn14")``, ``AudioTagger.from_preset("cnn14")`` and every verb's
``--model cnn14`` come here through :func:`resolve`; ``panns-keras models`` lists the table.
"""

from panns_keras.presets.resolve import (
    fetch,
    is_cached,
    load_model,
    load_preset,
    offline,
    resolve,
)
from panns_keras.presets.table import Preset, find, presets

__all__ = ["Preset", "fetch", "find", "is_cached", "load_model", "load_preset", "offline",
           "presets", "resolve"]  # fmt: skip
