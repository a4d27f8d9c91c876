"""Input listings -> (labels, clips, skipped). No audio is decoded here.

Three layouts:
  (a) AudioSet segment CSV + audio folder + class_labels_indices.csv
  (b) generic CSV `path,labels[,fold]` (labels `;`/`|`-separated names, MIDs or indices);
      with a header row, the columns are found by name (`path`, `labels`, `fold`)
  (c) a folder with one sub-folder per class; a clip's fold is the first group (else the
      whole match) of `fold_pattern` searched in its path relative to the root, e.g.
      `^[^/]+/([^/]+)/` for `<class>/<fold>/clip.wav` or `_([a-z]+)_` for the speaker of
      FSDD's `7_jackson_12.wav`
Label files follow `panns_keras.data.formats` (the one rule for every labels.csv).
"""

from __future__ import annotations

import csv
import dataclasses
import os
import re

import soundfile as sf

from panns_keras.data import formats
from panns_keras.data.formats import Label

AUDIO_EXTENSIONS = frozenset(
    {"." + f.lower() for f in sf.available_formats()}
    | {
        ".wav",
        ".flac",
        ".ogg",
        ".oga",
        ".opus",
        ".mp3",
        ".aif",
        ".aiff",
        ".au",
        ".caf",
        ".w64",
    }
)

REASON_UNKNOWN_LABEL = "unknown label"
REASON_DUPLICATE = "duplicate"


@dataclasses.dataclass(frozen=True)
class Clip:
    clip_id: str
    source: str
    labels: tuple[int, ...]
    fold: str = formats.NO_FOLD


@dataclasses.dataclass
class Listing:
    labels: list[Label]
    clips: list[Clip]
    skipped: list[dict]  # {'clip_id', 'source', 'reason', 'detail'}


def skip(clip_id: str, source: str, reason: str, detail: str = "") -> dict:
    return {"clip_id": clip_id, "source": source, "reason": reason, "detail": detail}


read_labels_csv = formats.read_labels_csv
write_labels_csv = formats.write_labels_csv


def clip_ids(rel_paths: list[str]) -> list[str]:
    """The clip id of each input file, unique per file.

    A file's id is its path (relative to the class folder root, or as written in the CSV)
    without the extension; files that share that stem (``dog/a.wav`` and ``dog/a.flac``)
    keep their extension instead (``dog/a.wav``, ``dog/a.flac``), so both are kept. The
    same path listed twice is one file: it gets one id (and is reported as a duplicate).
    """
    stems = [os.path.splitext(p)[0] for p in rel_paths]
    files: dict[str, set[str]] = {}
    for path, stem in zip(rel_paths, stems):
        files.setdefault(stem, set()).add(path)
    return [path if len(files[stem]) > 1 else stem for path, stem in zip(rel_paths, stems)]


class LabelResolver:
    """Maps an index, MID or display name (case-insensitive) to a class index."""

    def __init__(self, labels: list[Label]):
        self.num = len(labels)
        self.by_key = {}
        for label in labels:
            self.by_key.setdefault(label.display_name.lower(), label.index)
        for label in labels:
            self.by_key[label.mid.lower()] = label.index  # MIDs win over names

    def __call__(self, token: str) -> int | None:
        token = token.strip()
        if re.fullmatch(r"\d+", token):
            i = int(token)
            return i if i < self.num else None
        return self.by_key.get(token.lower())


def _index_audio_dir(audio_dir: str) -> dict[str, str]:
    """Maps file name (and stem) -> path for audio files under audio_dir (recursive)."""
    index: dict[str, str] = {}
    for root, dirs, files in os.walk(audio_dir):
        dirs.sort()
        for name in sorted(files):
            stem, ext = os.path.splitext(name)
            if ext.lower() not in AUDIO_EXTENSIONS:
                continue
            path = os.path.join(root, name)
            index.setdefault(name, path)
            index.setdefault(stem, path)
    return index


def _start_variants(start: str) -> list[str]:
    out = [start.strip()]
    try:
        v = float(start)
    except ValueError:
        return out
    for s in (
        f"{v:.3f}",
        f"{v:.1f}",
        f"{v:.6f}",
        f"{v:g}",
        str(int(v)) if v == int(v) else "",
    ):
        if s and s not in out:
            out.append(s)
    return out


