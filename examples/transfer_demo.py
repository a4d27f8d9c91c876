"""Transfer learning on the bundled spoken digits: every mode, cross-speaker folds, one command.

``python examples/transfer_demo.py --out=transfer_demo_out`` (``make transfer-demo``)

No pretrained PANNs checkpoint can be assumed offline, so the run makes its own stand-in:

1. Source task: digits 0-4 of demo_data/fsdd (4 speakers x 5 digits x 12 takes). A Cnn6 at
   8 kHz / 32 mel bins / hop 160 / 128-d embedding (the ``make demo`` model) is trained from
   random weights on it by the trainer (``panns-keras train``); its model directory is the
   initial model of step 2.
2. Target task: digits 5-9 (clips and labels never seen in pretraining), fold = speaker,
   k-fold over the prepared TFRecords (``panns-keras finetune --folds=all``): each speaker in
   turn is the test set, so every number is accuracy on a speaker the target model never
   heard say those digits.
3. Every mode on the target with the same steps, batch, learning rate (cosine decay) and
   seed; per-fold and mean accuracy, wall and CPU time go to ``OUT/results.json`` and
   ``OUT/results.md``, with the ``panns-keras finetune`` command of each row.

Everything runs through the one trainer (``panns_keras.train``): a re-run resumes and
reuses finished steps (``--fresh`` starts over). The pretraining saw the target's speakers
(saying other digits), which a real AudioSet checkpoint would not have; see results.md.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import shutil
import time
from pathlib import Path

from absl import app, flags, logging

from panns_keras.data import formats
from panns_keras.errors import UserError

REPO = Path(__file__).resolve().parents[1]  # an example: it runs from the repository
FSDD = REPO / "demo_data" / "fsdd"
SPEAKERS = ("george", "jackson", "lucas", "nicolas")
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SOURCE_DIGITS, TARGET_DIGITS = tuple(range(5)), tuple(range(5, 10))
TAKES = 12
SAMPLE_RATE, CLIP_SECONDS = 8000, 1.0
MODEL = "cnn6"
# The `make demo` model (configs/demo.py), written out so this run does not move with it.
OVERRIDES = dict(
    sample_rate=8000,
    window_size=256,
    hop_size=160,
    fmax=4000.0,
    mel_bins=32,
    spec_augment=False,
    embedding_size=128,
)
# (row name, finetune mode, config.model changes); every row also gets the shared settings.
ROWS = (
    ("scratch", "scratch", {}),
    ("finetune", "finetune", {"base_lr_scale": 1.0}),
    ("finetune (base lr x0.1)", "finetune", {"base_lr_scale": 0.1}),
    ("freeze_l1", "freeze_l1", {}),
    ("freeze_l3", "freeze_l3", {}),
    ("probe", "probe", {}),
)


@dataclasses.dataclass
class Settings:
    """Everything that changes the numbers (a finished step is reused when they match)."""

    steps: int = 200
    pretrain_steps: int = 300
    batch_size: int = 16
    lr: float = 1e-3
    schedule: str = "cosine"  # at a constant lr, scratch's BN statistics lag its weights
    mixup_alpha: float = 0.2  # in-model mixup, as the trainer's finetune recipe
    hidden: int = 256  # freeze_l3 MLP width
    seed: int = 0
    takes: int = TAKES  # takes per (digit, speaker) used, of 12
    speakers: tuple = SPEAKERS


def _slug(row: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in row).strip("_").replace("__", "_")


def write_csvs(out: Path, s: Settings, fsdd: Path = FSDD) -> dict[str, Path]:
    """``out/data/{source,target}/clips.csv`` (path,labels,fold=speaker) + labels.csv, with a
    ``recordings`` link to the bundled clips; returns {task: csv path}."""
    if not (fsdd / "clips.csv").is_file():
        raise UserError(f"{fsdd}/clips.csv not found (run from the repository)")
    unknown = [sp for sp in s.speakers if sp not in SPEAKERS]
    if unknown or not s.speakers:
        raise UserError(f"speakers {list(unknown)} not in the bundled data {list(SPEAKERS)}")
    if not 1 <= s.takes <= TAKES:
        raise UserError(f"--takes must be 1..{TAKES}")
    paths = {}
    for task, digits in (("source", SOURCE_DIGITS), ("target", TARGET_DIGITS)):
        d = out / "data" / task
        d.mkdir(parents=True, exist_ok=True)
        link = d / "recordings"
        if not link.exists():
            link.symlink_to((fsdd / "recordings").resolve(), target_is_directory=True)
        labels = [formats.Label(i, f"digit_{d_}", DIGITS[d_]) for i, d_ in enumerate(digits)]
        formats.write_labels_csv(d / formats.LABELS_NAME, labels)
        rows = [
            (f"recordings/{digit}_{sp}_{take}.wav", DIGITS[digit], sp)
            for digit in digits
            for sp in s.speakers
            for take in range(s.takes)
        ]
        missing = [r[0] for r in rows if not (d / r[0]).is_file()]
        if missing:
            raise UserError(f"{fsdd}: missing clip {missing[0]}")
        with open(d / "clips.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["path", "labels", "fold"])
            w.writerows(rows)
        paths[task] = d / "clips.csv"
    return paths


def _config(s: Settings, **model):
    """The packaged finetune recipe with this run's settings (and the model's fields)."""
    from panns_keras import configs

    c = configs.get_config("finetune")
    c.seed = s.seed
    c.train.num_steps, c.train.batch_size = s.steps, s.batch_size
    c.train.learning_rate, c.train.schedule = s.lr, s.schedule
    c.train.warmup_steps = min(20, s.steps // 10)
    c.train.checkpoint_every = max(1, s.steps)
    c.train.log_every = max(1, s.steps // 4)
    c.data.mixup_alpha = s.mixup_alpha
    c.data.shuffle_buffer = 256
    c.model.mlp_hidden = s.hidden
    for k, v in model.items():
        c.model[k] = v
    return c


def prepare(csv_path: Path, out: Path) -> Path:
    from panns_keras.train.finetune import prepared_data

    return prepared_data(str(csv_path), out, SAMPLE_RATE, CLIP_SECONDS)


def pretrain(source: Path, out: Path, s: Settings, say=print) -> Path:
    """Cnn6 from random weights on digits 0-4 with the trainer; returns its model directory."""
    from panns_keras.data import formats as F
    from panns_keras.train.trainer import train

    work = out / "runs" / "pretrain"
    if (work / "model" / "config.json").is_file():
        say("  reusing the pretrained source model")
        return work / "model"
    c = _config(s, init="", mode="scratch", name=MODEL)
    for k, v in OVERRIDES.items():
        c.model.overrides[k] = v
    c.train.num_steps = s.pretrain_steps
    c.train.checkpoint_every = max(1, s.pretrain_steps)
    manifest = F.read_manifest(str(source))
    c.data.train_files = F.shard_pattern(str(source))
    c.data.labels = str(source / F.LABELS_NAME)
    c.data.num_classes = int(manifest["num_classes"])
    c.data.sample_rate, c.data.clip_samples = SAMPLE_RATE, int(manifest["clip_samples"])
    c.data.mixup = "in_model"
    train(c, work)
    return work / "model"


def _command(row_mode: str, init: Path, data: Path, work: Path, model: dict, s: Settings) -> str:
    overrides = " ".join(f"--config.model.{k}={v}" for k, v in model.items())
    return (
        f"panns-keras finetune --data={data} --model={init} --out={work} --mode={row_mode} "
        f"--folds=all --config.train.num_steps={s.steps} "
        f"--config.train.batch_size={s.batch_size} {overrides}"
    ).strip()


def run_row(
    row: str, mode: str, model: dict, target: Path, init: Path, out: Path, s: Settings, say=print
) -> dict:
    from panns_keras.train.finetune import finetune

    work = out / "runs" / _slug(row)
    done = work / "row.json"
    if done.is_file():
        say(f"  reusing {row}")
        return json.loads(done.read_text())
    wall, cpu = time.perf_counter(), time.process_time()
    res = finetune(
        str(target),
        work,
        _config(s, init=str(init), mode=mode, **model),
        folds="all",
        say=lambda line: say(f"  {line}"),
    )
    record = {
        "row": row,
        "mode": mode,
        "metric": "accuracy",
        "mean": res["mean"]["accuracy"],
        "folds": {r["held_out_fold"]: {"accuracy": r["accuracy"]} for r in res["splits"]},
        "wall_s": time.perf_counter() - wall,
        "cpu_s": time.process_time() - cpu,
        "command": _command(mode, init, target, work, model, s),
    }
    tmp = done.with_name(".row.json.tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    tmp.replace(done)
    return record


def markdown(summary: dict) -> str:
    s = summary["settings"]
    lines = [
        "# Transfer learning on the bundled spoken digits",
        "",
        f"Source: digits 0-4, Cnn6 trained from random weights ({s['pretrain_steps']} steps). "
        f"Target: digits 5-9, {summary['target_clips']} clips, fold = speaker; every mode "
        f"{s['steps']} steps per fold, batch {s['batch_size']}, lr {s['lr']} ({s['schedule']}), "
        f"seed {s['seed']}. Accuracy on the held-out speaker; chance is "
        f"{1 / len(TARGET_DIGITS):.2f}. Measured on {summary.get('machine', 'this machine')}"
        f" in {summary.get('wall_s', 0):.0f} s.",
        "",
        "| mode | mean accuracy | " + " | ".join(s["speakers"]) + " | wall s |",
        "| --- | --- | " + " | ".join("---" for _ in s["speakers"]) + " | --- |",
    ]
    for r in summary["rows"]:
        per = " | ".join(f"{r['folds'][sp]['accuracy']:.3f}" for sp in s["speakers"])
        lines.append(f"| {r['row']} | {r['mean']:.3f} | {per} | {r['wall_s']:.0f} |")
    lines += [
        "",
        "The stand-in source model heard the target's speakers (saying other digits); "
        "a real PANNs checkpoint would not have. Commands:",
        "",
    ]
    lines += [f"    {r['command']}" for r in summary["rows"]]
    return "\n".join(lines) + "\n"


def run(out, settings: Settings | None = None, fresh: bool = False, say=print) -> dict:
    s = settings or Settings()
    t0 = time.perf_counter()
    out = Path(out)
    if fresh:
        shutil.rmtree(out, ignore_errors=True)
    csvs = write_csvs(out, s)
    say("preparing TFRecords (source digits 0-4, target digits 5-9, fold = speaker)")
    source = prepare(csvs["source"], out / "data" / "source")
    target = prepare(csvs["target"], out / "data" / "target")
    say(f"pretraining the source model ({s.pretrain_steps} steps)")
    init = pretrain(source, out, s, say)
    rows = []
    for row, mode, model in ROWS:
        say(f"{row}: {len(s.speakers)} folds")
        rows.append(run_row(row, mode, model, target, init, out, s, say))
        say(f"  mean accuracy {rows[-1]['mean']:.3f}")
    from panns_keras.data import formats as F

    summary = {
        "settings": {**dataclasses.asdict(s), "speakers": list(s.speakers)},
        "target_clips": int(F.read_manifest(str(target))["num_clips"]),
        "rows": rows,
        "wall_s": time.perf_counter() - t0,
        "machine": machine(),
    }
    for name, text in (
        ("results.json", json.dumps(summary, indent=2) + "\n"),
        ("results.md", markdown(summary)),
    ):
        tmp = out / f".{name}.tmp"
        tmp.write_text(text)
        tmp.replace(out / name)
    return summary


def machine() -> str:
    """Where the run was measured: CPU model and logical cores (the figures depend on it)."""
    import os
    import platform

    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            name = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{name}, {os.cpu_count()} logical cores (CPU only)"


def define_flags() -> None:
    flags.DEFINE_string("out", "transfer_demo_out", "Output folder.")
    flags.DEFINE_integer("steps", Settings.steps, "Training steps per fold, every mode.")
    flags.DEFINE_integer(
        "pretrain_steps", Settings.pretrain_steps, "Steps of the source model's training."
    )
    flags.DEFINE_integer("batch_size", Settings.batch_size, "Batch size.")
    flags.DEFINE_integer("takes", TAKES, "Takes per digit and speaker (1-12).")
    flags.DEFINE_list("speakers", list(SPEAKERS), "Speakers (= folds) to use.")
    flags.DEFINE_integer("seed", 0, "Random seed.")
    flags.DEFINE_bool("fresh", False, "Delete --out first (else finished steps are reused).")


def main(argv) -> int:
    F = flags.FLAGS
    s = Settings(
        steps=F.steps,
        pretrain_steps=F.pretrain_steps,
        batch_size=F.batch_size,
        takes=F.takes,
        speakers=tuple(F.speakers),
        seed=F.seed,
    )
    try:
        summary = run(F.out, s, fresh=F.fresh)
    except UserError as e:
        logging.error("%s", e)
        return 2
    print(markdown(summary))
    out = Path(F.out).resolve()
    print(
        f"results: {out / 'results.md'} and {out / 'results.json'}; every fold's model, "
        f"checkpoints and TensorBoard events: {out / 'runs'}/<mode>/split_fold_<speaker>/; "
        f"total {summary['wall_s']:.0f} s"
    )
    return 0


if __name__ == "__main__":
    from panns_keras.cli import quiet

    quiet.setup(-1)  # before TensorFlow is imported: no native log lines (CUDA probing, oneDNN)
    logging.set_verbosity(logging.WARNING)
    define_flags()
    app.run(main)
