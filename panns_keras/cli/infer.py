"""panns-keras tag|sed|embed FILE... --model MODEL

  tag    top-k labels per file            [--top_k 5] [--format table|json|csv]
  sed    sound event detection             --out_tsv EVENTS.tsv [--plot PLOT.png]
         [--threshold 0.5] [--min_duration 0] [--min_gap 0] [--median_filter 0.5]
         [--scores_dir DIR]  (frame scores, one sed_scores_eval TSV per file)
  embed  clip embeddings                   --out DIR (<stem>.npy) and/or --out_npz FILE.npz

MODEL is a model directory, a .keras file, a SavedModel directory or a .tflite file written
by `panns-keras export` (a .tflite fixes the window to its input length).

Long files are processed in --window_seconds windows starting every --hop_seconds (default:
the window; less gives overlapping windows, and clip models then give sed scores at the
hop's resolution); memory stays bounded. Scores are the max over windows, embeddings the
mean. A file that cannot be used (missing, a directory,
unreadable, empty, NaN samples) gives a one-line error; the other files are still
processed and the exit code is 1. Progress (seconds of audio done) goes to stderr.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from pathlib import Path

from absl import flags

from panns_keras.errors import UsageError
from panns_keras.fileio import atomic_path

_MODEL = flags.DEFINE_string(
    "model", None, "Model directory, .keras file, SavedModel directory, .tflite file or "
    "preset name (cnn14, ...: panns-keras models). Required."
)  # fmt: skip
_TOP_K = flags.DEFINE_integer("top_k", 5, "tag: labels per file.", lower_bound=1)
_FORMAT = flags.DEFINE_enum("format", "table", ["table", "json", "csv"], "tag: output format.")
_WINDOW = flags.DEFINE_float("window_seconds", 10.0, "Analysis window (s); 0 = whole file.",
                             lower_bound=0.0)  # fmt: skip
_HOP = flags.DEFINE_float(
    "hop_seconds", None, "Start of one window to the next (s); default: the window length."
)
_BATCH = flags.DEFINE_integer("batch_size", 8, "Windows per batch.", lower_bound=1)
_THRESHOLD = flags.DEFINE_float("threshold", 0.5, "sed: frame score threshold.", lower_bound=0.0,
                                upper_bound=1.0)  # fmt: skip
_MIN_DURATION = flags.DEFINE_float("min_duration", 0.0, "sed: drop shorter events (s).",
                                   lower_bound=0.0)  # fmt: skip
_MIN_GAP = flags.DEFINE_float("min_gap", 0.0, "sed: merge same-label events closer than this.",
                              lower_bound=0.0)  # fmt: skip
_MEDIAN = flags.DEFINE_string(
    "median_filter", None, "sed: median filter over time per class before thresholding: "
    "seconds ('0.5'), frames ('7f'), or per class 'Speech=1.0;Dog=0.3' with an optional bare "
    "default ('0.2;Speech=1.0'); lengths are made odd.")  # fmt: skip
_SCORES_DIR = flags.DEFINE_string(
    "scores_dir", None, "sed: write frame scores, one <stem>.tsv per file in the "
    "sed_scores_eval layout (onset, offset, one column per class).")  # fmt: skip
_OUT_TSV = flags.DEFINE_string("out_tsv", None, "sed: events, tab-separated (DCASE columns + "
                               "score).")  # fmt: skip
_PLOT = flags.DEFINE_string("plot", None, "sed: PNG with waveform, log-mel, top classes.")
_PLOT_CLASSES = flags.DEFINE_integer("plot_classes", 5, "sed: classes in the plot.",
                                     lower_bound=1)  # fmt: skip
_OUT = flags.DEFINE_string("out", None, "embed: output directory for <stem>.npy files.")
_OUT_NPZ = flags.DEFINE_string(
    "out_npz", None, "embed: one .npz with 'ids' (inputs as given), 'embeddings' (N, E), "
    "'durations' (s).")  # fmt: skip


flags.register_validator(
    "hop_seconds", lambda v: v is None or v > 0, "must be > 0 (or leave it out: the window length)"
)

# The help of each verb: its synopsis and the flags it uses (the shared ones and its own).
SYNOPSIS = {
    "tag": "panns-keras tag FILE... --model MODEL [--top_k 5] [--format table|json|csv]\n\n"
           "Top-k labels per file (scores: the max over the windows).",
    "sed": "panns-keras sed FILE... --model MODEL --out_tsv EVENTS.tsv [--plot PLOT.png]\n"
           "  [--threshold 0.5] [--min_duration 0] [--min_gap 0] [--median_filter 0.5]\n"
           "  [--scores_dir DIR]\n\nSound event detection: events (onset, offset, label, score) "
           "from frame scores;\n--scores_dir writes one sed_scores_eval TSV per file.",
    "embed": "panns-keras embed FILE... --model MODEL --out DIR (<stem>.npy) and/or "
             "--out_npz FILE.npz\n\nClip embeddings (the mean over the windows).",
}  # fmt: skip


def help_for(verb: str) -> str:
    """``panns-keras VERB --help`` for tag, sed and embed: this verb's flags only."""
    import textwrap

    common = __doc__.split("\n\n", 2)[2]  # after the usage lines: MODEL, windows, errors
    others = tuple(f"{v}:" for v in SYNOPSIS if v != verb)
    lines = []
    for flag in sorted(flags.FLAGS.get_flags_for_module(sys.modules[__name__]),
                       key=lambda f: f.name):  # fmt: skip
        enum, _, help_ = (
            flag.help.rpartition(">: ") if flag.help.startswith("<") else ("", "", flag.help)
        )
        if help_.startswith(others):
            continue
        help_ = (f"{enum}>: " if enum else "") + help_.removeprefix(f"{verb}: ")
        bounded = any(getattr(flag.parser, b, None) is not None
                      for b in ("lower_bound", "upper_bound"))  # fmt: skip
        extra = f" ({flag.parser.syntactic_help})" if bounded else ""
        lines.append(f"  --{flag.name}: " + textwrap.fill(help_ + extra, 88,
                                                         subsequent_indent="    "))  # fmt: skip
        lines.append(f"    (default: {flag.default_as_str})")
    return f"{SYNOPSIS[verb]}\n\n{common.strip()}\n\nflags:\n" + "\n".join(lines)


