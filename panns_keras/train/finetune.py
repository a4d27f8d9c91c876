"""Transfer learning with the one trainer: k-fold cross-validation over prepared TFRecords.

``finetune(data, workdir, config)``:

1. ``data`` is a folder of TFRecords written by ``panns-keras prepare`` (``manifest.json``,
   ``labels.csv``), or a class folder / ``path,labels[,fold]`` CSV that is first prepared
   into ``workdir/data`` at the initial model's sample rate.
2. Splits: ``folds='all'`` holds out each fold of the manifest in turn; ``'a,b'`` holds out
   those folds, one split each; ``'none'`` trains on everything with no held-out set. Folds
   are selected by shard and by record (``panns_keras.data.formats``), so a held-out clip
   never reaches training.
3. Each split is one :func:`panns_keras.train.trainer.train` run in ``workdir/split_<fold>``
   (warm start from ``config.model.init`` in ``config.model.mode``; checkpoints, resume,
   TensorBoard as in pretraining), evaluated on its held-out fold at the end. Mode
   ``probe``: a linear classifier fit to convergence (:mod:`panns_keras.train.probe`) on the
   initial model's embeddings, computed once per fold by streaming the shards.
4. ``workdir/results.json`` (atomic): every split's figures and their means. A finished split
   keeps its ``split.json``; a re-run skips it, an interrupted one resumes from its checkpoint.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import ml_collections
import numpy as np
from absl import logging

from panns_keras.data import formats
from panns_keras.errors import Stopped, UserError
from panns_keras.fileio import atomic_write

RESULTS = "results.json"
SPLIT_RESULT = "split.json"
METRICS = ("accuracy", "mAP", "mAUC", "d_prime")


def _write_json(path: Path, value: Any) -> None:
    atomic_write(path, json.dumps(value, indent=2) + "\n")


def init_spec(init: str) -> dict:
    """The initial model's spec (:meth:`ModelSpec.to_dict` form), without building it when
    the model says it in a file: ``name``, ``sample_rate``, ``clip_seconds`` (None when
    unknown), ``num_classes``, ... A ``.pth`` is a PANNs checkpoint (trained on 10 s clips)."""
    from panns_keras.models.build import resolve
    from panns_keras.train.warm_start import load_init

    path = Path(resolve(init))
    if path.is_dir() and (path / "config.json").is_file():
        from panns_keras.models.saving import read_model_config

        return dict(read_model_config(path)["spec"])
    if path.suffix == ".pth":
        from panns_keras.convert.converter import PANNS_CLIP_SECONDS
        from panns_keras.models.registry import get_spec, infer_model_name

        try:
            spec = get_spec(infer_model_name(path.name))
        except KeyError as e:
            raise UserError(str(e.args[0])) from None
        return {**spec.to_dict(), "clip_seconds": PANNS_CLIP_SECONDS}
    return load_init(path).spec.to_dict()


def init_sample_rate(init: str) -> int:
    """The initial model's sample rate, without building it."""
    return int(init_spec(init)["sample_rate"])


def prepared_data(data: str, workdir: Path, sample_rate: int, clip_seconds: float) -> Path:
    """``data`` if it is a prepared TFRecord folder, else ``workdir/data`` prepared from it."""
    path = Path(data)
    if not path.exists():
        raise UserError(f"{data}: not found")
    if path.is_dir() and (path / formats.MANIFEST_NAME).is_file():
        return path
    from panns_keras.data.prepare import prepare

    out = workdir / "data"
    kw = {"class_dir": str(path)} if path.is_dir() else {"generic_csv": str(path)}
    beside = path.parent / formats.LABELS_NAME
    if path.is_file() and beside.is_file():
        kw["labels_csv"] = str(beside)  # a labels.csv beside the CSV fixes the class order
    manifest = prepare(
        str(out), sample_rate=sample_rate, clip_seconds=clip_seconds, num_workers=1, **kw
    )
    if manifest.get("num_skipped"):
        logging.warning("prepare skipped %d input(s)", manifest["num_skipped"])
    return out


