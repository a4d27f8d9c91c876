"""Knowledge distillation on the bundled spoken digits: does an mn04 student distilled from a
trained Cnn10 beat the same student trained on labels alone, and what does a distilling step
cost?

Steps (all through the package: `prepare`, the one trainer, `teach`):

1. the demo's data: demo_data/fsdd (8 kHz, 1 s), fold ``train`` (280 clips) for training,
   fold ``test`` (199 clips, other takes of the same speakers) held out;
2. a Cnn10 teacher trained on the train fold (the demo recipe, ``--teacher_steps``);
3. ``teach``: its logits over the train shards (float16, keyed by clip);
4. per seed: an mn04 student (8 kHz EfficientAT front end) trained ``--student_steps`` with
   ``config.data.teacher`` (weight 0.9, T 1) and its label-only twin (same seed, steps, data
   order, mixup lambdas), each evaluated on the held-out fold after its BatchNorm statistics
   are re-estimated on the training clips (mn04 keeps EfficientAT's BatchNorm momentum, torch
   0.01; after a few hundred steps the running averages lag the weights and the trainer's own
   evaluation gives constant outputs, chance accuracy, for both arms; printed beside).

Prints the held-out mAP and accuracy per run, mean and spread (sample std, min..max) per arm,
the per-seed difference, and the median time per training step (pipeline + step, measured
between ``on_step`` calls after warm-up) of each arm. Runs alternate distilled / label-only
so load from other processes on a shared machine hits both alike.

    .venv/bin/python benchmarks/distill_digits.py --out=/tmp/distill_bench [--seeds=0,1,2]
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from absl import app, flags, logging

REPO = Path(__file__).resolve().parents[1]
_OUT = flags.DEFINE_string("out", "/tmp/distill_bench", "Working folder.")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Student seeds.")
_TEACHER_STEPS = flags.DEFINE_integer("teacher_steps", 300, "Teacher training steps.")
_STUDENT_STEPS = flags.DEFINE_integer("student_steps", 300, "Student training steps.")
_WEIGHT = flags.DEFINE_float("weight", 0.9, "config.train.distill.weight.")
_TEACHER = flags.DEFINE_string("teacher_model", "cnn10", "Teacher architecture.")


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        return "unknown CPU"
    for line in out.splitlines():
        if line.lower().startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def prepare(out: Path) -> dict:
    from panns_keras.data import formats
    from panns_keras.data.prepare import prepare as run_prepare

    demo = REPO / "demo_data" / "fsdd"
    manifests = {}
    for fold in ("train", "test"):
        manifests[fold] = run_prepare(
            str(out / fold),
            generic_csv=str(demo / "clips.csv"),
            labels_csv=str(demo / formats.LABELS_NAME),
            folds=fold,
            name=fold,
            sample_rate=8000,
            clip_seconds=1.0,
            clips_per_shard=64,
            num_workers=1,
        )
    return manifests


def base(data: Path, seed: int, steps: int):
    from panns_keras import configs

    c = configs.get_config("demo")
    c.seed = seed
    c.data.train_files = str(data / "train" / "train-*.tfrecord")
    c.data.eval_files = str(data / "test" / "test-*.tfrecord")
    c.data.labels = str(REPO / "demo_data" / "fsdd" / "labels.csv")
    c.train.num_steps = steps
    c.train.progress = False
    c.train.log_every = 50
    c.train.checkpoint_every = 100_000
    c.train.image_every = 0
    c.eval.every = 0  # one evaluation, after the last step
    c.eval.keep_best = False
    return c


def student_config(data: Path, seed: int, steps: int, teacher_dir: str | None):
    c = base(data, seed, steps)
    c.model.name = "mn04"
    o = c.model.overrides
    # EfficientAT's front end at 8 kHz: 32 ms windows, 10 ms hop, 64 mel bins up to 4 kHz.
    o.sample_rate, o.window_size, o.hop_size, o.mel_bins, o.fmax = 8000, 256, 80, 64, 4000.0
    o.embedding_size = None
    o.spec_augment = None
    if teacher_dir:
        c.data.teacher = teacher_dir
        c.train.distill.weight = _WEIGHT.value
    return c


def train_waveforms(data: Path) -> np.ndarray:
    """Every training clip as float32 (N, samples), in file order."""
    import tensorflow as tf

    from panns_keras.data import formats, schema

    files = formats.list_files(str(data / "train" / "train-*.tfrecord"))
    recs = tf.data.TFRecordDataset(files).as_numpy_iterator()
    return np.stack([schema.int16_to_float(schema.example_to_numpy(r)["audio"]) for r in recs])


def reestimate_batchnorm(model, waveforms: np.ndarray) -> None:
    """BatchNorm statistics of the trained weights over the training clips (one training-mode
    pass with momentum 0; no mixup). mn04 keeps EfficientAT's BatchNorm momentum (torch 0.01):
    after a few hundred steps its running averages still lag the moving weights."""
    import keras

    layers = [x for x in model._flatten_layers() if isinstance(x, keras.layers.BatchNormalization)]
    saved = [x.momentum for x in layers]
    for x in layers:
        x.momentum = 0.0
    model(waveforms, training=True)
    for x, m in zip(layers, saved):
        x.momentum = m


def timed_train(config, workdir: Path, waveforms: np.ndarray) -> dict:
    from panns_keras.data.pipeline import make_eval_dataset
    from panns_keras.train import evaluation
    from panns_keras.train.trainer import train

    stamps = []
    res = train(config, workdir, on_step=lambda s: stamps.append(time.perf_counter()))
    gaps = np.diff(stamps)[10:-1]  # after warm-up; the last step is followed by evaluation
    model = res["model"]
    reestimate_batchnorm(model, waveforms)
    ev = evaluation.evaluate(evaluation.make_predict_fn(model), make_eval_dataset(config))
    return {
        "mAP": float(ev["mAP"]),
        "accuracy": float(ev["accuracy"]),
        "trainer_mAP": float(res["eval"]["mAP"]),
        "trainer_accuracy": float(res["eval"]["accuracy"]),
        "step_s": float(np.median(gaps)),
        "loss": float(res["loss"]),
    }


def spread(xs) -> str:
    xs = np.asarray(xs, np.float64)
    sd = float(xs.std(ddof=1)) if len(xs) > 1 else float("nan")
    return f"{xs.mean():.4f} ± {sd:.4f} (min {xs.min():.4f}, max {xs.max():.4f})"


def main(argv) -> int:
    del argv
    import shutil

    from panns_keras.train.distill import teach
    from panns_keras.train.trainer import train

    logging.set_verbosity(logging.WARNING)
    out = Path(_OUT.value)
    t0 = time.perf_counter()
    data = out / "data"
    prepare(data)
    print(f"CPU: {cpu_name()}", flush=True)

    teacher_dir = out / "teacher_model"
    if not (teacher_dir / "model" / "config.json").is_file():
        shutil.rmtree(teacher_dir, ignore_errors=True)
        tc = base(data, 0, _TEACHER_STEPS.value)
        tc.model.name = _TEACHER.value
        res = train(tc, teacher_dir)
        print(
            f"teacher {_TEACHER.value}: {res['step']} steps, held-out mAP "
            f"{res['eval']['mAP']:.4f}, accuracy {res['eval']['accuracy']:.4f} "
            f"({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )
    t1 = time.perf_counter()
    preds = out / "teacher_logits"
    meta = teach([str(teacher_dir / "model")], str(data / "train"), str(preds), progress=False)
    print(
        f"teach: {sum(e['num_clips'] for e in meta['shards'])} clips in "
        f"{time.perf_counter() - t1:.1f} s",
        flush=True,
    )

    waveforms = train_waveforms(data)
    rows = {"distilled": [], "labels": []}
    for seed in (int(s) for s in _SEEDS.value):
        for arm in ("distilled", "labels"):
            wd = out / "students" / f"{arm}_{seed}"
            shutil.rmtree(wd, ignore_errors=True)
            cfg = student_config(
                data, seed, _STUDENT_STEPS.value, str(preds) if arm == "distilled" else None
            )
            r = timed_train(cfg, wd, waveforms)
            rows[arm].append(r)
            print(
                f"seed {seed} {arm:9s}: held-out mAP {r['mAP']:.4f}, accuracy "
                f"{r['accuracy']:.4f} (trainer's own running BatchNorm statistics: mAP "
                f"{r['trainer_mAP']:.4f}, accuracy {r['trainer_accuracy']:.4f}), "
                f"{r['step_s'] * 1e3:.1f} ms/step",
                flush=True,
            )

    print(
        "\n=== mn04 student, held-out fold (199 clips), "
        f"{_STUDENT_STEPS.value} steps x batch 32, seeds {','.join(_SEEDS.value)} ==="
    )
    for arm in rows:
        print(f"{arm:9s} mAP {spread([r['mAP'] for r in rows[arm]])}")
        print(f"{'':9s} acc {spread([r['accuracy'] for r in rows[arm]])}")
    d = [a["mAP"] - b["mAP"] for a, b in zip(rows["distilled"], rows["labels"])]
    print(
        f"distilled - labels, per seed: {', '.join(f'{x:+.4f}' for x in d)}; mean {np.mean(d):+.4f}"
    )
    sd = max(np.std([r["mAP"] for r in rows[a]], ddof=1) for a in rows)
    print(
        f"beats its label-only twin by more than the seed spread (larger arm std {sd:.4f}): "
        f"{'yes' if np.mean(d) > sd else 'no'}"
    )
    steps = {a: np.median([r["step_s"] for r in rows[a]]) for a in rows}
    cost = 100 * (steps["distilled"] / steps["labels"] - 1)
    print(
        f"median time per step: distilled {steps['distilled'] * 1e3:.1f} ms, labels "
        f"{steps['labels'] * 1e3:.1f} ms, cost {cost:+.1f}%"
    )
    print(f"CPU: {cpu_name()}; total {time.perf_counter() - t0:.0f} s")
    summary = {"rows": rows, "cpu": cpu_name(), "steps": _STUDENT_STEPS.value}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    from panns_keras.cli import quiet

    quiet.setup(-1)
    sys.exit(app.run(main))
