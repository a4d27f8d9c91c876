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
(BUILD_NOTES.md, "Issue 14").

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

import copy
import os
from pathlib import Path

import numpy as np
import tensorflow as tf
from absl import logging

from panns_keras.errors import UserError
from panns_keras.export import common
from panns_keras.models.conv import plain_convolutions

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
FLOAT_NODES = ("logmel_extractor", "/bn0")
# Float variants: wider convolutions become sums over input-channel groups
# (split_wide_convolutions).
FLOAT_CONV_MAX_INPUT_CHANNELS = 1024
INFO_FILE = "panns_keras.json"  # in the appended zip, beside labels.txt
INFO_FORMAT = "panns_keras.tflite/1"  # name fragments kept float in int8 and float16


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


def _serving_function(model, length: int, keys):
    """Concrete function ``waveform[1, length] -> dict of outputs`` and a module holding its
    variables (the ``tf.Variable`` under each Keras variable, so a SavedModel keeps them)."""
    fn = _window_function(model, length, keys)
    module = tf.Module()
    module.tf_variables = [getattr(v, "value", v) for v in model.variables]
    with plain_convolutions():
        return fn.get_concrete_function(), module


def _converter(model, length: int, keys, frozen: bool = False):
    if frozen:
        conv = tf.lite.TFLiteConverter.from_concrete_functions(
            [frozen_function(model, length, keys)], tf.Module()
        )
    else:
        fn, module = _serving_function(model, length, keys)
        conv = tf.lite.TFLiteConverter.from_concrete_functions([fn], module)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return conv


_VARIABLE_OPS = ("VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE")


def _tensor_names(tflite_bytes: bytes) -> list[str]:
    from tensorflow.lite.python import schema_py_generated as fb

    m = fb.ModelT.InitFromPackedBuf(bytearray(tflite_bytes), 0)
    g = m.subgraphs[0]
    names = []
    for op in g.operators:
        names += [g.tensors[i].name.decode() for i in op.outputs]
    return names


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


def name_outputs(tflite_bytes: bytes, keys) -> bytes:
    """Puts the outputs in ``keys`` order: subgraph outputs and the signature's output list.

    The converter names the signature outputs after the function's dict keys but orders the
    subgraph outputs (``get_output_details()``) its own way (Cnn6: embedding first, as
    ``StatefulPartitionedCall:1``). Both int vectors are rewritten in place (same length,
    no repacking of the flatbuffer, so no second copy of the weights in memory); the output
    tensors get the same names when the metadata is written (:func:`add_metadata`).
    """
    import struct

    from tensorflow.lite.python import schema_py_generated as fb

    keys = tuple(keys)
    buf = bytearray(tflite_bytes)
    model = fb.Model.GetRootAs(buf, 0)
    sigs = [model.SignatureDefs(i) for i in range(model.SignatureDefsLength())]
    sigs = [s for s in sigs if s.SubgraphIndex() == 0]
    if len(sigs) != 1:
        raise common.ExportVerificationError(f"tflite: {len(sigs)} signatures, expected 1")
    sig = sigs[0]
    maps = {}
    for i in range(sig.OutputsLength()):
        m = sig.Outputs(i)
        maps[m.Name().decode()] = (i, m.TensorIndex())
    if sorted(maps) != sorted(keys):
        raise common.ExportVerificationError(
            f"tflite: signature outputs {sorted(maps)}, expected {list(keys)}"
        )
    tab = model.Subgraphs(0)._tab
    start = tab.Vector(tab.Offset(8))  # SubGraph.outputs: [int32]
    for i, k in enumerate(keys):
        struct.pack_into("<i", buf, start + 4 * i, maps[k][1])
    tab = sig._tab
    start = tab.Vector(tab.Offset(6))  # SignatureDef.outputs: [TensorMap] (uoffsets)
    tables = [start + 4 * i + struct.unpack_from("<I", buf, start + 4 * i)[0]
              for i in range(len(keys))]  # fmt: skip
    for i, k in enumerate(keys):
        struct.pack_into("<I", buf, start + 4 * i, tables[maps[k][0]] - (start + 4 * i))
    return bytes(buf)


