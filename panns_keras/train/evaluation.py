"""Evaluation over TFRecord shards: scores -> PANNs metrics -> summaries, CSV and plot."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from absl import logging

from panns_keras.metrics import evaluate_scores

if TYPE_CHECKING:  # imported where needed: this module loads without TensorFlow
    import tensorflow as tf


def make_predict_fn(model) -> Callable[[tf.Tensor], tf.Tensor]:
    """A compiled ``waveform -> clipwise_output`` function (inference mode) on the Keras
    backend in use (``tf.function`` on TensorFlow, ``jax.jit`` on JAX)."""
    import keras

    if keras.backend.backend() == "jax":
        from panns_keras.train.backends.jax_engine import predict_function

        return predict_function(model)
    if keras.backend.backend() != "tensorflow":
        return lambda waveform: model(np.asarray(waveform), training=False)["clipwise_output"]
    import tensorflow as tf

    @tf.function(reduce_retracing=True, autograph=False)
    def predict(waveform):
        return model(waveform, training=False)["clipwise_output"]

    return predict


def predict_dataset(
    predict: Callable[[tf.Tensor], tf.Tensor],
    dataset: tf.data.Dataset,
    max_batches: int = 0,
    progress=None,
) -> dict[str, np.ndarray]:
    """Runs ``predict`` over eval batches ({'waveform','target','mask','clip_id'}).

    Returns the real (mask == 1) rows: ``scores`` (N, K), ``target`` (N, K), ``clip_id`` (N,).
    ``progress``: a :class:`panns_keras.progress.Progress` counting clips, or None.
    """
    scores, targets, ids = [], [], []
    for i, batch in enumerate(dataset):
        if max_batches and i >= max_batches:
            break
        keep = batch["mask"].numpy() > 0
        scores.append(np.asarray(predict(batch["waveform"]))[keep])
        targets.append(batch["target"].numpy()[keep])
        ids.append(batch["clip_id"].numpy()[keep])
        if progress is not None:
            progress.update(int(keep.sum()))
    if not scores:
        raise ValueError("the evaluation set is empty")
    return {
        "scores": np.concatenate(scores).astype(np.float64),
        "target": np.concatenate(targets),
        "clip_id": np.concatenate(ids),
    }


def evaluate(
    predict, dataset: tf.data.Dataset, max_batches: int = 0, progress=None
) -> dict[str, Any]:
    """``evaluate_scores`` of the model's outputs plus ``accuracy`` (argmax, single-label
    rows) and ``loss``: the training loss of these clips (:func:`clip_loss`)."""
    pred = predict_dataset(predict, dataset, max_batches, progress)
    result = evaluate_scores(pred["target"], pred["scores"])
    result["accuracy"] = top1_accuracy(pred["target"], pred["scores"])
    result["loss"] = clip_loss(pred["target"], pred["scores"])
    result["num_clips"] = int(pred["target"].shape[0])
    result["predictions"] = pred
    return result


def clip_loss(target: np.ndarray, scores: np.ndarray) -> float:
    """The training loss (:mod:`panns_keras.train.losses`: BCE on probabilities, log terms
    clamped at -100) averaged over clips x classes, in float32 as in the train step."""
    from keras import ops

    from panns_keras.train.losses import binary_crossentropy_on_probabilities

    per_clip = binary_crossentropy_on_probabilities(
        np.asarray(target, np.float32), np.asarray(scores, np.float32)
    )
    return float(np.mean(ops.convert_to_numpy(per_clip)))


def top1_accuracy(target: np.ndarray, scores: np.ndarray) -> float:
    """Share of clips whose top-scoring class is one of their labels (clips with a label)."""
    has = target.sum(axis=1) > 0
    if not has.any():
        return float("nan")
    top = scores[has].argmax(axis=1)
    return float(target[has][np.arange(top.size), top].mean())


def ranked_classes(result: dict, names: Sequence[str], n: int) -> tuple[list, list]:
    """(best, worst): up to ``n`` (index, name, AP) of the included classes by AP."""
    ap = np.asarray(result["ap"], dtype=np.float64)
    idx = [int(i) for i in np.argsort(-np.nan_to_num(ap, nan=-1.0)) if np.isfinite(ap[i])]
    idx = [i for i in idx if i not in set(result["excluded_classes"])]
    best = [(i, names[i], float(ap[i])) for i in idx[:n]]
    worst = [(i, names[i], float(ap[i])) for i in reversed(idx[-n:])]
    return best, worst


def classes_markdown(result: dict, names: Sequence[str], n: int) -> str:
    best, worst = ranked_classes(result, names, n)
    lines = ["| rank | best class | AP | worst class | AP |", "|---|---|---|---|---|"]
    for r in range(max(len(best), len(worst))):
        b = best[r] if r < len(best) else (None, "", float("nan"))
        w = worst[r] if r < len(worst) else (None, "", float("nan"))
        lines.append(f"| {r + 1} | {b[1]} | {b[2]:.3f} | {w[1]} | {w[2]:.3f} |")
    excluded = result["excluded_classes"]
    if excluded:
        lines.append(f"\n{len(excluded)} class(es) without positives (or negatives) excluded.")
    return "\n".join(lines)


def summary_line(result: dict) -> str:
    return (
        f"mAP {result['mAP']:.4f}  mean AUC {result['mAUC']:.4f}  "
        f"d-prime {result['d_prime']:.3f}  accuracy {result['accuracy']:.4f}  "
        f"({result['num_clips']} clips, {len(result['excluded_classes'])} classes excluded)"
    )


def write_report(result: dict, names: Sequence[str], out_dir: str | Path) -> dict[str, Path]:
    """Writes metrics.json, per_class.csv and per_class_ap.png into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    excluded = set(result["excluded_classes"])
    paths = {
        "metrics": out / "metrics.json",
        "csv": out / "per_class.csv",
        "plot": out / "per_class_ap.png",
    }

    def num(x):
        return None if not np.isfinite(x) else float(x)

    summary = {
        "mAP": num(result["mAP"]),
        "mAUC": num(result["mAUC"]),
        "d_prime": num(result["d_prime"]),
        "accuracy": num(result["accuracy"]),
        "loss": num(result["loss"]) if "loss" in result else None,
        "num_clips": result["num_clips"],
        "num_classes": len(names),
        "excluded_classes": [{"index": i, "display_name": names[i]} for i in sorted(excluded)],
    }
    paths["metrics"].write_text(json.dumps(summary, indent=2) + "\n")
    with open(paths["csv"], "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["index", "display_name", "ap", "auc", "positives", "excluded"])
        for i, name in enumerate(names):
            ap, auc = float(result["ap"][i]), float(result["auc"][i])
            w.writerow(
                [
                    i,
                    name,
                    "" if not np.isfinite(ap) else f"{ap:.6f}",
                    "" if not np.isfinite(auc) else f"{auc:.6f}",
                    int(result["num_positives"][i]),
                    int(i in excluded),
                ]
            )
    _plot_ap(result, names, paths["plot"])
    logging.info("evaluation report written to %s", out)
    return paths


def _plot_ap(result: dict, names: Sequence[str], path: Path) -> None:
    from matplotlib import pyplot as plt

    from panns_keras.fileio import atomic_path

    fig = ap_figure(result, names)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


def ap_figure(result: dict, names: Sequence[str]):
    """A matplotlib figure (Agg) of each class's AP, best first (a sorted AP curve beyond 60
    classes); the caller closes it."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib import pyplot as plt

    ap = np.asarray(result["ap"], dtype=np.float64)
    keep = [
        i
        for i in range(len(names))
        if np.isfinite(ap[i]) and i not in set(result["excluded_classes"])
    ]
    keep.sort(key=lambda i: -ap[i])
    k = len(keep)
    # labels at 9 pt; the legend right of the axes, clear of the bars
    fig, ax = plt.subplots(figsize=(max(7.5, min(25.5, 0.3 * k + 3.5)), 4.5))
    if k <= 60:
        ax.bar(range(k), ap[keep], color="tab:blue")
        ax.set_xticks(range(k))
        ax.set_xticklabels([names[i] for i in keep], rotation=90, fontsize=AP_LABEL_POINTS)
    else:  # many classes (AudioSet): sorted AP curve
        ax.plot(range(k), ap[keep], color="tab:blue")
        ax.set_xlabel("classes sorted by AP")
    ax.axhline(result["mAP"], color="tab:red", ls="--", label=f"mAP {result['mAP']:.3f}")
    ax.set_ylim(0, 1)
    ax.set_ylabel("average precision")
    ax.set_title(f"Per-class AP ({k} classes; {len(names) - k} excluded: no positives)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=AP_LABEL_POINTS)
    fig.tight_layout()
    return fig


AP_LABEL_POINTS = 9  # class names and legend of the AP chart
