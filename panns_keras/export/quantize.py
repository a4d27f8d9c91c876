"""Which ops of a full-integer (int8) TFLite export stay float, chosen from measurements.

LiteRT's quantization debugger (``tf.lite.experimental.QuantizationDebugger``) run per layer
on real windows of a trained Cnn6 (8 kHz spoken digits, 1 s; ``quantize.layer_errors`` computes it,
BUILD_NOTES "Deployment" has the figures) shows:

* the log-mel front end cannot be int8 (its tensors span ~200 dB): it stays float
  (:data:`panns_keras.export.tflite_rewrite.FLOAT_NODES`), as before;
* in the body every conv / pool layer quantizes at the rounding floor (RMSE / scale
  0.19-0.28; uniform rounding alone gives 0.29): no body layer loses more than the others;
* the classifier (``fc_audioset``) has the largest error (RMSE / scale 0.33, mean |error|
  0.031 in logits), and the sigmoid's int8 output has steps of 1/256, which ties and flips
  close scores. Keeping the classifier and the outputs float (a few kB to a few MB) raised
  the int8 file's mAP from 0.990 to 0.995 of the Keras model's on 199 held-out clips.

So :func:`int8_denylist` keeps the front end, the classifier and every graph output float;
the convolutions (per-channel int8 weights, the converter's default) run in integer kernels.
"""

from __future__ import annotations

import io

import numpy as np

from panns_keras.export.tflite_rewrite import FLOAT_NODES, tensor_names

# name fragments of the layers kept float in int8 besides the front end
FLOAT_HEAD_NODES = ("fc_audioset",)


def int8_denylist(calibrated: bytes) -> list[str]:
    """Output tensor names of the ops a calibrated model keeps float (see module doc)."""
    from panns_keras.export.flatbuffer_io import tflite_schema

    fb = tflite_schema()
    m = fb.ModelT.InitFromPackedBuf(bytearray(calibrated), 0)
    g = m.subgraphs[0]
    outputs = {g.tensors[i].name.decode() for i in g.outputs}
    keep = FLOAT_NODES + FLOAT_HEAD_NODES
    return [n for n in tensor_names(calibrated) if n in outputs or any(f in n for f in keep)]


def layer_errors(converter, windows: np.ndarray, denylisted_nodes=()) -> list[dict]:
    """Per-layer int8 error from LiteRT's quantization debugger on ``windows``.

    Args:
      converter: a TFLite converter with ``optimizations`` and ``representative_dataset``
        set (the calibration data).
      windows: float32 ``[n, samples]`` real windows the debugger runs.
      denylisted_nodes: output tensor names kept float.

    Returns:
      one dict per quantized op: ``op``, ``tensor``, ``scale``, ``rmse_over_scale`` (1.0 =
      one quantization step; rounding alone gives 0.29), ``mean_abs_error``,
      ``max_abs_error``; largest ``rmse_over_scale`` first.
    """
    import csv

    import tensorflow as tf

    def gen():
        for w in np.asarray(windows, np.float32):
            yield [w[None]]

    options = tf.lite.experimental.QuantizationDebugOptions(
        layer_debug_metrics={"mean_abs_error": lambda d: float(np.mean(np.abs(d)))},
        denylisted_nodes=list(denylisted_nodes) or None,
    )
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter, debug_dataset=gen, debug_options=options
    )
    debugger.run()
    buf = io.StringIO()
    debugger.layer_statistics_dump(buf)
    rows = []
    for r in csv.DictReader(io.StringIO(buf.getvalue())):
        scale = float(r["scale"])
        rows.append(
            {
                "op": r["op_name"],
                "tensor": r["tensor_name"],
                "scale": scale,
                "rmse_over_scale": float(np.sqrt(float(r["mean_squared_error"])) / scale),
                "mean_abs_error": float(r["mean_abs_error"]),
                "max_abs_error": float(r["max_abs_error"]),
            }
        )
    return sorted(rows, key=lambda r: -r["rmse_over_scale"])