def output_order(tflite_bytes: bytes) -> dict[str, list[str]]:
    """Output names as ``get_output_details()`` and the signature list them."""
    from tensorflow.lite.python import schema_py_generated as fb

    m = fb.ModelT.InitFromPackedBuf(bytearray(tflite_bytes), 0)
    g = m.subgraphs[0]
    sig = (m.signatureDefs or [None])[0]
    return {
        "tensors": [g.tensors[i].name.decode() for i in g.outputs],
        "signature": [o.name.decode() for o in sig.outputs] if sig else [],
    }


def _convert(model, variant, length, keys, representative, frozen) -> bytes:
    conv = _converter(model, length, keys, frozen)
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
                yield [common.fit_length(w, length)[None]]

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

    deny = [n for n in _tensor_names(calibrated) if any(f in n for f in FLOAT_NODES)]
    logging.info("int8: keeping %d front-end ops float", len(deny))
    return tfl_convert.mlir_quantize(calibrated, fully_quantize=False, denylisted_nodes=deny)


def float_frontend(tflite_bytes: bytes, keep_float=FLOAT_NODES) -> bytes:
    """Dequantizes the int8 constant weights whose names match ``keep_float`` to float32.

    A hybrid op whose weight becomes float32 is a plain float op again. The weights keep
    their int8 rounding (per-channel scales: ~0.4% of each channel's range), which costs far
    less than quantizing the op's input: the int8 step of the activations is what wrecks
    the log-mel front end.
    """
    from tensorflow.lite.python import schema_py_generated as fb

    from panns_keras.export.tflite_metadata import _read_model, _write_model

    model = _read_model(tflite_bytes)
    for g in model.subgraphs:
        for i in sorted({i for op in g.operators for i in op.inputs if i >= 0}):
            t = g.tensors[i]
            name = t.name.decode() if t.name else ""
            data = model.buffers[t.buffer].data if t.buffer else None
            if t.type != fb.TensorType.INT8 or data is None or t.quantization is None:
                continue
            if not any(f in name for f in keep_float):
                continue
            shape = [int(d) for d in t.shape]
            q = np.frombuffer(bytes(bytearray(data)), np.int8).reshape(shape).astype(np.float32)
            scale = np.asarray(t.quantization.scale, np.float32)
            zero = np.asarray(t.quantization.zeroPoint, np.float32)
            if scale.size > 1:  # per channel along quantizedDimension
                bshape = [1] * q.ndim
                bshape[t.quantization.quantizedDimension] = -1
                scale, zero = scale.reshape(bshape), zero.reshape(bshape)
            buf = fb.BufferT()
            buf.data = np.frombuffer(((q - zero) * scale).astype("<f4").tobytes(), np.uint8)
            model.buffers.append(buf)
            t.buffer, t.type, t.quantization = len(model.buffers) - 1, fb.TensorType.FLOAT32, None
    _drop_unused_buffers(model)
    return _write_model(model)


