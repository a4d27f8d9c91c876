"""TFLite model metadata for the MediaPipe ``AudioClassifier`` task, without tflite-support.

``tflite-support`` (the usual metadata writer) pins ``protobuf<4`` and cannot be installed
next to TensorFlow 2.21, so this module writes the metadata itself (read back by
:mod:`panns_keras.runtime.tflite_metadata`):

* the ``ModelMetadata`` flatbuffer (schema ``metadata_schema.fbs`` of
  tensorflow/tflite-support, file identifier ``"M001"``) is built by hand with the
  ``flatbuffers`` builder API;
* it is stored in a new ``Buffer`` of the TFLite ``Model`` and referenced by a ``Metadata``
  entry named ``"TFLITE_METADATA"`` (this is how MediaPipe's ``ModelMetadataExtractor`` finds
  it);
* associated files (here the ``labels.txt`` class list) are stored, *uncompressed*, in a zip
  archive appended to the end of the ``.tflite`` file; MediaPipe memory-maps entries out of
  that archive and rejects compressed ones.

What MediaPipe's audio classifier reads (``audio_classifier_graph.cc``,
``audio_tensor_specs.cc``, ``classification_postprocessing_graph.cc``):

* exactly one subgraph and exactly one input: a float32/float16 tensor of rank 1 or 2 with
  static dimensions, ``[1, num_samples * channels]`` (batch must be 1, channels interleaved);
* ``AudioProperties(sample_rate, channels)`` as content properties of input tensor #0;
* *every* model output is a classification head (float32 ``[1, num_classes]``), and the
  number of ``output_tensor_metadata`` entries must equal the number of outputs. The first
  ``TENSOR_AXIS_LABELS`` file of a head gives the category names. Extra outputs (e.g. an
  embedding) therefore become extra unlabeled "heads" in the results; export a model whose
  only output is ``clipwise_output`` for MediaPipe.
"""

# ruff: noqa: F405 (field ids come from metadata_schema)
from __future__ import annotations

import io
import warnings
import zipfile
from collections.abc import Sequence

import flatbuffers
import numpy as np

from panns_keras.export.flatbuffer_io import decode, read_model, tflite_schema, write_model
from panns_keras.runtime.metadata_schema import *  # noqa: F403 (the schema's field ids)
from panns_keras.runtime.metadata_schema import (
    LABELS_FILE_NAME,
    METADATA_BUFFER_NAME,
    METADATA_FILE_IDENTIFIER,
    MIN_PARSER_VERSION,
)

__all__ = ["add_audio_classifier_metadata"]


# =========================================================================================
# Writing the ModelMetadata flatbuffer
# =========================================================================================
def _offset_vector(builder: flatbuffers.Builder, offsets: Sequence[int]) -> int:
    builder.StartVector(4, len(offsets), 4)
    for off in reversed(offsets):
        builder.PrependUOffsetTRelative(off)
    return builder.EndVector()


def _string(builder: flatbuffers.Builder, text: str | None) -> int | None:
    return None if text is None else builder.CreateString(text)


def _add_offset(builder: flatbuffers.Builder, slot: int, off: int | None) -> None:
    if off is not None:
        builder.PrependUOffsetTRelativeSlot(slot, off, 0)


def _build_associated_file(
    builder: flatbuffers.Builder, name: str, description: str | None, file_type: int
) -> int:
    name_off = _string(builder, name)
    desc_off = _string(builder, description)
    builder.StartObject(AF_NUM_FIELDS)
    _add_offset(builder, AF_NAME, name_off)
    _add_offset(builder, AF_DESCRIPTION, desc_off)
    builder.PrependInt8Slot(AF_TYPE, file_type, 0)
    return builder.EndObject()


def _build_content(builder: flatbuffers.Builder, props_type: int, props_off: int) -> int:
    builder.StartObject(3)
    builder.PrependUint8Slot(CONTENT_PROPS_TYPE, props_type, 0)
    builder.PrependUOffsetTRelativeSlot(CONTENT_PROPS, props_off, 0)
    return builder.EndObject()


