"""TFLite export: fixed-length ``[1, samples]`` models with builtin ops only.

Variants:
  * ``float32``: the float graph.
  * ``float16``: float16 weights (dequantized at load), float32 compute. The front end's
    constants (DFT kernels, mel matrix, dB constants) and ``bn0`` stay float32: rounding the
    DFT kernels to float16 leaks ~-66 dB of each loud bin into the quiet ones (measured on
    Cnn6: max |score diff| 0.083 with the front end in float16 vs 0.0055 without). Built by
    :func:`float16_weights` from the float32 model, not by the converter's float16 mode,
    which has no denylist.
  * ``dynamic_int8``: int8 weights, dynamic-range (hybrid) kernels for conv / dense in the
    backbone. The converter has no denylist for this mode and also makes the front end's
    DFT and mel matmuls hybrid, which quantizes their *inputs* (waveform, power
    spectrum: ~200 dB) to int8 per call; :func:`float_frontend` turns those two weights
    back into float32 so they run as float ops (measured on a trained Cnn6: max |score
    diff| 0.99 / mean 0.28 / top-1 agreement 0.57 before, 0.025 / 0.002 / 1.00 after).
  * ``int8``: full-integer int8 backbone calibrated on representative windows. The log-mel
    front end (framing, DFT matmul, power, mel matmul, dB log) and ``bn0`` stay float32:
    their tensors span ~200 dB, and one int8 scale per tensor wipes out the quiet bins
    (measured on Cnn6: max |score diff| 0.72 with the front end quantized vs 0.05 without).

Conversion goes through a concrete function of the model and a ``tf.Module`` that tracks the
model's underlying ``tf.Variable`` objects: the converter saves them as a SavedModel's
variable files and freezes them itself (converting the Keras 3 model directly loses the
variables, whose Keras wrappers are not tracked, and gives a NaN model). Freezing the
variables into the graph first (:func:`frozen_function`) works too, but every copy of that
graph the converter makes carries all the weights: Cnn14's float32 export peaked at 10.1 GB
RSS that way vs 3.5 GB with the variables kept separate. The frozen path is kept as a
fallback for a graph whose variables the converter does not freeze.
Outputs: the converted function returns a dict, so the signature ``serving_default`` names
its outputs ``clipwise_output``, ``embedding`` (clip models) / ``framewise_output``
(decision-level models); :func:`name_outputs` then puts the subgraph outputs
(``get_output_details()``) in that same order, scores first, and :func:`add_metadata` names
their tensors the same (the converter alone listed Cnn6's embedding first, as
``StatefulPartitionedCall:1``).

Speed of the float variants: the front end frames the signal with reshapes and does the DFT
as one matmul (``models/layers.py``; XNNPACK ran the strided 1-channel CONV_2D it replaces 3x
slower than TensorFlow), and :func:`split_wide_convolutions` cuts each convolution with more
than 1024 input channels into 1024-channel groups (XNNPACK's float convolution slows down
5x past that). Cnn14, 10 s, 2 threads, same run: TFLite float32 183 ms, SavedModel 229 ms
(BUILD_NOTES.md, "Deployment").

Every file carries metadata (:func:`add_metadata`): MediaPipe's ``TFLITE_METADATA`` with
the sample rate (AudioProperties of the input) and ``labels.txt`` on the score output, plus
``panns_keras.json`` (model name, variant, input length, output order, frame hop) in the
appended zip; :func:`read_tflite_info` reads them back.

Size of the int8 variants: the front end runs in float32 but its DFT kernels are stored as
float16 (:func:`compact_frontend`; Cnn6 int8 9.2 -> 7.1 MB, 30% of float32; golden Cnn6 on
12 real 2 s windows: mean |score diff| 0.0093 -> 0.0096, dynamic int8 0.0118 -> 0.0118).

The MediaPipe variants (:func:`export_mediapipe`, float32 / float16 / dynamic_int8 / int8)
are window models ``[1, window_samples] -> clipwise_output [1, classes]`` (MediaPipe takes
every output as a classification head, so the embedding is left out).
The network pools over its whole input (max + mean over time for clip models), so the
window model scores each window on its own: MediaPipe cuts a stream into windows of this
length and reports one classification per window. PANNs were trained on 10 s clips; shorter
windows (e.g. 1 s) react faster but see less context, so their scores run lower for sparse
events than the 10 s clip scores.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import tensorflow as tf
from absl import logging

from panns_keras.artifact import CLIPWISE, ArtifactInfo
from panns_keras.audio import fit_length
from panns_keras.errors import UserError
from panns_keras.export import common
from panns_keras.export.tflite_metadata import add_audio_classifier_metadata
from panns_keras.export.tflite_rewrite import (
    compact_frontend,
    float16_weights,
    float_frontend,
    name_outputs,
    op_names,
    output_order,
    split_wide_convolutions,
)
from panns_keras.fileio import atomic_write
from panns_keras.models.conv import plain_convolutions
from panns_keras.runtime.tflite import INFO_FILE, INFO_FORMAT, TfliteRunner, read_tflite_info

VARIANTS = ("float32", "float16", "dynamic_int8", "int8")
# (max |score diff|, mean |score diff|) against the Keras model on the verification windows;
# None = not checked. Quantized variants are checked on the mean (the max is reported).
TOLERANCES = {
    "float32": (1e-4, None),
    # Front end kept float32. Cnn6 measured 0.004 / 1.8e-4; golden-rule Cnn14 0.016 / 3.0e-4:
    # its max is float16 weight rounding (float32 0.00004; keeping block 1, block 6 or the
    # head float32 moves it only within 0.014-0.017), so the max is a gross-error guard.
    "float16": (5e-2, 1e-3),
    "dynamic_int8": (None, 0.04),  # front end float; Cnn6 measured mean 0.012
    "int8": (None, 0.03),
}
# Float variants: wider convolutions become sums over input-channel groups


def frozen_function(model, length: int, keys):
    """Concrete function ``waveform[1, length] -> {k: outputs[k] for k in keys}``, frozen."""
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    keys = tuple(keys)

    fn = _window_function(model, length, keys)
    with plain_convolutions():
        return convert_variables_to_constants_v2(fn.get_concrete_function())


def _window_function(model, length: int, keys):
    """``waveform[1, length] -> {key: output}``: the dict keys become the signature's names."""
    keys = tuple(keys)

    @tf.function(input_signature=[tf.TensorSpec([1, length], tf.float32, name="waveform")])
    def fn(waveform):
        out = model(waveform, training=False)
        return {k: out[k] for k in keys}

    return fn


