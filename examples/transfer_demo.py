"""Transfer learning on the bundled spoken digits: every mode, cross-speaker folds, one command.

``python examples/transfer_demo.py --out=transfer_demo_out`` (``make transfer-demo``)

No pretrained PANNs checkpoint can be assumed offline, so the run makes its own stand-in:

1. Source task: digits 0-4 of demo_data/fsdd (4 speakers x 5 digits x 12 takes). A Cnn6 at
   8 kHz / 32 mel bins / hop 160 / 128-d embedding (the ``make demo`` model) is trained from
   random weights on it with ``finetune --mode=scratch`` (a 20% clip-hash holdout reports
   the source accuracy); its model directory is the ``--model`` of step 2.
2. Target task: digits 5-9 (clips and labels never seen in pretraining), fold = speaker,
   ``--folds=all``: each speaker in turn is the test set, so every number is accuracy on a
   speaker the target model never heard say those digits.
3. Every mode on the target with the same steps, batch, learning rate (cosine decay) and
   seed; per-fold and mean accuracy, wall and CPU time go to ``OUT/results.json`` and
   ``OUT/results.md``, with the ``panns-keras finetune`` command of each step.

Each step records its settings; a re-run with the same settings reuses finished steps
(``--fresh`` starts over). The pretraining saw the target's speakers (saying other digits),
which a real AudioSet checkpoint would not have; see results.md.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
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
OVERRIDES = dict(sample_rate=8000, window_size=256, hop_size=160, fmax=4000.0, mel_bins=32,
                 spec_augment=False, embedding_size=128)  # fmt: skip
# (row name, finetune mode, TrainOptions changes); every row also gets the shared options.
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
    gain_db: float = 6.0
    time_shift: float = 0.1
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
        rows = [(f"recordings/{digit}_{sp}_{take}.wav", DIGITS[digit], sp)
                for digit in digits for sp in s.speakers for take in range(s.takes)]  # fmt: skip
        missing = [r[0] for r in rows if not (d / r[0]).is_file()]
        if missing:
            raise UserError(f"{fsdd}: missing clip {missing[0]}")
        with open(d / "clips.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["path", "labels", "fold"])
            w.writerows(rows)
        paths[task] = d / "clips.csv"
    return paths


def _cpu_s() -> float:
    return time.process_time()


def _cached(workdir: Path, key: dict):
    """The stored record of a finished step with the same settings, else None."""
    path = workdir / "run.json"
    if not path.is_file():
        return None
    rec = json.loads(path.read_text(encoding="utf-8"))
    return rec if rec.get("key") == json.loads(json.dumps(key)) else None  # tuples -> lists


def _store(workdir: Path, key: dict, record: dict) -> dict:
    record = json.loads(json.dumps({"key": key, **record}))
    tmp = workdir / "run.json.tmp"
    tmp.write_text(json.dumps(record, indent=2), encoding="utf-8")
    os.replace(tmp, workdir / "run.json")
    return record


def _options(s: Settings, **changes):
    from panns_keras.transfer.train import TrainOptions

    kw = dict(steps=s.steps, batch_size=s.batch_size, lr=s.lr, schedule=s.schedule,
              gain_db=s.gain_db, time_shift=s.time_shift, hidden=s.hidden, seed=s.seed,
              spec_augment=False, eval_batch_size=32)  # fmt: skip
    kw.update(changes)
    return TrainOptions(**kw)


def _cli(data: Path, workdir: Path, mode: str, opts, init: Path, folds: str = "all") -> str:
    """The ``panns-keras finetune`` command line that runs the same step."""
    parts = ["panns-keras finetune", f"--data={data}", f"--out={workdir}",
             f"--model={init}", f"--mode={mode}", f"--folds={folds}", f"--steps={opts.steps}",
             f"--batch_size={opts.batch_size}", f"--lr={opts.lr:g}",
             f"--schedule={opts.schedule}"]  # fmt: skip
    if mode == "finetune":  # the only mode that trains a pretrained base
        parts.append(f"--base_lr_scale={opts.base_lr_scale:g}")
    if mode != "probe":  # the probe trains on cached (unaugmented) embeddings
        parts += [f"--gain_db={opts.gain_db:g}", f"--time_shift={opts.time_shift:g}"]
    if mode in ("scratch", "finetune"):
        parts.append("--nospec_augment")
    if mode == "freeze_l3":
        parts.append(f"--hidden={opts.hidden}")
    parts.append(f"--seed={opts.seed}")
    return " ".join(parts)


def _timed_finetune(data, workdir: Path, **kw) -> tuple[dict, float, float]:
    from panns_keras.transfer.train import finetune

    t0, c0 = time.perf_counter(), _cpu_s()
    res = finetune(str(data), str(workdir), **kw)
    return res, time.perf_counter() - t0, _cpu_s() - c0


def save_architecture(path: Path, seed: int) -> Path:
    """The model as a (randomly initialised) model directory: ``--mode=scratch`` takes only
    its architecture, so the CLI needs no model overrides."""
    import panns_keras
    from panns_keras.convert.model_dir import save_model_dir
    from panns_keras.labels import audioset_labels

    model = panns_keras.build_model(MODEL, seed=seed, **OVERRIDES)
    return Path(save_model_dir(model, path, labels=audioset_labels()))


def pretrain(prepared: Path, out: Path, s: Settings, say=print) -> dict:
    """Stand-in pretrained base: scratch training on the source digits; its model dir."""
    from panns_keras.transfer.data import read_tfrecord_dir

    workdir = out / "pretrain"
    workdir.mkdir(parents=True, exist_ok=True)
    src = read_tfrecord_dir(str(prepared))
    key = {"settings": dataclasses.asdict(s), "data": src.data_hash(), "model": MODEL,
           "overrides": OVERRIDES}  # fmt: skip
    rec = _cached(workdir, key)
    if rec and Path(rec["init"]).is_dir():
        say(f"  reusing {rec['init']}")
        return rec
    opts = _options(s, steps=s.pretrain_steps)
    arch = save_architecture(workdir / "architecture", s.seed)
    res, wall, cpu = _timed_finetune(prepared, workdir, init=str(arch), mode="scratch",
                                     folds="", options=opts)  # fmt: skip
    split = res["splits"][0]
    return _store(workdir, key, {
        "init": split["model_dir"], "source_clips": len(src),
        "train_clips": split["train_clips"], "holdout_clips": split["test_clips"],
        "holdout_accuracy": split.get("accuracy"), "wall_s": wall, "cpu_s": cpu,
        "command": _cli(prepared, workdir, "scratch", opts, init=arch, folds=""),
    })  # fmt: skip


def run_row(row: str, mode: str, changes: dict, prepared: Path, init: Path, out: Path,
            s: Settings, init_key: dict) -> dict:  # fmt: skip
    """One mode over all speaker folds of the target task (reused when already done)."""
    from panns_keras.transfer.data import read_tfrecord_dir

    workdir = out / "runs" / _slug(row)
    workdir.mkdir(parents=True, exist_ok=True)
    opts = _options(s, **changes)
    key = {"row": row, "mode": mode, "options": dataclasses.asdict(opts), "init": init_key,
           "data": read_tfrecord_dir(str(prepared)).data_hash()}  # fmt: skip
    rec = _cached(workdir, key)
    if rec:
        return rec
    res, wall, cpu = _timed_finetune(prepared, workdir, init=str(init), mode=mode, folds="all",
                                     options=opts)  # fmt: skip
    splits = _folds(workdir, res)
    return _store(workdir, key, {
        "row": row, "mode": mode, "metric": res["metric"], "mean": res["mean"],
        "folds": splits, "wall_s": wall, "cpu_s": cpu,
        "command": _cli(prepared, workdir, mode, opts, init=init),
    })  # fmt: skip


def _folds(workdir: Path, res: dict) -> dict:
    """{speaker: {accuracy, train/test clips, train/test speakers}} from a finetune result;
    the speakers come from the clip ids the split actually used (split.json)."""
    out = {}
    for sp in res["splits"]:
        used = json.loads((workdir / sp["split"] / "split.json").read_text(encoding="utf-8"))
        spk = {part: sorted({_speaker(c) for c in used[part]}) for part in ("train", "test")}
        out[sp["split"][len("fold_"):]] = {
            "accuracy": sp.get(res["metric"]), "train_clips": sp["train_clips"],
            "test_clips": sp["test_clips"], "train_speakers": spk["train"],
            "test_speakers": spk["test"], "train_s": sp.get("train_s"),
        }  # fmt: skip
    return out


def _speaker(clip_id: str) -> str:
    """``recordings/5_george_3`` -> ``george``."""
    return os.path.basename(clip_id).split("_")[1]


def markdown(summary: dict) -> str:
    s = summary["settings"]
    pre = summary["pretrain"]
    speakers = s["speakers"]
    head = ["mode", "mean accuracy", *speakers, "wall s", "CPU s"]
    lines = [
        "# Transfer learning on the bundled spoken digits",
        "",
        f"Target: digits 5-9, {summary['target_clips']} clips, {len(speakers)} folds (fold = "
        f"speaker; each speaker's clips are the test set once, the others train). Chance "
        f"accuracy {1 / len(TARGET_DIGITS):.2f}. Model {MODEL} {OVERRIDES}.",
        f"Every mode: {s['steps']} steps of batch {s['batch_size']}, Adam lr {s['lr']:g} "
        f"({s['schedule']}), "
        f"gain +-{s['gain_db']:g} dB, time shift {s['time_shift']:g}, seed {s['seed']}.",
        f"Stand-in pretrained init: {MODEL} trained from scratch on digits 0-4 "
        f"({pre['train_clips']} clips, {s['pretrain_steps']} steps; source holdout accuracy "
        f"{_fmt(pre['holdout_accuracy'])} on {pre['holdout_clips']} clips; "
        f"{pre['wall_s']:.0f} s wall, {pre['cpu_s']:.0f} s CPU).",
        "",
        "| " + " | ".join(head) + " |",
        "| " + " | ".join(["---"] * len(head)) + " |",
    ]
    for r in summary["rows"]:
        cells = [r["row"], _fmt(r["mean"]), *(_fmt(r["folds"][sp]["accuracy"]) for sp in speakers),
                 f"{r['wall_s']:.0f}", f"{r['cpu_s']:.0f}"]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Total {summary['total_wall_s']:.0f} s wall, {summary['total_cpu_s']:.0f} s CPU "
        f"(process CPU time over all threads; wall time includes model building and tracing "
        f"per fold; {os.cpu_count()} CPU cores visible).",
        "",
        "Caveat: the init is a stand-in, pretrained on digits 0-4 of the same four speakers "
        "(no target clip or label was seen, but the test speakers' voices were). For a real "
        "PANNs checkpoint: `panns-keras convert` it to a model directory and pass it as "
        "`--model`.",
        "",
        "Commands (each step is one `panns-keras finetune` run):",
        "",
        "```",
        pre["command"],
        *(r["command"] for r in summary["rows"]),
        "```",
        "",
    ]
    return "\n".join(lines)


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def run(out, settings: Settings | None = None, fresh: bool = False, say=print,
        fsdd: Path = FSDD) -> dict:  # fmt: skip
    """The whole documented run into ``out``; returns the summary written to results.json."""
    from panns_keras.transfer.data import prepare_into

    s = settings or Settings()
    out = Path(out).resolve()
    if fresh:
        shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    t0, c0 = time.perf_counter(), _cpu_s()
    csvs = write_csvs(out, s, fsdd)
    say(f"[1/3] preparing TFRecords ({SAMPLE_RATE} Hz, {CLIP_SECONDS:g} s) ...")
    prepared = {task: prepare_into(str(p), str(out / "prepared" / task), SAMPLE_RATE,
                                   CLIP_SECONDS) for task, p in csvs.items()}  # fmt: skip
    prepared = {k: Path(v) for k, v in prepared.items()}
    say(f"[2/3] stand-in pretraining: {MODEL} from scratch on digits 0-4, "
        f"{s.pretrain_steps} steps ...")  # fmt: skip
    pre = pretrain(prepared["source"], out, s, say)
    say(f"  source holdout accuracy {_fmt(pre['holdout_accuracy'])}, {pre['wall_s']:.0f} s")
    init_key = pre["key"]
    rows = []
    for i, (row, mode, changes) in enumerate(ROWS):
        say(f"[3/3] ({i + 1}/{len(ROWS)}) {row} on digits 5-9, folds = speakers ...")
        rec = run_row(row, mode, changes, prepared["target"], Path(pre["init"]), out, s,
                      init_key)  # fmt: skip
        say(f"  mean accuracy {_fmt(rec['mean'])} ("
            + ", ".join(f"{k} {_fmt(v['accuracy'])}" for k, v in rec["folds"].items())
            + f"), {rec['wall_s']:.0f} s")  # fmt: skip
        rows.append({k: v for k, v in rec.items() if k != "key"})
    from panns_keras.transfer.data import read_tfrecord_dir

    summary = {
        "settings": dataclasses.asdict(s), "model": MODEL, "overrides": OVERRIDES,
        "source_digits": [DIGITS[d] for d in SOURCE_DIGITS],
        "target_digits": [DIGITS[d] for d in TARGET_DIGITS],
        "target_clips": len(read_tfrecord_dir(str(prepared["target"]))),
        "pretrain": {k: v for k, v in pre.items() if k != "key"}, "rows": rows,
        # a resumed run reports the sum of the recorded step times plus this run's own
        "total_wall_s": pre["wall_s"] + sum(r["wall_s"] for r in rows),
        "total_cpu_s": pre["cpu_s"] + sum(r["cpu_s"] for r in rows),
        "this_invocation_wall_s": time.perf_counter() - t0,
        "this_invocation_cpu_s": _cpu_s() - c0,
    }  # fmt: skip
    (out / "results.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    (out / "results.md").write_text(markdown(summary), encoding="utf-8")
    return summary


def define_flags() -> None:
    """This run's flags (defined only when run as a program: ``steps``, ``seed``... would
    clash with ``panns-keras finetune``'s flags in one process)."""
    flags.DEFINE_string("out", "transfer_demo_out", "Output folder.")
    flags.DEFINE_integer("steps", Settings.steps, "Training steps per fold, every mode.")
    flags.DEFINE_integer("pretrain_steps", Settings.pretrain_steps,
                         "Steps of the stand-in pretraining on digits 0-4.")  # fmt: skip
    flags.DEFINE_integer("batch_size", Settings.batch_size, "Batch size.")
    flags.DEFINE_integer("takes", TAKES, "Takes per digit and speaker (1-12).")
    flags.DEFINE_list("speakers", list(SPEAKERS), "Speakers (= folds) to use.")
    flags.DEFINE_integer("seed", 0, "Random seed.")
    flags.DEFINE_bool("fresh", False, "Delete --out first (else finished steps with the same "
                      "settings are reused).")  # fmt: skip


def main(argv) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    f = flags.FLAGS
    s = Settings(steps=f.steps, pretrain_steps=f.pretrain_steps, batch_size=f.batch_size,
                 takes=f.takes, speakers=tuple(f.speakers), seed=f.seed)  # fmt: skip
    try:
        summary = run(f.out, s, fresh=f.fresh, say=lambda m: print(m, flush=True))
    except UserError as e:
        print(f"transfer demo: {e}", flush=True)
        return 2
    print()
    print(markdown(summary))
    print(f"written: {Path(f.out).resolve() / 'results.md'} and results.json")
    return 0


if __name__ == "__main__":
    from panns_keras.cli import quiet

    quiet.setup(-1)  # before TensorFlow is imported: no native log lines
    define_flags()
    logging.set_verbosity(logging.WARNING)
    app.run(main)
