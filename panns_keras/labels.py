"""Class label lists: the bundled AudioSet list and ``index,mid,display_name`` CSV files."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from panns_keras.data import formats


def _pairs(labels: list[formats.Label]) -> list[tuple[str, str]]:
    return [(label.mid, label.display_name) for label in labels]


def read_label_file(path: str | Path) -> list[tuple[str, str]]:
    """``[(mid, display_name), ...]`` in index order (the one rule:
    ``formats.parse_labels_csv``)."""
    return _pairs(formats.read_labels_csv(path))


def write_label_file(path: str | Path, labels: list[tuple[str, str]]) -> None:
    formats.write_labels_csv(path, [formats.Label(i, m, n) for i, (m, n) in enumerate(labels)])


def audioset_labels() -> list[tuple[str, str]]:
    """The 527 AudioSet classes in PANNs' output order (bundled copy of the official CSV)."""
    text = resources.files("panns_keras").joinpath("assets/class_labels_indices.csv")
    return _pairs(formats.parse_labels_csv(text.read_text(encoding="utf-8"),
                                           "bundled class_labels_indices.csv"))  # fmt: skip


def display_names(labels: list[tuple[str, str]]) -> list[str]:
    return [name for _, name in labels]
