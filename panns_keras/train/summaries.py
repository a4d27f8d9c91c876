"""What a training or evaluation run shows in TensorBoard, and a JSON-lines log without TF.

Layout under ``workdir`` (the TensorBoard ``--logdir`` of one run):

  events.out.tfevents.*   hparams of the run (the hparams dashboard's session; its metrics are
                          the scalars of the ``train`` and ``eval`` runs below it)
  train/                  loss, learning_rate, clips_per_second, config text, audio, log-mel
  eval/                   loss (same tag as train's, so the two overlay), mAP, mean_AUC,
                          d_prime, accuracy, classes_by_AP text, per_class_AP image and
                          pr_curve_<class> PR curves
  train/plugins/profile/  the optional profiler trace (``train/profiler.py``)

Tag names carry no ``/`` (TensorBoard reads one as a group). Finetune runs each split in its
own workdir under one parent, so ``tensorboard --logdir PARENT`` compares modes and folds.

Without TensorFlow (the JAX-only environment) the same calls append JSON lines to
``workdir/summaries.jsonl``: ``{"run", "step", "kind", "tag", "value"}`` for scalars, text,
hparams and per-class AP (audio, images and PR curves are skipped). TensorFlow is imported
only when a TensorBoard writer is made.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from panns_keras.train.summary_data import (
    PR_THRESHOLDS,
    ap_chart,
    flat_hparams,
    pr_curve_classes,
    pr_curve_data,
    tag_name,
)

JSONL_NAME = "summaries.jsonl"
RUNS = ("", "train", "eval")  # "": the workdir itself (hparams)


def tensorflow_available() -> bool:
    return importlib.util.find_spec("tensorflow") is not None


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(float(value)) else None


class Summaries:
    """The run's TensorBoard writers (``workdir``, ``workdir/train``, ``workdir/eval``), made
    on first use; a JSON-lines log instead where TensorFlow is absent.

    Args:
        workdir: the run's folder.
        enabled: False on a non-chief worker: every call does nothing.
        backend: ``auto`` (TensorBoard when TensorFlow is installed, else JSON lines),
            ``tensorboard`` or ``jsonl``.
        num_pr_curves: at most this many PR curves per evaluation (``pr_curve_classes``).
        num_best_worst: classes listed in the classes_by_AP text.
    """

    def __init__(
        self,
        workdir: str | os.PathLike,
        enabled: bool = True,
        backend: str = "auto",
        num_pr_curves: int = 10,
        num_best_worst: int = 10,
    ):
        if backend not in ("auto", "tensorboard", "jsonl"):
            raise ValueError(f"backend: {backend!r} is not one of auto, tensorboard, jsonl")
        if backend == "auto":
            backend = "tensorboard" if tensorflow_available() else "jsonl"
        self.workdir = Path(workdir)
        self.enabled = bool(enabled)
        self.backend = backend
        self.num_pr_curves = int(num_pr_curves)
        self.num_best_worst = int(num_best_worst)
        self._writers: dict[str, Any] = {}
        self._jsonl = None

    # ------------------------------------------------------------------ writing
    def _writer(self, run: str):
        if run not in self._writers:
            import tensorflow as tf

            self.workdir.mkdir(parents=True, exist_ok=True)
            self._writers[run] = tf.summary.create_file_writer(str(self.workdir / run))
        return self._writers[run]

    @contextmanager
    def _tb(self, run: str):
        with self._writer(run).as_default():
            yield

    def _record(self, run: str, step: int, kind: str, tag: str, value: Any) -> None:
        if self._jsonl is None:
            self.workdir.mkdir(parents=True, exist_ok=True)
            self._jsonl = open(self.workdir / JSONL_NAME, "a", encoding="utf-8")  # noqa: SIM115
        line = {
            "run": run,
            "step": int(step),
            "kind": kind,
            "tag": tag,
            "value": value,
            "wall_time": round(time.time(), 3),
        }
        self._jsonl.write(json.dumps(line, allow_nan=False) + "\n")  # one write per record

    def _scalars(self, run: str, step: int, values: Mapping[str, float]) -> None:
        if self.backend == "jsonl":
            for tag, v in values.items():
                self._record(run, step, "scalar", tag, _finite(v))
            return
        import tensorflow as tf

        with self._tb(run):
            for tag, v in values.items():
                tf.summary.scalar(tag, float(v), step=int(step))

    def _text(self, run: str, step: int, tag: str, text: str) -> None:
        if self.backend == "jsonl":
            self._record(run, step, "text", tag, text)
            return
        import tensorflow as tf

        with self._tb(run):
            tf.summary.text(tag, text, step=int(step))

    # ------------------------------------------------------------------ the calls
    def hparams(
        self,
        config,
        model_name: str | None = None,
        extra: Mapping[str, bool | int | float | str] | None = None,
    ) -> None:
        """The run's hyperparameters (:func:`flat_hparams`) for the hparams dashboard.

        Written in ``workdir`` itself, so the session's metrics are the scalars of its
        ``train`` and ``eval`` runs (``loss`` of both, ``mAP``, ``mean_AUC``, ...). No
        experiment config is written: TensorBoard infers it from all the sessions under its
        logdir (finetune's splits, several runs side by side)."""
        if not self.enabled:
            return
        values = {**flat_hparams(config, model_name), **(extra or {})}
        if self.backend == "jsonl":
            self._record("", 0, "hparams", "hparams", values)
            return
        from tensorboard.plugins.hparams import api as hp

        with self._tb(""):
            hp.hparams(values)

    def config_text(self, text: str, step: int = 0) -> None:
        if self.enabled:
            self._text("train", step, "config", f"```\n{text}\n```")

    def train_step(
        self,
        step: int,
        loss: float,
        learning_rate: float,
        clips_per_second: float,
        parts: Mapping | None = None,
    ) -> None:
        """``parts``: the loss's parts when distilling (``label_loss``, ``teacher_loss``)."""
        if self.enabled:
            self._scalars(
                "train",
                step,
                {
                    "loss": loss,
                    **(parts or {}),
                    "learning_rate": learning_rate,
                    "clips_per_second": clips_per_second,
                },
            )

    def evaluation(self, step: int, result: Mapping, names: Sequence[str]) -> None:
        """``result`` of :func:`panns_keras.train.evaluation.evaluate` (with its
        ``predictions`` for the PR curves; without them the curves are left out)."""
        if not self.enabled:
            return
        from panns_keras.train.evaluation import classes_markdown

        scalars = {
            "mAP": result["mAP"],
            "mean_AUC": result["mAUC"],
            "d_prime": result["d_prime"],
            "accuracy": result["accuracy"],
        }
        if "loss" in result:
            scalars = {"loss": result["loss"], **scalars}
        self._scalars("eval", step, scalars)
        self._text(
            "eval", step, "classes_by_AP", classes_markdown(result, names, self.num_best_worst)
        )
        if self.backend == "jsonl":
            ap = [_finite(a) for a in np.asarray(result["ap"], np.float64)]
            self._record(
                "eval", step, "per_class_ap", "per_class_AP", {"names": list(names), "ap": ap}
            )
            self.flush()
            return
        import tensorflow as tf
        from tensorboard.plugins.pr_curve import metadata as pr_metadata

        pred = result.get("predictions")
        with self._tb("eval"):
            tf.summary.image(
                "per_class_AP",
                ap_chart(result, names)[None],
                step=int(step),
                description="AP of each class, best first",
            )
            if pred is not None:
                for i in pr_curve_classes(result, self.num_pr_curves):
                    meta = pr_metadata.create_summary_metadata(
                        display_name=f"PR curve: {names[i]}",
                        description=names[i],
                        num_thresholds=PR_THRESHOLDS,
                    )
                    data = pr_curve_data(pred["target"][:, i], pred["scores"][:, i])
                    tf.summary.write(
                        f"pr_curve_{tag_name(names[i])}",
                        data,
                        step=int(step),
                        metadata=meta.SerializeToString(),
                    )
        self.flush()

    def train_media(self, step: int, audio=None, sample_rate: int = 0, logmel_image=None) -> None:
        """``audio`` [n, samples] (float, [-1, 1]); ``logmel_image`` [n, H, W, 1] in [0, 1]."""
        if not self.enabled or self.backend == "jsonl":
            return
        import tensorflow as tf

        with self._tb("train"):
            if audio is not None and int(audio.shape[0]) > 0:
                tf.summary.audio(
                    "train_audio",
                    tf.cast(audio, tf.float32)[:, :, None],
                    int(sample_rate),
                    step=int(step),
                    max_outputs=int(audio.shape[0]),
                )
            if logmel_image is not None:
                tf.summary.image(
                    "train_logmel",
                    logmel_image,
                    step=int(step),
                    max_outputs=3,
                    description="log-mel: bn0, SpecAugment, mixup",
                )

    def flush(self) -> None:
        for w in self._writers.values():
            w.flush()
        if self._jsonl is not None:
            self._jsonl.flush()

    def close(self) -> None:
        for w in self._writers.values():
            w.close()
        self._writers.clear()
        if self._jsonl is not None:
            self._jsonl.close()
            self._jsonl = None