def _build_audio_content(builder: flatbuffers.Builder, sample_rate: int, channels: int) -> int:
    builder.StartObject(2)
    builder.PrependUint32Slot(AUDIO_SAMPLE_RATE, sample_rate, 0)
    builder.PrependUint32Slot(AUDIO_CHANNELS, channels, 0)
    props = builder.EndObject()
    return _build_content(builder, AUDIO_PROPERTIES, props)


def _build_feature_content(builder: flatbuffers.Builder) -> int:
    builder.StartObject(0)  # FeatureProperties has no fields
    props = builder.EndObject()
    return _build_content(builder, FEATURE_PROPERTIES, props)


def _build_tensor_metadata(
    builder: flatbuffers.Builder,
    name: str,
    description: str | None,
    content: int | None = None,
    associated_files: Sequence[int] = (),
) -> int:
    name_off = _string(builder, name)
    desc_off = _string(builder, description)
    files_off = _offset_vector(builder, associated_files) if associated_files else None
    builder.StartObject(TM_NUM_FIELDS)
    _add_offset(builder, TM_NAME, name_off)
    _add_offset(builder, TM_DESCRIPTION, desc_off)
    _add_offset(builder, TM_CONTENT, content)
    _add_offset(builder, TM_ASSOCIATED_FILES, files_off)
    return builder.EndObject()


def _build_model_metadata(
    *,
    model_name: str,
    description: str,
    version: str,
    author: str | None,
    license_text: str | None,
    input_name: str,
    sample_rate: int,
    channels: int,
    outputs: Sequence[tuple[str, bool]],
    num_classes: int,
) -> bytes:
    """Serialises a ``ModelMetadata`` table; ``outputs`` is ``(name, is_score)`` per output."""
    b = flatbuffers.Builder(1024)

    audio_content = _build_audio_content(b, sample_rate, channels)
    input_md = _build_tensor_metadata(
        b,
        input_name,
        f"Mono/interleaved float waveform in [-1, 1] at {sample_rate} Hz.",
        content=audio_content,
    )

    output_mds = []
    for out_name, is_score in outputs:
        if is_score:
            labels = _build_associated_file(
                b, LABELS_FILE_NAME, f"Names of the {num_classes} classes.", TENSOR_AXIS_LABELS
            )
            content = _build_feature_content(b)
            output_mds.append(
                _build_tensor_metadata(
                    b,
                    out_name,
                    "Clip-wise probability of each class (sigmoid output).",
                    content=content,
                    associated_files=[labels],
                )
            )
        else:
            output_mds.append(
                _build_tensor_metadata(b, out_name, "Auxiliary output (not class scores).")
            )

    inputs_vec = _offset_vector(b, [input_md])
    outputs_vec = _offset_vector(b, output_mds)
    b.StartObject(SG_NUM_FIELDS)
    b.PrependUOffsetTRelativeSlot(SG_INPUT_TENSOR_METADATA, inputs_vec, 0)
    b.PrependUOffsetTRelativeSlot(SG_OUTPUT_TENSOR_METADATA, outputs_vec, 0)
    subgraph = b.EndObject()

    name_off = b.CreateString(model_name)
    desc_off = b.CreateString(description)
    version_off = b.CreateString(version)
    author_off = _string(b, author)
    license_off = _string(b, license_text)
    parser_off = b.CreateString(MIN_PARSER_VERSION)
    subgraphs_vec = _offset_vector(b, [subgraph])
    b.StartObject(MM_NUM_FIELDS)
    b.PrependUOffsetTRelativeSlot(MM_NAME, name_off, 0)
    b.PrependUOffsetTRelativeSlot(MM_DESCRIPTION, desc_off, 0)
    b.PrependUOffsetTRelativeSlot(MM_VERSION, version_off, 0)
    b.PrependUOffsetTRelativeSlot(MM_SUBGRAPH_METADATA, subgraphs_vec, 0)
    _add_offset(b, MM_AUTHOR, author_off)
    _add_offset(b, MM_LICENSE, license_off)
    b.PrependUOffsetTRelativeSlot(MM_MIN_PARSER_VERSION, parser_off, 0)
    root = b.EndObject()
    b.Finish(root, file_identifier=METADATA_FILE_IDENTIFIER)
    return bytes(b.Output())


