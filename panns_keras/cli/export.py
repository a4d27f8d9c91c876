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

Every artifact is re-loaded and compared with the Keras model right after export; a
mismatch beyond the format's tolerance fails the export. OUT/export_info.json lists the
files, their input length, output order, size, ops and measured differences.
"""

from __future__ import annotations

import json
from pathlib import Path

from absl import flags

from panns_keras.errors import UsageError
from panns_keras.fileio import atomic_write

FORMATS = ("savedmodel", "tflite_float32", "tflite_float16", "tflite_dynamic_int8",
           "tflite_int8", "mediapipe", "mediapipe_float16", "mediapipe_dynamic_int8",
           "mediapipe_int8", "onnx")  # fmt: skip
_HELP = (
    "Comma-separated, any of: savedmodel (dynamic length); tflite_float32, tflite_float16 "
    "(float16 weights, ~0.6x the float32 size), tflite_dynamic_int8, tflite_int8 (needs "
    "--representative) at --window_seconds; mediapipe (float32 window model with "
    "AudioClassifier metadata), mediapipe_float16, mediapipe_dynamic_int8, mediapipe_int8 "
    "(needs --representative); onnx (dynamic length; pip install 'panns-keras[onnx]')."
)

_MODEL = flags.DEFINE_string("model", None, "Model directory, .keras file or preset name "
                             "(cnn14, ...: panns-keras models).")  # fmt: skip
_OUT = flags.DEFINE_string("out", None, "Output directory.")
_FORMATS = flags.DEFINE_list("formats", "savedmodel,tflite_float32", _HELP)
_REPRESENTATIVE = flags.DEFINE_string(
    "representative", None, "Calibration data for tflite_int8 (audio folder or TFRecords); "
    "also used as the verification input of every format.")  # fmt: skip
_CHECK = flags.DEFINE_string(
    "check", None, "Labelled audio (class folder, path,labels CSV, or a folder written by "
    "prepare): after export, score the Keras model and every file on it and print size, "
    "latency, accuracy, mAP and agreement per variant (also OUT/check.json).")
_MIN_RELATIVE = flags.DEFINE_float(
    "min_relative", 0.99, "--check: exit 1 when a variant keeps less than this share of the "
    "Keras model's accuracy or mAP (the files stay written).", lower_bound=0.0)
_REP_WINDOWS = flags.DEFINE_integer(
    "representative_windows", 100, "Calibration windows drawn from --representative (across "
    "classes for labelled audio); fewer in the data is an error.", lower_bound=1)
_WINDOW = flags.DEFINE_float("window_seconds", 10.0, "TFLite input length in seconds.",
                             lower_bound=0.01)  # fmt: skip
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
        raise UsageError(f"--formats: unknown format(s) {', '.join(unknown)}; choose from "
                        f"{', '.join(FORMATS)}")  # fmt: skip
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
    from panns_keras.models.saving import load_model
    from panns_keras.progress import Progress

    model = load_model(_MODEL.value)
    out = Path(_OUT.value)
    out.mkdir(parents=True, exist_ok=True)
    rep = None
    if _REPRESENTATIVE.value:
        length = window_length(model, _WINDOW.value)
        rep = calibration_windows(_REPRESENTATIVE.value, model, length, _REP_WINDOWS.value)
    info = {"model": model.spec.name, "sample_rate": model.spec.sample_rate, "artifacts": {}}
    progress = Progress(len(formats), "export", unit="formats")
    for fmt in formats:
        with native_quiet():  # the TFLite runtime's INFO line when an artifact is checked
            entry = _export_one(fmt, model, out, rep)
        info["artifacts"][fmt] = entry
        size = entry.get("bytes")
        print(f"{fmt}: {entry['path']}" + (f" ({size / 1e6:.1f} MB)" if size else ""))
        progress.update(1, postfix=f"{fmt} done", force=True)
    progress.close()
    atomic_write(out / "export_info.json", json.dumps(info, indent=2) + "\n")
    if _CHECK.value:
        _check(model, info["artifacts"], out, _WINDOW.value)
    return 0


def _check(model, artifacts, out, window) -> None:
    """--check: the table (stdout, OUT/check.json); one line and exit 1 below --min_relative."""
    from panns_keras.cli.quiet import native_quiet
    from panns_keras.errors import UserError
    from panns_keras.export.check import check_exports, failure_line, format_table
    from panns_keras.export.tflite import window_length

    with native_quiet():
        report = check_exports(model, artifacts, _CHECK.value, window_length(model, window),
                               out, _MIN_RELATIVE.value)
    print(format_table(report))
    print(f"wrote {out / 'check.json'}")
    line = failure_line(report)
    if line:
        raise UserError(line)


def _export_one(fmt, model, out, rep) -> dict:
    """One artifact, exported and re-checked; its export_info.json entry."""
    from panns_keras.export import export_mediapipe, export_onnx, export_savedmodel, export_tflite
    from panns_keras.export.representative import representative_windows
    from panns_keras.export.tflite import window_length

    if fmt == "savedmodel":
        path = export_savedmodel(model, out / "savedmodel", verify_inputs=rep)
        return {"path": str(path), "input": "waveform [batch, samples] float32"}
    if fmt.startswith("mediapipe"):
        window = _MP_WINDOW.value or _WINDOW.value
        variant = fmt.removeprefix("mediapipe").removeprefix("_") or "float32"
        mp_rep = rep
        if rep is not None and window != _WINDOW.value:
            mp_rep = representative_windows(_REPRESENTATIVE.value, model.spec.sample_rate,
                                            window_length(model, window))  # fmt: skip
        return export_mediapipe(model, out / f"{model.spec.name}_{fmt}.tflite",
                                window_seconds=window, variant=variant,
                                representative=mp_rep, verify_inputs=mp_rep)  # fmt: skip
    if fmt == "onnx":
        return export_onnx(model, out / f"{model.spec.name}.onnx", verify_inputs=rep)
    variant = fmt[len("tflite_") :]
    return export_tflite(model, out / f"{model.spec.name}_{variant}.tflite", variant,
                         window_seconds=_WINDOW.value, representative=rep)  # fmt: skip
