"""panns-keras tag|sed|embed FILE... --model MODEL

  tag    top-k labels per file            [--top_k 5] [--format table|json|csv]
  sed    sound event detection             --out_tsv EVENTS.tsv [--plot PLOT.png]
         [--threshold 0.5] [--min_duration 0] [--min_gap 0] [--median_filter 0.5]
         [--scores_dir DIR]  (frame scores, one sed_scores_eval TSV per file)
  embed  clip embeddings                   --out DIR (<stem>.npy) and/or --out_npz FILE.npz

MODEL is a model directory, a .keras file, a SavedModel directory or a .tflite file written
by `panns-keras export` (a .tflite fixes the window to its input length).

Long files are processed in --window_seconds windows (default: the length of the clips the
model was trained on, which the model records; 10 s when it does not) starting every
--hop_seconds (default: the window; for sed with a clip-level model a quarter of the window,
so its scores have the hop's resolution); memory stays bounded. Input shorter than the
model's clip length is zero-padded to it, as in training. Scores are the max over windows,
embeddings the mean. A file that cannot be used (missing, a directory, unreadable, empty,
NaN samples) gives a one-line error (missing, empty files and directories before the model
loads); the other files are still processed and the exit code is 1. Progress (seconds of
audio done) goes to stderr.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from pathlib import Path

from absl import flags

from panns_keras.errors import UsageError, UserError
from panns_keras.fileio import atomic_path

_MODEL = flags.DEFINE_string(
    "model",
    None,
    "Model directory, .keras file, SavedModel directory, .tflite file or "
    "preset name (cnn14, ...: panns-keras models). Required.",
)
_TOP_K = flags.DEFINE_integer("top_k", 5, "tag: labels per file.", lower_bound=1)
_FORMAT = flags.DEFINE_enum("format", "table", ["table", "json", "csv"], "tag: output format.")
_WINDOW = flags.DEFINE_float(
    "window_seconds",
    None,
    "Analysis window (s); 0 = whole file; default: the model's clip "
    "length (10 s when the model does not record one).",
    lower_bound=0.0,
)
_HOP = flags.DEFINE_float(
    "hop_seconds",
    None,
    "Start of one window to the next (s); default: the window length "
    "(sed with a clip-level model: a quarter of the window).",
)
_BATCH = flags.DEFINE_integer("batch_size", 8, "Windows per batch.", lower_bound=1)
_THRESHOLD = flags.DEFINE_float(
    "threshold", 0.5, "sed: frame score threshold.", lower_bound=0.0, upper_bound=1.0
)
_MIN_DURATION = flags.DEFINE_float(
    "min_duration", 0.0, "sed: drop shorter events (s).", lower_bound=0.0
)
_MIN_GAP = flags.DEFINE_float(
    "min_gap", 0.0, "sed: merge same-label events closer than this.", lower_bound=0.0
)
_MEDIAN = flags.DEFINE_string(
    "median_filter",
    None,
    "sed: median filter over time per class before thresholding: "
    "seconds ('0.5'), frames ('7f'), or per class 'Speech=1.0;Dog=0.3' with an optional bare "
    "default ('0.2;Speech=1.0'); lengths are made odd.",
)
_SCORES_DIR = flags.DEFINE_string(
    "scores_dir",
    None,
    "sed: write frame scores, one <stem>.tsv per file in the "
    "sed_scores_eval layout (onset, offset, one column per class).",
)
_OUT_TSV = flags.DEFINE_string(
    "out_tsv", None, "sed: events, tab-separated (DCASE columns + score)."
)
_PLOT = flags.DEFINE_string("plot", None, "sed: PNG with waveform, log-mel, top classes.")
_PLOT_CLASSES = flags.DEFINE_integer("plot_classes", 5, "sed: classes in the plot.", lower_bound=1)
_OUT = flags.DEFINE_string("out", None, "embed: output directory for <stem>.npy files.")
_WINDOW_EMB = flags.DEFINE_bool(
    "window_embeddings",
    False,
    "embed: with --out, also write <stem>.windows.npy: one "
    "embedding per window (W, E), in window order.",
)
_OUT_NPZ = flags.DEFINE_string(
    "out_npz",
    None,
    "embed: one .npz with 'ids' (inputs as given), 'embeddings' (N, E), 'durations' (s).",
)


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
    "--out_npz FILE.npz [--window_embeddings]\n\nClip embeddings (the mean over the "
    "windows; --window_embeddings: also <stem>.windows.npy, one per window).",
}


def help_for(verb: str) -> str:
    """``panns-keras VERB --help`` for tag, sed and embed: this verb's flags only."""
    import textwrap

    common = __doc__.split("\n\n", 2)[2]  # after the usage lines: MODEL, windows, errors
    others = tuple(f"{v}:" for v in SYNOPSIS if v != verb)
    lines = []
    for flag in sorted(
        flags.FLAGS.get_flags_for_module(sys.modules[__name__]), key=lambda f: f.name
    ):
        enum, _, help_ = (
            flag.help.rpartition(">: ") if flag.help.startswith("<") else ("", "", flag.help)
        )
        if help_.startswith(others):
            continue
        help_ = (f"{enum}>: " if enum else "") + help_.removeprefix(f"{verb}: ")
        bounded = any(
            getattr(flag.parser, b, None) is not None for b in ("lower_bound", "upper_bound")
        )
        extra = f" ({flag.parser.syntactic_help})" if bounded else ""
        lines.append(
            f"  --{flag.name}: " + textwrap.fill(help_ + extra, 88, subsequent_indent="    ")
        )
        lines.append(f"    (default: {flag.default_as_str})")
    return f"{SYNOPSIS[verb]}\n\n{common.strip()}\n\nflags:\n" + "\n".join(lines)