def concrete_window_function(model, length: int, keys):
    """Concrete function ``waveform[1, length] -> dict of outputs`` and a module holding its
    variables (the ``tf.Variable`` under each Keras variable, so a SavedModel keeps them)."""
    fn = _window_function(model, length, keys)
    module = tf.Module()
    module.tf_variables = [getattr(v, "value", v) for v in model.variables]
    with plain_convolutions():
        return fn.get_concrete_function(), module


def converter(model, length: int, keys, frozen: bool = False):
    if frozen:
        conv = tf.lite.TFLiteConverter.from_concrete_functions(
            [frozen_function(model, length, keys)], tf.Module()
        )
    else:
        fn, module = concrete_window_function(model, length, keys)
        conv = tf.lite.TFLiteConverter.from_concrete_functions([fn], module)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return conv


_VARIABLE_OPS = ("VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE")


def convert(model, variant: str, length: int, keys=None, representative=None) -> bytes:
    """Converts ``model`` to TFLite bytes (see module doc for the variants).

    Args:
      representative: float32 ``[n, length]`` windows, required for ``int8``.
    """
    if variant not in VARIANTS:
        raise UserError(f"unknown TFLite variant {variant!r}; choose from {', '.join(VARIANTS)}")
    keys = tuple(keys or common.output_keys(model))
    content = _convert(model, variant, length, keys, representative, frozen=False)
    if any(op in _VARIABLE_OPS for op in op_names(content)):
        logging.warning("TFLite converter kept resource variables; converting a frozen graph")
        del content
        content = _convert(model, variant, length, keys, representative, frozen=True)
    if variant in ("dynamic_int8", "int8"):
        content = compact_frontend(content)
    return name_outputs(content, keys)


def _convert(model, variant, length, keys, representative, frozen) -> bytes:
    conv = converter(model, length, keys, frozen)
    if variant == "float32":
        return split_wide_convolutions(conv.convert())
    if variant == "float16":
        return float16_weights(split_wide_convolutions(conv.convert()))
    if variant == "dynamic_int8":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        return float_frontend(conv.convert())
    elif variant == "int8":
        if representative is None or len(representative) == 0:
            raise UserError("the int8 variant needs representative data (--representative)")
        windows = np.asarray(representative, np.float32)

        def gen():
            for w in windows:
                yield [fit_length(w, length)[None]]

        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = gen
        conv.target_spec.supported_ops = [
            tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
            tf.lite.OpsSet.TFLITE_BUILTINS,
        ]
        conv._experimental_calibrate_only = True  # quantize below, with a denylist
        calibrated = conv.convert()
        return _quantize_keep_frontend_float(calibrated)
    raise AssertionError(variant)


