"""TensorBoard summaries of a training run (interim: replaced by the full module)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path


class Summaries:
    def __init__(self, workdir, enabled: bool = True):
        self.enabled = enabled
        self._tf = importlib.util.find_spec("tensorflow") is not None
        self.workdir = Path(workdir)
        if enabled and self._tf:
            import tensorflow as tf

            self._train = tf.summary.create_file_writer(str(self.workdir / "train"))
            self._eval = tf.summary.create_file_writer(str(self.workdir / "eval"))

    def _scalars(self, writer, step, values):
        if not self.enabled:
            return
        if not self._tf:
            with open(self.workdir / "summaries.jsonl", "a") as f:
                f.write(json.dumps({"step": step, **values}) + "\n")
            return
        import tensorflow as tf

        with writer.as_default():
            for k, v in values.items():
                tf.summary.scalar(k, v, step=step)

    def hparams(self, config) -> None:
        pass

    def config_text(self, text) -> None:
        pass

    def train_step(self, step, loss, learning_rate, clips_per_second) -> None:
        self._scalars(getattr(self, "_train", None), step, {
            "loss": loss, "learning_rate": learning_rate, "clips_per_second": clips_per_second})

    def evaluation(self, step, result, names) -> None:
        self._scalars(getattr(self, "_eval", None), step, {
            k: float(result[k]) for k in ("mAP", "mAUC", "d_prime", "accuracy")})

    def train_media(self, step, audio, sample_rate, logmel_image) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass
