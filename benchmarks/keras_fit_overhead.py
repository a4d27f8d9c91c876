"""Step time of ``AudioTagger.fit`` (compile() defaults) beside the CLI trainer's step.

python benchmarks/keras_fit_overhead.py [--model=cnn6] [--batch_size=16] [--steps=60]
  [--rounds=3]

Same model (the ``make demo`` Cnn6: 8 kHz, 32 mel bins, 128-d embedding, no SpecAugment),
same batch of 1 s clips, same run: the trainer's step
(:func:`panns_keras.train.backends.tf_engine.make_step_fn`: BCE on probabilities, Adam, no
mixup, as ``panns-keras train`` with ``--config.data.mixup=none``) and ``model.fit`` after
``model.compile()`` (Adam, BCE on ``clipwise_output``, mAP and mean AUC updated every step).
Both are fed the same in-memory batches; each round times ``--steps`` steps of each after a
warm-up (rounds alternate, so a machine that slows down slows both). Printed: the median step
time of each and the overhead of ``fit``. TensorFlow backend.
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np
from absl import app, flags
from bench_common import cpu_description

_MODEL = flags.DEFINE_string("model", "cnn6", "Registered model.")
_BATCH = flags.DEFINE_integer("batch_size", 16, "Clips per step.")
_STEPS = flags.DEFINE_integer("steps", 60, "Timed steps per round.")
_ROUNDS = flags.DEFINE_integer("rounds", 3, "Rounds, alternating the two.")
DEMO = dict(
    sample_rate=8000,
    window_size=256,
    hop_size=160,
    fmax=4000.0,
    mel_bins=32,
    spec_augment=False,
    embedding_size=128,
)
CLASSES = 10


class StepTimes:
    """A Keras callback: the wall time of every training batch."""

    def __new__(cls):
        import keras

        class _Times(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.times = []

            def on_train_batch_begin(self, batch, logs=None):
                self._t = time.perf_counter()

            def on_train_batch_end(self, batch, logs=None):
                self.times.append(time.perf_counter() - self._t)

        return _Times()


def main(argv):
    del argv
    import keras
    import tensorflow as tf

    import panns_keras
    from panns_keras.train import step as step_lib
    from panns_keras.train.backends.tf_engine import make_step_fn

    b, n = _BATCH.value, _STEPS.value
    rng = np.random.default_rng(0)
    x = rng.uniform(-0.3, 0.3, (b * n, 8000)).astype("float32")
    y = (rng.random((b * n, CLASSES)) < 0.2).astype("float32")

    def model():
        return panns_keras.build_model(_MODEL.value, num_classes=CLASSES, seed=0, **DEMO)

    cli = model()
    opt = keras.optimizers.Adam(1e-3)
    opt.build(cli.trainable_variables)
    spec = step_lib.StepSpec(global_batch=b, loss="bce_prob", mixup="none")
    step = make_step_fn(cli, step_lib.variable_groups(cli, opt), spec)
    batches = [
        {
            "waveform": tf.constant(x[i * b : (i + 1) * b]),
            "target": tf.constant(y[i * b : (i + 1) * b]),
        }
        for i in range(n)
    ]
    fit = model()
    fit.compile()
    times = {"trainer step": [], "fit": []}
    for r in range(_ROUNDS.value + 1):  # round 0: warm-up (tracing), not counted
        t = []
        for batch in batches:
            t0 = time.perf_counter()
            float(step(batch))
            t.append(time.perf_counter() - t0)
        cb = StepTimes()
        fit.fit(x, y, batch_size=b, epochs=1, shuffle=False, verbose=0, callbacks=[cb])
        if r:
            times["trainer step"].append(np.median(t))
            times["fit"].append(np.median(cb.times))
    print(f"CPU: {cpu_description()}")
    print(
        f"{_MODEL.value} (demo: 8 kHz, 32 mel, 128-d), batch {b}, 1 s clips, "
        f"{n} steps x {_ROUNDS.value} rounds, Keras {keras.__version__} / TF {tf.__version__}"
    )
    for k, v in times.items():
        print(
            f"{k:>13}: {1e3 * np.median(v):7.1f} ms/step (rounds: "
            f"{', '.join(f'{1e3 * t:.1f}' for t in v)})"
        )
    ratio = np.median(times["fit"]) / np.median(times["trainer step"])
    print(f"fit overhead: {100 * (ratio - 1):+.1f}% (goal: at most +10%)")


if __name__ == "__main__":
    app.run(main)