def _quantize_keep_frontend_float(calibrated: bytes) -> bytes:
    from tensorflow.lite.python import convert as tfl_convert

    from panns_keras.export.quantize import int8_denylist

    deny = int8_denylist(calibrated)  # front end, classifier and outputs (quantize.py)
    logging.info("int8: keeping %d ops float (front end, classifier, outputs)", len(deny))
    return tfl_convert.mlir_quantize(calibrated, fully_quantize=False, denylisted_nodes=deny)


def check_builtin_only(tflite_bytes: bytes) -> None:
    bad = [n for n in op_names(tflite_bytes) if n.startswith("CUSTOM") or "Flex" in n]
    if bad:
        raise common.ExportVerificationError(f"TFLite model uses non-builtin ops: {bad}")


def verify_tflite(model, tflite_bytes, variant, inputs, keys=None) -> dict:
    """Compares the TFLite scores with the Keras model; raises beyond TOLERANCES[variant]."""
    keys = tuple(keys or common.output_keys(model))
    check_builtin_only(tflite_bytes)
    runner = TfliteRunner(tflite_bytes, keys)
    got = runner(inputs)[CLIPWISE]
    x = fit_length(inputs, runner.length)
    ref = common.batched(lambda v: model(v, training=False), x)[CLIPWISE]
    stats = common.compare_scores(ref, got)
    max_abs, mean_abs = TOLERANCES[variant]
    if variant == "float32":  # within the model's own float32 noise where that is larger
        return common.FloatCheck(f"tflite_{variant}", model, x, max_abs).scores(stats)
    common.check(f"tflite_{variant}", stats, max_abs, mean_abs)
    return stats


def artifact_info(model, keys, length: int, variant: str, labels=None) -> ArtifactInfo:
    """What a reader needs to run a ``.tflite`` without the Keras model."""
    return ArtifactInfo.of_model(
        model,
        INFO_FORMAT,
        keys,
        common.label_names(model, labels),
        input_samples=length,
        variant=variant,
    )


def add_metadata(
    content: bytes, model, keys, length: int, variant: str, labels=None, version: str = "1"
) -> bytes:
    """Labels (``labels.txt``), sample rate (AudioProperties) and ``panns_keras.json``.

    The metadata is MediaPipe's (``TFLITE_METADATA``, see :mod:`tflite_metadata`), written
    into every variant: the score output carries the labels file, the other outputs are
    described as auxiliary. :func:`read_tflite_info` reads it back.
    """
    info = artifact_info(model, keys, length, variant, labels)
    names = list(info.labels)
    sr = info.sample_rate
    return add_audio_classifier_metadata(
        content,
        labels=names,
        sample_rate=sr,
        channels=1,
        model_name=f"panns_keras {model.spec.name} {variant}",
        description=(
            f"PANNs {model.spec.reference_name} audio tagger: one sigmoid score per "
            f"class for each {length / sr:g} s window of {sr} Hz mono audio. "
            f"Outputs in order: {', '.join(keys)}."
        ),
        version=version,
        input_name="waveform",
        output_name=CLIPWISE,
        score_output_index=list(keys).index(CLIPWISE),
        extra_files={INFO_FILE: (json.dumps(info.to_json(), indent=2) + "\n").encode()},
        warn_extra_outputs=False,
        output_tensor_names=list(keys),
    )


def _check_metadata(model, content, keys, labels, variant) -> None:
    info = read_tflite_info(content)
    if info["labels"] != common.label_names(model, labels):
        raise common.ExportVerificationError(f"tflite_{variant}: labels do not round-trip")
    if info["metadata_sample_rate"] != int(model.spec.sample_rate):
        raise common.ExportVerificationError(f"tflite_{variant}: sample rate not in metadata")
    order = output_order(content)
    if order["tensors"] != list(keys) or order["signature"] != list(keys):
        raise common.ExportVerificationError(f"tflite_{variant}: output order {order}")


