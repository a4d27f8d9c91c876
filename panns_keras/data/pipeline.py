"""tf.data input pipelines over the shards written by `panns_keras.data.prepare`.

Train: shards -> (per class group: shuffled shard list -> interleave -> repeat)
  -> uniform choice of class group (balanced) or one interleaved stream (raw
  frequencies) -> shuffle -> parse -> crop/pad -> multi-hot -> batch (2B clips with
  mixup: the training step mixes them, in every mixup mode) -> prefetch. Infinite and seeded.
Eval: every clip exactly once in file order; the last batch is padded and a
  `mask` marks real rows.
Teacher predictions (`config.data.teacher`, written by `panns-keras teach`; format in
  `data/teacher.py`): each shard's records are zipped with its `<shard>.logits` records
  where the shard is read, so the clip and its teacher logits travel together through every
  sampling mode (balanced, shuffled, folds, sharding over replicas); the batch gains
  `teacher_logits` (float32 [B, K]) and a clip id that differs from its prediction's stops
  the pipeline.

Corrupted shards (bad CRC, truncation) are detected per file by comparing the bytes
consumed by the reader with the file size: by default an InvalidArgumentError
naming the shard is raised; with `skip_corrupt` the rest of that shard is skipped,
a warning naming it goes to stderr and `corrupt_shard_count()` is incremented.
"""

from __future__ import annotations

import os
import sys

import tensorflow as tf
from absl import logging

from panns_keras.data import formats, schema
from panns_keras.data import teacher as teacher_lib

MANIFEST_NAME = formats.MANIFEST_NAME
_RECORD_OVERHEAD = 16  # 8-byte length + 4-byte length CRC + 4-byte data CRC

_CORRUPT_COUNTER = None


def corrupt_shard_count() -> int:
    """Number of corrupted shards skipped so far (skip_corrupt=True) in this process."""
    return 0 if _CORRUPT_COUNTER is None else int(_CORRUPT_COUNTER.numpy())


def _corrupt_counter() -> tf.Variable:
    global _CORRUPT_COUNTER
    if _CORRUPT_COUNTER is None:
        with tf.init_scope():
            _CORRUPT_COUNTER = tf.Variable(0, dtype=tf.int64, trainable=False, name="corrupt")
    return _CORRUPT_COUNTER


def read_manifest(directory: str) -> dict:
    """Loads `<directory>/manifest.json` (or the path itself if it is a file), any readable
    version, as the current one (`formats.parse_manifest`); through tf.io.gfile (GCS...)."""
    path = directory
    if tf.io.gfile.isdir(directory):
        path = formats.manifest_path(directory)
    with tf.io.gfile.GFile(path, "r") as f:
        return formats.parse_manifest(f.read(), path)


list_files = formats.list_files  # the shard listing rule lives with the formats


def _manifest_entries(files: list[str], manifest_dir: str = "") -> dict[str, dict]:
    """Maps each file that a manifest beside the shards (or in manifest_dir) lists to its
    shard entry."""
    dirs = {manifest_dir} if manifest_dir else {os.path.dirname(f) for f in files}
    entries = {}
    for d in sorted(dirs):
        try:
            m = read_manifest(d)
        except (tf.errors.NotFoundError, FileNotFoundError):
            continue
        for s in m["shards"]:
            entries[os.path.join(d, s["file"])] = s
            entries[s["file"]] = s  # basename fallback
    return {f: e for f in files if (e := entries.get(f, entries.get(os.path.basename(f))))}


