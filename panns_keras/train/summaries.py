"""What a training or evaluation run shows in TensorBoard, and a JSON-lines log without TF.

Layout under ``workdir`` (the TensorBoard ``--logdir`` of one run):

  events.out.tfevents.*   hparams of the run (the hparams dashboard's session; its metrics are
                          the scalars of the ``train`` and ``eval`` runs below it)
  train/                  loss, learning_rate, clips_per_second, config text, audio, log-mel
  eval/                   loss (same tag as train's, so the two overlay), mAP, mean_AUC,
                          d_prime, accuracy, classes_by_AP text, per_class_AP image and
                          pr_curve_<class> PR curves
  train/plugins/profile/  the optional profiler trace (:class:`Profiler`)

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
import re
import time
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

JSONL_NAME = "summaries.jsonl"
RUNS = ("", "train", "eval")  # "": the workdir itself (hparams)
PR_THRESHOLDS = 201  # TensorBoard's default for PR curves

# The config fields shown as hparams (besides model, mode, fold, backend): the ones runs
# are compared by. Paths as in --config.x.y=...
_HPARAM_FIELDS = (
    "seed",
    "model.init",
    "model.base_lr_scale",
    "model.disable_dropout",
    "train.batch_size",
    "train.num_steps",
    "train.precision",
    "train.optimizer",
    "train.learning_rate",
    "train.schedule",
    "train.warmup_steps",
    "train.min_lr_ratio",
    "train.weight_decay",
    "train.amsgrad",
    "train.clipnorm",
    "train.loss",
    "train.jit_compile",
    "train.fused_batchnorm",
    "data.mixup",
    "data.mixup_alpha",
    "data.balanced",
    "data.sample_rate",
    "data.clip_samples",
    "data.num_classes",
)


def tensorflow_available() -> bool:
    return importlib.util.find_spec("tensorflow") is not None


def tag_name(text: str) -> str:
    """A tag from free text (a class name): no ``/`` or spaces, at most 60 characters."""
    return re.sub(r"[^0-9A-Za-z_.-]+", "_", text).strip("_")[:60] or "x"


def _get(config, path: str):
    node = config
    for key in path.split("."):
        if key not in node:
            return None
        node = node[key]
    return node


def flat_hparams(config, model_name: str | None = None) -> dict[str, bool | int | float | str]:
    """The run's hyperparameters as a flat dict (values: bool, int, float or str).

    ``model``: ``model_name`` (the built model's name, which a warm start takes from its
    initial model) or ``config.model.name``; ``mode``: the transfer mode; ``fold``: the held-out
    fold(s) (``data.eval_folds``; ``none`` when unset); ``backend``: the Keras backend; then the
    fields of ``_HPARAM_FIELDS`` that are set, and the model overrides that are set.
    """
    out: dict[str, bool | int | float | str] = {
        "model": str(model_name or _get(config, "model.name") or ""),
        "mode": str(_get(config, "model.mode") or "scratch"),
        "fold": str(_get(config, "data.eval_folds") or "none"),
        "backend": os.environ.get("KERAS_BACKEND", "tensorflow"),
    }
    try:
        import keras

        out["backend"] = keras.backend.backend()
    except ImportError:
        pass
    for path in _HPARAM_FIELDS:
        value = _get(config, path)
        if value is None:
            continue
        out[path] = value if isinstance(value, (bool, int, float, str)) else str(value)
    overrides = _get(config, "model.overrides") or {}
    for key, value in overrides.items():
        if value is not None:
            out[f"model.overrides.{key}"] = value
    return out


def pr_curve_data(labels: np.ndarray, scores: np.ndarray,
                  num_thresholds: int = PR_THRESHOLDS) -> np.ndarray:  # fmt: skip
    """[6, num_thresholds] float32: TP, FP, TN, FN, precision, recall at the thresholds
    ``i / (num_thresholds - 1)`` (a score counts as positive at thresholds <= it), the
    layout of TensorBoard's PR curve plugin."""
    bucket = np.floor(np.clip(scores, 0.0, 1.0) * (num_thresholds - 1)).astype(np.int64)
    pos = np.asarray(labels, np.float64) > 0
    tp_b = np.bincount(bucket[pos], minlength=num_thresholds).astype(np.float64)
    fp_b = np.bincount(bucket[~pos], minlength=num_thresholds).astype(np.float64)
    tp = np.cumsum(tp_b[::-1])[::-1]
    fp = np.cumsum(fp_b[::-1])[::-1]
    tn, fn = fp[0] - fp, tp[0] - tp
    precision = tp / np.maximum(1e-7, tp + fp)
    recall = tp / np.maximum(1e-7, tp + fn)
    return np.stack([tp, fp, tn, fn, precision, recall]).astype(np.float32)


