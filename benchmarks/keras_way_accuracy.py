"""Held-out accuracy: a ten-line Keras fine-tune beside ``panns-keras finetune``, same model,
steps, batch and seeds, on the bundled spoken digits.

python benchmarks/keras_way_accuracy.py [--out=/tmp/keras_way_accuracy] [--steps=150]
  [--pretrain_steps=300] [--seeds=0,1,2] [--held_out=george]

Task: digits 5-9 of demo_data/fsdd (examples/transfer_demo.py's target task), one speaker
held out (``--held_out``), the other three train (180 clips, 1 s at 8 kHz). Initial model:
the ``make demo`` Cnn6 (8 kHz, 32 mel bins, 128-d embedding) pretrained by the trainer on
digits 0-4 for ``--pretrain_steps`` (transfer_demo.py's stand-in; 0: randomly initialised,
seed 0), saved as a model directory, so both paths start from the same weights.

* CLI: ``panns-keras finetune --mode=finetune --folds=<held_out>`` (the packaged recipe:
  TorchAdam with amsgrad, cosine decay with warm-up, in-model mixup 0.2, balanced sampling).
* Keras: ``load_model(init).with_new_head(5)``, ``compile()`` defaults (Adam 1e-3, BCE on
  ``clipwise_output``), ``fit`` on the arrays for the same number of steps of the same
  batch, ``keras.utils.set_random_seed(seed)``; and the same with the recipe's optimizer and
  learning-rate schedule passed to ``compile`` (Adam with amsgrad, warm-up then cosine).

Printed: each seed's held-out accuracy per path, their mean and spread (max - min). TensorFlow.
"""

from __future__ import annotations

import csv
import importlib.util
import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np
from absl import app, flags
from bench_common import cpu_description

REPO = Path(__file__).resolve().parents[1]
_OUT = flags.DEFINE_string("out", "/tmp/keras_way_accuracy", "Work folder (reused).")
_STEPS = flags.DEFINE_integer("steps", 150, "Training steps of each run.")
_BATCH = flags.DEFINE_integer("batch_size", 16, "Clips per step.")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds.")
_HELD_OUT = flags.DEFINE_string("held_out", "george", "Held-out speaker.")
_PRETRAIN = flags.DEFINE_integer("pretrain_steps", 300, "Stand-in pretraining (0: none).")


def _demo():
    spec = importlib.util.spec_from_file_location(
        "transfer_demo", REPO / "examples" / "transfer_demo.py"
    )
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def _arrays(csv_path: Path, held_out: str):
    """(x, one-hot) of the training speakers and of the held-out one, 1 s clips."""
    import soundfile as sf

    with open(csv_path, encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    names = sorted({r["labels"] for r in rows})
    out = {True: ([], []), False: ([], [])}
    for r in rows:
        wav, rate = sf.read(csv_path.parent / r["path"], dtype="float32")
        assert rate == 8000
        wav = np.pad(wav[:8000], (0, max(0, 8000 - len(wav))))
        xs, ys = out[r["fold"] == held_out]
        xs.append(wav)
        ys.append(np.eye(len(names), dtype="float32")[names.index(r["labels"])])
    return names, [(np.stack(x), np.stack(y)) for x, y in (out[False], out[True])]


def main(argv):
    del argv
    import keras

    import panns_keras
    from panns_keras.models.saving import save_model_dir
    from panns_keras.train.finetune import finetune

    demo = _demo()
    out = Path(_OUT.value)
    settings = demo.Settings(
        steps=_STEPS.value, batch_size=_BATCH.value, pretrain_steps=_PRETRAIN.value
    )
    csvs = demo.write_csvs(out, settings)
    target = csvs["target"]
    names, ((x, y), (xt, yt)) = _arrays(target, _HELD_OUT.value)
    if _PRETRAIN.value:
        init = demo.pretrain(demo.prepare(csvs["source"], out / "source"), out, settings)
    else:
        init = out / "init"
        if not (init / "config.json").is_file():
            model = panns_keras.build_model(demo.MODEL, num_classes=5, seed=0, **demo.OVERRIDES)
            save_model_dir(model, init, [f"source_{i}" for i in range(5)])
    data = demo.prepare(target, out / "prepared")
    per_epoch = -(-len(x) // _BATCH.value)  # fit's steps per epoch on the arrays
    epochs = -(-_STEPS.value // per_epoch)
    settings.steps = steps = epochs * per_epoch  # the same steps for both paths
    results = {"panns-keras finetune": [], "Keras fit": [], "Keras fit, CLI schedule": []}
    for seed in map(int, _SEEDS.value):
        settings.seed = seed
        config = demo._config(settings, init=str(init), mode="finetune", base_lr_scale=1.0)
        res = finetune(str(data), out / f"cli_seed{seed}", config, folds=_HELD_OUT.value)
        results["panns-keras finetune"].append(res["mean"]["accuracy"])

        # The ten lines a Keras user writes: compile() defaults (Adam 1e-3), then the same
        # with the CLI recipe's learning-rate schedule and optimizer (no mixup: fit has none).
        warm = int(config.train.warmup_steps)
        schedule = keras.optimizers.schedules.CosineDecay(
            0.0,
            steps - warm,
            alpha=float(config.train.min_lr_ratio),
            warmup_target=float(config.train.learning_rate),
            warmup_steps=warm,
        )
        for key, optimizer in (
            ("Keras fit", "adam"),
            ("Keras fit, CLI schedule", keras.optimizers.Adam(schedule, amsgrad=True)),
        ):
            keras.utils.set_random_seed(seed)
            model = panns_keras.load_model(init).with_new_head(len(names), labels=names, seed=seed)
            model.compile(optimizer=optimizer)
            model.fit(x, y, batch_size=_BATCH.value, epochs=epochs, verbose=0)
            scores = model.predict(xt, verbose=0)["clipwise_output"]
            results[key].append(float(np.mean(scores.argmax(1) == yt.argmax(1))))
        print(
            f"seed {seed}: " + ", ".join(f"{k} {v[-1]:.3f}" for k, v in results.items()), flush=True
        )
    print(f"CPU: {cpu_description()}")
    pretrained = f"pretrained on digits 0-4 for {_PRETRAIN.value} steps"
    print(f"init: {pretrained if _PRETRAIN.value else 'randomly initialised'}")
    print(
        f"digits 5-9, held-out speaker {_HELD_OUT.value} ({len(xt)} clips), {len(x)} train "
        f"clips, {steps} steps of {_BATCH.value}, seeds {_SEEDS.value}"
    )
    for k, v in results.items():
        v = np.asarray(v)
        print(
            f"{k:>21}: mean {v.mean():.3f}, spread {v.max() - v.min():.3f} "
            f"({', '.join(f'{a:.3f}' for a in v)})"
        )


if __name__ == "__main__":
    app.run(main)