def splits(manifest: dict, folds: str) -> list[str | None]:
    """Held-out fold of each split (None: no held-out set)."""
    present = sorted({s.get("fold", "") for s in manifest["shards"]} - {formats.NO_FOLD})
    if folds == "none":
        return [None]
    if folds == "all":
        if len(present) < 2:
            raise UserError(
                f"--folds=all needs at least 2 folds in the data, found {present}; "
                "prepare with a fold column or fold pattern, or use --folds=none"
            )
        return list(present)
    chosen = list(formats.fold_list(folds))
    unknown = sorted(set(chosen) - set(present))
    if unknown:
        raise UserError(f"--folds: no clips in fold(s) {unknown}; the data has {present}")
    return chosen


def split_config(config, data_dir: Path, manifest: dict, held_out: str | None):
    cfg = ml_collections.ConfigDict(config.to_dict())
    d = cfg.data
    d.train_files = formats.shard_pattern(str(data_dir))
    d.eval_files = d.train_files if held_out is not None else ""
    d.eval_folds = held_out or ""
    d.train_folds = ""
    d.manifest_dir = str(data_dir)
    d.labels = str(data_dir / formats.LABELS_NAME)
    d.num_classes = int(manifest["num_classes"])
    d.sample_rate = int(manifest["sample_rate"])
    d.clip_samples = int(manifest["clip_samples"])
    cfg.eval.every = 0  # one evaluation, at the end of the split
    cfg.eval.keep_best = False
    return cfg


def _metrics(res: dict | None) -> dict:
    return {k: float(res[k]) for k in METRICS if res and k in res}


def _evaluate(model, cfg) -> dict:
    """The held-out evaluation of a split whose training had already finished (a re-run
    after an interruption between its last checkpoint and its split.json)."""
    from panns_keras.data.pipeline import make_eval_dataset
    from panns_keras.train import evaluation

    return evaluation.evaluate(evaluation.make_predict_fn(model), make_eval_dataset(cfg))


def _probe_split(
    config, data_dir, manifest, held_out, fold_cache: dict, split_dir: Path | None = None
) -> dict:
    from panns_keras.train import evaluation, probe
    from panns_keras.train.warm_start import load_init

    if held_out is None:
        raise UserError("mode probe needs held-out folds (--folds=all or a list)")
    present = sorted({s.get("fold", "") for s in manifest["shards"]} - {formats.NO_FOLD})
    if not fold_cache:
        import tensorflow as tf

        from panns_keras.data.pipeline import make_eval_dataset

        model = load_init(config.model.init)
        if model.spec.head.kind != "clip":
            raise UserError(f"{model.spec.name}: probe needs a clip model with an embedding")
        embed = tf.function(
            lambda w: model(w, training=False)["embedding"], reduce_retracing=True, autograph=False
        )
        fold_cache[_PROBE_MODEL] = model.spec.name
        for fold in present:
            cfg = split_config(config, data_dir, manifest, fold)
            got = evaluation.predict_dataset(embed, make_eval_dataset(cfg))
            fold_cache[fold] = (got["scores"], got["target"])
    train_folds = [f for f in present if f != held_out]
    x = np.concatenate([fold_cache[f][0] for f in train_folds])
    y = np.concatenate([fold_cache[f][1] for f in train_folds])
    groups = np.concatenate([[f] * len(fold_cache[f][0]) for f in train_folds])
    start = time.monotonic()
    fitted = probe.fit_probe(
        x, y, groups=groups, log=lambda line: logging.info("fold %s: %s", held_out, line)
    )
    x_test, y_test = fold_cache[held_out]
    scores = fitted.logits(x_test)  # (N, K); ranking and argmax are what the metrics read
    res = evaluation.evaluate_scores(y_test, scores)
    res["accuracy"] = evaluation.top1_accuracy(y_test, scores)
    logging.info(
        "fold %s: probe C=%g on %d clips (%d evaluations%s) %.1f s, accuracy %.3f",
        held_out,
        fitted.C,
        len(x),
        fitted.evaluations,
        "" if fitted.converged else ", NOT converged",
        time.monotonic() - start,
        res["accuracy"],
    )
    if split_dir is not None:  # TensorBoard: the split's hparams and held-out evaluation
        _probe_summaries(
            split_config(config, data_dir, manifest, held_out),
            split_dir,
            fold_cache.get(_PROBE_MODEL),
            res,
            fitted,
            scores,
            y_test,
        )
    return {**_metrics(res), "C": float(fitted.C), "train_clips": len(x), "test_clips": len(x_test)}


