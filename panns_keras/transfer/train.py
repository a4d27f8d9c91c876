"""Training loops: end-to-end transfer (all modes), the cached-embedding probe, and
:func:`finetune`, which runs them over folds and writes model directories."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time

import numpy as np
from absl import logging

from panns_keras.errors import UserError
from panns_keras.progress import Progress
from panns_keras.train import probe as probe_lib
from panns_keras.transfer import data as data_lib
from panns_keras.transfer import model as model_lib


@dataclasses.dataclass
class TrainOptions:
    steps: int = 200
    batch_size: int = 16
    lr: float = 1e-3
    schedule: str = "constant"  # or "cosine": lr decays to lr * min_lr_ratio over the steps
    min_lr_ratio: float = 0.05
    base_lr_scale: float = 0.1  # pretrained base's learning rate = lr * base_lr_scale
    unfreeze_after: int = 0  # frozen modes: train the base too from this step (0: never)
    mixup_alpha: float = 0.0  # waveform mixup, Beta(alpha, alpha); 0 disables
    gain_db: float = 0.0  # random gain in [-gain_db, gain_db]
    time_shift: float = 0.0  # random circular shift, fraction of the clip
    spec_augment: bool = True  # the base's own SpecAugment while the base trains
    hidden: int = 512  # freeze_l3 MLP width
    seed: int = 0
    log_every: int = 10
    eval_batch_size: int = 32


def _loss(logits, targets, multi_label):
    import tensorflow as tf

    if multi_label:
        return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(targets, logits))
    return tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(targets, logits))


def augment(x, y, rng, opts: TrainOptions):
    """Waveform gain / circular time shift / mixup on a numpy batch."""
    x = x.copy()
    if opts.gain_db > 0:
        db = rng.uniform(-opts.gain_db, opts.gain_db, size=(len(x), 1))
        x *= (10.0 ** (db / 20.0)).astype(np.float32)
    if opts.time_shift > 0:
        lim = int(opts.time_shift * x.shape[1])
        for i, s in enumerate(rng.integers(-lim, lim + 1, size=len(x))):
            x[i] = np.roll(x[i], s)
    if opts.mixup_alpha > 0:
        lam = rng.beta(opts.mixup_alpha, opts.mixup_alpha, size=(len(x), 1)).astype(np.float32)
        perm = rng.permutation(len(x))
        x = lam * x + (1 - lam) * x[perm]
        y = lam * y + (1 - lam) * y[perm]
    return x, y


SCHEDULES = ("constant", "cosine")


def _optimizer(lr, variables, opts: TrainOptions | None = None, steps: int | None = None):
    """Adam at ``lr``, or with ``opts.schedule == "cosine"`` decaying from ``lr`` to
    ``lr * opts.min_lr_ratio`` over ``steps`` (default ``opts.steps``) of its own updates."""
    import keras

    if opts is not None and opts.schedule not in SCHEDULES:
        raise UserError(f"--schedule {opts.schedule}: unknown schedule; one of "
                        f"{', '.join(SCHEDULES)}")  # fmt: skip
    steps = opts.steps if steps is None and opts is not None else steps
    if opts is not None and opts.schedule == "cosine" and steps > 0:
        lr = keras.optimizers.schedules.CosineDecay(lr, steps, alpha=opts.min_lr_ratio)
    opt = keras.optimizers.Adam(lr)
    if variables:
        opt.build(variables)
    return opt


def train_transfer(tm: model_lib.TransferModel, train: data_lib.ClipSet, opts: TrainOptions,
                   multi_label: bool, writer=None) -> dict:  # fmt: skip
    """Trains ``tm`` in place for ``opts.steps`` steps; returns {'loss', 'clips_per_s'}."""
    import tensorflow as tf

    if len(train) == 0:
        raise UserError("--data: no training clips in this split")
    head_opt = _optimizer(opts.lr, tm.head_vars, opts)
    # base_lr_scale protects pretrained weights; a scratch base has none, so it trains at lr
    # (else scratch would be handicapped against finetune in a comparison).
    base_scale = 1.0 if tm.mode == "scratch" else opts.base_lr_scale
    # a frozen base unfrozen at step u gets its own decay over the remaining steps
    base_steps = opts.steps - opts.unfreeze_after if tm.frozen else opts.steps
    base_opt = _optimizer(opts.lr * base_scale, tm.base_vars, opts, base_steps)

    def make_step(train_base):
        trained = tm.head_vars + (tm.base_vars if train_base else [])
        nh = len(tm.head_vars)

        @tf.function
        def step(x, y):
            with tf.GradientTape() as tape:
                loss = _loss(tm.logits(x, train_base=train_base), y, multi_label)
            grads = tape.gradient(loss, trained)
            head_opt.apply_gradients(zip(grads[:nh], tm.head_vars))
            if train_base:
                base_opt.apply_gradients(zip(grads[nh:], tm.base_vars))
            return loss

        return step

    steps = {}
    rng = np.random.default_rng(opts.seed)
    loss, t0, seen = float("nan"), time.perf_counter(), 0
    for i in range(opts.steps):
        train_base = not tm.frozen or (0 < opts.unfreeze_after <= i)
        if train_base not in steps:
            steps[train_base] = make_step(train_base)
        idx = rng.choice(len(train), size=opts.batch_size, replace=len(train) < opts.batch_size)
        x, y = augment(train.waveforms[idx], train.targets[idx], rng, opts)
        loss = float(steps[train_base](tf.constant(x), tf.constant(y)))
        if i == 0:  # clips/s leaves out the first step (tracing)
            t0 = time.perf_counter()
        else:
            seen += len(idx)
        if writer is not None and (i % opts.log_every == 0 or i == opts.steps - 1):
            with writer.as_default():
                tf.summary.scalar("train/loss", loss, step=i)
        if i % opts.log_every == 0:
            logging.info("step %d/%d loss %.4f", i, opts.steps, loss)
    dt = time.perf_counter() - t0
    return {"loss": loss, "clips_per_s": seen / dt if seen else float("nan"), "train_s": dt}


def predict_logits(fn, waveforms, batch_size=32) -> np.ndarray:
    """``fn`` over fixed-size batches (the last one zero-padded, so one trace)."""
    out = []
    for i in range(0, len(waveforms), batch_size):
        x = waveforms[i : i + batch_size]
        n = len(x)
        if n < batch_size:
            x = np.concatenate([x, np.zeros((batch_size - n, *x.shape[1:]), x.dtype)])
        out.append(np.asarray(fn(x))[:n])
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def score(logits: np.ndarray, targets: np.ndarray, multi_label: bool) -> dict:
    """{'accuracy'} for single-label data, {'mAP'} for multi-label data."""
    if len(targets) == 0:
        return {}
    if multi_label:
        from panns_keras.metrics import evaluate_scores

        return {"mAP": evaluate_scores(targets, 1 / (1 + np.exp(-logits)))["mAP"]}
    return {"accuracy": float(np.mean(logits.argmax(1) == targets.argmax(1)))}


# ------------------------------------------------------------------ cached-embedding probe
def model_hash(model) -> str:
    h = hashlib.sha256(json.dumps(model.spec.to_dict(), sort_keys=True).encode())
    for w in model.get_weights():
        h.update(np.ascontiguousarray(w).tobytes())
    return h.hexdigest()[:16]


def embeddings(base, clips: data_lib.ClipSet, cache_dir: str | None = None,
               batch_size: int = 32) -> np.ndarray:  # fmt: skip
    """(N, E) embeddings (fc1 ReLU output, ``training=False``), cached as
    ``cache_dir/emb-<model hash>-<data hash>.npy``."""
    import tensorflow as tf

    path = None
    if cache_dir:
        path = os.path.join(cache_dir, f"emb-{model_hash(base)}-{clips.data_hash()}.npy")
        if os.path.isfile(path):
            logging.info("embeddings from cache %s", path)
            return np.load(path)
    fn = tf.function(lambda x: base(x, training=False)["embedding"], reduce_retracing=True)
    emb = predict_logits(fn, clips.waveforms, batch_size).astype(np.float32)
    if path:
        os.makedirs(cache_dir, exist_ok=True)
        tmp = path + ".tmp.npy"
        np.save(tmp, emb)
        os.replace(tmp, path)
    return emb


def train_probe(emb: np.ndarray, targets: np.ndarray, multi_label: bool, opts: TrainOptions,
                groups=None) -> probe_lib.LinearProbe:  # fmt: skip
    """The converged, standardised linear probe of ``panns_keras.train.probe`` (C chosen by
    an inner CV on these training clips, by ``groups`` = their folds when there are several);
    ``.dense_weights()`` folds it into (W (E, K), b) on the raw embedding. The probe needs no
    steps, batch size or learning rate."""
    return probe_lib.fit_probe(emb, targets, multi_label, groups=groups, seed=opts.seed)


# ------------------------------------------------------------------ finetune API
def _save(tm_model, out_dir, clips, mode, multi_label, extra):
    from panns_keras.convert.model_dir import save_model_dir

    extra = {"transfer": {"mode": mode, "multi_label": multi_label, **extra}}
    if isinstance(tm_model, model_lib.TransferMLP):
        os.makedirs(out_dir, exist_ok=True)
        tm_model.labels = tuple(name for _, name in clips.labels)
        path = os.path.join(out_dir, "model.keras")
        tm_model.save(path)
        with open(os.path.join(out_dir, "transfer.json"), "w", encoding="utf-8") as f:
            json.dump(extra, f, indent=2)
        return path
    return str(save_model_dir(tm_model, out_dir, labels=clips.labels, extra=extra))


def run_split(base, clips, name, train_idx, test_idx, workdir, mode, opts, multi_label,
              emb=None):  # fmt: skip
    """Trains one split; writes ``workdir/<name>/`` (TensorBoard, split.json, model).
    ``emb``: (N, E) embeddings of all ``clips`` (probe mode)."""
    import tensorflow as tf

    split_dir = os.path.join(workdir, name)
    os.makedirs(split_dir, exist_ok=True)
    train, test = clips.subset(train_idx), clips.subset(test_idx)
    with open(os.path.join(split_dir, "split.json"), "w", encoding="utf-8") as f:
        json.dump({"train": train.clip_ids, "test": test.clip_ids}, f)
    writer = tf.summary.create_file_writer(split_dir)
    if mode == "probe":
        t0 = time.perf_counter()
        if emb is None:
            emb = embeddings(base, clips, os.path.join(workdir, "embeddings"),
                             opts.eval_batch_size)  # fmt: skip
        emb_te = emb[test_idx] if len(test) else None
        fitted = train_probe(emb[train_idx], train.targets, multi_label, opts,
                             groups=np.asarray(train.folds))  # fmt: skip
        w, b = fitted.dense_weights()
        tm = model_lib.build_transfer_model(base, clips.num_classes, "freeze_l1",
                                            seed=opts.seed)  # fmt: skip
        tm.model.weight_layers()["fc_audioset"].set_weights([w, b])
        logits = emb_te @ w + b if emb_te is not None else np.zeros((0, clips.num_classes))
        stats = {"train_s": time.perf_counter() - t0, "probe_C": fitted.C}
    else:
        tm = model_lib.build_transfer_model(base, clips.num_classes, mode, hidden=opts.hidden,
                                            multi_label=multi_label, seed=opts.seed,
                                            spec_augment=opts.spec_augment)  # fmt: skip
        stats = train_transfer(tm, train, opts, multi_label, writer)
        fn = tf.function(lambda x: tm.logits(x, train_base=False, training_head=False),
                         reduce_retracing=True)  # fmt: skip
        logits = predict_logits(fn, test.waveforms, opts.eval_batch_size)
    metrics = score(logits, test.targets, multi_label)
    with writer.as_default():
        for k, v in metrics.items():
            tf.summary.scalar(f"eval/{k}", v, step=opts.steps)
    writer.flush()
    path = _save(tm.model, os.path.join(split_dir, "model"), clips, mode, multi_label,
                 {"split": name, "test_clips": len(test), **metrics})  # fmt: skip
    logging.info("%s: %s (%d train / %d test clips) -> %s", name, metrics, len(train),
                 len(test), path)  # fmt: skip
    return {"split": name, "train_clips": len(train), "test_clips": len(test),
            "model_dir": path, **metrics, **stats}  # fmt: skip


def finetune(data, workdir: str, *, init=None, model_name: str | None = None,
             mode: str = "finetune", folds: str = "", clip_seconds: float = 10.0,
             num_workers: int = 1, overrides: dict | None = None,
             options: TrainOptions | None = None, **option_kw) -> dict:  # fmt: skip
    """Transfer-learns a PANNs model on a new dataset.

    Args:
      data: a data_prep TFRecord folder, a folder with one sub-folder per class, a
        ``path,labels[,fold]`` CSV, or a :class:`~panns_keras.transfer.data.ClipSet`.
      workdir: outputs: ``data/`` (prepared shards), ``embeddings/`` (probe cache),
        ``<split>/`` per fold (TensorBoard events, split.json, ``model/``), results.json.
      init: pretrained model (AudioTagger, model directory or ``.pth``); None with
        ``model_name`` gives a random base. ``scratch`` uses only the base's architecture.
      mode: scratch | finetune | freeze_l1 | freeze_l3 | probe.
      folds: see :func:`panns_keras.transfer.data.make_splits`.
      overrides: build_model overrides for a base built from ``model_name``.
      options / option_kw: :class:`TrainOptions` (or its fields as keywords).

    Returns:
      dict with per-split results, ``mean`` of the metric and the task type.
    """
    opts = options or TrainOptions(**option_kw)
    if mode not in (*model_lib.MODES, "probe"):
        raise UserError(f"--mode {mode}: unknown mode")
    os.makedirs(workdir, exist_ok=True)
    base = model_lib.resolve_base(init, model_name, **(overrides or {}))
    if isinstance(data, data_lib.ClipSet):
        clips = data
    else:
        clips = data_lib.load_clips(str(data), workdir, base.spec.sample_rate, clip_seconds,
                                    num_workers)  # fmt: skip
    multi_label = clips.multi_label
    emb, results = None, []
    if mode == "probe":  # once for all folds, cached on disk for later runs
        t0 = time.perf_counter()
        emb = embeddings(base, clips, os.path.join(workdir, "embeddings"), opts.eval_batch_size)
        logging.info("embeddings of %d clips: %.1f s", len(clips), time.perf_counter() - t0)
    metric = "mAP" if multi_label else "accuracy"
    splits = list(data_lib.make_splits(clips, folds))
    with Progress(len(splits), "finetune", unit="splits") as progress:
        for name, tr, te in splits:
            results.append(run_split(base, clips, name, tr, te, workdir, mode, opts,
                                     multi_label, emb))  # fmt: skip
            shown = results[-1].get(metric)
            progress.update(1, force=True, postfix=f"{name} {metric} "
                            + ("n/a" if shown is None else f"{shown:.3f}"))  # fmt: skip
    vals = [r[metric] for r in results if metric in r]
    summary = {"mode": mode, "model": base.spec.name, "multi_label": multi_label,
               "metric": metric, "mean": float(np.mean(vals)) if vals else None,
               "splits": results, "options": dataclasses.asdict(opts)}  # fmt: skip
    with open(os.path.join(workdir, "results.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
    return summary
