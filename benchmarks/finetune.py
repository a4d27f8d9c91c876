"""Transfer-learning throughput: training clips/s for end-to-end fine-tuning and for the
frozen (freeze_l1) mode, embedding clips/s (the probe's one-off cost) and probe training
clips/s on cached embeddings.

    .venv/bin/python benchmarks/finetune.py [--model cnn6] [--clip_seconds 1]
        [--sample_rate 16000] [--batch_size 16] [--steps 20]

Random (seeded) weights and noise clips: speed does not depend on their values.
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
from absl import app, flags

import panns_keras
from panns_keras.models.registry import get_spec
from panns_keras.transfer import ClipSet, TrainOptions, build_transfer_model, embeddings
from panns_keras.transfer.train import train_probe, train_transfer

_MODEL = flags.DEFINE_string("model", "cnn6", "Model name.")
_SR = flags.DEFINE_integer("sample_rate", 16000, "Sample rate (log-mel models keep window "
                           "and hop in ms by scaling them with the rate).")  # fmt: skip
_SECONDS = flags.DEFINE_float("clip_seconds", 1.0, "Clip length.")
_BATCH = flags.DEFINE_integer("batch_size", 16, "Batch size.")
_STEPS = flags.DEFINE_integer("steps", 20, "Timed training steps (after 2 warm-up steps).")
_CLIPS = flags.DEFINE_integer("clips", 256, "Clips to embed for the probe.")


def _overrides(sr):
    spec = get_spec(_MODEL.value)
    if spec.frontend is None:
        return {"sample_rate": sr}
    f = sr / spec.frontend.sample_rate
    return {"sample_rate": sr, "window_size": int(spec.frontend.window_size * f),
            "hop_size": int(spec.frontend.hop_size * f),
            "fmax": min(spec.frontend.fmax, sr / 2)}  # fmt: skip


def main(_):
    sr, n = _SR.value, int(_SECONDS.value * _SR.value)
    base = panns_keras.build_model(_MODEL.value, seed=0, **_overrides(sr))
    rng = np.random.default_rng(0)
    k = 10
    y = np.eye(k, dtype=np.float32)[rng.integers(0, k, _CLIPS.value)]
    clips = ClipSet((0.1 * rng.standard_normal((_CLIPS.value, n))).astype(np.float32), y,
                    [str(i) for i in range(_CLIPS.value)], [""] * _CLIPS.value,
                    [(str(i), str(i)) for i in range(k)], sr)  # fmt: skip
    print(f"{_MODEL.value} @ {sr} Hz, {_SECONDS.value:g} s clips, batch {_BATCH.value}")
    for mode in ("finetune", "freeze_l1"):
        tm = build_transfer_model(base, k, mode, seed=0)
        train_transfer(tm, clips, TrainOptions(steps=2, batch_size=_BATCH.value), False)
        r = train_transfer(tm, clips, TrainOptions(steps=_STEPS.value, batch_size=_BATCH.value),
                           False)  # fmt: skip
        print(f"  {mode:<10} train  {r['clips_per_s']:9.1f} clips/s")
    embeddings(base, clips.subset(range(_BATCH.value)), batch_size=_BATCH.value)  # warm-up
    t0 = time.perf_counter()
    emb = embeddings(base, clips, batch_size=_BATCH.value)
    dt = time.perf_counter() - t0
    print(f"  probe      embed  {len(clips) / dt:9.1f} clips/s (once; cached as .npy)")
    t0 = time.perf_counter()
    fitted = train_probe(emb, y, False, TrainOptions())
    dt = time.perf_counter() - t0
    print(
        f"  probe      fit    {dt:9.2f} s to convergence on {len(emb)} cached embeddings "
        f"(C={fitted.C:g} by inner CV)"
    )


if __name__ == "__main__":
    app.run(main)
