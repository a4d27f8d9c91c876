"""End-to-end CPU demo: spoken digits -> TFRecords -> train a small Cnn6 -> evaluate -> tag.

``python examples/demo.py --out=demo_out`` (``make demo``) uses the bundled Free Spoken
Digit Dataset subset (demo_data/fsdd, CC BY-SA 4.0): 4 speakers x 10 digits, takes 5-11 for
training, takes 0-4 held out for evaluation, one more clip held back and tagged at the end.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from absl import app, flags, logging

from panns_keras.data import formats

REPO = Path(__file__).resolve().parents[1]  # an example: it runs from the repository
_OUT = flags.DEFINE_string("out", "demo_out", "Output folder (data, workdir, report).")
_DATA = flags.DEFINE_string(
    "demo_data",
    str(REPO / "demo_data" / "fsdd"),
    "Folder with clips.csv, labels.csv and recordings/.",
)
_STEPS = flags.DEFINE_integer("steps", 0, "Training steps (0 = the demo recipe's value).")
_FRESH = flags.DEFINE_bool("fresh", True, "Start training from scratch (delete out/workdir).")


def load_demo_config():
    """The packaged ``demo`` recipe (configs/demo.py, installed as panns_keras/configs/)."""
    from panns_keras import configs

    return configs.get_config("demo")


def prepare_data(demo_data: Path, out: Path, sample_rate: int, clip_seconds: float) -> dict:
    """TFRecords for the train and test folds (panns_keras.data.prepare); returns {fold:
    manifest}."""
    from panns_keras.data.prepare import prepare

    manifests = {}
    for fold in ("train", "test"):
        manifests[fold] = prepare(
            str(out / fold),
            generic_csv=str(demo_data / "clips.csv"),
            labels_csv=str(demo_data / formats.LABELS_NAME),
            folds=fold,
            name=fold,
            sample_rate=sample_rate,
            clip_seconds=clip_seconds,
            clips_per_shard=64,
            num_workers=1,
        )
    return manifests


def tag_clip(model, names: list[str], path: Path, sample_rate: int, samples: int, k: int = 3):
    """Top-k (name, probability) for one audio file, padded/cropped to ``samples``."""
    import numpy as np

    from panns_keras.audio import load_audio

    wav = np.asarray(load_audio(str(path), sample_rate), dtype=np.float32)
    wav = np.pad(wav[:samples], (0, max(0, samples - wav.shape[0])))
    probs = np.asarray(model(wav[None], training=False)["clipwise_output"])[0]
    top = np.argsort(-probs)[:k]
    return [(names[i], float(probs[i])) for i in top]


def main(argv) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    t0 = time.perf_counter()
    out = Path(_OUT.value).resolve()
    demo_data = Path(_DATA.value)
    if not (demo_data / "clips.csv").is_file():
        print(f"demo: {demo_data}/clips.csv not found (run from the repository)", file=sys.stderr)
        return 1
    import shutil

    from panns_keras.data.pipeline import make_eval_dataset
    from panns_keras.train import evaluation
    from panns_keras.train.trainer import train

    config = load_demo_config()
    if _STEPS.value:
        config.train.num_steps = _STEPS.value
    sr, samples = int(config.data.sample_rate), int(config.data.clip_samples)
    print(f"[1/4] preparing TFRecords from {demo_data} ...", flush=True)
    manifests = prepare_data(demo_data, out / "data", sr, samples / sr)
    config.data.train_files = str(out / "data" / "train" / "train-*.tfrecord")
    config.data.eval_files = str(out / "data" / "test" / "test-*.tfrecord")
    config.data.labels = str(demo_data / formats.LABELS_NAME)
    workdir = out / "workdir"
    if _FRESH.value:
        shutil.rmtree(workdir, ignore_errors=True)
    t_prep = time.perf_counter() - t0
    print(
        f"[2/4] training {config.model.name} for {config.train.num_steps} steps "
        f"(batch {config.train.batch_size}) on {manifests['train']['num_clips']} clips ...",
        flush=True,
    )
    result = train(config, workdir)
    t_train = time.perf_counter() - t0 - t_prep
    print("\n[3/4] evaluating on the held-out takes ...", flush=True)
    model, names = result["model"], [label.display_name for label in result["labels"]]
    ev = evaluation.evaluate(evaluation.make_predict_fn(model), make_eval_dataset(config))
    paths = evaluation.write_report(ev, names, out / "eval")
    print("[4/4] tagging a held-back clip ...", flush=True)
    clip = demo_data / "recordings" / "7_nicolas_0.wav"
    tags = tag_clip(model, names, clip, sr, samples)
    elapsed = time.perf_counter() - t0
    chance = 1.0 / len(names)
    lines = [
        "",
        "=== panns-keras demo summary ===",
        f"data: {manifests['train']['num_clips']} train / {manifests['test']['num_clips']} "
        f"test clips of spoken digits (Free Spoken Digit Dataset, CC BY-SA 4.0), 8 kHz, 1 s",
        f"model: {config.model.name} {dict(config.model.overrides.items())}",
        f"trained {result['step']} steps in {t_train:.0f} s "
        f"({result['clips_per_second']:.0f} clips/s), final train loss {result['loss']:.4f}",
        f"held-out evaluation: {evaluation.summary_line(ev)}  [chance accuracy {chance:.2f}]",
        f"tagged {clip.name} (digit seven, never seen in training): "
        + ", ".join(f"{n} {p:.2f}" for n, p in tags),
        f"report: {paths['csv']}, {paths['plot']}",
        f"model directory: {workdir / 'model'} (best by eval mAP: {workdir / 'best'})",
        f"TensorBoard: tensorboard --logdir {workdir}",
        f"total time {elapsed:.0f} s (data preparation {t_prep:.0f} s)",
    ]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    from panns_keras.cli import quiet

    quiet.setup(-1)  # before TensorFlow is imported: no native log lines
    logging.set_verbosity(logging.WARNING)
    app.run(main)
