"""ONNX export through tf2onnx: ``waveform[batch, samples] -> clipwise_output, embedding``.

The ONNX graph is converted from a ``tf.function`` like the SavedModel's serving function
but with the model's variables as extra inputs (:func:`_weights_as_inputs`), so batch and
length stay dynamic, inputs shorter than ``spec.min_samples`` are zero-padded inside the
graph, and tf2onnx handles a graph without weights; the weights are then written as ONNX
initializers. Cnn14's export peak RSS went from 17-19 GB (tf2onnx freezing and optimizing
the constants) to 3.6 GB, the onnxruntime re-check included (BUILD_NOTES.md). Constant
subgraphs over the weights (weight transposes, batch-norm scale and shift) are evaluated
once at export (:func:`_fold_constants`). The DFT-kernel front end becomes plain ONNX ops
(``Pad`` reflect, ``Reshape`` / ``Slice`` / ``Concat`` framing, ``MatMul``, ``Log``,
``Max``): no custom domain and no FFT op. Class names, sample rate and output order travel in the
model's ``metadata_props`` (``labels`` is one display name per line).

Optional dependencies (the ``onnx`` extra): tf2onnx, onnx and onnxruntime; the last runs the
post-export check.
"""

from __future__ import annotations

import json
import logging as pylogging

import numpy as np
from absl import logging

from panns_keras.artifact import CLIPWISE, ArtifactInfo
from panns_keras.errors import UserError
from panns_keras.export import common
from panns_keras.fileio import atomic_write
from panns_keras.runtime.onnx import INFO_FORMAT, INFO_KEY, OnnxRunner

OPSET = 17
# max |score diff| between onnxruntime and Keras (float32 both; measured ~5e-6 on Cnn6).
TOLERANCE = 1e-4
PIP_HINT = "pip install 'panns-keras[onnx]' (tf2onnx==1.17.0 onnx==1.23.2 onnxruntime==1.32.0)"


def require_onnx() -> None:
    """Raises a one-line :class:`UserError` when the ONNX packages are missing."""
    missing = []
    for module, package in (
        ("tf2onnx", "tf2onnx"),
        ("onnx", "onnx"),
        ("onnxruntime", "onnxruntime"),
    ):
        try:
            __import__(module)
        except ImportError:
            missing.append(package)
    if missing:
        raise UserError(f"onnx: export needs {', '.join(missing)}: {PIP_HINT}")


def _weights_as_inputs(model, keys):
    """``(tf.function, input_signature, weights)``: the serving function with every model
    variable as an extra input ``w<i>`` (Keras ``stateless_call``), so the traced graph holds
    no weights. tf2onnx then never freezes or optimizes hundreds of MB of constants: that
    is what took Cnn14's conversion to 17-19 GB. The weights go in afterwards as ONNX
    initializers (:func:`_inline_weights`)."""
    import tensorflow as tf

    trainable = list(model.trainable_variables)
    variables = trainable + list(model.non_trainable_variables)
    n_t = len(trainable)
    specs = [tf.TensorSpec([None, None], tf.float32, name="waveform")]
    specs += [tf.TensorSpec(v.shape, v.dtype, name=f"w{i}") for i, v in enumerate(variables)]

    @tf.function(input_signature=specs)
    def serve(waveform, *weights):  # the model pads inputs shorter than its minimum itself
        out, _ = model.stateless_call(
            list(weights[:n_t]), list(weights[n_t:]), waveform, training=False
        )
        return {k: tf.identity(out[k], name=k) for k in keys}

    return serve, specs, variables


def _inline_weights(proto, variables) -> None:
    """Turns the ``w<i>`` graph inputs into initializers holding the variables' values,
    drops the ones no node reads, and folds ``Transpose`` nodes that only reorder a weight
    (tf2onnx's HWIO -> OIHW kernels) into the stored array."""
    from onnx import helper, numpy_helper

    graph = proto.graph
    used = {name for node in graph.node for name in node.input}
    weights = {}
    keep = []
    for inp in graph.input:
        head = inp.name.split(":")[0]
        if head.startswith("w") and head[1:].isdigit():
            if inp.name in used:
                weights[inp.name] = variables[int(head[1:])].numpy()
        else:
            keep.append(inp)
    readers = {}
    for node in graph.node:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
    folded = []
    for node in graph.node:
        if node.op_type == "Transpose" and node.input[0] in weights and readers[node.input[0]] == 1:
            perm = next(
                (helper.get_attribute_value(a) for a in node.attribute if a.name == "perm"), None
            )
            value = weights.pop(node.input[0])
            weights[node.output[0]] = np.ascontiguousarray(np.transpose(value, perm))
            folded.append(node)
    for node in folded:
        graph.node.remove(node)
    _fold_constants(graph, weights)
    del graph.input[:]
    graph.input.extend(keep)
    for name, value in weights.items():
        graph.initializer.append(numpy_helper.from_array(value, name=name))


