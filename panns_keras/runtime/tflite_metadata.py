"""Reading the MediaPipe / TFLite metadata of a ``.tflite`` back (:func:`read_metadata`).

Written by :mod:`panns_keras.export.tflite_metadata`; field ids in
:mod:`panns_keras.runtime.metadata_schema`. Parsed with ``flatbuffers``' public ``Table``
reader, so no TensorFlow is needed here.
"""

# ruff: noqa: F405 (field ids come from metadata_schema)
from __future__ import annotations

import io
import zipfile

from flatbuffers import encode, number_types
from flatbuffers.table import Table

from panns_keras.runtime.metadata_schema import *  # noqa: F403 (the schema's field ids)
from panns_keras.runtime.metadata_schema import METADATA_BUFFER_NAME, METADATA_FILE_IDENTIFIER

__all__ = [
    "field_scalar",
    "field_string",
    "field_table",
    "field_tables",
    "read_metadata",
    "root_table",
    "vector_start",
]


def root_table(buf: bytearray) -> Table:
    """The root table of a flatbuffer."""
    return Table(buf, encode.Get(number_types.UOffsetTFlags.packer_type, buf, 0))


def vector_start(tab: Table, field_id: int) -> int | None:
    """Byte position of the first element of vector field ``field_id`` (None when absent)."""
    o = tab.Offset(4 + 2 * field_id)
    return tab.Vector(o) if o else None


def _decode(name) -> str:
    if name is None:
        return ""
    return name.decode("utf-8") if isinstance(name, (bytes, bytearray)) else str(name)


# =========================================================================================
def _vt(field_id: int) -> int:
    return 4 + 2 * field_id


def field_string(tab: Table, field_id: int) -> str | None:
    o = tab.Offset(_vt(field_id))
    return tab.String(o + tab.Pos).decode("utf-8") if o else None


def field_scalar(tab: Table, field_id: int, flags, default=0):
    o = tab.Offset(_vt(field_id))
    return tab.Get(flags, o + tab.Pos) if o else default


def field_table(tab: Table, field_id: int) -> Table | None:
    o = tab.Offset(_vt(field_id))
    return Table(tab.Bytes, tab.Indirect(o + tab.Pos)) if o else None


def field_tables(tab: Table, field_id: int) -> list[Table]:
    o = tab.Offset(_vt(field_id))
    if not o:
        return []
    start = tab.Vector(o)
    return [Table(tab.Bytes, tab.Indirect(start + 4 * i)) for i in range(tab.VectorLen(o))]


def _parse_associated_file(tab: Table) -> dict:
    ftype = field_scalar(tab, AF_TYPE, number_types.Int8Flags)
    return {
        "name": field_string(tab, AF_NAME),
        "description": field_string(tab, AF_DESCRIPTION),
        "type": ASSOCIATED_FILE_TYPES.get(ftype, str(ftype)),
        "locale": field_string(tab, AF_LOCALE),
        "version": field_string(tab, AF_VERSION),
    }


def _parse_content(tab: Table | None) -> dict | None:
    if tab is None:
        return None
    props_type = field_scalar(tab, CONTENT_PROPS_TYPE, number_types.Uint8Flags)
    if props_type == 0:
        return None
    result = {"type": CONTENT_PROPERTIES.get(props_type, str(props_type))}
    props = field_table(tab, CONTENT_PROPS)
    if props_type == AUDIO_PROPERTIES and props is not None:
        result["sample_rate"] = field_scalar(props, AUDIO_SAMPLE_RATE, number_types.Uint32Flags)
        result["channels"] = field_scalar(props, AUDIO_CHANNELS, number_types.Uint32Flags)
    return result


def _parse_tensor_metadata(tab: Table) -> dict:
    units = []
    for pu in field_tables(tab, TM_PROCESS_UNITS):
        kind = field_scalar(pu, PU_OPTIONS_TYPE, number_types.Uint8Flags)
        units.append(PROCESS_UNIT_OPTIONS.get(kind, str(kind)))
    return {
        "name": field_string(tab, TM_NAME),
        "description": field_string(tab, TM_DESCRIPTION),
        "content": _parse_content(field_table(tab, TM_CONTENT)),
        "process_units": units,
        "associated_files": [
            _parse_associated_file(f) for f in field_tables(tab, TM_ASSOCIATED_FILES)
        ],
    }


