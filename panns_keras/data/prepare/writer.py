"""Audio files -> class-grouped, sharded TFRecords + manifest.json + labels.csv (the local
writer; :mod:`.beam` runs the same per-clip transform and shard writer under Apache Beam).

The formats (record fields, file names, labels.csv rule, manifest fields, folds) are those of
`panns_keras.data.formats`. Shards are planned per (fold, class group): every shard holds
clips of one fold, named in its manifest entry, so a reader selects folds by shard.

Importing this module does not import TensorFlow: worker processes only decode,
resample and encode (numpy / soundfile / soxr); the parent writes the shards.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import multiprocessing
import os
from collections.abc import Callable

from absl import logging

from panns_keras import audio as audio_lib
from panns_keras.data import example_codec, formats
from panns_keras.data.prepare import inputs as inputs_lib
from panns_keras.data.prepare.options import PrepareOptions
from panns_keras.fileio import atomic_path, atomic_write
from panns_keras.progress import Progress

MANIFEST_NAME = formats.MANIFEST_NAME
LABELS_NAME = formats.LABELS_NAME
STATE_DIR = ".prepare_state"
MANIFEST_VERSION = formats.MANIFEST_VERSION
UNLABELLED_GROUP = -1


@dataclasses.dataclass(frozen=True)
class ShardPlan:
    index: int
    group: int
    clips: tuple  # tuple[inputs.Clip, ...]
    filename: str
    fold: str = formats.NO_FOLD


shard_filename = formats.shard_filename


def rarest_label_groups(clips) -> dict[str, int]:
    """clip_id -> its rarest label (fewest clips overall; ties -> lower index)."""
    counts: dict[int, int] = {}
    for c in clips:
        for i in c.labels:
            counts[i] = counts.get(i, 0) + 1
    return {
        c.clip_id: (min(c.labels, key=lambda i: (counts[i], i)) if c.labels else UNLABELLED_GROUP)
        for c in clips
    }


def plan_shards(clips, name: str, clips_per_shard: int) -> list[ShardPlan]:
    """Deterministic assignment: (fold, group) in order, clips sorted by id, split evenly.
    Without folds (every fold "") this is the plan of manifest version 1."""
    groups = rarest_label_groups(clips)
    by_key: dict[tuple[str, int], list] = {}
    for c in clips:
        by_key.setdefault((c.fold, groups[c.clip_id]), []).append(c)
    chunks = []
    for fold, g in sorted(by_key):
        members = sorted(by_key[(fold, g)], key=lambda c: (c.clip_id, c.source))
        k = max(1, math.ceil(len(members) / clips_per_shard))
        bounds = [round(j * len(members) / k) for j in range(k + 1)]
        for j in range(k):
            chunks.append((fold, g, tuple(members[bounds[j] : bounds[j + 1]])))
    total = len(chunks)
    return [
        ShardPlan(i, g, members, shard_filename(name, i, total), fold)
        for i, (fold, g, members) in enumerate(chunks)
    ]


def encode_clip(clip, sample_rate: int, clip_samples: int):
    """The per-clip transform: returns (serialized Example, None) or (None, skip dict)."""
    try:
        wav = audio_lib.load_audio(clip.source, sample_rate)
    except audio_lib.AudioError as e:
        return None, inputs_lib.skip(clip.clip_id, clip.source, e.reason, e.detail)
    data = example_codec.serialize_clip(
        wav, clip.labels, clip.clip_id, clip.source, sample_rate, clip_samples, clip.fold
    )
    return data, None


def _encode_job(job):
    clip, sample_rate, clip_samples = job
    return encode_clip(clip, sample_rate, clip_samples)


def shard_fingerprint(shard: ShardPlan, sample_rate: int, clip_samples: int) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([shard.filename, shard.group, sample_rate, clip_samples]).encode())
    for c in shard.clips:  # the fold enters only when set: fold-less fingerprints unchanged
        h.update(
            json.dumps(
                [c.clip_id, c.source, list(c.labels)] + ([c.fold] if c.fold else [])
            ).encode()
        )
    return h.hexdigest()


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_state(out_dir: str, shard: ShardPlan, fingerprint: str) -> dict | None:
    """The saved result of a completed shard, or None when it must be (re)written."""
    state_path = os.path.join(out_dir, STATE_DIR, shard.filename + ".json")
    shard_path = os.path.join(out_dir, shard.filename)
    if not (os.path.exists(state_path) and os.path.exists(shard_path)):
        return None
    try:
        with open(state_path, encoding="utf-8") as f:
            state = json.load(f)
    except (OSError, ValueError):
        return None
    if state.get("fingerprint") != fingerprint:
        return None
    if os.path.getsize(shard_path) != state.get("bytes"):
        return None
    return state


def write_shard(out_dir, shard, results, fingerprint, num_classes_hint) -> dict:
    """Writes one shard atomically from an iterator of encode results; returns its state."""
    import tensorflow as tf  # parent process only

    del num_classes_hint
    path = os.path.join(out_dir, shard.filename)
    skipped, class_counts, n = [], {}, 0
    # the shard is renamed into place after its state file: a state names only whole shards
    with atomic_path(path, fsync=True) as tmp:
        with tf.io.TFRecordWriter(str(tmp)) as w:
            for clip, (data, err) in zip(shard.clips, results):
                if err is not None:
                    skipped.append(err)
                    continue
                w.write(data)
                n += 1
                for i in clip.labels:
                    class_counts[str(i)] = class_counts.get(str(i), 0) + 1
        state = {
            "file": shard.filename,
            "group": shard.group,
            "num_clips": n,
            "sha256": file_sha256(tmp),
            "bytes": os.path.getsize(tmp),
            "class_counts": class_counts,
            "skipped": skipped,
            "fingerprint": fingerprint,
        }
        state_path = os.path.join(out_dir, STATE_DIR, shard.filename + ".json")
        atomic_write(state_path, json.dumps(state), fsync=True)
    _fsync_dir(out_dir)
    return state


def list_inputs(options: PrepareOptions) -> inputs_lib.Listing:
    """The clips, labels and skipped inputs of ``options``' one input layout.

    Raises:
        ValueError: no layout or more than one, or a flag that does not fit the layout.
    """
    o = options
    if sum(map(bool, (o.audioset_csv, o.generic_csv, o.class_dir))) != 1:
        raise ValueError("--audioset_csv/--generic_csv/--class_dir: give exactly one input layout")
    if o.audioset_csv:
        if not (o.audio_dir and o.labels_csv):
            raise ValueError("--audioset_csv: needs --audio_dir and --labels_csv")
        if o.folds or o.fold_pattern:
            raise ValueError("--folds / --fold_pattern: apply to --generic_csv and --class_dir")
        return inputs_lib.list_audioset(
            o.audioset_csv, o.audio_dir, o.labels_csv, o.filename_pattern
        )
    if o.generic_csv:
        if o.fold_pattern:
            raise ValueError("--fold_pattern: --generic_csv takes folds from its fold column")
        return inputs_lib.list_generic_csv(o.generic_csv, o.labels_csv, o.folds)
    return inputs_lib.list_class_folders(o.class_dir, o.fold_pattern, o.folds)


def precheck(listing: inputs_lib.Listing) -> tuple[list, list]:
    """Moves clips whose source is missing or a directory to the skipped list."""
    clips, skipped = [], list(listing.skipped)
    for c in listing.clips:
        if os.path.isdir(c.source):
            skipped.append(inputs_lib.skip(c.clip_id, c.source, audio_lib.REASON_DIRECTORY))
        elif not os.path.exists(c.source):
            skipped.append(inputs_lib.skip(c.clip_id, c.source, audio_lib.REASON_MISSING))
        else:
            clips.append(c)
    return clips, skipped


def prepare(
    output_dir: str,
    options: PrepareOptions | None = None,
    *,
    on_shard: Callable[[int, str], None] | None = None,
    **fields,
) -> dict:
    """Writes shards, labels.csv and manifest.json into output_dir; returns the manifest.

    ``options`` (default ``PrepareOptions()``) with ``fields`` replaced: ``prepare(out,
    class_dir="clips/")`` is ``prepare(out, PrepareOptions(class_dir="clips/"))``.
    ``on_shard(n, path)`` is called after the n-th shard of this run is complete on disk.

    Complete shards from an earlier run with the same inputs and settings are kept
    (checked by a fingerprint of their planned contents and their size), so an
    interrupted run resumes and ends with byte-identical shards.
    """
    options = (options or PrepareOptions()).with_fields(**fields)
    name, sample_rate = options.name, options.sample_rate
    listing = list_inputs(options)
    clips, pre_skipped = precheck(listing)
    clip_samples = options.clip_samples
    shards = plan_shards(clips, name, int(options.clips_per_shard))
    os.makedirs(output_dir, exist_ok=True)
    inputs_lib.write_labels_csv(os.path.join(output_dir, LABELS_NAME), listing.labels)

    states: dict[int, dict] = {}
    todo = []
    for s in shards:
        fp = shard_fingerprint(s, sample_rate, clip_samples)
        st = load_state(output_dir, s, fp)
        if st is None:
            todo.append((s, fp))
        else:
            states[s.index] = st
    total_todo = sum(len(s.clips) for s, _ in todo)
    logging.info(
        "prepare: %d clips (%d skipped before decoding) -> %d shards, %d to write, %d kept",
        len(clips),
        len(pre_skipped),
        len(shards),
        len(todo),
        len(states),
    )
    progress = Progress(total_todo, "prepare", unit="clips")
    if todo:
        workers = int(options.num_workers) or (os.cpu_count() or 1)
        jobs = ((c, sample_rate, clip_samples) for s, _ in todo for c in s.clips)
        ctx = multiprocessing.get_context("spawn")
        pool = ctx.Pool(workers) if workers > 1 else None
        try:
            results = pool.imap(_encode_job, jobs, chunksize=4) if pool else map(_encode_job, jobs)
            results = iter(results)
            for written, (s, fp) in enumerate(todo, start=1):

                def shard_results(s=s):
                    for _ in s.clips:
                        r = next(results)
                        progress.update(1, failed=int(r[1] is not None))
                        yield r

                states[s.index] = write_shard(output_dir, s, shard_results(), fp, None)
                if on_shard is not None:
                    on_shard(written, os.path.join(output_dir, s.filename))
        finally:
            if pool is not None:
                pool.terminate()
                pool.join()
        progress.close()
    manifest = build_manifest(
        name,
        listing.labels,
        shards,
        states,
        pre_skipped,
        sample_rate,
        clip_samples,
        len(listing.clips) + len(listing.skipped),
    )
    write_manifest(output_dir, manifest)
    return manifest


def write_manifest(output_dir: str, manifest: dict) -> None:
    """``manifest.json`` (sorted keys), written atomically and synced."""
    text = json.dumps(manifest, indent=1, sort_keys=True) + "\n"
    atomic_write(os.path.join(output_dir, MANIFEST_NAME), text, fsync=True)


def build_manifest(
    name, labels, shards, states, pre_skipped, sample_rate, clip_samples, num_inputs
) -> dict:
    class_counts: dict[str, int] = {}
    fold_counts: dict[str, int] = {}
    shard_entries, skipped = [], list(pre_skipped)
    for s in shards:
        st = states[s.index]
        entry = {k: st[k] for k in ("file", "group", "num_clips", "sha256", "bytes")}
        entry["fold"] = s.fold
        if s.fold:
            fold_counts[s.fold] = fold_counts.get(s.fold, 0) + st["num_clips"]
        entry["class_counts"] = st["class_counts"]
        group_label = labels[s.group].display_name if 0 <= s.group < len(labels) else None
        entry["group_name"] = group_label
        shard_entries.append(entry)
        skipped.extend(st["skipped"])
        for k, v in st["class_counts"].items():
            class_counts[k] = class_counts.get(k, 0) + v
    skipped.sort(key=lambda d: (d["clip_id"], d["source"], d["reason"]))
    reasons: dict[str, int] = {}
    for d in skipped:
        reasons[d["reason"]] = reasons.get(d["reason"], 0) + 1
    num_clips = sum(e["num_clips"] for e in shard_entries)
    return {
        "version": MANIFEST_VERSION,
        "name": name,
        "sample_rate": sample_rate,
        "clip_samples": clip_samples,
        "num_classes": len(labels),
        "labels": [dataclasses.asdict(label) for label in labels],
        "num_inputs": num_inputs,
        "num_clips": num_clips,
        "num_skipped": len(skipped),
        "fail_fraction": len(skipped) / num_inputs if num_inputs else 0.0,
        "skipped_by_reason": reasons,
        "class_counts": dict(sorted(class_counts.items(), key=lambda kv: int(kv[0]))),
        "grouping": "rarest_label",
        "fold_counts": dict(sorted(fold_counts.items())),
        "shards": shard_entries,
        "skipped": skipped,
    }