def _fold_constants(graph, values: dict) -> None:
    """Evaluates (onnx's reference evaluator) every node whose inputs are all in ``values``
    or initializers (batch-norm scale / shift from the variance, ...), in graph order, and
    stores its outputs in ``values`` instead; unread initializers are dropped."""
    from onnx import helper, numpy_helper
    from onnx.reference import ReferenceEvaluator

    known = dict(values)
    known.update({t.name: numpy_helper.to_array(t) for t in graph.initializer})
    outputs = {o.name for o in graph.output}
    folded = []
    for node in graph.node:
        if not node.input or any(o in outputs for o in node.output):
            continue
        if not all(name == "" or name in known for name in node.input):
            continue
        names = [n for n in dict.fromkeys(node.input) if n]
        inputs = [
            helper.make_tensor_value_info(
                n, helper.np_dtype_to_tensor_dtype(known[n].dtype), known[n].shape
            )
            for n in names
        ]
        outs = [helper.make_tensor_value_info(o, 0, None) for o in node.output]
        single = helper.make_model(
            helper.make_graph([node], "fold", inputs, outs),
            opset_imports=[helper.make_opsetid("", OPSET)],
        )
        results = ReferenceEvaluator(single).run(None, {n: known[n] for n in names})
        for name, value in zip(node.output, results):
            known[name] = values[name] = np.asarray(value)
        folded.append(node)
    for node in folded:
        graph.node.remove(node)
    read = {name for node in graph.node for name in node.input} | outputs
    for name in [n for n in values if n not in read]:
        del values[name]
    unused = [t for t in graph.initializer if t.name not in read]
    for t in unused:
        graph.initializer.remove(t)


def convert(model, labels=None, opset: int = OPSET) -> bytes:
    """Serialized ONNX model of ``model`` (an AudioTagger); see the module doc."""
    require_onnx()
    import tf2onnx

    from panns_keras.models.conv import plain_convolutions

    keys = common.output_keys(model)
    serve, specs, variables = _weights_as_inputs(model, keys)
    with plain_convolutions():  # one Conv op per layer: traced here; from_function reuses it
        serve.get_concrete_function()
    tf2onnx_log = pylogging.getLogger("tf2onnx")
    level = tf2onnx_log.level
    tf2onnx_log.setLevel(pylogging.WARNING)  # its INFO lines narrate every optimizer pass
    try:
        proto, _ = tf2onnx.convert.from_function(serve, input_signature=specs, opset=opset)
    finally:
        tf2onnx_log.setLevel(level)
    _inline_weights(proto, variables)
    outputs = [o.name for o in proto.graph.output]
    if sorted(outputs) != sorted(keys):
        raise common.ExportVerificationError(f"onnx: outputs {outputs}, expected {list(keys)}")
    if [i.name for i in proto.graph.input] != ["waveform"]:
        raise common.ExportVerificationError(
            f"onnx: inputs {[i.name for i in proto.graph.input]}, expected ['waveform']"
        )
    names = common.label_names(model, labels)
    info = ArtifactInfo.of_model(model, INFO_FORMAT, keys, names)
    meta = {
        "labels": "\n".join(names),
        "sample_rate": str(int(model.spec.sample_rate)),
        "model": model.spec.name,
        "outputs": json.dumps(list(keys)),
        INFO_KEY: json.dumps(info.to_json()),
    }
    for key, value in meta.items():
        prop = proto.metadata_props.add()
        prop.key, prop.value = key, value
    proto.producer_name = "panns_keras"
    return proto.SerializeToString()


def op_types(onnx_bytes: bytes) -> list[str]:
    """Sorted ``domain:op_type`` names (``op_type`` alone for the default ONNX domain)."""
    import onnx

    proto = onnx.load_from_string(onnx_bytes)
    return sorted({f"{n.domain}:{n.op_type}" if n.domain else n.op_type for n in proto.graph.node})


def verify_onnx(model, onnx_bytes, inputs) -> dict:
    """Compares onnxruntime with Keras on ``inputs`` (and a shorter cut of them)."""
    bad = [op for op in op_types(onnx_bytes) if ":" in op]
    if bad:
        raise common.ExportVerificationError(f"onnx: non-standard ops {bad}")
    runner = OnnxRunner(onnx_bytes)
    inputs = np.asarray(inputs, np.float32)
    cut = inputs[:1, : max(1, inputs.shape[1] // 2 + 7)]  # another length: dynamic axes
    stats = None
    for x in (inputs, cut):
        got = common.batched(runner, x)
        ref = common.batched(lambda v: model(v, training=False), x)
        checker = common.FloatCheck("onnx", model, x, TOLERANCE)
        s = checker.scores(common.compare_scores(ref[CLIPWISE], got[CLIPWISE]))
        for key in common.output_keys(model)[1:]:
            checker.output(key, ref[key], got[key])
        stats = stats or s
    return stats


def export_onnx(model, out_path, *, labels=None, verify_inputs=None, opset=OPSET) -> dict:
    """Writes ``model`` as ONNX to ``out_path`` after checking it in onnxruntime.

    Args:
      labels: Labels, (mid, name) pairs or names; default ``model.labels``.
      verify_inputs: float32 ``[n, samples]`` for the check (default: synthetic 2 s).

    Returns:
      dict with ``path``, ``outputs`` (names in order), ``bytes``, ``ops``, ``opset`` and
      the check's ``stats``.

    Raises:
      UserError: tf2onnx / onnxruntime missing.
      ExportVerificationError: onnxruntime scores differ by more than TOLERANCE, or by
        more than the model's own float32 noise times common.NOISE_FACTOR when that is
        larger (common.FloatCheck).
    """
    content = convert(model, labels, opset)
    if verify_inputs is None:
        sr = int(model.spec.sample_rate)
        verify_inputs = common.synthetic_windows(sr, 2 * sr)
    stats = verify_onnx(model, content, np.atleast_2d(verify_inputs))
    out_path = atomic_write(out_path, content)
    logging.info("wrote %s (%d bytes): %s", out_path, len(content), stats)
    return {
        "path": str(out_path),
        "input": "waveform [batch, samples] float32",
        "outputs": list(common.output_keys(model)),
        "bytes": len(content),
        "ops": op_types(content),
        "opset": opset,
        "stats": stats,
    }