def pr_curve_classes(result: Mapping, limit: int) -> list[int]:
    """Classes that get a PR curve: those with positives and negatives (not excluded), the
    ``limit`` with the most positives (all of them when there are no more than ``limit``)."""
    excluded = set(int(i) for i in result["excluded_classes"])
    positives = np.asarray(result["num_positives"])
    keep = [i for i in range(positives.size) if i not in excluded and positives[i] > 0]
    keep.sort(key=lambda i: (-positives[i], i))
    return sorted(keep[: max(0, int(limit))])


def ap_chart(result: Mapping, names: Sequence[str], dpi: int = 80) -> np.ndarray:
    """The per-class AP chart of ``evaluation.write_report`` as a [H, W, 3] uint8 image."""
    from panns_keras.train.evaluation import ap_figure

    fig = ap_figure(result, names)
    try:
        fig.set_dpi(dpi)
        fig.canvas.draw()
        return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    finally:
        from matplotlib import pyplot as plt

        plt.close(fig)


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

    def __init__(self, workdir: str | os.PathLike, enabled: bool = True, backend: str = "auto",
                 num_pr_curves: int = 10, num_best_worst: int = 10):  # fmt: skip
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
        line = {"run": run, "step": int(step), "kind": kind, "tag": tag, "value": value,
                "wall_time": round(time.time(), 3)}  # fmt: skip
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
    def hparams(self, config, model_name: str | None = None,
                extra: Mapping[str, bool | int | float | str] | None = None) -> None:  # fmt: skip
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

    def train_step(self, step: int, loss: float, learning_rate: float,
                   clips_per_second: float) -> None:  # fmt: skip
        if self.enabled:
            self._scalars("train", step, {"loss": loss, "learning_rate": learning_rate,
                                          "clips_per_second": clips_per_second})  # fmt: skip

    def evaluation(self, step: int, result: Mapping, names: Sequence[str]) -> None:
        """``result`` of :func:`panns_keras.train.evaluation.evaluate` (with its
        ``predictions`` for the PR curves; without them the curves are left out)."""
        if not self.enabled:
            return
        from panns_keras.train.evaluation import classes_markdown

        scalars = {"mAP": result["mAP"], "mean_AUC": result["mAUC"],
                   "d_prime": result["d_prime"], "accuracy": result["accuracy"]}  # fmt: skip
        if "loss" in result:
            scalars = {"loss": result["loss"], **scalars}
        self._scalars("eval", step, scalars)
        self._text("eval", step, "classes_by_AP",
                   classes_markdown(result, names, self.num_best_worst))  # fmt: skip
        if self.backend == "jsonl":
            ap = [_finite(a) for a in np.asarray(result["ap"], np.float64)]
            self._record("eval", step, "per_class_ap", "per_class_AP",
                         {"names": list(names), "ap": ap})  # fmt: skip
            self.flush()
            return
        import tensorflow as tf
        from tensorboard.plugins.pr_curve import metadata as pr_metadata

        pred = result.get("predictions")
        with self._tb("eval"):
            tf.summary.image("per_class_AP", ap_chart(result, names)[None], step=int(step),
                             description="AP of each class, best first")  # fmt: skip
            if pred is not None:
                for i in pr_curve_classes(result, self.num_pr_curves):
                    meta = pr_metadata.create_summary_metadata(
                        display_name=f"PR curve: {names[i]}", description=names[i],
                        num_thresholds=PR_THRESHOLDS,
                    )  # fmt: skip
                    data = pr_curve_data(pred["target"][:, i], pred["scores"][:, i])
                    tf.summary.write(f"pr_curve_{tag_name(names[i])}", data, step=int(step),
                                     metadata=meta.SerializeToString())  # fmt: skip
        self.flush()

    def train_media(self, step: int, audio=None, sample_rate: int = 0,
                    logmel_image=None) -> None:  # fmt: skip
        """``audio`` [n, samples] (float, [-1, 1]); ``logmel_image`` [n, H, W, 1] in [0, 1]."""
        if not self.enabled or self.backend == "jsonl":
            return
        import tensorflow as tf

        with self._tb("train"):
            if audio is not None and int(audio.shape[0]) > 0:
                tf.summary.audio("train_audio", tf.cast(audio, tf.float32)[:, :, None],
                                 int(sample_rate), step=int(step),
                                 max_outputs=int(audio.shape[0]))  # fmt: skip
            if logmel_image is not None:
                tf.summary.image("train_logmel", logmel_image, step=int(step), max_outputs=3,
                                 description="log-mel: bn0, SpecAugment, mixup")  # fmt: skip

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


