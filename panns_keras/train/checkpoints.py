"""Signals and checkpoints: a stop request from SIGTERM/SIGINT, the exit code it ends with,
the JAX backend's checkpoint files, and the model directories a run writes.

A run stopped by a signal saves a checkpoint and ends with :data:`EXIT_STOPPED` (143, the
shell's code for a process ended by SIGTERM), so a scheduler does not take it for a finished
job; the same command resumes it.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
from pathlib import Path
from typing import Any

import numpy as np
from absl import logging

from panns_keras.fileio import atomic_path, atomic_write

EXIT_STOPPED = 143  # 128 + SIGTERM: stopped by a signal after its checkpoint; re-run resumes


class StopSignal:
    """Turns SIGTERM (and SIGINT when asked) into a flag the loop checks after each step."""

    def __init__(self, signals=(signal.SIGTERM,)):
        self.requested = False
        self.signum: int | None = None
        self._signals = tuple(signals)
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        def handler(signum, frame):
            logging.warning("signal %d: saving a checkpoint and stopping", signum)
            self.requested, self.signum = True, signum

        for s in self._signals:
            with contextlib.suppress(ValueError):  # not the main thread: no handler
                self._previous[s] = signal.signal(s, handler)

    def uninstall(self) -> None:
        for s, prev in self._previous.items():
            signal.signal(s, prev)
        self._previous = {}


class NpzCheckpoints:
    """``checkpoints/ckpt-<step>.npz`` files: named arrays, written atomically, newest N kept.

    The JAX backend's checkpoints (the TensorFlow backend keeps ``tf.train.Checkpoint``s).
    """

    PATTERN = re.compile(r"ckpt-(\d+)\.npz$")

    def __init__(self, directory: Path, keep: int = 3):
        self.directory = Path(directory)
        self.keep = max(1, int(keep))

    def steps(self) -> list[int]:
        if not self.directory.is_dir():
            return []
        found = (self.PATTERN.match(p.name) for p in self.directory.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    def latest(self) -> Path | None:
        steps = self.steps()
        return self.directory / f"ckpt-{steps[-1]}.npz" if steps else None

    def save(self, step: int, arrays: dict[str, np.ndarray]) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"ckpt-{step}.npz"
        with atomic_path(path, fsync=True) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)
        for old in self.steps()[: -self.keep]:
            (self.directory / f"ckpt-{old}.npz").unlink(missing_ok=True)
        return path

    @staticmethod
    def load(path: Path) -> dict[str, np.ndarray]:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}


def write_config(config, workdir: Path) -> str:
    """``workdir/config.json`` (atomic); returns its text."""
    text = config.to_json_best_effort(indent=2, sort_keys=True)
    atomic_write(workdir / "config.json", text + "\n")
    return text


def export_model(model, out: Path, labels, config, at: int, result: dict | None) -> None:
    """The model directory of a run (``model/`` or ``best/``) with its step, config, metrics."""
    from panns_keras.models.saving import save_model_dir

    extra: dict[str, Any] = {"step": at, "train_config": json.loads(config.to_json_best_effort())}
    if result is not None:
        extra["eval"] = {k: float(result[k]) for k in ("mAP", "mAUC", "d_prime", "accuracy")}
    save_model_dir(model, out, labels, extra)