def list_audioset(
    segments_csv: str, audio_dir: str, labels_csv: str, filename_pattern: str = ""
) -> Listing:
    labels = read_labels_csv(labels_csv)
    resolve = LabelResolver(labels)
    index = _index_audio_dir(audio_dir)
    clips, skipped, seen = [], [], set()
    with open(segments_csv, newline="", encoding="utf-8") as f:
        lines = [ln for ln in f if ln.strip() and not ln.lstrip().startswith("#")]
    for row in csv.reader(lines, skipinitialspace=True):
        if len(row) < 4:
            continue
        ytid, start, end, mids = row[0].strip(), row[1].strip(), row[2].strip(), row[3]
        try:
            clip_id = f"{ytid}_{float(start):.3f}"
        except ValueError:
            continue  # a header line without '#'
        candidates = []
        for s in _start_variants(start):
            if filename_pattern:
                candidates.append(filename_pattern.format(ytid=ytid, start=s, end=end))
            else:
                candidates += [f"Y{ytid}", ytid, f"{ytid}_{s}", f"Y{ytid}_{s}"]
        path = next((index[c] for c in candidates if c in index), None)
        if path is None:
            skipped.append(skip(clip_id, candidates[0], "missing", "no matching file"))
            continue
        idx, unknown = [], []
        for mid in mids.split(","):
            if not mid.strip():
                continue
            i = resolve(mid)
            (unknown if i is None else idx).append(mid.strip() if i is None else i)
        if unknown or not idx:
            skipped.append(skip(clip_id, path, REASON_UNKNOWN_LABEL, ",".join(unknown)))
            continue
        if clip_id in seen:
            skipped.append(skip(clip_id, path, REASON_DUPLICATE))
            continue
        seen.add(clip_id)
        clips.append(Clip(clip_id, path, tuple(sorted(set(idx)))))
    return Listing(labels, clips, skipped)


def _generic_columns(rows: list[list[str]]) -> tuple[list[list[str]], int, int, int]:
    """(data rows, path column, labels column, fold column or -1)."""
    if rows and rows[0][0].strip().lower() == "path":
        header = [c.strip().lower() for c in rows[0]]
        col = {name: header.index(name) for name in ("path", "labels", "fold") if name in header}
        labels_col = col.get("labels", 1)
        return rows[1:], col["path"], labels_col, col.get("fold", 2 if len(header) > 2 else -1)
    return rows, 0, 1, 2


def list_generic_csv(csv_path: str, labels_csv: str = "", folds: str = "") -> Listing:
    """`path,labels[,fold]` rows; optional header row starting with 'path'. Each clip keeps
    its fold; `folds` (comma-separated) keeps only the rows of those folds."""
    base = os.path.dirname(os.path.abspath(csv_path))
    with open(csv_path, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.reader(f) if r and r[0].strip() and not r[0].startswith("#")]
    rows, pcol, lcol, fcol = _generic_columns(rows)

    def cell(r, c):
        return r[c].strip() if 0 <= c < len(r) else ""

    ids = clip_ids([cell(r, pcol) for r in rows])  # over every row: the same with any folds
    want = set(formats.fold_list(folds))
    if want:
        keep = [cell(r, fcol) in want for r in rows]
        rows = [r for r, k in zip(rows, keep) if k]
        ids = [i for i, k in zip(ids, keep) if k]
    split = [[t.strip() for t in re.split(r"[;|]", cell(r, lcol)) if t.strip()] for r in rows]
    if labels_csv:
        labels = read_labels_csv(labels_csv)
    else:
        tokens = sorted({t for ts in split for t in ts})
        if tokens and all(re.fullmatch(r"\d+", t) for t in tokens):
            n = max(int(t) for t in tokens) + 1
            labels = [Label(i, str(i), str(i)) for i in range(n)]
        else:
            labels = [Label(i, t, t) for i, t in enumerate(tokens)]
    resolve = LabelResolver(labels)
    clips, skipped, seen = [], [], set()
    for r, tokens, clip_id in zip(rows, split, ids):
        rel = cell(r, pcol)
        path = rel if os.path.isabs(rel) else os.path.join(base, rel)
        idx = [resolve(t) for t in tokens]
        unknown = [t for t, i in zip(tokens, idx) if i is None]
        if unknown:
            skipped.append(skip(clip_id, path, REASON_UNKNOWN_LABEL, ",".join(unknown)))
            continue
        if clip_id in seen:
            skipped.append(skip(clip_id, path, REASON_DUPLICATE))
            continue
        seen.add(clip_id)
        clips.append(Clip(clip_id, path, tuple(sorted(set(idx))), cell(r, fcol)))
    return Listing(labels, clips, skipped)


def fold_from_path(rel_path: str, fold_pattern: str) -> str:
    """The fold of a class-folder clip: first group (else the match) of `fold_pattern`
    searched in its '/'-separated path relative to the root; "" without a match."""
    if not fold_pattern:
        return formats.NO_FOLD
    m = re.search(fold_pattern, rel_path.replace(os.sep, "/"))
    if m is None:
        return formats.NO_FOLD
    return m.group(1) if m.groups() else m.group(0)


def list_class_folders(root: str, fold_pattern: str = "", folds: str = "") -> Listing:
    classes = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    labels = [Label(i, c, c) for i, c in enumerate(classes)]
    want = set(formats.fold_list(folds))
    found = []  # (relative path, path, class index, fold)
    for i, c in enumerate(classes):
        for dirpath, dirs, files in os.walk(os.path.join(root, c)):
            dirs.sort()
            for name in sorted(files):
                if os.path.splitext(name)[1].lower() not in AUDIO_EXTENSIONS:
                    continue
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, root)
                fold = fold_from_path(rel, fold_pattern)
                if want and fold not in want:
                    continue
                found.append((rel, path, i, fold))
    ids = clip_ids([rel for rel, _, _, _ in found])
    clips = [Clip(cid, path, (i,), fold) for cid, (_, path, i, fold) in zip(ids, found)]
    return Listing(labels, clips, [])
