"""Narrow variants of the registered models, for tests of shape and wiring only.

Same family, same stages and strides as the registered spec; every width divided by 16
(at least 4) and a 16-wide embedding, so building and running one takes well under a second.
The golden tests keep full width.
"""

from __future__ import annotations

import dataclasses

import panns_keras
from panns_keras.models.registry import get_spec


def _w(width: int) -> int:
    return max(4, width // 16)


def narrow_overrides(name: str) -> dict:
    spec = get_spec(name)
    b = spec.backbone
    r = dataclasses.replace
    backbone = {
        "convnet": lambda: r(b, widths=tuple(_w(w) for w in b.widths)),
        "resnet": lambda: r(b, planes=tuple(_w(p) for p in b.planes), after_width=16),
        "mobilenet_v1": lambda: r(b, stem=4, stages=tuple((_w(c), s) for c, s in b.stages)),
        "mobilenet_v2": lambda: r(
            b, stem=4, last=16, stages=tuple((t, _w(c), n, s) for t, c, n, s in b.stages)
        ),
        "leenet": lambda: r(b, blocks=tuple((_w(c), s, p) for c, s, p in b.blocks)),
        "dainet": lambda: r(b, widths=tuple(_w(w) for w in b.widths)),
        "res1dnet": lambda: r(b, planes=tuple(_w(p) for p in b.planes)),
        "mn": lambda: r(b, width_mult=0.1),
        "dymn": lambda: r(b, width_mult=0.1),
    }[spec.family]()
    if spec.reference == "efficientat":  # the embedding is the pooled features: 6 x 16 wide
        return {"backbone": backbone, "embedding_size": 96}
    return {"backbone": backbone, "embedding_size": 16}


def narrow_model(name: str, **kwargs):
    """``panns_keras.build_model(name, **kwargs)`` at narrow width."""
    return panns_keras.build_model(name, **{**narrow_overrides(name), **kwargs})
