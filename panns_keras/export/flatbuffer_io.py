"""Reading and writing a TFLite ``Model`` flatbuffer through the generated object API.

The one place that unpacks a ``.tflite`` into ``ModelT`` objects (:func:`read_model`) and
packs it back (:func:`write_model`, with 16-byte aligned buffers); the rewrites in
:mod:`panns_keras.export.tflite_rewrite` and the metadata writer use it.
"""

from __future__ import annotations

import flatbuffers
import numpy as np

from panns_keras.runtime.metadata_schema import BUFFER_ALIGNMENT, TFLITE_FILE_IDENTIFIER


# =========================================================================================
# Editing the TFLite Model flatbuffer
# =========================================================================================
def tflite_schema():
    # TensorFlow ships the generated Python module of the TFLite schema (object API).
    from tensorflow.lite.python import schema_py_generated

    return schema_py_generated


def decode(name) -> str:
    if name is None:
        return ""
    return name.decode("utf-8") if isinstance(name, (bytes, bytearray)) else str(name)


class AlignedBuffer:
    """Packs a TFLite ``Buffer`` with its data 16-byte aligned (schema ``force_align: 16``).

    The generated ``BufferT.Pack`` only aligns ``data`` to 4 bytes; constant tensors are used
    in place by the runtime, so keep the alignment the converter gave them.
    """

    def __init__(self, buffer_t):
        self._buf = buffer_t

    def Pack(self, builder: flatbuffers.Builder) -> int:
        schema = tflite_schema()
        data = self._buf.data
        data_off = None
        if data is not None:
            payload = (
                np.ascontiguousarray(data, dtype=np.uint8).tobytes()
                if isinstance(data, np.ndarray)
                else bytes(bytearray(data))
            )
            n = len(payload)
            builder.StartVector(1, n, BUFFER_ALIGNMENT)
            builder.head = builder.head - n
            builder.Bytes[builder.head : builder.head + n] = payload
            data_off = builder.EndVector()
        schema.BufferStart(builder)
        if data_off is not None:
            schema.BufferAddData(builder, data_off)
        schema.BufferAddOffset(builder, self._buf.offset)
        schema.BufferAddSize(builder, self._buf.size)
        return schema.BufferEnd(builder)


def read_model(tflite_bytes: bytes):
    from tensorflow.lite.tools import flatbuffer_utils

    data = bytearray(tflite_bytes)
    if bytes(data[4:8]) != TFLITE_FILE_IDENTIFIER:
        raise ValueError("not a TFLite flatbuffer (file identifier is not 'TFL3')")
    return flatbuffer_utils.read_model_from_bytearray(data)


def write_model(model) -> bytes:
    model.buffers = [AlignedBuffer(buf) for buf in model.buffers]
    builder = flatbuffers.Builder(1024 * 1024)
    builder.Finish(model.Pack(builder), file_identifier=TFLITE_FILE_IDENTIFIER)
    return bytes(builder.Output())
