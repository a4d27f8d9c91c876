"""The inert stand-ins a torch checkpoint's pickle is rebuilt into, and their numpy arrays.

:mod:`panns_keras.convert.torch_pickle` hands these out for the allow-listed globals of a
``torch.save`` pickle (tensor rebuild calls, dtypes, storage types, numpy arrays); nothing
here runs pickled code. :func:`materialise` turns the loaded graph into plain Python with
numpy arrays in torch layout (C-contiguous copies honouring storage offset, size and stride),
once :mod:`panns_keras.convert.torch_format` has attached each storage's bytes.
"""

from __future__ import annotations

import collections
from typing import Any

import numpy as np


class Refused(Exception):
    """A forbidden global or construct was met while unpickling."""


class Inert:
    """Base of the stand-ins: pickle's BUILD opcode may not modify them."""

    __slots__ = ()

    def __setstate__(self, state: Any) -> None:
        raise Refused(f"refuses to modify {type(self).__name__} with BUILD")


# --------------------------------------------------------------------------------------
# dtypes
# --------------------------------------------------------------------------------------

# torch dtype name -> numpy dtype string (little-endian). "bfloat16" is special-cased.
_TORCH_DTYPES = {
    "float32": "<f4",
    "float": "<f4",
    "float64": "<f8",
    "double": "<f8",
    "float16": "<f2",
    "half": "<f2",
    "bfloat16": "bfloat16",
    "int64": "<i8",
    "long": "<i8",
    "int32": "<i4",
    "int": "<i4",
    "int16": "<i2",
    "short": "<i2",
    "int8": "i1",
    "uint8": "u1",
    "bool": "?",
    "complex64": "<c8",
    "cfloat": "<c8",
    "complex128": "<c16",
    "cdouble": "<c16",
}

_STORAGE_DTYPES = {
    "FloatStorage": "float32",
    "DoubleStorage": "float64",
    "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "ShortStorage": "int16",
    "CharStorage": "int8",
    "ByteStorage": "uint8",
    "BoolStorage": "bool",
    "ComplexFloatStorage": "complex64",
    "ComplexDoubleStorage": "complex128",
    "UntypedStorage": "uint8",
}


