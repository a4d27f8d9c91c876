"""Class label lists: the bundled AudioSet list and ``index,mid,display_name`` CSV files."""

from __future__ import annotations

import csv
import io
from importlib import resources
from pathlib import Path

from panns_keras.errors import UserError

LABELS_FILENAME = "labels.csv"


def _parse(text: str, source: str) -> list[tuple[str, str]]:
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or [c.strip() for c in rows[0][:3]] != ["index", "mid", "display_name"]:
        raise UserError(f"{source}: not a label file (expected header index,mid,display_name)")
    out = []
    for i, row in enumerate(rows[1:]):
        if not row:
            continue
        if len(row) < 3 or row[0].strip() != str(i):
            raise UserError(f"{source}: row {i + 2} is not '{i},mid,display_name'")
        out.append((row[1].strip(), row[2].strip()))
    return out


def read_label_file(path: str | Path) -> list[tuple[str, str]]:
    """``[(mid, display_name), ...]`` in index order."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: label file not found")
    return _parse(path.read_text(encoding="utf-8"), str(path))


def write_label_file(path: str | Path, labels: list[tuple[str, str]]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(["index", "mid", "display_name"])
    for i, (mid, name) in enumerate(labels):
        writer.writerow([i, mid, name])
    Path(path).write_text(buf.getvalue(), encoding="utf-8")


def audioset_labels() -> list[tuple[str, str]]:
    """The 527 AudioSet classes in PANNs' output order (bundled copy of the official CSV)."""
    text = resources.files("panns_keras").joinpath("assets/class_labels_indices.csv")
    return _parse(text.read_text(encoding="utf-8"), "bundled class_labels_indices.csv")


def display_names(labels: list[tuple[str, str]]) -> list[str]:
    return [name for _, name in labels]