def fold_selection(config, split: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(folds, exclude_folds) of the ``train`` or ``eval`` split: eval takes
    ``data.eval_folds`` (all when empty); train takes ``data.train_folds`` (all when empty)
    minus ``data.eval_folds``, so a held-out fold never reaches training."""
    d = config.data
    eval_folds = formats.fold_list(d.get("eval_folds", ""))
    if split == "eval":
        return eval_folds, ()
    train_folds = formats.fold_list(d.get("train_folds", ""))
    formats.check_fold_selection(train_folds, eval_folds)
    return train_folds, eval_folds


def select_fold_files(files, folds, exclude_folds, manifest_dir: str = "") -> list[str]:
    """Drops shards whose manifest entry names a fold outside the selection (prepare
    writes single-fold shards). Shards without a fold in the manifest (version 1, or written
    by other tools, possibly mixing folds) are kept: their records are filtered one by one,
    as every record is."""
    if not (folds or exclude_folds):
        return files
    entries = _manifest_entries(files, manifest_dir)

    def keep(f):
        fold = entries[f]["fold"] if f in entries else formats.NO_FOLD
        return fold == formats.NO_FOLD or formats.fold_selected(fold, folds, exclude_folds)

    kept = [f for f in files if keep(f)]
    if not kept:
        raise ValueError(
            f"no shard holds clips of the selected folds {list(folds)} "
            f"(excluding {list(exclude_folds)})"
        )
    return kept


def _fold_filter(folds, exclude_folds):
    """Predicate on a decoded element: its fold is selected (formats.fold_selected)."""
    include = tf.constant(list(folds) or [""], tf.string)
    exclude = tf.constant(list(exclude_folds) or [""], tf.string)

    def keep(e):
        fold = e["fold"]
        ok = tf.reduce_any(tf.equal(include, fold)) if folds else tf.constant(True)
        if exclude_folds:
            ok = tf.logical_and(ok, tf.logical_not(tf.reduce_any(tf.equal(exclude, fold))))
        return ok

    return keep


def _shard_groups(files: list[str], manifest_dir: str = "") -> dict[str, int]:
    """Maps each file to its class group from the manifest(s) beside the shards."""
    entries = _manifest_entries(files, manifest_dir)
    out = {f: int(e["group"]) for f, e in entries.items()}
    missing = [f for f in files if f not in entries]
    if missing:
        raise ValueError(
            f"balanced sampling needs the shard -> class group map from {MANIFEST_NAME}; "
            f"no entry for {len(missing)} file(s), e.g. {missing[0]} "
            "(set config.data.manifest_dir or config.data.balanced=False)"
        )
    return out


def _read_checked(filename, filesize, skip_corrupt: bool) -> tf.data.Dataset:
    """Records of one file; detects corruption/truncation and names the file."""
    filesize = tf.cast(filesize, tf.int64)
    records = tf.data.TFRecordDataset(filename).ignore_errors()
    tagged = records.map(lambda r: (r, tf.constant(False)))
    tagged = tagged.concatenate(tf.data.Dataset.from_tensors((tf.constant(b""), tf.constant(True))))

    def step(consumed, item):
        r, is_end = item
        size = tf.cast(tf.strings.length(r), tf.int64) + _RECORD_OVERHEAD
        consumed = tf.where(is_end, consumed, consumed + size)
        return consumed, (r, is_end, consumed)

    scanned = tagged.scan(tf.constant(0, tf.int64), step)

    def check(r, is_end, consumed):
        bad = tf.logical_and(is_end, tf.not_equal(consumed, filesize))
        if skip_corrupt:

            def report():
                counter = _corrupt_counter()
                op = tf.print(
                    "WARNING: skip_corrupt: corrupted TFRecord shard",
                    filename,
                    ": read",
                    consumed,
                    "of",
                    filesize,
                    "bytes; rest of the shard skipped",
                    output_stream=sys.stderr,
                )
                with tf.control_dependencies([op]):
                    return counter.assign_add(1)

            done = tf.cond(bad, report, lambda: tf.constant(0, tf.int64))
            with tf.control_dependencies([done]):
                return tf.identity(r), tf.identity(is_end)
        assert_op = tf.debugging.Assert(
            tf.logical_not(bad),
            [
                "corrupted or truncated TFRecord shard:",
                filename,
                "read bytes:",
                consumed,
                "file size:",
                filesize,
            ],
            summarize=3,
        )
        with tf.control_dependencies([assert_op]):
            return tf.identity(r), tf.identity(is_end)

    checked = scanned.map(check)
    return checked.filter(lambda r, is_end: tf.logical_not(is_end)).map(lambda r, is_end: r)


def _file_dataset(files: list[str], teacher: dict | None = None) -> tf.data.Dataset:
    sizes = [tf.io.gfile.stat(f).length for f in files]
    columns = (tf.constant(files, tf.string), tf.constant(sizes, tf.int64))
    if teacher is not None:  # the shard's predictions file beside it
        columns += (tf.constant([teacher[f] for f in files], tf.string),)
    return tf.data.Dataset.from_tensor_slices(columns)


def _read_with_teacher(filename, filesize, predictions, skip_corrupt: bool):
    """(record, predictions record) pairs of one shard, in record order."""
    records = _read_checked(filename, filesize, skip_corrupt)
    return tf.data.Dataset.zip((records, tf.data.TFRecordDataset(predictions)))


def _pipeline_info(input_context, global_batch: int):
    if input_context is None:
        return global_batch, 0, 1
    per = input_context.get_per_replica_batch_size(global_batch)
    return per, input_context.input_pipeline_id, input_context.num_input_pipelines


def _shard_files_or_records(files, pid, n):
    """Shards by file when every pipeline gets at least one file, else by record."""
    if n <= 1:
        return files, None
    if len(files) >= n:
        return files[pid::n], None
    return files, (n, pid)


def _records(
    files,
    skip_corrupt,
    cycle_length,
    parallel,
    deterministic,
    record_shard=None,
    shuffle_seed=None,
    repeat=False,
    teacher=None,
):
    """Records of ``files`` interleaved (files shuffled / repeated first when asked); with
    ``teacher`` (``{shard: predictions file}``) each element is ``(record, prediction)``."""
    ds = _file_dataset(files, teacher)
    if shuffle_seed is not None:
        ds = ds.shuffle(len(files), seed=shuffle_seed)
    if repeat:
        ds = ds.repeat()
    kwargs = (
        {} if parallel is None else {"num_parallel_calls": parallel, "deterministic": deterministic}
    )
    if teacher is not None:
        read = lambda f, s, t: _read_with_teacher(f, s, t, skip_corrupt)  # noqa: E731
    else:
        read = lambda f, s: _read_checked(f, s, skip_corrupt)  # noqa: E731
    ds = ds.interleave(
        read,
        cycle_length=max(1, min(cycle_length, len(files))),
        block_length=1,
        **kwargs,
    )
    if record_shard is not None:
        ds = ds.shard(*record_shard)
    return ds


def _decode_fn(
    clip_samples: int, num_classes: int, random_crop: bool, seed: int, teacher: bool = False
):
    """serialized -> {'waveform': int16 [clip_samples], 'target', 'clip_id'} (with
    ``teacher``: ``(serialized, prediction)`` -> also 'teacher_logits', float16 [K]).

    The waveform stays int16 until after batching (half the bytes to copy); `_to_float`
    then divides by 32767.
    """

    def crop_or_pad(pcm, valid, index):
        excess = tf.maximum(valid - clip_samples, 0)
        if random_crop:
            offset = tf.random.stateless_uniform(
                [],
                seed=tf.stack([tf.cast(seed, tf.int64), index]),
                maxval=excess + 1,
                dtype=tf.int64,
            )
        else:
            offset = tf.constant(0, tf.int64)
        pcm = pcm[offset : offset + clip_samples]
        return tf.pad(pcm, [[0, clip_samples - tf.shape(pcm, out_type=tf.int64)[0]]])

    parse_teacher = teacher_lib.parse_fn(num_classes) if teacher else None

    def decode(index, serialized):
        if parse_teacher is not None:
            serialized, prediction = serialized
            out = decode_clip(index, serialized)
            clip_id, logits = parse_teacher(prediction)
            same = tf.debugging.Assert(
                tf.equal(clip_id, out["clip_id"]),
                [
                    "teacher predictions out of step with the shard: clip",
                    out["clip_id"],
                    "has the prediction of clip",
                    clip_id,
                    "(run `panns-keras teach` again)",
                ],
            )
            with tf.control_dependencies([same]):
                out["teacher_logits"] = tf.identity(logits)
            return out
        return decode_clip(index, serialized)

    def decode_clip(index, serialized):
        parsed = schema.parse_example(serialized)
        pcm = tf.io.decode_raw(parsed[schema.AUDIO], tf.int16, little_endian=True)
        n = tf.shape(pcm, out_type=tf.int64)[0]
        valid = tf.minimum(tf.maximum(parsed[schema.NUM_SAMPLES], 1), n)
        if random_crop:
            fits = tf.logical_and(tf.equal(n, clip_samples), valid >= clip_samples)
        else:
            fits = tf.equal(n, clip_samples)
        pcm = tf.cond(fits, lambda: pcm, lambda: crop_or_pad(pcm, valid, index))
        pcm = tf.ensure_shape(pcm, [clip_samples])
        return {
            "waveform": pcm,
            "target": schema.multi_hot(parsed[schema.LABELS], num_classes),
            "clip_id": parsed[schema.CLIP_ID],
            "fold": parsed[schema.FOLD],
        }

    return decode


def _to_float(batch: dict) -> dict:
    out = dict(batch)
    out["waveform"] = tf.cast(batch["waveform"], tf.float32) / schema.INT16_SCALE
    if "teacher_logits" in out:
        out["teacher_logits"] = tf.cast(batch["teacher_logits"], tf.float32)
    return out


def teacher_files(config, files: list[str]) -> dict | None:
    """``{shard: predictions file}`` of ``config.data.teacher`` (None without a teacher);
    a shard without predictions is a one-line ``UserError`` naming it."""
    directory = str(config.data.get("teacher", "") or "")
    if not directory:
        return None
    return teacher_lib.prediction_files(files, directory, int(config.data.num_classes))


def _options(deterministic: bool) -> tf.data.Options:
    opts = tf.data.Options()
    opts.deterministic = bool(deterministic)
    opts.experimental_optimization.map_parallelization = True
    return opts


def make_train_dataset(config, input_context=None) -> tf.data.Dataset:
    """Infinite training dataset of {'waveform', 'target'} batches (see module doc)."""
    d = config.data
    per_replica, pid, npipes = _pipeline_info(input_context, int(config.train.batch_size))
    seed = int(config.get("seed", 0)) * 1000003 + pid
    deterministic = bool(d.get("deterministic", True))
    skip = bool(d.skip_corrupt)
    clip_samples = int(d.clip_samples)
    cycle = int(d.get("cycle_length", 4))
    parallel = d.get("num_parallel_reads", -1)
    parallel = tf.data.AUTOTUNE if parallel in (None, -1) else int(parallel)
    files = list_files(d.train_files)
    folds, exclude_folds = fold_selection(config, "train")
    files = select_fold_files(files, folds, exclude_folds, d.get("manifest_dir", ""))
    teacher = teacher_files(config, files)

    if d.balanced:
        groups = _shard_groups(files, d.get("manifest_dir", ""))
        by_group: dict[int, list[str]] = {}
        for f in files:
            by_group.setdefault(groups[f], []).append(f)
        streams = []
        for i, g in enumerate(sorted(by_group)):
            gfiles, rshard = _shard_files_or_records(by_group[g], pid, npipes)
            recs = _records(
                gfiles,
                skip,
                cycle,
                None,
                True,
                rshard,
                shuffle_seed=seed + 7919 * i,
                teacher=teacher,
            )
            streams.append(recs.repeat())
        logging.info("balanced train input: %d class groups, %d shards", len(streams), len(files))
        ds = tf.data.Dataset.sample_from_datasets(
            streams, weights=None, seed=seed, stop_on_empty_dataset=False
        )
    else:
        pfiles, rshard = _shard_files_or_records(files, pid, npipes)
        ds = _records(
            pfiles,
            skip,
            cycle,
            parallel,
            deterministic,
            rshard,
            shuffle_seed=seed,
            repeat=True,
            teacher=teacher,
        )

    if int(d.shuffle_buffer) > 1:
        ds = ds.shuffle(int(d.shuffle_buffer), seed=seed + 1)
    mode = str(d.mixup).lower()
    if mode not in ("in_model", "logmel", "waveform", "none"):
        raise ValueError(f"config.data.mixup must be in_model|waveform|none, got {d.mixup!r}")
    batch = per_replica * 2 if mode != "none" else per_replica
    decode = _decode_fn(
        clip_samples,
        int(d.num_classes),
        bool(d.get("random_crop", True)),
        seed,
        teacher=teacher is not None,
    )
    ds = ds.enumerate().map(
        decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic
    )
    if skip:
        ds = ds.ignore_errors()  # unparsable records
    if folds or exclude_folds:
        ds = ds.filter(_fold_filter(folds, exclude_folds))
    keep = ("waveform", "target", "teacher_logits") if teacher else ("waveform", "target")
    ds = ds.map(lambda e: {k: e[k] for k in keep})
    ds = ds.batch(batch, drop_remainder=True)
    ds = ds.map(_to_float, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    ds = ds.prefetch(tf.data.AUTOTUNE)
    return ds.with_options(_options(deterministic))


def make_eval_dataset(config, input_context=None) -> tf.data.Dataset:
    """Every clip once, in file order, padded last batch with 'mask' and 'clip_id'."""
    d = config.data
    per_replica, pid, npipes = _pipeline_info(input_context, int(config.train.batch_size))
    eval_batch = int(config.get("eval", {}).get("batch_size", 0) or 0) or per_replica
    if input_context is not None and eval_batch != per_replica:
        eval_batch = input_context.get_per_replica_batch_size(eval_batch)
    clip_samples = int(d.clip_samples)
    files = list_files(d.eval_files)
    folds, _ = fold_selection(config, "eval")
    files = select_fold_files(files, folds, (), d.get("manifest_dir", ""))
    pfiles, rshard = _shard_files_or_records(files, pid, npipes)
    ds = _records(pfiles, bool(d.skip_corrupt), 1, None, True, rshard)
    ds = ds.enumerate()
    ds = ds.map(
        _decode_fn(clip_samples, int(d.num_classes), False, 0),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    if d.skip_corrupt:
        ds = ds.ignore_errors()
    if folds:
        ds = ds.filter(_fold_filter(folds, ()))
    ds = ds.map(
        lambda e: {
            **{k: v for k, v in e.items() if k != "fold"},
            "mask": tf.constant(1.0, tf.float32),
        }
    )
    ds = ds.batch(eval_batch, drop_remainder=False)

    def pad(b):
        missing = eval_batch - tf.shape(b["mask"])[0]
        out = {}
        for k, v in b.items():
            paddings = [[0, missing]] + [[0, 0]] * (len(v.shape) - 1)
            out[k] = tf.pad(v, paddings)
            out[k] = tf.ensure_shape(out[k], [eval_batch, *v.shape[1:]])
        return out

    ds = ds.map(lambda b: _to_float(pad(b))).prefetch(tf.data.AUTOTUNE)
    return ds.with_options(_options(True))