def split_wide_convolutions(tflite_bytes: bytes,
                            max_input_channels: int = FLOAT_CONV_MAX_INPUT_CHANNELS) -> bytes:
    """Rewrites each float ``CONV_2D`` with more input channels than ``max_input_channels``
    as ``SPLIT`` (channels) -> one ``CONV_2D`` per group -> ``ADD`` (same result to float
    rounding; the original's fused activation moves to the last ``ADD``).

    Why: XNNPACK's float convolution slows down ~5x once a layer has more than 1024 input
    channels. Cnn14's block 6 conv2 (2048 -> 2048 on a 31 x 2 map, 2 threads): 64 ms as one
    CONV_2D, 24 ms as two 1024-channel halves (TensorFlow: 33 ms); a 1024 -> 2048 layer
    takes 12 ms either way, and the int8 kernels do not slow down (1.5 ms). Done on the
    flatbuffer, after conversion: splitting in the traced graph gave the converter sliced
    weights it kept as runtime ops, or (as constants) raised its peak memory by 2.6 GB.
    A layer whose channels do not split into equal groups is left as it is.
    """
    from tensorflow.lite.python import schema_py_generated as fb

    from panns_keras.export.tflite_metadata import _read_model, _write_model

    model = _read_model(tflite_bytes)
    conv_code = fb.BuiltinOperator.CONV_2D
    changed = False
    for g in model.subgraphs:
        new_ops, split_weights = [], set()
        for op in g.operators:
            oc = model.operatorCodes[op.opcodeIndex]
            w = g.tensors[op.inputs[1]] if len(op.inputs) > 1 else None
            data = model.buffers[w.buffer].data if w is not None and w.buffer else None
            cin = int(w.shape[3]) if w is not None and len(w.shape) == 4 else 0
            parts = -(-cin // max_input_channels)
            if (max(oc.builtinCode, oc.deprecatedBuiltinCode) != conv_code or data is None
                    or w.type != fb.TensorType.FLOAT32 or parts < 2 or cin % parts):
                new_ops.append(op)
                continue
            new_ops += _split_conv(model, g, op, np.frombuffer(bytes(bytearray(data)), "<f4")
                                   .reshape([int(d) for d in w.shape]), parts)  # fmt: skip
            split_weights.add(op.inputs[1])
            changed = True
        g.operators = new_ops
        still_read = {i for op in new_ops for i in op.inputs}
        for i in split_weights - still_read:
            g.tensors[i].buffer = 0  # the whole kernel, now in parts: its buffer is dropped
    if not changed:
        return tflite_bytes
    _drop_unused_buffers(model)
    return _write_model(model)


def _split_conv(model, g, op, kernel, parts):
    """The ops that replace ``op`` (see :func:`split_wide_convolutions`)."""
    from tensorflow.lite.python import schema_py_generated as fb

    def constant(name, values, dtype=fb.TensorType.FLOAT32):
        buf = fb.BufferT()
        buf.data = np.frombuffer(values.tobytes(), np.uint8)
        model.buffers.append(buf)
        return tensor(name, list(values.shape), dtype, len(model.buffers) - 1)

    def tensor(name, shape, dtype=fb.TensorType.FLOAT32, buffer=0):
        t = fb.TensorT()
        t.name, t.shape, t.type, t.buffer = name.encode(), shape, dtype, buffer
        g.tensors.append(t)
        return len(g.tensors) - 1

    def operator(opcode, inputs, outputs, options_type, options):
        o = fb.OperatorT()
        o.opcodeIndex, o.inputs, o.outputs = opcode, inputs, outputs
        o.builtinOptionsType, o.builtinOptions = options_type, options
        return o

    x, out = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    base = g.tensors[op.inputs[1]].name.decode()
    group = kernel.shape[3] // parts
    in_shape = [int(d) for d in x.shape]
    out_shape = [int(d) for d in out.shape]
    split_opts = fb.SplitOptionsT()
    split_opts.numSplits = parts
    axis = constant(f"{base}/split_axis", np.asarray(3, "<i4"), fb.TensorType.INT32)
    pieces = [tensor(f"{base}/in{j}", in_shape[:3] + [group]) for j in range(parts)]
    split = _opcode_index(model, fb.BuiltinOperator.SPLIT, version=1)
    ops = [operator(split, [axis, op.inputs[0]], pieces, fb.BuiltinOptions.SplitOptions,
                    split_opts)]  # fmt: skip
    activation = op.builtinOptions.fusedActivationFunction
    bias = op.inputs[2] if len(op.inputs) > 2 else -1
    zero_bias = None
    partial = []
    for j in range(parts):
        w = constant(f"{base}/part{j}",
                     np.ascontiguousarray(kernel[..., j * group : (j + 1) * group], "<f4"))
        if j and bias >= 0 and zero_bias is None:
            zero_bias = constant(f"{base}/zero_bias", np.zeros(kernel.shape[0], "<f4"))
        b = bias if j == 0 else (zero_bias if bias >= 0 else -1)
        opts = copy.copy(op.builtinOptions)
        opts.fusedActivationFunction = fb.ActivationFunctionType.NONE
        y = tensor(f"{base}/conv{j}", out_shape)
        ops.append(operator(op.opcodeIndex, [pieces[j], w, b], [y], op.builtinOptionsType, opts))
        partial.append(y)
    add = _opcode_index(model, fb.BuiltinOperator.ADD, version=1)
    acc = partial[0]
    for j in range(1, parts):
        add_opts = fb.AddOptionsT()
        last = j == parts - 1
        add_opts.fusedActivationFunction = activation if last else fb.ActivationFunctionType.NONE
        y = op.outputs[0] if last else tensor(f"{base}/sum{j}", out_shape)
        ops.append(operator(add, [acc, partial[j]], [y], fb.BuiltinOptions.AddOptions, add_opts))
        acc = y
    return ops


def _drop_unused_buffers(model) -> None:
    used = {t.buffer for g in model.subgraphs for t in g.tensors}
    used |= {m.buffer for m in model.metadata or []}
    for k, buf in enumerate(model.buffers):
        if k not in used:
            buf.data = None


def compact_frontend(tflite_bytes: bytes) -> bytes:
    """Stores the front end's float32 constants (DFT kernels, mel matrix) as float16.

    In the int8 variants the front end runs in float32 but its DFT kernels (Cnn6: 2 x 513 x
    1024 values, 4.2 MB) would be the largest thing in the file; float16 storage halves
    them and they are widened back to float32 at load (``DEQUANTIZE``), so compute stays
    float32. See the module doc for the measured cost.
    """
    return float16_weights(tflite_bytes, keep_float=(), only=("logmel_extractor",))


def float16_weights(tflite_bytes: bytes, keep_float=FLOAT_NODES, only=None) -> bytes:
    """Stores the constant float32 weights of a float32 ``.tflite`` as float16.

    Each constant float32 tensor read by an op (at least 2 elements, finite in float16, name
    not matching ``keep_float`` and, when ``only`` is given, matching one of ``only``)
    becomes a float16 constant followed by a ``DEQUANTIZE`` op that writes the original
    tensor, the layout TFLite's own float16 mode produces (XNNPACK
    folds it into the weights at load). Graph inputs, outputs and signatures are unchanged.
    """
    from tensorflow.lite.python import schema_py_generated as fb

    from panns_keras.export.tflite_metadata import _read_model, _write_model

    model = _read_model(tflite_bytes)
    dequantize = _opcode_index(model, fb.BuiltinOperator.DEQUANTIZE, version=3)
    f16_max = float(np.finfo(np.float16).max)
    for g in model.subgraphs:
        read = sorted({i for op in g.operators for i in op.inputs if i >= 0})
        new_ops = []
        for i in read:
            t = g.tensors[i]
            data = model.buffers[t.buffer].data if t.buffer else None
            name = t.name.decode() if t.name else ""
            if (t.type != fb.TensorType.FLOAT32 or data is None or len(data) < 8
                    or any(f in name for f in keep_float)
                    or (only is not None and not any(f in name for f in only))):  # fmt: skip
                continue
            values = np.frombuffer(bytes(bytearray(data)), "<f4")
            if not np.all(np.abs(values) <= f16_max):
                continue
            buf = fb.BufferT()
            buf.data = np.frombuffer(values.astype("<f2").tobytes(), np.uint8)
            model.buffers.append(buf)
            half = fb.TensorT()
            half.name, half.shape, half.type = t.name + b"_fp16", t.shape, fb.TensorType.FLOAT16
            half.buffer = len(model.buffers) - 1
            g.tensors.append(half)
            op = fb.OperatorT()
            op.opcodeIndex, op.inputs, op.outputs = dequantize, [len(g.tensors) - 1], [i]
            new_ops.append(op)
            t.buffer = 0  # buffer 0 is the empty one: t is now computed, not constant
        g.operators = new_ops + list(g.operators)
    _drop_unused_buffers(model)  # the float32 copies of converted weights
    return _write_model(model)


def _opcode_index(model, builtin: int, version: int) -> int:
    from tensorflow.lite.python import schema_py_generated as fb

    for k, oc in enumerate(model.operatorCodes):
        if max(oc.builtinCode, oc.deprecatedBuiltinCode) == builtin:
            oc.version = max(oc.version, version)
            return k
    oc = fb.OperatorCodeT()
    oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = builtin, min(builtin, 127), version
    model.operatorCodes.append(oc)
    return len(model.operatorCodes) - 1


def op_names(tflite_bytes: bytes) -> list[str]:
    """Sorted operator names of a ``.tflite`` (builtin names; ``CUSTOM:<name>`` otherwise)."""
    from tensorflow.lite.python import schema_py_generated as fb

    m = fb.ModelT.InitFromPackedBuf(bytearray(tflite_bytes), 0)
    code_names = {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_")}
    names = set()
    for sg in m.subgraphs:
        for op in sg.operators:
            oc = m.operatorCodes[op.opcodeIndex]
            code = max(oc.builtinCode, oc.deprecatedBuiltinCode)
            if code == fb.BuiltinOperator.CUSTOM:
                names.add(f"CUSTOM:{(oc.customCode or b'').decode()}")
            else:
                names.add(code_names.get(code, str(code)))
    return sorted(names)


def check_builtin_only(tflite_bytes: bytes) -> None:
    bad = [n for n in op_names(tflite_bytes) if n.startswith("CUSTOM") or "Flex" in n]
    if bad:
        raise common.ExportVerificationError(f"TFLite model uses non-builtin ops: {bad}")


class TfliteRunner:
    """Runs a ``.tflite`` (bytes or path) one window at a time with the LiteRT interpreter."""

    def __init__(self, model, keys=None, num_threads: int | None = None):
        from ai_edge_litert.interpreter import Interpreter

        content = Path(model).read_bytes() if isinstance(model, (str, Path)) else model
        self.interpreter = Interpreter(model_content=content, num_threads=num_threads)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.outputs = self.interpreter.get_output_details()
        self.length = int(self.input["shape"][-1])
        # Output names: the signature's when there is one (our exports: clipwise_output,
        # embedding / framewise_output, in get_output_details() order), else output_<i>.
        sigs = self.interpreter.get_signature_list()
        self._runner = None
        if sigs:
            key = next(iter(sigs))
            self._runner = self.interpreter.get_signature_runner(key)
            self._input_name = sigs[key]["inputs"][0]
            tensor_names = [d["name"] for d in self.outputs]
            sig_names = list(sigs[key]["outputs"])
            names = tensor_names if sorted(tensor_names) == sorted(sig_names) else sig_names
        else:
            names = [f"output_{i}" for i in range(len(self.outputs))]
        self.names = tuple(names)
        if keys and sorted(keys) != sorted(names) and len(keys) != len(names):
            raise ValueError(f"keys {list(keys)} do not match the outputs {names}")
        self.keys = tuple(keys) if keys else self.names

    def __call__(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """``x``: float32 ``[n, length]``; returns output name -> ``[n, ...]``."""
        x = np.asarray(x, np.float32)
        results = []
        for row in x:
            row = common.fit_length(row, self.length)[None]
            if self._runner is not None:
                out = self._runner(**{self._input_name: row})
                results.append([out[n] for n in self.names])
            else:
                self.interpreter.set_tensor(self.input["index"], row)
                self.interpreter.invoke()
                results.append([self.interpreter.get_tensor(d["index"]) for d in self.outputs])
        merged = {n: np.concatenate([r[i] for r in results]) for i, n in enumerate(self.names)}
        if sorted(self.keys) == sorted(self.names):
            return {k: merged[k] for k in self.keys}
        return dict(zip(self.keys, merged.values()))  # legacy files: keys by position


def verify_tflite(model, tflite_bytes, variant, inputs, keys=None) -> dict:
    """Compares the TFLite scores with the Keras model; raises beyond TOLERANCES[variant]."""
    keys = tuple(keys or common.output_keys(model))
    check_builtin_only(tflite_bytes)
    runner = TfliteRunner(tflite_bytes, keys)
    got = runner(inputs)[common.CLIPWISE]
    x = common.fit_length(inputs, runner.length)
    ref = common.batched(lambda v: model(v, training=False), x)[common.CLIPWISE]
    stats = common.compare_scores(ref, got)
    common.check(f"tflite_{variant}", stats, *TOLERANCES[variant])
    return stats


def model_info(model, keys, length: int, variant: str) -> dict:
    """What a reader needs to run a ``.tflite`` without the Keras model (``panns_keras.json``)."""
    fe = model.spec.frontend
    return {
        "format": INFO_FORMAT,
        "model": model.spec.name,
        "variant": variant,
        "sample_rate": int(model.spec.sample_rate),
        "input_samples": int(length),
        "min_samples": int(model.spec.min_samples),
        "outputs": list(keys),
        "num_classes": int(model.spec.num_classes),
        # framewise_output row i is centred at i * frame_hop_samples (decision-level models)
        "frame_hop_samples": int(fe.hop_size) if fe is not None else None,
    }


def add_metadata(content: bytes, model, keys, length: int, variant: str, labels=None,
                 version: str = "1") -> bytes:  # fmt: skip
    """Labels (``labels.txt``), sample rate (AudioProperties) and ``panns_keras.json``.

    The metadata is MediaPipe's (``TFLITE_METADATA``, see :mod:`tflite_metadata`), written
    into every variant: the score output carries the labels file, the other outputs are
    described as auxiliary. :func:`read_tflite_info` reads it back.
    """
    import json

    from panns_keras.export.tflite_metadata import add_audio_classifier_metadata

    names = common.label_names(model, labels)
    sr = int(model.spec.sample_rate)
    info = model_info(model, keys, length, variant)
    return add_audio_classifier_metadata(
        content, labels=names, sample_rate=sr, channels=1,
        model_name=f"panns_keras {model.spec.name} {variant}",
        description=(f"PANNs {model.spec.reference_name} audio tagger: one sigmoid score per "
                     f"class for each {length / sr:g} s window of {sr} Hz mono audio. "
                     f"Outputs in order: {', '.join(keys)}."),
        version=version, input_name="waveform", output_name=common.CLIPWISE,
        score_output_index=list(keys).index(common.CLIPWISE),
        extra_files={INFO_FILE: (json.dumps(info, indent=2) + "\n").encode()},
        warn_extra_outputs=False, output_tensor_names=list(keys),
    )  # fmt: skip


def read_tflite_info(content: bytes) -> dict:
    """``panns_keras.json`` of an exported ``.tflite`` plus ``labels`` (from its metadata).

    Raises:
      UserError: the file has no metadata written by this project.
    """
    import json

    from panns_keras.export.tflite_metadata import read_metadata

    try:
        meta = read_metadata(content)
    except ValueError as e:
        raise UserError(f"not a panns-keras TFLite export ({e})") from None
    if INFO_FILE not in meta["files"] or not meta["labels"]:
        raise UserError(f"not a panns-keras TFLite export (no {INFO_FILE} or labels)")
    info = json.loads(meta["files"][INFO_FILE].decode())
    info["labels"] = meta["labels"]
    audio = meta["subgraphs"][0]["inputs"][0]["content"] or {}
    info["metadata_sample_rate"] = audio.get("sample_rate")
    return info


def _write(out_path, content: bytes) -> Path:
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.tmp")
    tmp.write_bytes(content)
    os.replace(tmp, out_path)
    return out_path


def _check_metadata(model, content, keys, labels, variant) -> None:
    info = read_tflite_info(content)
    if info["labels"] != common.label_names(model, labels):
        raise common.ExportVerificationError(f"tflite_{variant}: labels do not round-trip")
    if info["metadata_sample_rate"] != int(model.spec.sample_rate):
        raise common.ExportVerificationError(f"tflite_{variant}: sample rate not in metadata")
    order = output_order(content)
    if order["tensors"] != list(keys) or order["signature"] != list(keys):
        raise common.ExportVerificationError(f"tflite_{variant}: output order {order}")


def export_tflite(model, out_path, variant="float32", *, window_seconds=10.0,
                  representative=None, verify_inputs=None, labels=None) -> dict:  # fmt: skip
    """Writes ``model`` as a TFLite ``variant`` with a fixed ``window_seconds`` input.

    Outputs, in this order (``get_output_details()`` and the signature ``serving_default``
    alike): ``clipwise_output`` then ``embedding`` (clip models) or ``framewise_output``
    (decision-level models). Labels and sample rate are in the file's metadata.

    Args:
      representative: windows (array) or a path for :func:`representative_windows`;
        needed for ``int8``.
      verify_inputs: float32 ``[n, samples]`` used for the post-export check (default:
        the representative windows, else synthetic signals).
      labels: (mid, name) pairs or names; default ``model.labels``.

    Returns:
      dict with ``path``, ``variant``, ``input_samples``, ``outputs`` (names in order),
      ``bytes``, ``ops`` and the check's ``stats``.
    """
    length = window_length(model, window_seconds)
    representative = _as_windows(model, representative, length)
    inputs = _verify_inputs(model, verify_inputs, representative, length)
    keys = common.output_keys(model)
    content = convert(model, variant, length, keys, representative)
    content = add_metadata(content, model, keys, length, variant, labels)
    stats = verify_tflite(model, content, variant, inputs, keys)
    _check_metadata(model, content, keys, labels, variant)
    out_path = _write(out_path, content)
    logging.info("wrote %s (%d bytes): %s", out_path, len(content), stats)
    return {"path": str(out_path), "variant": variant, "input_samples": length,
            "outputs": list(keys), "bytes": len(content), "ops": op_names(content),
            "stats": stats}  # fmt: skip


def export_mediapipe(model, out_path, *, window_seconds=1.0, labels=None, variant="float32",
                     representative=None, verify_inputs=None, version="1") -> dict:  # fmt: skip
    """Writes a MediaPipe AudioClassifier model: float32 ``[1, window] -> scores [1, K]``.

    ``variant`` is any of :data:`VARIANTS` (weights as in :func:`export_tflite`; input and
    output stay float32, as MediaPipe requires); ``int8`` needs ``representative``.
    """
    length = window_length(model, window_seconds)
    representative = _as_windows(model, representative, length)
    inputs = _verify_inputs(model, verify_inputs, representative, length)
    keys = (common.CLIPWISE,)
    content = convert(model, variant, length, keys, representative)
    content = add_metadata(content, model, keys, length, f"mediapipe_{variant}", labels,
                           version)  # fmt: skip
    stats = verify_tflite(model, content, variant, inputs, keys)
    _check_metadata(model, content, keys, labels, f"mediapipe_{variant}")
    out_path = _write(out_path, content)
    return {"path": str(out_path), "variant": f"mediapipe_{variant}", "input_samples": length,
            "outputs": list(keys), "bytes": len(content), "ops": op_names(content),
            "stats": stats}  # fmt: skip


def window_length(model, window_seconds: float) -> int:
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
    return common.fit_length(np.asarray(representative, np.float32), length)


def _verify_inputs(model, verify_inputs, representative, length):
    if verify_inputs is not None:
        return common.fit_length(np.atleast_2d(np.asarray(verify_inputs, np.float32)), length)
    if representative is not None:
        return representative[:8]
    return common.synthetic_windows(model.spec.sample_rate, length)