def export_tflite(
    model,
    out_path,
    variant="float32",
    *,
    window_seconds=None,
    representative=None,
    verify_inputs=None,
    labels=None,
) -> dict:
    """Writes ``model`` as a TFLite ``variant`` with a fixed ``window_seconds`` input
    (default: the length of the clips the model was trained on, else 10 s).

    Outputs, in this order (``get_output_details()`` and the signature ``serving_default``
    alike): ``clipwise_output`` then ``embedding`` (clip models) or ``framewise_output``
    (decision-level models). Labels and sample rate are in the file's metadata.

    Args:
      representative: windows (array) or a path for :func:`representative_windows`;
        needed for ``int8``.
      verify_inputs: float32 ``[n, samples]`` used for the post-export check (default:
        the representative windows, else synthetic signals).
      labels: Labels, (mid, name) pairs or names; default ``model.labels``.

    Returns:
      dict with ``path``, ``variant``, ``input_samples``, ``outputs`` (names in order),
      ``bytes``, ``ops`` and the check's ``stats``.
    """
    return _export(
        model,
        out_path,
        variant,
        variant,
        common.output_keys(model),
        window_seconds,
        representative,
        verify_inputs,
        labels,
    )


def export_mediapipe(
    model,
    out_path,
    *,
    window_seconds=None,
    labels=None,
    variant="float32",
    representative=None,
    verify_inputs=None,
    version="1",
) -> dict:
    """Writes a MediaPipe AudioClassifier model: float32 ``[1, window] -> scores [1, K]``
    (window: ``window_seconds``, default the model's training clip length, else 1 s).

    ``variant`` is any of :data:`VARIANTS` (weights as in :func:`export_tflite`; input and
    output stay float32, as MediaPipe requires); ``int8`` needs ``representative``.
    """
    if window_seconds is None and not model.spec.clip_samples:
        window_seconds = DEFAULT_MEDIAPIPE_WINDOW_SECONDS
    return _export(
        model,
        out_path,
        variant,
        f"mediapipe_{variant}",
        (CLIPWISE,),
        window_seconds,
        representative,
        verify_inputs,
        labels,
        version,
    )


def _export(
    model,
    out_path,
    variant,
    name,
    keys,
    window_seconds,
    representative,
    verify_inputs,
    labels,
    version="1",
) -> dict:
    """Converts, adds metadata (as ``name``), verifies and writes one ``.tflite``."""
    length = window_length(model, window_seconds)
    representative = _as_windows(model, representative, length)
    inputs = _verify_inputs(model, verify_inputs, representative, length)
    content = convert(model, variant, length, keys, representative)
    content = add_metadata(content, model, keys, length, name, labels, version)
    stats = verify_tflite(model, content, variant, inputs, keys)
    _check_metadata(model, content, keys, labels, name)
    out_path = atomic_write(out_path, content)
    logging.info("wrote %s (%d bytes): %s", out_path, len(content), stats)
    return {
        "path": str(out_path),
        "variant": name,
        "input_samples": length,
        "outputs": list(keys),
        "bytes": len(content),
        "ops": op_names(content),
        "stats": stats,
    }


DEFAULT_WINDOW_SECONDS = 10.0  # when the model does not record its training clip length
DEFAULT_MEDIAPIPE_WINDOW_SECONDS = 1.0


def window_length(
    model, window_seconds: float | None, default: float = DEFAULT_WINDOW_SECONDS
) -> int:
    """The window in samples: ``window_seconds``, or (None) the model's training clip length
    (``spec.clip_samples``), else ``default`` seconds."""
    if window_seconds is None:
        if model.spec.clip_samples:
            return int(model.spec.clip_samples)
        window_seconds = default
    length = round(float(window_seconds) * model.spec.sample_rate)
    if length < model.spec.min_samples:
        raise UserError(
            f"--window_seconds {window_seconds:g} is shorter than the model's minimum "
            f"({model.spec.min_samples / model.spec.sample_rate:g} s)"
        )
    return length


def _as_windows(model, representative, length):
    if representative is None:
        return None
    if isinstance(representative, (str, Path)):
        from panns_keras.export.representative import representative_windows

        return representative_windows(representative, model.spec.sample_rate, length)
    return fit_length(np.asarray(representative, np.float32), length)


def _verify_inputs(model, verify_inputs, representative, length):
    if verify_inputs is not None:
        return fit_length(np.atleast_2d(np.asarray(verify_inputs, np.float32)), length)
    if representative is not None:
        return representative[:8]
    return common.synthetic_windows(model.spec.sample_rate, length)