def _load_model():
    if not _MODEL.value:
        raise UsageError(
            "--model: required (a model directory, .keras, SavedModel, .tflite "
            "or a preset name such as cnn14: panns-keras models)"
        )
    from panns_keras.cli.quiet import native_quiet
    from panns_keras.runtime import load_runner

    with native_quiet():  # the TFLite runtime's "Created ... XNNPACK delegate" line
        runner = load_runner(_MODEL.value)
    return runner, list(runner.labels)


def _check_usage(verb, paths) -> None:
    """The usage mistakes (exit 2), found before any input is read or the model loads."""
    if not _MODEL.value:
        raise UsageError(
            "--model: required (a model directory, .keras, SavedModel, .tflite "
            "or a preset name such as cnn14: panns-keras models)"
        )
    if verb == "sed":
        if not _OUT_TSV.value and not _PLOT.value and not _SCORES_DIR.value:
            raise UsageError(
                "--out_tsv: required (EVENTS.tsv), or --scores_dir DIR / --plot PLOT.png"
            )
        if _PLOT.value and len(paths) != 1:
            raise UsageError(f"--plot: takes exactly one input file ({len(paths)} given)")
    if verb == "embed" and not _OUT.value and not _OUT_NPZ.value:
        raise UsageError("--out: required (a folder for <stem>.npy), or --out_npz FILE.npz")
    if _WINDOW_EMB.value and not _OUT.value:
        raise UsageError("--window_embeddings: needs --out (a folder for <stem>.windows.npy)")
    from panns_keras.presets.table import find

    if not os.path.exists(_MODEL.value) and find(_MODEL.value) is None:  # before the inputs
        raise UserError(
            f"{_MODEL.value}: model not found (no such path, and not a preset "
            "name: see panns-keras models)"
        )


def _check_inputs(paths, verb) -> tuple[list[str], int]:
    """``(usable paths, number failed)``: missing, empty files and directories reported
    now, in one line each, before the model loads."""
    from panns_keras.audio import AudioError, check_audio_path

    ok, failed = [], 0
    for p in paths:
        try:
            ok.append(check_audio_path(p))
        except AudioError as e:
            print(f"panns-keras {verb}: error: {e}", file=sys.stderr)
            failed += 1
    return ok, failed


def _report_window(engine, verb) -> None:
    """One stderr line when the window differs from the model's training clip length."""
    r = engine.runner
    clip = r.clip_seconds
    window = engine.window / engine.sample_rate if engine.window else None
    if clip is None or window is None or abs(window - clip) < 1e-6:
        return
    if r.input_samples:
        print(
            f"panns-keras {verb}: warning: this .tflite has a {window:g} s window, but the "
            f"model was trained on {clip:g} s clips (export it with --window_seconds "
            f"{clip:g} to score as in training)",
            file=sys.stderr,
        )
    else:
        print(
            f"panns-keras {verb}: note: --window_seconds {window:g} (the model was trained "
            f"on {clip:g} s clips, its default window)",
            file=sys.stderr,
        )


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

    engine = InferenceEngine(
        model,
        window_seconds=_WINDOW.value,
        batch_size=_BATCH.value,
        keep_framewise=keep_framewise,
        hop_seconds=_HOP.value,
    )
    if verb == "sed" and _HOP.value is None:
        engine.use_sed_hop()
    _report_window(engine, verb)
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
        doc = [
            {
                "file": r.path,
                "duration": round(r.duration, 3),
                "windows": len(r.window_starts),
                "labels": [{"label": n, "score": round(s, 6)} for n, s in r.top(k, labels)],
            }
            for r in ok
        ]
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

    engine = _engine(model, paths, "sed", keep_framewise=True)
    found = detect_events(
        model,
        paths,
        labels=labels,
        threshold=_THRESHOLD.value,
        min_duration=_MIN_DURATION.value,
        min_gap=_MIN_GAP.value,
        median_filter=_MEDIAN.value,
        engine=engine,
    )
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
                write_sed_scores(
                    Path(_SCORES_DIR.value) / f"{name}.tsv",
                    r.frame_scores,
                    r.frame_scores_hop,
                    labels,
                    r.duration,
                )
        print(f"{sum(ids.values())} score files -> {_SCORES_DIR.value}")
    if _PLOT.value and results[0].ok:
        plot_sed(_PLOT.value, model, results[0], labels, _PLOT_CLASSES.value, _THRESHOLD.value)
        print(f"plot -> {_PLOT.value}")
    return _report_errors(results, "sed")