def _output_names(model, subgraph) -> list[str]:
    """Signature-def key of each subgraph output if available, else the tensor name."""
    names = [decode(subgraph.tensors[i].name) for i in subgraph.outputs]
    for sig in model.signatureDefs or []:
        if sig.subgraphIndex != 0:
            continue
        by_index = {m.tensorIndex: decode(m.name) for m in sig.outputs or []}
        names = [by_index.get(t, n) for t, n in zip(subgraph.outputs, names, strict=True)]
    return names


def _find_score_output(model, subgraph, output_name: str) -> int:
    names = _output_names(model, subgraph)
    if output_name in names:
        return names.index(output_name)
    tensor_names = [decode(subgraph.tensors[i].name) for i in subgraph.outputs]
    matches = [k for k, n in enumerate(tensor_names) if output_name in n]
    if len(matches) == 1:
        return matches[0]
    if len(subgraph.outputs) == 1:
        return 0
    raise ValueError(
        f"cannot find score output {output_name!r} among model outputs {names} "
        f"(tensor names {tensor_names})"
    )


def _append_zip(model_bytes: bytes, files: dict[str, bytes]) -> bytes:
    stream = io.BytesIO(model_bytes)
    stream.seek(0, io.SEEK_END)
    # Mode "a" on data that is not a zip appends an archive whose offsets count from the start
    # of the whole file, which is what minizip (used by MediaPipe) expects.
    with zipfile.ZipFile(stream, mode="a", compression=zipfile.ZIP_STORED) as zf:
        for name, content in files.items():
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            zf.writestr(info, content)
    return stream.getvalue()