def _load_model():
    if not _MODEL.value:
        raise UsageError("--model: required (a model directory, .keras, SavedModel, .tflite "
                         "or a preset name such as cnn14: panns-keras models)")  # fmt: skip
    from panns_keras.runtime import load_runner

    runner = load_runner(_MODEL.value)
    return runner, list(runner.labels)


def _report_errors(results, verb) -> int:
    failed = [r for r in results if not r.ok]
    for r in failed:
        print(f"panns-keras {verb}: error: {r.error}", file=sys.stderr)
    return 1 if failed else 0


def _audio_seconds(paths) -> float | None:
    """Total duration from the file headers (None when a header does not tell)."""
    import soundfile as sf

    total = 0.0
    for p in paths:
        try:
            info = sf.info(str(p))
        except Exception:  # a bad file is reported by the run itself
            continue
        if info.frames <= 0 or info.samplerate <= 0:
            return None
        total += info.frames / info.samplerate
    return total or None


def _engine(model, paths, verb, keep_framewise=False):
    from panns_keras.inference import InferenceEngine
    from panns_keras.progress import Progress

    engine = InferenceEngine(model, window_seconds=_WINDOW.value, batch_size=_BATCH.value,
                             keep_framewise=keep_framewise, hop_seconds=_HOP.value)  # fmt: skip
    engine.progress = Progress(_audio_seconds(paths), verb, unit="audio s")
    return engine


def _tag(paths, model, labels) -> int:
    from panns_keras.inference import tag_files

    engine = _engine(model, paths, "tag")
    results = tag_files(model, paths, engine=engine)
    engine.progress.close()
    ok = [r for r in results if r.ok]
    k = _TOP_K.value
    if _FORMAT.value == "json":
        doc = [{"file": r.path, "duration": round(r.duration, 3), "windows": len(r.window_starts),
                "labels": [{"label": n, "score": round(s, 6)} for n, s in r.top(k, labels)]}
               for r in ok]  # fmt: skip
        print(json.dumps(doc, indent=2))
    elif _FORMAT.value == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["file", "rank", "label", "score"])
        for r in ok:
            for rank, (n, s) in enumerate(r.top(k, labels), start=1):
                w.writerow([r.path, rank, n, f"{s:.6f}"])
        sys.stdout.write(buf.getvalue())
    else:
        for r in ok:
            print(f"{r.path}  ({r.duration:.2f} s)")
            for n, s in r.top(k, labels):
                print(f"  {s:6.3f}  {n}")
    return _report_errors(results, "tag")