def parse_profile_steps(value) -> tuple[int, int] | None:
    """``config.train.profile_steps``: ``"a,b"`` (or ``[a, b]``, or ``"a"`` for one step) ->
    (a, b), the 1-based steps a..b inclusive; empty -> None."""
    from panns_keras.errors import UserError

    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    parts = value.split(",") if isinstance(value, str) else list(value)
    try:
        steps = [int(str(p).strip()) for p in parts]
    except ValueError:
        steps = []
    if len(steps) == 1:
        steps = steps * 2
    if len(steps) != 2 or steps[0] < 1 or steps[1] < steps[0]:
        raise UserError(f"config.train.profile_steps: {value!r} is not 'START,STOP' with "
                        "1 <= START <= STOP (steps, 1-based; empty = no trace)")  # fmt: skip
    return steps[0], steps[1]


class Profiler:
    """A profiler trace over the training steps ``window`` (1-based, inclusive), written to
    ``logdir/plugins/profile/`` (TensorBoard's Profile tab): ``tf.profiler`` on the
    TensorFlow backend, ``jax.profiler`` on JAX. Wrap each step in ``with profiler.step(n)``
    (n: the step's 1-based number); each profiled step is marked as a step in the trace.
    """

    def __init__(self, logdir: str | os.PathLike, window, enabled: bool = True,
                 backend: str | None = None):  # fmt: skip
        self.logdir = Path(logdir)
        self.window = parse_profile_steps(window) if enabled else None
        if backend is None and self.window is not None:
            import keras

            backend = keras.backend.backend()
        self.backend = backend
        self.active = False

    def _start(self) -> None:
        self.logdir.mkdir(parents=True, exist_ok=True)
        if self.backend == "jax":
            import jax

            jax.profiler.start_trace(str(self.logdir))
        else:
            import tensorflow as tf

            tf.profiler.experimental.start(str(self.logdir))
        self.active = True

    def stop(self) -> None:
        """Ends the trace if one is running (also at the end of a run cut short)."""
        if not self.active:
            return
        self.active = False
        if self.backend == "jax":
            import jax

            jax.profiler.stop_trace()
        else:
            import tensorflow as tf

            tf.profiler.experimental.stop()

    @contextmanager
    def step(self, number: int):
        if self.window is None:
            yield
            return
        first, last = self.window
        if number == first or (first < number <= last and not self.active):  # (a resume)
            self._start()
        if not self.active:
            yield
            return
        if self.backend == "jax":
            import jax

            marker = jax.profiler.StepTraceAnnotation("train", step_num=number)
        else:
            import tensorflow as tf

            marker = tf.profiler.experimental.Trace("train", step_num=number, _r=1)
        with marker:
            yield
        if number >= last:
            self.stop()