_PROBE_MODEL = "__model_name__"  # fold_cache entry: the initial model's name


def _probe_summaries(cfg, split_dir: Path, model_name, res, fitted, logits, target) -> None:
    """hparams (mode probe, the held-out fold, the chosen C) and the eval summaries of a probe
    split at step 0; PR curves on the probe's probabilities (softmax, or sigmoid per class)."""
    from panns_keras.train.summaries import Summaries

    z = np.asarray(logits, np.float64)
    if fitted.multi_label:
        prob = 0.5 * (1.0 + np.tanh(0.5 * z))
    else:
        prob = np.exp(z - z.max(axis=1, keepdims=True))
        prob /= prob.sum(axis=1, keepdims=True)
    names = [label.display_name for label in formats.read_labels_csv(cfg.data.labels)]
    res = {**res, "num_clips": len(target), "predictions": {"scores": prob, "target": target}}
    s = Summaries(
        split_dir,
        num_pr_curves=int(cfg.eval.get("num_pr_curves", 10)),
        num_best_worst=int(cfg.eval.num_best_worst),
    )
    s.hparams(cfg, model_name=model_name, extra={"probe.C": float(fitted.C)})
    s.evaluation(0, res, names)
    s.close()


class SplitProgress:
    """One progress line for every split of a run: ``finetune: 230/800 steps (28.8%) ...,
    eta 3 min 10 s, split 2/4 fold_jackson, step 30/200, loss 0.41``; the trainer's
    ``update`` / ``close`` calls of each split feed it (the eta is the whole run's)."""

    def __init__(self, total_steps: int | None, num_splits: int, enabled: bool = True):
        from panns_keras.progress import Progress

        self.bar = Progress(total_steps, "finetune", unit="steps", enabled=enabled)
        self.num_splits, self.index, self.name, self.steps = num_splits, 0, "", 0

    def start_split(self, index: int, name: str, steps: int) -> None:
        self.index, self.name, self.steps = index, name, steps
        self.bar.update(0, postfix=self._where(), force=True)

    def _where(self) -> str:
        return f"split {self.index}/{self.num_splits} {self.name}"

    def update(
        self, n: float = 1, failed: int = 0, postfix: str | None = None, force: bool = False
    ) -> None:
        # the trainer's postfix is "step N, loss L": N of the split's steps
        detail = postfix or ""
        if postfix and postfix.startswith("step "):
            step, _, rest = postfix[5:].partition(",")
            detail = f"step {step}/{self.steps}" + (f",{rest}" if rest else "")
        self.bar.update(n, failed, f"{self._where()}" + (f", {detail}" if detail else ""), force)

    def close(self) -> None:  # the trainer's close at the end of a split: the line goes on
        pass

    def finish(self) -> None:
        self.bar.close()