def add_audio_classifier_metadata(
    tflite_bytes: bytes,
    *,
    labels: Sequence[str],
    sample_rate: int,
    channels: int = 1,
    model_name: str,
    description: str,
    version: str,
    input_name: str = "waveform",
    output_name: str = "clipwise_output",
    score_output_index: int | None = None,
    author: str | None = None,
    license_text: str | None = None,
    extra_files: dict[str, bytes] | None = None,
    warn_extra_outputs: bool = True,
    output_tensor_names: Sequence[str] | None = None,
) -> bytes:
    """Returns a copy of a ``.tflite`` model with MediaPipe ``AudioClassifier`` metadata.

    Args:
      tflite_bytes: the converted model (any existing ``TFLITE_METADATA`` and appended zip
        archive are replaced).
      labels: one class name per score; must match the score output's last dimension.
      sample_rate: sample rate (Hz) the model expects; MediaPipe resamples input to it.
      channels: channel count of the input (interleaved); the input's last dimension must be
        a multiple of it.
      model_name, description, version, author, license_text: free-text model information.
      input_name: name given to the (single) input tensor in the metadata.
      output_name: the class-score output, looked up by signature-def output key, then by
        tensor name; if the model has a single output it is used whatever its name. It is
        also the name written to the metadata (MediaPipe reports it as ``head_name``).
      extra_files: more files for the appended zip (name -> bytes), e.g. a JSON description.
      warn_extra_outputs: warn when the model has outputs besides the scores (MediaPipe
        reports each as a head); off for the non-MediaPipe variants, which keep them.
      output_tensor_names: new names of the output tensors, in output order (what
        ``get_output_details()`` reports), e.g. the signature's output names.
      score_output_index: position of the score output among the model outputs, overriding
        the lookup by name (models converted from a frozen concrete function lose their
        output names: they become ``Identity``, ``Identity_1``, ... or ``output_0``, ...).

    Returns:
      The new ``.tflite`` bytes: the model flatbuffer with one more buffer holding the
      ``ModelMetadata`` flatbuffer (identifier ``M001``) and a ``TFLITE_METADATA`` metadata
      entry pointing at it, followed by an uncompressed zip holding ``labels.txt``.
    """
    schema = tflite_schema()
    labels = [str(label) for label in labels]
    if not labels:
        raise ValueError("labels must not be empty")
    bad = [label for label in labels if "\n" in label or "\r" in label or not label]
    if bad:
        raise ValueError(f"labels must be non-empty single-line strings; got {bad[:3]}")
    if int(sample_rate) <= 0 or int(channels) <= 0:
        raise ValueError("sample_rate and channels must be positive")

    model = read_model(tflite_bytes)
    if len(model.subgraphs) != 1:
        raise ValueError(f"MediaPipe needs a single-subgraph model; got {len(model.subgraphs)}")
    subgraph = model.subgraphs[0]
    if len(subgraph.inputs) != 1:
        raise ValueError(f"MediaPipe needs a single-input model; got {len(subgraph.inputs)}")

    if output_tensor_names is not None:
        if len(output_tensor_names) != len(subgraph.outputs):
            raise ValueError(
                f"{len(output_tensor_names)} names for {len(subgraph.outputs)} outputs"
            )
        for name, tensor_index in zip(output_tensor_names, subgraph.outputs):
            subgraph.tensors[tensor_index].name = str(name).encode()

    in_tensor = subgraph.tensors[subgraph.inputs[0]]
    in_shape = [int(d) for d in (in_tensor.shape if in_tensor.shape is not None else [])]
    if in_tensor.type not in (TFLITE_FLOAT32, TFLITE_FLOAT16):
        raise ValueError("the input tensor must be float32 or float16")
    if not 1 <= len(in_shape) <= 2 or min(in_shape) < 1:
        raise ValueError(f"the input must have a static 1-D or 2-D shape; got {in_shape}")
    if len(in_shape) == 2 and in_shape[0] != 1:
        raise ValueError(f"the input batch dimension must be 1; got {in_shape}")
    if in_shape[-1] % channels:
        raise ValueError(f"input length {in_shape[-1]} is not a multiple of channels={channels}")

    if score_output_index is None:
        score_index = _find_score_output(model, subgraph, output_name)
    elif 0 <= score_output_index < len(subgraph.outputs):
        score_index = int(score_output_index)
    else:
        raise ValueError(
            f"score_output_index {score_output_index} out of range for "
            f"{len(subgraph.outputs)} outputs"
        )
    for position, tensor_index in enumerate(subgraph.outputs):
        out = subgraph.tensors[tensor_index]
        if out.type != TFLITE_FLOAT32:
            raise ValueError(f"output #{position} must be float32 for MediaPipe")
    score_tensor = subgraph.tensors[subgraph.outputs[score_index]]
    score_shape = [int(d) for d in score_tensor.shape]
    if (
        not score_shape
        or score_shape[-1] != len(labels)
        or int(np.prod(score_shape)) != len(labels)
    ):
        raise ValueError(
            f"score output shape {score_shape} does not match {len(labels)} labels "
            "(expected [1, num_labels])"
        )

    names = _output_names(model, subgraph)
    if len(names) > 1 and warn_extra_outputs:
        warnings.warn(
            f"the model has {len(names)} outputs {names}; MediaPipe's AudioClassifier treats "
            "every output as a classification head, so the extra ones appear as unlabeled "
            "heads in its results. Export a model whose only output is the class scores.",
            stacklevel=2,
        )
    outputs = [
        (output_name if k == score_index else (names[k] or f"output_{k}"), k == score_index)
        for k in range(len(subgraph.outputs))
    ]
    metadata_bytes = _build_model_metadata(
        model_name=model_name,
        description=description,
        version=version,
        author=author,
        license_text=license_text,
        input_name=input_name,
        sample_rate=int(sample_rate),
        channels=int(channels),
        outputs=outputs,
        num_classes=len(labels),
    )

    # Drop a previous TFLITE_METADATA entry (its buffer is emptied, not removed, so that no
    # buffer index changes), then add the new one.
    kept = []
    for entry in model.metadata or []:
        if decode(entry.name) == METADATA_BUFFER_NAME:
            model.buffers[entry.buffer].data = None
        else:
            kept.append(entry)
    buffer_t = schema.BufferT()
    buffer_t.data = np.frombuffer(metadata_bytes, dtype=np.uint8)
    model.buffers.append(buffer_t)
    entry = schema.MetadataT()
    entry.name = METADATA_BUFFER_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata = [*kept, entry]

    labels_file = ("\n".join(labels) + "\n").encode("utf-8")
    files = {LABELS_FILE_NAME: labels_file, **(extra_files or {})}
    return _append_zip(write_model(model), files)
