"""Class label lists: the bundled AudioSet list and ``index,mid,display_name`` CSV files.

The package's own code works with :class:`~panns_keras.data.formats.Label` lists
(``formats.read_labels_csv`` / ``write_labels_csv``, :func:`audioset`). The ``(mid,
display_name)`` pair functions below are the 0.1 view of the same lists, kept for callers
written against it; nothing in the package uses them.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import resources
from pathlib import Path

from panns_keras.data import formats


def audioset() -> list[formats.Label]:
    """The 527 AudioSet classes in PANNs' output order (bundled copy of the official CSV)."""
    text = resources.files("panns_keras").joinpath("assets/class_labels_indices.csv")
    return formats.parse_labels_csv(
        text.read_text(encoding="utf-8"), "bundled class_labels_indices.csv"
    )


def pairs(labels: Iterable) -> list[tuple[str, str]]:
    """``[(mid, display_name), ...]`` of Labels (or of pairs)."""
    return [(label.mid, label.display_name) for label in formats.to_labels(labels)]


def read_label_file(path: str | Path) -> list[tuple[str, str]]:
    """``[(mid, display_name), ...]`` in index order (the one rule:
    ``formats.parse_labels_csv``)."""
    return pairs(formats.read_labels_csv(path))


def write_label_file(path: str | Path, labels: Iterable) -> None:
    """Writes Labels or ``(mid, display_name)`` pairs as ``labels.csv``."""
    formats.write_labels_csv(path, formats.to_labels(labels))


def audioset_labels() -> list[tuple[str, str]]:
    """:func:`audioset` as ``(mid, display_name)`` pairs."""
    return pairs(audioset())


def display_names(labels: Iterable) -> list[str]:
    """The display names of Labels or ``(mid, display_name)`` pairs."""
    return [label.display_name for label in formats.to_labels(labels)]