def _parse_model_metadata(buf: bytes) -> dict:
    if buf[4:8] != METADATA_FILE_IDENTIFIER:
        raise ValueError(f"metadata file identifier is {bytes(buf[4:8])!r}, expected 'M001'")
    data = bytearray(buf)
    root = root_table(data)
    subgraphs = []
    for sg in field_tables(root, MM_SUBGRAPH_METADATA):
        subgraphs.append(
            {
                "name": field_string(sg, SG_NAME),
                "description": field_string(sg, SG_DESCRIPTION),
                "inputs": [
                    _parse_tensor_metadata(t) for t in field_tables(sg, SG_INPUT_TENSOR_METADATA)
                ],
                "outputs": [
                    _parse_tensor_metadata(t) for t in field_tables(sg, SG_OUTPUT_TENSOR_METADATA)
                ],
                "associated_files": [
                    _parse_associated_file(f) for f in field_tables(sg, SG_ASSOCIATED_FILES)
                ],
            }
        )
    return {
        "name": field_string(root, MM_NAME),
        "description": field_string(root, MM_DESCRIPTION),
        "version": field_string(root, MM_VERSION),
        "author": field_string(root, MM_AUTHOR),
        "license": field_string(root, MM_LICENSE),
        "min_parser_version": field_string(root, MM_MIN_PARSER_VERSION),
        "associated_files": [
            _parse_associated_file(f) for f in field_tables(root, MM_ASSOCIATED_FILES)
        ],
        "subgraphs": subgraphs,
    }


def read_metadata(tflite_bytes: bytes) -> dict:
    """Parses the MediaPipe/TFLite metadata of a ``.tflite`` file (as written above).

    Returns:
      dict with ``name``, ``description``, ``version``, ``author``, ``license``,
      ``min_parser_version``, ``associated_files`` and ``subgraphs`` (each with ``inputs`` and
      ``outputs``: lists of tensor dicts with ``name``, ``description``, ``content`` (e.g.
      ``{"type": "AudioProperties", "sample_rate": 32000, "channels": 1}``),
      ``process_units`` and ``associated_files``), plus ``files`` (name -> bytes of the
      appended zip archive) and ``labels`` (lines of the first ``TENSOR_AXIS_LABELS`` file of
      the first output that has one, or ``None``).

    Raises:
      ValueError: if the model has no ``TFLITE_METADATA`` entry.
    """
    from tensorflow.lite.python import schema_py_generated as schema

    data = bytearray(tflite_bytes)
    model = schema.Model.GetRootAs(data, 0)
    metadata_buf = None
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if _decode(entry.Name()) == METADATA_BUFFER_NAME:
            buffer = model.Buffers(entry.Buffer())
            if buffer.Offset():  # large-model layout: data stored after the flatbuffer
                metadata_buf = bytes(data[buffer.Offset() : buffer.Offset() + buffer.Size()])
            else:
                metadata_buf = buffer.DataAsNumpy().tobytes()
            break
    if metadata_buf is None:
        raise ValueError(f"the model has no {METADATA_BUFFER_NAME} metadata")
    result = _parse_model_metadata(metadata_buf)

    files: dict[str, bytes] = {}
    try:
        with zipfile.ZipFile(io.BytesIO(bytes(tflite_bytes))) as zf:
            for info in zf.infolist():
                files[info.filename] = zf.read(info)
    except zipfile.BadZipFile:
        pass
    result["files"] = files

    result["labels"] = None
    for sg in result["subgraphs"][:1]:
        for out in sg["outputs"]:
            names = [
                f["name"] for f in out["associated_files"] if f["type"] == "TENSOR_AXIS_LABELS"
            ]
            if names and names[0] in files:
                result["labels"] = files[names[0]].decode("utf-8").splitlines()
                break
    return result