class TorchDType(Inert):
    """Stand-in for a ``torch.<dtype>`` global."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    @property
    def itemsize(self) -> int:
        return 2 if self.name == "bfloat16" else np.dtype(_TORCH_DTYPES[self.name]).itemsize

    def __repr__(self) -> str:
        return f"torch.{self.name}"


DTYPE_OBJECTS = {name: TorchDType(name) for name in _TORCH_DTYPES}


class StorageType(Inert):
    """Stand-in for a ``torch.FloatStorage``-like class (only used as a marker)."""

    __slots__ = ("dtype", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.dtype = DTYPE_OBJECTS[_STORAGE_DTYPES[name]]

    def __repr__(self) -> str:
        return f"torch.{self.name}"


STORAGE_OBJECTS = {name: StorageType(name) for name in _STORAGE_DTYPES}


def _bytes_to_array(buf: bytes | memoryview, dtype: TorchDType, big_endian: bool) -> np.ndarray:
    """View raw storage bytes as a 1-D array of ``dtype`` (read-only, no copy where possible)."""
    if dtype.name == "bfloat16":
        raw = np.frombuffer(buf, dtype=">u2" if big_endian else "<u2").astype(np.uint32)
        return (raw << np.uint32(16)).view(np.float32)
    np_dtype = np.dtype(_TORCH_DTYPES[dtype.name])
    if big_endian:
        np_dtype = np_dtype.newbyteorder(">")
    return np.frombuffer(buf, dtype=np_dtype)


# --------------------------------------------------------------------------------------
# object graph stand-ins
# --------------------------------------------------------------------------------------


class StorageRef(Inert):
    """A storage named by a persistent id; bytes are attached once they are read."""

    __slots__ = ("data", "dtype", "key", "numel", "view_of", "view_offset")

    def __init__(self, key: str, dtype: TorchDType, numel: int) -> None:
        self.key = key
        self.dtype = dtype
        self.numel = numel  # elements of ``dtype`` (bytes for untyped storages)
        self.data: bytes | memoryview | None = None
        self.view_of: StorageRef | None = None  # legacy storage views
        self.view_offset = 0

    def raw(self) -> memoryview:
        if self.view_of is not None:
            base = self.view_of.raw()
            start = self.view_offset * self.dtype.itemsize
            stop = start + self.numel * self.dtype.itemsize
            if stop > len(base):
                raise ValueError(f"storage view {self.key!r} exceeds its base storage")
            return base[start:stop]
        if self.data is None:
            raise ValueError(f"storage {self.key!r} has no data")
        return memoryview(self.data)


class TensorRef(Inert):
    """The arguments of one ``rebuild_tensor*`` call, materialised after loading."""

    __slots__ = ("dtype", "offset", "size", "storage", "stride")

    def __init__(self, storage: Any, offset: Any, size: Any, stride: Any, dtype: Any) -> None:
        if not isinstance(storage, StorageRef):
            raise Refused("tensor rebuilt from something that is not a storage")
        if dtype is None:
            dtype = storage.dtype
        if not isinstance(dtype, TorchDType):
            raise Refused("tensor dtype is not a torch dtype")
        self.storage = storage
        self.offset = check_int(offset, "storage offset")
        self.size = check_int_tuple(size, "size")
        self.stride = check_int_tuple(stride, "stride")
        if len(self.size) != len(self.stride):
            raise ValueError(f"size {self.size} and stride {self.stride} differ in length")
        self.dtype = dtype


def check_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"bad tensor {what}: {value!r:.80}")
    return value


def check_int_tuple(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, (tuple, list)):
        raise TypeError(f"bad tensor {what}: {value!r:.80}")
    return tuple(check_int(v, what) for v in value)


def rebuild_tensor(storage, storage_offset, size, stride):
    return TensorRef(storage, storage_offset, size, stride, None)


def rebuild_tensor_v2(
    storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None
):
    return TensorRef(storage, storage_offset, size, stride, None)


def rebuild_tensor_v3(
    storage, storage_offset, size, stride, requires_grad, backward_hooks, dtype, metadata=None
):
    return TensorRef(storage, storage_offset, size, stride, dtype)


def rebuild_parameter(data, requires_grad=True, backward_hooks=None):
    return data


def rebuild_parameter_with_state(data, requires_grad, backward_hooks, state):
    return data


def torch_size(values=()):
    return tuple(values)


class NumpyDType:
    """Stand-in for ``numpy.dtype(obj, align, copy)`` followed by ``__setstate__``."""

    def __init__(self, obj: Any, align: Any = False, copy: Any = False) -> None:
        if not isinstance(obj, str):
            raise Refused("numpy dtype built from a non-string")
        self.obj = obj
        self.order = "|"

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) < 2:
            raise Refused("bad numpy dtype state")
        if len(state) > 3 and state[3] is not None:
            raise Refused("structured numpy dtypes are not supported")
        self.order = state[1]

    def resolve(self) -> np.dtype:
        dtype = np.dtype(self.obj)
        if dtype.hasobject or dtype.fields is not None:
            raise Refused(f"numpy dtype {self.obj!r} is not a plain numeric dtype")
        if self.order in ("<", ">"):
            dtype = dtype.newbyteorder(self.order)
        return dtype


class NumpyArray:
    """Stand-in for ``numpy.core.multiarray._reconstruct`` + ``ndarray.__setstate__``."""

    def __init__(self, cls: Any = None, shape: Any = (0,), dtype: Any = b"b") -> None:
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def resolve(self) -> np.ndarray:
        state = self.state
        if not isinstance(state, tuple) or len(state) != 5:
            raise Refused("bad numpy array state")
        _version, shape, dtype, fortran, raw = state
        if not isinstance(dtype, NumpyDType) or not isinstance(raw, (bytes, bytearray)):
            raise Refused("numpy array with object dtype or non-byte data")
        shape = check_int_tuple(shape, "numpy shape")
        arr = np.frombuffer(bytes(raw), dtype=dtype.resolve())
        arr = arr.reshape(shape, order="F" if fortran else "C")
        return np.array(arr, dtype=arr.dtype.newbyteorder("="))


def numpy_scalar(dtype: Any, raw: Any = None):
    if not isinstance(dtype, NumpyDType) or not isinstance(raw, (bytes, bytearray)):
        raise Refused("numpy scalar with object dtype or non-byte data")
    np_dtype = dtype.resolve()
    return np.frombuffer(bytes(raw), dtype=np_dtype, count=1)[0].astype(np_dtype.newbyteorder("="))


def numpy_frombuffer(buf: Any, dtype: Any, shape: Any, order: Any):
    """Stand-in for ``numpy._core.numeric._frombuffer`` (numpy arrays in pickle protocol 5)."""
    if not isinstance(dtype, NumpyDType) or not isinstance(buf, (bytes, bytearray)):
        raise Refused("numpy array with object dtype or non-byte data")
    shape = check_int_tuple(shape, "numpy shape")
    arr = np.frombuffer(bytes(buf), dtype=dtype.resolve()).reshape(shape, order=order)
    return np.array(arr, dtype=arr.dtype.newbyteorder("="))


def codecs_encode(text: Any, encoding: Any = "utf-8"):
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise Refused("_codecs.encode is only allowed for latin1 text")
    return text.encode("latin1")


# --------------------------------------------------------------------------------------
# materialisation
# --------------------------------------------------------------------------------------


def _tensor_to_array(ref: TensorRef, big_endian: bool) -> np.ndarray:
    raw = ref.storage.raw()
    itemsize = ref.dtype.itemsize
    if len(raw) % itemsize:
        raise ValueError(f"storage {ref.storage.key!r} is not a whole number of elements")
    flat = _bytes_to_array(raw, ref.dtype, big_endian)
    native = flat.dtype.newbyteorder("=")
    if any(n == 0 for n in ref.size):
        return np.zeros(ref.size, dtype=native)
    last = ref.offset + sum((n - 1) * s for n, s in zip(ref.size, ref.stride))
    if last >= flat.size:
        raise ValueError(
            f"tensor (offset {ref.offset}, size {ref.size}, stride {ref.stride}) exceeds its "
            f"storage {ref.storage.key!r} of {flat.size} elements"
        )
    base = flat[ref.offset :]
    strides = tuple(s * flat.dtype.itemsize for s in ref.stride)
    view = np.lib.stride_tricks.as_strided(base, shape=ref.size, strides=strides, writeable=False)
    return np.array(view, dtype=native, order="C", copy=True)


def materialise(obj: Any, big_endian: bool, depth: int = 0) -> Any:
    if depth > 200:
        raise ValueError("object graph nested too deeply")
    if isinstance(obj, TensorRef):
        return _tensor_to_array(obj, big_endian)
    if isinstance(obj, (NumpyArray, NumpyDType)):
        return obj.resolve()
    if isinstance(obj, (StorageRef, StorageType, TorchDType)):
        return obj
    if isinstance(obj, dict):
        out = type(obj)() if isinstance(obj, collections.OrderedDict) else {}
        for key, value in obj.items():
            out[materialise(key, big_endian, depth + 1)] = materialise(value, big_endian, depth + 1)
        return out
    if isinstance(obj, list):
        return [materialise(v, big_endian, depth + 1) for v in obj]
    if isinstance(obj, tuple):
        return tuple(materialise(v, big_endian, depth + 1) for v in obj)
    if isinstance(obj, (set, frozenset)):
        return type(obj)(materialise(v, big_endian, depth + 1) for v in obj)
    return obj
