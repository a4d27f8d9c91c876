"""Rewrites of a converted ``.tflite`` flatbuffer: output order, float front end, float16
weights, split wide convolutions; and what the exporter reads back (op and output names).

The reasons and measurements are in :mod:`panns_keras.export.tflite`'s doc. The whole-model
rewrites go through :mod:`panns_keras.export.flatbuffer_io` (object API); :func:`name_outputs`
patches two int vectors in place through ``flatbuffers``' public ``Table`` reader.
"""

from __future__ import annotations

import copy
import struct

import numpy as np
from flatbuffers import number_types

from panns_keras.export.common import ExportVerificationError
from panns_keras.export.flatbuffer_io import read_model, tflite_schema, write_model
from panns_keras.runtime.tflite_metadata import (
    field_scalar,
    field_string,
    field_tables,
    root_table,
    vector_start,
)

fb = tflite_schema()

# name fragments of the front end (log-mel extractor, bn0): kept float in int8 and float16
FLOAT_NODES = ("logmel_extractor", "/bn0")
# XNNPACK's float convolution slows down ~5x past this many input channels
FLOAT_CONV_MAX_INPUT_CHANNELS = 1024
# field ids of TensorFlow Lite's schema.fbs (table fields in declaration order)
MODEL_SUBGRAPHS, MODEL_SIGNATURE_DEFS = 2, 7
SUBGRAPH_OUTPUTS = 2
SIGNATURE_OUTPUTS, SIGNATURE_SUBGRAPH_INDEX = 1, 4
TENSOR_MAP_NAME, TENSOR_MAP_TENSOR_INDEX = 0, 1


def tensor_names(tflite_bytes: bytes) -> list[str]:
    m = fb.ModelT.InitFromPackedBuf(bytearray(tflite_bytes), 0)
    g = m.subgraphs[0]
    names = []
    for op in g.operators:
        names += [g.tensors[i].name.decode() for i in op.outputs]
    return names


def name_outputs(tflite_bytes: bytes, keys) -> bytes:
    """Puts the outputs in ``keys`` order: subgraph outputs and the signature's output list.

    The converter names the signature outputs after the function's dict keys but orders the
    subgraph outputs (``get_output_details()``) its own way (Cnn6: embedding first, as
    ``StatefulPartitionedCall:1``). Both int vectors are rewritten in place (same length,
    no repacking of the flatbuffer, so no second copy of the weights in memory); the output
    tensors get the same names when the metadata is written (:func:`add_metadata`).
    """
    keys = tuple(keys)
    buf = bytearray(tflite_bytes)
    root = root_table(buf)
    u32 = number_types.Uint32Flags
    sigs = [
        t
        for t in field_tables(root, MODEL_SIGNATURE_DEFS)
        if field_scalar(t, SIGNATURE_SUBGRAPH_INDEX, u32) == 0
    ]
    if len(sigs) != 1:
        raise ExportVerificationError(f"tflite: {len(sigs)} signatures, expected 1")
    sig = sigs[0]
    maps = {}
    for i, m in enumerate(field_tables(sig, SIGNATURE_OUTPUTS)):
        index = field_scalar(m, TENSOR_MAP_TENSOR_INDEX, number_types.Uint32Flags)
        maps[field_string(m, TENSOR_MAP_NAME)] = (i, index)
    if sorted(maps) != sorted(keys):
        raise ExportVerificationError(
            f"tflite: signature outputs {sorted(maps)}, expected {list(keys)}"
        )
    start = vector_start(field_tables(root, MODEL_SUBGRAPHS)[0], SUBGRAPH_OUTPUTS)  # [int32]
    for i, k in enumerate(keys):
        struct.pack_into("<i", buf, start + 4 * i, maps[k][1])
    start = vector_start(sig, SIGNATURE_OUTPUTS)  # [TensorMap] as uoffsets
    tables = [
        start + 4 * i + struct.unpack_from("<I", buf, start + 4 * i)[0] for i in range(len(keys))
    ]
    for i, k in enumerate(keys):
        struct.pack_into("<I", buf, start + 4 * i, tables[maps[k][0]] - (start + 4 * i))
    return bytes(buf)


def output_order(tflite_bytes: bytes) -> dict[str, list[str]]:
    """Output names as ``get_output_details()`` and the signature list them."""
    m = fb.ModelT.InitFromPackedBuf(bytearray(tflite_bytes), 0)
    g = m.subgraphs[0]
    sig = (m.signatureDefs or [None])[0]
    return {
        "tensors": [g.tensors[i].name.decode() for i in g.outputs],
        "signature": [o.name.decode() for o in sig.outputs] if sig else [],
    }


def float_frontend(tflite_bytes: bytes, keep_float=FLOAT_NODES) -> bytes:
    """Dequantizes the int8 constant weights whose names match ``keep_float`` to float32.

    A hybrid op whose weight becomes float32 is a plain float op again. The weights keep
    their int8 rounding (per-channel scales: ~0.4% of each channel's range), which costs far
    less than quantizing the op's input: the int8 step of the activations is what wrecks
    the log-mel front end.
    """
    model = read_model(tflite_bytes)
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
    return write_model(model)


def split_wide_convolutions(
    tflite_bytes: bytes, max_input_channels: int = FLOAT_CONV_MAX_INPUT_CHANNELS
) -> bytes:
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
    model = read_model(tflite_bytes)
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
            if (
                max(oc.builtinCode, oc.deprecatedBuiltinCode) != conv_code
                or data is None
                or w.type != fb.TensorType.FLOAT32
                or parts < 2
                or cin % parts
            ):
                new_ops.append(op)
                continue
            new_ops += _split_conv(
                model,
                g,
                op,
                np.frombuffer(bytes(bytearray(data)), "<f4").reshape([int(d) for d in w.shape]),
                parts,
            )
            split_weights.add(op.inputs[1])
            changed = True
        g.operators = new_ops
        still_read = {i for op in new_ops for i in op.inputs}
        for i in split_weights - still_read:
            g.tensors[i].buffer = 0  # the whole kernel, now in parts: its buffer is dropped
    if not changed:
        return tflite_bytes
    _drop_unused_buffers(model)
    return write_model(model)


def _split_conv(model, g, op, kernel, parts):
    """The ops that replace ``op`` (see :func:`split_wide_convolutions`)."""

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
    ops = [
        operator(split, [axis, op.inputs[0]], pieces, fb.BuiltinOptions.SplitOptions, split_opts)
    ]
    activation = op.builtinOptions.fusedActivationFunction
    bias = op.inputs[2] if len(op.inputs) > 2 else -1
    zero_bias = None
    partial = []
    for j in range(parts):
        w = constant(
            f"{base}/part{j}", np.ascontiguousarray(kernel[..., j * group : (j + 1) * group], "<f4")
        )
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
    model = read_model(tflite_bytes)
    dequantize = _opcode_index(model, fb.BuiltinOperator.DEQUANTIZE, version=3)
    f16_max = float(np.finfo(np.float16).max)
    for g in model.subgraphs:
        read = sorted({i for op in g.operators for i in op.inputs if i >= 0})
        new_ops = []
        for i in read:
            t = g.tensors[i]
            data = model.buffers[t.buffer].data if t.buffer else None
            name = t.name.decode() if t.name else ""
            if (
                t.type != fb.TensorType.FLOAT32
                or data is None
                or len(data) < 8
                or any(f in name for f in keep_float)
                or (only is not None and not any(f in name for f in only))
            ):
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
    return write_model(model)


def _opcode_index(model, builtin: int, version: int) -> int:
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