PLOT_MAX_CLASSES = 10  # classes drawn in the sed plot: the top ones, then detected ones


def plot_sed(path, runner, result, labels, n_classes=5, threshold=None) -> None:
    """PNG of :func:`sed_figure`, written atomically."""
    fig = sed_figure(runner, result, labels, n_classes, threshold)  # selects Agg
    import matplotlib.pyplot as plt

    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


def sed_figure(runner, result, labels, n_classes=5, threshold=None):
    """Waveform, log-mel (Keras log-mel models), and the top classes' scores over time with
    the threshold (dashed) and each detected event (a bar under the scores, in its class's
    colour; every detected class is drawn). The time axis ends where the audio ends. The
    caller closes the figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from panns_keras.audio import load_audio

    sr = runner.sample_rate
    x = load_audio(result.path, sr)
    t = np.arange(len(x)) / sr
    end = len(x) / sr
    model = runner.model  # the Keras model, or None for SavedModel / TFLite
    has_mel = model is not None and model.spec.frontend is not None
    fig, axes = plt.subplots(3 if has_mel else 2, 1, figsize=(12, 8), sharex=True)
    step = max(1, len(x) // 20000)
    axes[0].plot(t[::step], x[::step], lw=0.5)
    axes[0].set_ylabel("waveform")
    axes[0].set_title(os.path.basename(result.path))
    if has_mel:
        chunk = sr * 60
        mel = np.concatenate(
            [
                np.asarray(model.logmel(x[None, i : i + chunk]))[0][:-1]
                for i in range(0, len(x), chunk)
            ]
        )
        hop = model.spec.frontend.hop_size / sr
        axes[1].imshow(
            mel.T,
            origin="lower",
            aspect="auto",
            cmap="magma",
            extent=[0, len(mel) * hop, 0, mel.shape[1]],
        )
        axes[1].set_ylabel("log-mel bin")
    ax = axes[-1]
    scores, hop = result.frame_scores, result.frame_scores_hop
    top = list(np.argsort(-scores.max(axis=0), kind="stable")[:n_classes])
    events = result.events or []
    for k in dict.fromkeys(labels.index(e["event_label"]) for e in events):
        if k not in top and len(top) < max(n_classes, PLOT_MAX_CLASSES):
            top.append(k)  # the detected classes are drawn (up to PLOT_MAX_CLASSES)
    shown = {labels[k] for k in top}
    drawn = [e for e in events if e["event_label"] in shown]
    times = np.minimum(np.arange(len(scores) + 1) * hop, end)  # the scores stop with the audio
    colours = {}
    for k in top:
        (line,) = ax.step(
            times, np.append(scores[:, k], scores[-1, k]), where="post", label=labels[k]
        )
        colours[labels[k]] = line.get_color()
    if threshold is not None:
        ax.axhline(threshold, color="0.3", ls="--", lw=1, label=f"threshold {threshold:g}")
    rows = {name: i for i, name in enumerate(dict.fromkeys(e["event_label"] for e in drawn))}
    for e in drawn:  # one bar per event, each class on its own row under the scores
        y = -0.06 - 0.06 * rows[e["event_label"]]
        ax.plot(
            [e["onset"], min(e["offset"], end)],
            [y, y],
            lw=4,
            solid_capstyle="butt",
            color=colours.get(e["event_label"], "k"),
        )
    ax.set_ylim(-0.06 - 0.06 * max(len(rows), 1), 1.02)
    ax.set_xlim(0, end)
    ax.set_ylabel("score" + (f" ({len(events)} events: bars)" if events else " (no events)"))
    ax.set_xlabel("time (s)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    fig.tight_layout()
    return fig


def _embed(paths, model) -> int:
    import numpy as np

    from panns_keras.inference import embed_files

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
            if _WINDOW_EMB.value:
                _save_npy(out / f"{name}.windows.npy", r.window_embeddings)
            print(f"{r.path} -> {out / (name + '.npy')} {tuple(r.embedding.shape)}")
    if _OUT_NPZ.value and ok:
        path = Path(_OUT_NPZ.value)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(
                f,
                ids=np.asarray([r.path for r in ok]),
                embeddings=np.stack([r.embedding for r in ok]),
                durations=np.asarray([r.duration for r in ok], np.float64),
            )
        print(f"{len(ok)} embeddings {tuple(ok[0].embedding.shape)} -> {path}")
    return _report_errors(results, "embed")


def _save_npy(path, array) -> None:
    import numpy as np

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array)


def main(argv, verb="tag"):
    paths = argv[1:]
    if not paths:
        raise UsageError(
            f"FILE: give at least one audio file (panns-keras {verb} FILE... --model MODEL)"
        )
    _check_usage(verb, paths)
    paths, failed = _check_inputs(paths, verb)
    if not paths:
        return 1
    model, labels = _load_model()
    if verb == "sed":
        rc = _sed(paths, model, labels)
    elif verb == "embed":
        rc = _embed(paths, model)
    else:
        rc = _tag(paths, model, labels)
    return 1 if failed else rc
