"""The interface both training engines implement (``tf_engine.TFEngine``,
``jax_engine.JaxEngine``): what ``trainer.train`` calls, in the order it calls it.

The step itself (forward, loss, gradients, optimizer update) is written once in
``train/step.py`` with Keras's stateless APIs; an engine compiles it for its backend
(``tf.function`` / ``jax.jit``), spreads it over devices (``tf.distribute`` strategies /
``keras.distribution.DataParallel``), feeds it batches and keeps checkpoints.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np


class Engine(Protocol):
    """One backend's training engine.

    Life cycle: ``Engine(config, workdir)`` -> :meth:`build` -> :meth:`start` -> ``while
    step < num_steps:`` :meth:`train_step` (with :meth:`learning_rate`, :meth:`predict_fn`
    for evaluation, :meth:`sync` before the Keras variables are read, :meth:`save_checkpoint`)
    -> :meth:`close`.

    Attributes:
        backend: the Keras backend's name (``"tensorflow"``, ``"jax"``).
        config: the training config the engine was made with.
        spec: the step's static settings (``step.StepSpec``: global batch, mixup, precision).
        replicas: devices the global batch is split over.
        chief: whether this process writes summaries, checkpoints and the model directory.
        model: the ``AudioTagger`` (after :meth:`build`).
        groups: ``[(optimizer, variables), ...]`` (after :meth:`build`; the last group's
            optimizer gives :meth:`learning_rate`).
        best_map: the best evaluation mAP so far (-1 before any), saved in checkpoints.
        loss_parts: the last :meth:`train_step`'s parts of the loss (``{}``, or when
            distilling ``{'label_loss', 'teacher_loss'}``; lazy device values).
    """

    backend: str
    config: Any
    spec: Any
    replicas: int
    chief: bool
    model: Any
    groups: list
    best_map: float
    loss_parts: dict

    def __init__(self, config, workdir: Path) -> None:
        """Checks the config against the devices (a batch that does not split over the
        replicas raises ``UserError``); builds nothing yet."""

    def device_kind(self) -> str:
        """``"cpu"``, ``"gpu"`` or ``"tpu"``: where the step runs."""
        ...

    def build(self, build_fn: Callable[[], tuple[Any, list]]) -> None:
        """Sets ``model`` and ``groups`` from ``build_fn()``, called inside the engine's
        device scope."""
        ...

    def start(self, make_dataset: Callable[[int, Any], Any], synthetic: bool) -> int:
        """Restores the newest checkpoint in ``workdir/checkpoints`` (if any), positions the
        input after it and returns the step it starts at. ``make_dataset(seed_offset,
        input_context)`` builds the batched ``tf.data`` pipeline; ``synthetic`` feeds one
        random batch every step instead."""
        ...

    @property
    def step(self) -> int:
        """Steps taken (restored ones included)."""
        ...

    def learning_rate(self) -> float:
        """The last optimizer group's current learning rate."""
        ...

    def train_step(self, lam: np.ndarray | None, keep_batch: bool = False) -> tuple[Any, Any]:
        """One step on the next batch with mixup weights ``lam`` (None: no mixup);
        ``(loss, batch or None)`` where the loss may stay lazy (a device value) and the batch
        (``{name: numpy array}``, this process's part) is kept only when asked."""
        ...

    def predict_fn(self) -> Callable[[Any], Any]:
        """``predict(waveform) -> clipwise_output`` with the current weights (evaluation)."""
        ...

    def sync(self) -> None:
        """Makes the Keras variables hold the step's current state (before evaluation, export
        or a save); a no-op where the step updates them in place."""
        ...

    def save_checkpoint(self) -> None:
        """Saves model, optimizers, step, ``best_map`` (and the input position where the
        backend can) under ``workdir/checkpoints``."""
        ...

    def close(self) -> None:
        """Releases what the run held (scratch folders) and syncs the variables."""
        ...