def finetune(
    data: str,
    workdir: str | os.PathLike,
    config: ml_collections.ConfigDict,
    *,
    folds: str = "all",
    clip_seconds: float | None = None,
    say=None,
) -> dict:
    """Runs every split (see the module docstring); returns the ``results.json`` content.

    ``clip_seconds``: clip length when ``data`` must be prepared (default: the length of the
    clips the initial model was trained on, else 10 s). ``say(line)``: called with each
    split's result as it finishes and with the path of ``results.json`` (default: logged).
    """
    from panns_keras.train import trainer

    say = say or (lambda line: logging.info("%s", line))
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    mode = str(config.model.mode)
    if not config.model.init:
        raise UserError("config.model.init is required: the model to start from")
    if mode == "probe" and config.data.get("teacher", ""):
        raise UserError(
            "config.data.teacher: mode probe fits a linear classifier on labels; "
            "distil with mode finetune, freeze_l1, freeze_l3 or scratch"
        )
    init = init_spec(config.model.init)
    if clip_seconds is None:
        clip_seconds = init.get("clip_seconds") or DEFAULT_CLIP_SECONDS
    data_dir = prepared_data(data, workdir, int(init["sample_rate"]), clip_seconds)
    manifest = formats.read_manifest(str(data_dir))
    held = splits(manifest, folds)
    todo = [h for h in held if not (workdir / f"split_{_split_name(h)}" / SPLIT_RESULT).is_file()]
    steps = int(config.train.num_steps)
    progress = SplitProgress(
        len(todo) * steps if mode != "probe" else len(todo),
        len(held),
        enabled=bool(config.train.get("progress", True)),
    )
    if mode == "probe":
        progress.bar.unit = "splits"
    results, cache = [], {}
    for index, held_out in enumerate(held, start=1):
        name = _split_name(held_out)
        split_dir = workdir / f"split_{name}"
        done = split_dir / SPLIT_RESULT
        if done.is_file():
            results.append(json.loads(done.read_text()))
            say(f"{name} ({index}/{len(held)}): {_shown(results[-1])} (finished before)")
            continue
        split_dir.mkdir(parents=True, exist_ok=True)
        progress.start_split(index, name, steps)
        if mode == "probe":
            row = _probe_split(config, data_dir, manifest, held_out, cache, split_dir)
            progress.update(1)
        else:
            cfg = split_config(config, data_dir, manifest, held_out)
            out = trainer.train(cfg, split_dir, progress=progress)
            if out["stopped_early"]:  # SIGTERM: checkpointed; the split is not done
                raise Stopped(
                    f"{split_dir}: stopped at step {out['step']} by a signal "
                    "(checkpoint saved); run the same command again to resume"
                )
            result = out["eval"]
            if result is None and held_out is not None:  # resumed after its last step
                result = _evaluate(out["model"], cfg)
            row = {
                **_metrics(result),
                "steps": int(out["step"]),
                "model_dir": str(split_dir / "model"),
            }
        row = {"split": name, "held_out_fold": held_out, **row}
        _write_json(done, row)
        results.append(row)
        if progress.bar.tty:
            progress.bar.stream.write("\n")  # the split's line stays above the result
        say(f"{name} ({index}/{len(held)}): {_shown(row)}")
    progress.finish()
    means = {
        k: float(np.mean([r[k] for r in results]))
        for k in METRICS
        if results and all(k in r for r in results)
    }
    summary = {
        "mode": mode,
        "init": str(config.model.init),
        "data": str(data_dir),
        "clip_seconds": float(manifest["clip_samples"]) / float(manifest["sample_rate"]),
        "splits": results,
        "mean": means,
    }
    _write_json(workdir / RESULTS, summary)
    return summary


DEFAULT_CLIP_SECONDS = 10.0  # preparing data for a model that does not record its clip length


def _split_name(held_out: str | None) -> str:
    return "all" if held_out is None else f"fold_{held_out}"


def _shown(row: dict) -> str:
    shown = ", ".join(f"{k} {row[k]:.4f}" for k in ("accuracy", "mAP") if k in row)
    return shown or "trained (no held-out fold)"
