"""Teacher predictions for knowledge distillation: ``panns-keras teach`` as a library call.

:func:`teach` runs one teacher, or several whose clip logits are averaged (EfficientAT's
ensemble teacher), over prepared shards and stores the logits as float16 beside the data's
clip ids (the format: :mod:`panns_keras.data.teacher`). The trainer then distills with
``--config.data.teacher=DIR``: the loss of the one step (``train/step.py``) becomes
``(1 - w) * BCE(labels) + w * BCE(sigmoid(teacher_logits / T))``, mixed with the same mixup
lambdas as the inputs and labels.

Each teacher sees every clip as stored (the shard's full clip, inference mode). Resume as
``prepare``: each shard's predictions file is written atomically with a state file naming
the shard's SHA-256 and the teachers' weight hashes; a re-run keeps the shards whose state
still matches and writes the others.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
from absl import logging

from panns_keras.data import formats
from panns_keras.data import teacher as fmt
from panns_keras.errors import UserError
from panns_keras.fileio import atomic_path, atomic_write


def weights_sha256(model) -> str:
    """SHA-256 over every weight of ``model`` in order (the teacher's version: the same
    architecture with other weights gives another hash)."""
    h = hashlib.sha256()
    for v in model.weights:
        h.update(np.ascontiguousarray(np.asarray(v, dtype=np.float32)).tobytes())
    return h.hexdigest()


def shard_files(data: str) -> list[str]:
    """Shards of a prepared folder or a glob; one-line error when none."""
    pattern = formats.shard_pattern(data) if os.path.isdir(data) else data
    try:
        return formats.list_files(pattern)
    except FileNotFoundError:
        raise UserError(
            f"{data}: no TFRecord shards (a folder written by `panns-keras "
            "prepare`, or a glob of its shards)"
        ) from None


def _data_facts(files: list[str]) -> tuple[int | None, int | None]:
    """(sample_rate, num_classes) from the manifest beside the shards (None when absent)."""
    rates, classes = set(), set()
    for d in sorted({os.path.dirname(f) for f in files}):
        if os.path.isfile(formats.manifest_path(d)):
            m = formats.read_manifest(d)
            if m.get("sample_rate") is not None:
                rates.add(int(m["sample_rate"]))
            if m.get("num_classes") is not None:
                classes.add(int(m["num_classes"]))
    if len(rates) > 1 or len(classes) > 1:
        raise UserError(
            f"--data: shards of several data sets (sample rates {sorted(rates)}, "
            f"class counts {sorted(classes)})"
        )
    return (rates.pop() if rates else None), (classes.pop() if classes else None)


def _logits_fn(model):
    """``waveform (B, samples) -> clip logits (B, K)`` in inference mode, compiled on the
    backend in use. Decision-level models (no clip logit): ``log(p / (1 - p))`` of their
    clip probabilities."""
    import keras

    def logits(waveform):
        out = model(waveform, training=False, return_intermediates=True)
        z = out.get("logits")
        if z is not None and len(z.shape) == 2:
            return keras.ops.cast(z, "float32")
        p = keras.ops.clip(keras.ops.cast(out["clipwise_output"], "float32"), 1e-7, 1 - 1e-7)
        return keras.ops.log(p) - keras.ops.log1p(-p)

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.function(logits, reduce_retracing=True, autograph=False)
    return lambda w: logits(np.asarray(w))


def _clips(path: str, batch_size: int):
    """(clip_ids, float32 waveform batch) of one shard, in record order."""
    import tensorflow as tf

    from panns_keras.data import schema

    def parse(serialized):
        parsed = schema.parse_example(serialized)
        return parsed[schema.CLIP_ID], schema.decode_audio(parsed)

    ds = tf.data.TFRecordDataset(path).map(parse, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.padded_batch(batch_size).prefetch(2)
    for ids, wav in ds.as_numpy_iterator():
        yield [i.decode("utf-8") for i in ids], wav


def _fingerprint(shard_sha: str, models: list[dict]) -> str:
    key = json.dumps(
        {
            "shard": shard_sha,
            "models": [m["weights_sha256"] for m in models],
            "dtype": fmt.DTYPE,
            "version": fmt.VERSION,
        }
    )
    return hashlib.sha256(key.encode()).hexdigest()


def _load_state(out: Path, name: str, fingerprint: str) -> dict | None:
    state_path = out / fmt.STATE_DIR / f"{name}.json"
    try:
        state = json.loads(state_path.read_text())
    except (OSError, ValueError):
        return None
    path = out / state.get("file", "")
    if state.get("fingerprint") != fingerprint or not path.is_file():
        return None
    return state if path.stat().st_size == state.get("bytes") else None


def teach(
    models: list[str],
    data: str,
    out: str | os.PathLike,
    *,
    batch_size: int = 32,
    progress: bool = True,
) -> dict:
    """Writes the mean clip logits of ``models`` over the shards of ``data`` into ``out``.

    Args:
        models: teachers: preset names, model directories, ``.keras`` or PANNs ``.pth``
            files; all at the data's sample rate and with the data's classes.
        data: a folder written by ``panns-keras prepare``, or a glob of its shards.
        out: the predictions folder (``teacher.json`` and one ``<shard>.logits`` per shard).
        batch_size: clips per teacher call.

    Returns:
        the ``teacher.json`` content, plus ``written`` and ``kept`` (shard counts of this run).
    """
    from panns_keras.progress import Progress
    from panns_keras.train.warm_start import load_init

    if not models:
        raise UserError("--model: give at least one teacher model")
    files = shard_files(data)
    names = [os.path.basename(f) for f in files]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})[0]
        raise UserError(
            f"--data: two shards named {dup} (predictions are keyed by the "
            "shard's file name; teach each data set into its own --out)"
        )
    rate, classes = _data_facts(files)
    loaded, described = [], []
    for name in models:
        model = load_init(name)
        spec = model.spec
        if rate is not None and int(spec.sample_rate) != rate:
            raise UserError(
                f"{name}: runs at {spec.sample_rate} Hz, the data is at {rate} Hz "
                "(train or finetune a teacher at the data's rate)"
            )
        if classes is not None and int(spec.num_classes) != classes:
            raise UserError(
                f"{name}: predicts {spec.num_classes} classes, the data has "
                f"{classes} (a teacher predicts the data's classes: finetune it "
                "on them first)"
            )
        loaded.append(model)
        described.append(
            {
                "name": str(name),
                "model": spec.name,
                "weights_sha256": weights_sha256(model),
                "sample_rate": int(spec.sample_rate),
                "num_classes": int(spec.num_classes),
                "panns_keras_version": _package_version(),
            }
        )
    ks = {d["num_classes"] for d in described}
    if len(ks) > 1:
        raise UserError(f"--model: the teachers predict different class counts {sorted(ks)}")
    k = ks.pop()
    sample_rate = rate or described[0]["sample_rate"]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fns = [_logits_fn(m) for m in loaded]

    todo, states = [], {}
    for path, name in zip(files, names):
        fp = _fingerprint(fmt.file_sha256(path), described)
        st = _load_state(out, name, fp)
        if st is None:
            todo.append((path, name, fp))
        else:
            states[name] = st
    logging.info("teach: %d shard(s), %d to write, %d kept", len(files), len(todo), len(states))
    bar = Progress(len(todo), "teach", unit="shards", enabled=progress)
    for path, name, fp in todo:
        states[name] = _write_shard(out, path, name, fp, fns, k, batch_size)
        bar.update(1)
    bar.close()
    meta = {
        "format": fmt.FORMAT,
        "version": fmt.VERSION,
        "dtype": fmt.DTYPE,
        "combine": "mean of the teachers' clip logits" if len(models) > 1 else "logits",
        "models": described,
        "num_classes": k,
        "sample_rate": int(sample_rate),
        "shards": [_entry(states[n]) for n in sorted(states)],
    }
    old = _previous_entries(out, described)
    if old:  # shards of another `teach --data` into the same folder, same teachers
        mine = {e["shard"] for e in meta["shards"]}
        meta["shards"] = sorted(
            [*meta["shards"], *(e for e in old if e["shard"] not in mine)], key=lambda e: e["shard"]
        )
    atomic_write(fmt.teacher_path(str(out)), json.dumps(meta, indent=1) + "\n", fsync=True)
    return {**meta, "written": len(todo), "kept": len(files) - len(todo)}


def _entry(state: dict) -> dict:
    return {
        k: state[k] for k in ("shard", "file", "num_clips", "shard_bytes", "shard_sha256", "bytes")
    }


def _previous_entries(out: Path, described: list[dict]) -> list[dict]:
    try:
        old = fmt.read_teacher(str(out))
    except UserError:
        return []
    same = [m["weights_sha256"] for m in old.get("models", [])] == [
        m["weights_sha256"] for m in described
    ]
    return list(old["shards"]) if same else []


def _write_shard(
    out: Path, path: str, name: str, fingerprint: str, fns, k: int, batch_size: int
) -> dict:
    """One shard's predictions file (atomic), then its state file; returns the state."""
    import tensorflow as tf

    target = out / fmt.predictions_name(path)
    n = 0
    with atomic_path(target, fsync=True) as tmp:
        with tf.io.TFRecordWriter(str(tmp)) as w:
            for ids, wav in _clips(path, batch_size):
                z = np.mean([np.asarray(f(wav), np.float32) for f in fns], axis=0)  # (B, K)
                if z.shape != (len(ids), k) or not np.all(np.isfinite(z)):
                    raise UserError(f"{path}: teacher logits of shape {z.shape} or not finite")
                for clip_id, row in zip(ids, z):
                    w.write(fmt.encode_record(clip_id, row))
                n += len(ids)
        state = {
            "shard": name,
            "file": target.name,
            "num_clips": n,
            "shard_bytes": os.path.getsize(path),
            "shard_sha256": fmt.file_sha256(path),
            "bytes": os.path.getsize(tmp),
            "fingerprint": fingerprint,
        }
        atomic_write(out / fmt.STATE_DIR / f"{name}.json", json.dumps(state), fsync=True)
    return state


def _package_version() -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version("panns-keras")
    except importlib.metadata.PackageNotFoundError:
        return None
