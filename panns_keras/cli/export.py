"""panns-keras export --model DIR|FILE.keras --out OUT --formats savedmodel,tflite_float32,...

Formats: savedmodel, tflite_float32, tflite_float16 (float16 weights, front end float32),
tflite_dynamic_int8, tflite_int8 (needs --representative: a folder of audio, a .tfrecord
file or a glob of shards), mediapipe (float32 window model with AudioClassifier metadata),
mediapipe_float16, mediapipe_dynamic_int8, mediapipe_int8 (the same with quantized weights),
onnx (dynamic batch and length; needs the onnx extra: pip install 'panns-keras[onnx]').

Every .tflite carries its labels and sample rate (metadata) and lists its outputs
clipwise_output first (then embedding, or framewise_output for decision-level models), in
get_output_details() and in the serving_default signature alike. The SavedModel is callable
(loaded(waveform) -> outputs + logits + logmel) and holds its labels.

The TFLite and MediaPipe window defaults to the length of the clips the model was trained
on (recorded in the model; 10 s when it is not): the window a file is exported at is the
window it scores, so a model trained on 1 s clips exported at 10 s gives other answers.

Every artifact is re-loaded and compared with the Keras model right after export; a
mismatch beyond the format's tolerance fails the export (float formats: the larger of a
fixed bound and 50 times the model's own float32 noise on the same input, so a correct
export passes on any CPU). Then each artifact is run as `tag` runs it (its own window,
short clips zero-padded) on clips of the model's training length (the --representative
audio when given, else synthetic signals) and compared with the Keras model run as in
training: export_info.json's "agreement" (top-1 agreement, max |score diff|), with the
files, their input length, output order, size, ops and the check's figures.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from absl import flags

from panns_keras.errors import UsageError
from panns_keras.fileio import atomic_write

FORMATS = (
    "savedmodel",
    "tflite_float32",
    "tflite_float16",
    "tflite_dynamic_int8",
    "tflite_int8",
    "mediapipe",
    "mediapipe_float16",
    "mediapipe_dynamic_int8",
    "mediapipe_int8",
    "onnx",
)
_HELP = (
    "Comma-separated, any of: savedmodel (dynamic length); tflite_float32, tflite_float16 "
    "(float16 weights, ~0.6x the float32 size), tflite_dynamic_int8, tflite_int8 (needs "
    "--representative) at --window_seconds; mediapipe (float32 window model with "
    "AudioClassifier metadata), mediapipe_float16, mediapipe_dynamic_int8, mediapipe_int8 "
    "(needs --representative); onnx (dynamic length; pip install 'panns-keras[onnx]')."
)

_MODEL = flags.DEFINE_string(
    "model", None, "Model directory, .keras file or preset name (cnn14, ...: panns-keras models)."
)
_OUT = flags.DEFINE_string("out", None, "Output directory.")
_FORMATS = flags.DEFINE_list("formats", "savedmodel,tflite_float32", _HELP)
_REPRESENTATIVE = flags.DEFINE_string(
    "representative",
    None,
    "Calibration data for tflite_int8 (audio folder or TFRecords); "
    "also used as the verification input of every format.",
)
_CHECK = flags.DEFINE_string(
    "check",
    None,
    "Labelled audio (class folder, path,labels CSV, or a folder written by "
    "prepare): after export, score the Keras model and every file on it and print size, "
    "latency, accuracy, mAP and agreement per variant (also OUT/check.json).",
)
_MIN_RELATIVE = flags.DEFINE_float(
    "min_relative",
    0.99,
    "--check: exit 1 when a variant keeps less than this share of the "
    "Keras model's accuracy or mAP (the files stay written).",
    lower_bound=0.0,
)
_REP_WINDOWS = flags.DEFINE_integer(
    "representative_windows",
    100,
    "Calibration windows drawn from --representative (across "
    "classes for labelled audio); fewer in the data is an error.",
    lower_bound=1,
)
_WINDOW = flags.DEFINE_float(
    "window_seconds",
    None,
    "TFLite input length in seconds (default: the length of the clips "
    "the model was trained on; 10 s when the model does not record it).",
    lower_bound=0.01,
)
_MP_WINDOW = flags.DEFINE_float(
    "mediapipe_window_seconds",
    None,
    "MediaPipe window (default: --window_seconds).",
    lower_bound=0.01,
)


def main(argv, verb="export"):
    if len(argv) > 1:
        raise UsageError(f"{argv[1]}: unexpected argument (use --model and --out)")
    for name, holder in (("model", _MODEL), ("out", _OUT)):
        if not holder.value:
            raise UsageError(f"--{name}: required")
    formats = [f.strip() for f in _FORMATS.value if f.strip()]
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise UsageError(
            f"--formats: unknown format(s) {', '.join(unknown)}; choose from {', '.join(FORMATS)}"
        )
    for fmt in ("tflite_int8", "mediapipe_int8"):
        if fmt in formats and not _REPRESENTATIVE.value:
            raise UsageError(f"--representative: required by {fmt} (audio folder or TFRecords)")
    if "onnx" in formats:
        from panns_keras.export.onnx_export import require_onnx

        require_onnx()  # before the model loads: a missing package is a one-line error
    from panns_keras.models.saving import check_model_path

    check_model_path(_MODEL.value)  # a missing or foreign --model: one line, before Keras loads

    from panns_keras.cli.quiet import native_quiet
    from panns_keras.export.representative import calibration_windows
    from panns_keras.export.tflite import window_length
    from panns_keras.models.build import load_model
    from panns_keras.progress import Progress

    model = load_model(_MODEL.value)
    out = Path(_OUT.value)
    out.mkdir(parents=True, exist_ok=True)
    window = _window_seconds(model)
    rep = None
    if _REPRESENTATIVE.value:
        length = window_length(model, window)
        rep = calibration_windows(_REPRESENTATIVE.value, model, length, _REP_WINDOWS.value)
    clips, clips_from = _agreement_clips(model)
    info = {
        "model": model.spec.name,
        "sample_rate": model.spec.sample_rate,
        "clip_seconds": model.spec.clip_seconds,
        "window_seconds": window,
        "agreement_inputs": clips_from,
        "artifacts": {},
    }
    progress = Progress(len(formats), "export", unit="formats")
    for fmt in formats:
        with native_quiet():  # the converter's and the TFLite runtime's native lines
            entry = _export_one(fmt, model, out, rep, window)
            entry["agreement"] = agreement(model, entry["path"], clips)
        info["artifacts"][fmt] = entry
        _warn_disagreement(fmt, entry["agreement"], model)
        size = entry.get("bytes")
        print(f"{fmt}: {entry['path']}" + (f" ({size / 1e6:.1f} MB)" if size else ""))
        progress.update(1, postfix=f"{fmt} done", force=True)
    progress.close()
    atomic_write(out / "export_info.json", json.dumps(info, indent=2) + "\n")
    if _CHECK.value:
        _check(model, info["artifacts"], out, window)
    return 0


def _check(model, artifacts, out, window) -> None:
    """--check: the table (stdout, OUT/check.json); one line and exit 1 below --min_relative."""
    from panns_keras.cli.quiet import native_quiet
    from panns_keras.errors import UserError
    from panns_keras.export.check import check_exports, failure_line, format_table
    from panns_keras.export.tflite import window_length

    with native_quiet():
        report = check_exports(
            model, artifacts, _CHECK.value, window_length(model, window), out, _MIN_RELATIVE.value
        )
    print(format_table(report))
    print(f"wrote {out / 'check.json'}")
    line = failure_line(report)
    if line:
        raise UserError(line)


def _window_seconds(model) -> float:
    """--window_seconds, or the model's training clip length (10 s when unknown); an explicit
    window other than the clip length is reported."""
    from panns_keras.export.tflite import DEFAULT_WINDOW_SECONDS

    clip = model.spec.clip_seconds
    if _WINDOW.value is None:
        return float(clip or DEFAULT_WINDOW_SECONDS)
    if clip and abs(_WINDOW.value - clip) > 1e-6:
        print(
            f"panns-keras export: note: --window_seconds {_WINDOW.value:g}; the model was "
            f"trained on {clip:g} s clips (the default window), so the window files score "
            "differently from the model run as trained",
            file=sys.stderr,
        )
    return float(_WINDOW.value)


AGREEMENT_CLIPS = 8  # clips of the model's training length scored by every artifact


def _agreement_clips(model):
    """``(clips [n, clip samples], where they came from)`` for the agreement figures."""
    from panns_keras.export.common import synthetic_windows
    from panns_keras.export.representative import representative_windows
    from panns_keras.export.tflite import window_length

    length = window_length(model, None)
    if _REPRESENTATIVE.value:
        clips = representative_windows(_REPRESENTATIVE.value, model.spec.sample_rate, length)
        return clips[
            :AGREEMENT_CLIPS
        ], f"{len(clips[:AGREEMENT_CLIPS])} clips of {_REPRESENTATIVE.value}"
    return synthetic_windows(model.spec.sample_rate, length), "synthetic signals"


def agreement(model, path, clips) -> dict:
    """The artifact at ``path`` run as ``tag`` runs it (its own window; short clips padded)
    against the Keras model run as in training (its clip length), on ``clips``."""
    from panns_keras.export.common import compare_scores
    from panns_keras.inference import InferenceEngine
    from panns_keras.inference.engine import Source

    def scores(m):
        engine = InferenceEngine(m, jit_compile=False)
        got = engine.run([Source(name=f"<clip {i}>", array=c) for i, c in enumerate(clips)])
        return np.stack([r.clipwise for r in got])

    ref = scores(model)
    if str(path).endswith(".onnx"):
        from panns_keras.runtime.onnx import OnnxRunner, read_onnx_artifact
        from panns_keras.runtime.runner import from_artifact

        runner = OnnxRunner(path)
        path = from_artifact(runner, "onnx", read_onnx_artifact(runner, str(path)))
    got = scores(path)
    stats = compare_scores(ref, got)
    clip = model.spec.clip_seconds
    stats["clip_seconds"] = clip
    stats["clips"] = len(clips)
    return stats


def _warn_disagreement(fmt, stats, model) -> None:
    if stats["top1_agreement"] < 1.0:
        print(
            f"panns-keras export: warning: {fmt}: top class agrees with the Keras model on "
            f"{stats['top1_agreement']:.0%} of clips of the model's training length "
            f"(max |score diff| {stats['max_abs']:.3g}); see export_info.json",
            file=sys.stderr,
        )


def _export_one(fmt, model, out, rep, window) -> dict:
    """One artifact, exported and re-checked; its export_info.json entry."""
    from panns_keras.export import export_mediapipe, export_onnx, export_savedmodel, export_tflite
    from panns_keras.export.representative import representative_windows
    from panns_keras.export.tflite import window_length

    if fmt == "savedmodel":
        path = export_savedmodel(model, out / "savedmodel", verify_inputs=rep)
        return {"path": str(path), "input": "waveform [batch, samples] float32"}
    if fmt.startswith("mediapipe"):
        mp_window = _MP_WINDOW.value or window
        variant = fmt.removeprefix("mediapipe").removeprefix("_") or "float32"
        mp_rep = rep
        if rep is not None and mp_window != window:
            mp_rep = representative_windows(
                _REPRESENTATIVE.value, model.spec.sample_rate, window_length(model, mp_window)
            )
        return export_mediapipe(
            model,
            out / f"{model.spec.name}_{fmt}.tflite",
            window_seconds=mp_window,
            variant=variant,
            representative=mp_rep,
            verify_inputs=mp_rep,
        )
    if fmt == "onnx":
        return export_onnx(model, out / f"{model.spec.name}.onnx", verify_inputs=rep)
    variant = fmt[len("tflite_") :]
    return export_tflite(
        model,
        out / f"{model.spec.name}_{variant}.tflite",
        variant,
        window_seconds=window,
        representative=rep,
    )