def _sed(paths, model, labels) -> int:
    from panns_keras.inference import detect_events, write_events_tsv, write_sed_scores

    if not _OUT_TSV.value and not _PLOT.value and not _SCORES_DIR.value:
        raise UsageError("--out_tsv: required (EVENTS.tsv), or --scores_dir DIR / --plot PLOT.png")
    if _PLOT.value and len(paths) != 1:
        raise UsageError(f"--plot: takes exactly one input file ({len(paths)} given)")
    engine = _engine(model, paths, "sed", keep_framewise=True)
    found = detect_events(model, paths, labels=labels, threshold=_THRESHOLD.value,
                          min_duration=_MIN_DURATION.value, min_gap=_MIN_GAP.value,
                          median_filter=_MEDIAN.value, engine=engine)  # fmt: skip
    engine.progress.close()
    events = [e for _, evs in found for e in evs]
    if _OUT_TSV.value:
        write_events_tsv(_OUT_TSV.value, events)
        print(f"{len(events)} events -> {_OUT_TSV.value}")
    results = [r for r, _ in found]
    if _SCORES_DIR.value:
        ids = {}
        for r in results:
            if r.ok:
                stem = Path(r.path).stem
                ids[stem] = ids.get(stem, 0) + 1
                name = stem if ids[stem] == 1 else f"{stem}_{ids[stem] - 1}"
                write_sed_scores(Path(_SCORES_DIR.value) / f"{name}.tsv", r.frame_scores,
                                 r.frame_scores_hop, labels, r.duration)  # fmt: skip
        print(f"{sum(ids.values())} score files -> {_SCORES_DIR.value}")
    if _PLOT.value and results[0].ok:
        plot_sed(_PLOT.value, model, results[0], labels, _PLOT_CLASSES.value)
        print(f"plot -> {_PLOT.value}")
    return _report_errors(results, "sed")


def plot_sed(path, runner, result, labels, n_classes=5) -> None:
    """PNG: waveform, log-mel (Keras log-mel models), and the top classes' scores over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from panns_keras.audio import load_audio

    sr = runner.sample_rate
    x = load_audio(result.path, sr)
    t = np.arange(len(x)) / sr
    model = runner.model  # the Keras model, or None for SavedModel / TFLite
    has_mel = model is not None and model.spec.frontend is not None
    fig, axes = plt.subplots(3 if has_mel else 2, 1, figsize=(12, 8), sharex=True)
    step = max(1, len(x) // 20000)
    axes[0].plot(t[::step], x[::step], lw=0.5)
    axes[0].set_ylabel("waveform")
    axes[0].set_title(os.path.basename(result.path))
    if has_mel:
        chunk = sr * 60
        mel = np.concatenate([np.asarray(model.logmel(x[None, i : i + chunk]))[0][:-1]
                              for i in range(0, len(x), chunk)])  # fmt: skip
        hop = model.spec.frontend.hop_size / sr
        axes[1].imshow(mel.T, origin="lower", aspect="auto", cmap="magma",
                       extent=[0, len(mel) * hop, 0, mel.shape[1]])  # fmt: skip
        axes[1].set_ylabel("log-mel bin")
    ax = axes[-1]
    scores, hop = result.frame_scores, result.frame_scores_hop
    top = np.argsort(-scores.max(axis=0), kind="stable")[:n_classes]
    times = np.arange(len(scores) + 1) * hop
    for k in top:
        ax.step(times, np.append(scores[:, k], scores[-1, k]), where="post", label=labels[k])
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("score")
    ax.set_xlabel("time (s)")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


def _embed(paths, model) -> int:
    import numpy as np

    from panns_keras.inference import embed_files

    if not _OUT.value and not _OUT_NPZ.value:
        raise UsageError("--out: required (a folder for <stem>.npy), or --out_npz FILE.npz")
    engine = _engine(model, paths, "embed")
    results = embed_files(model, paths, engine=engine)
    engine.progress.close()
    ok = [r for r in results if r.ok]
    if _OUT.value:
        out = Path(_OUT.value)
        out.mkdir(parents=True, exist_ok=True)
        stems = {}
        for r in ok:
            stem = Path(r.path).stem
            stems[stem] = stems.get(stem, 0) + 1
            name = stem if stems[stem] == 1 else f"{stem}_{stems[stem] - 1}"
            _save_npy(out / f"{name}.npy", r.embedding)
            _save_npy(out / f"{name}.windows.npy", r.window_embeddings)
            print(f"{r.path} -> {out / (name + '.npy')} {tuple(r.embedding.shape)}")
    if _OUT_NPZ.value and ok:
        path = Path(_OUT_NPZ.value)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, ids=np.asarray([r.path for r in ok]),
                     embeddings=np.stack([r.embedding for r in ok]),
                     durations=np.asarray([r.duration for r in ok], np.float64))  # fmt: skip
        print(f"{len(ok)} embeddings {tuple(ok[0].embedding.shape)} -> {path}")
    return _report_errors(results, "embed")


def _save_npy(path, array) -> None:
    import numpy as np

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array)


def main(argv, verb="tag"):
    paths = argv[1:]
    if not paths:
        raise UsageError(f"FILE: give at least one audio file (panns-keras {verb} FILE... "
                        "--model MODEL)")  # fmt: skip
    model, labels = _load_model()
    if verb == "sed":
        return _sed(paths, model, labels)
    if verb == "embed":
        return _embed(paths, model)
    return _tag(paths, model, labels)
