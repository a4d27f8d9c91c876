"""Pretrained PANNs by name: the preset table, download, check and cache (file work only).

``panns_keras.load_model("cnn14")``, ``AudioTagger.from_preset("cnn14")`` and every verb's
``--model cnn14`` come here through :func:`panns_keras.models.saving.resolve`, which passes the
checkpoint conversion down; ``panns-keras models`` lists the table. Nothing here imports
model code.
"""

from panns_keras.presets.resolve import fetch, is_cached, offline, resolve
from panns_keras.presets.table import Preset, find, presets

__all__ = ["Preset", "fetch", "find", "is_cached", "offline", "presets", "resolve"]
