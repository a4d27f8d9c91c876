"""Read PyTorch checkpoints (``torch.save`` files) without torch and without running pickled code.

Two on-disk formats are supported:

* the zip format (``torch.save`` default since torch 1.6): a zip archive holding
  ``<archive>/data.pkl`` (the pickled object graph), one ``<archive>/data/<key>`` member per
  storage and small text members such as ``<archive>/byteorder``;
* the legacy format (``_use_new_zipfile_serialization=False`` and every torch before 1.6):
  a sequence of pickles (magic number, protocol version, system info, the object graph, the
  list of storage keys) followed by the raw bytes of each storage, each preceded by its
  element count as a little-endian int64.

In both formats tensors are pickled as calls to ``torch._utils._rebuild_tensor_v2`` whose
first argument is a persistent id ``('storage', storage_type, key, location, numel)``. The
pickles are read with a restricted unpickler: ``find_class`` resolves only an explicit
allow-list of globals, each mapped to a local, inert stand-in, and refuses everything else
(``os.system``, ``builtins.eval``, ...) with :class:`CheckpointError`. Tensors come back as
numpy arrays in torch layout (C-contiguous copies honouring storage offset, size and stride).
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import zipfile
import zlib
from typing import Any, BinaryIO

import numpy as np

__all__ = [
    "CheckpointError",
    "load_checkpoint_object",
    "load_state_dict_from_checkpoint",
    "read_torch_checkpoint",
]

LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001
_ZIP_MAGIC = b"PK\x03\x04"
_EMPTY_ZIP_MAGIC = b"PK\x05\x06"


class CheckpointError(Exception):
    """A file could not be read as a PyTorch checkpoint (missing, corrupt, unsafe, ...)."""


class _Refused(Exception):
    """Internal: a forbidden global or construct was met while unpickling."""


class _NotCheckpoint(Exception):
    """Internal: the file is readable but is not a torch checkpoint."""


class _Inert:
    """Base of the stand-ins: pickle's BUILD opcode may not modify them."""

    __slots__ = ()

    def __setstate__(self, state: Any) -> None:
        raise _Refused(f"refuses to modify {type(self).__name__} with BUILD")


class _SafeCallable(_Inert):
    """An allow-listed callable as handed out by ``find_class``.

    Wrapping keeps pickle's BUILD opcode from setting attributes (``__defaults__`` ...) on the
    module's own functions and classes.
    """

    __slots__ = ("_fn", "_name")

    def __init__(self, fn: Any, name: str) -> None:
        self._fn = fn
        self._name = name

    def __call__(self, *args: Any) -> Any:
        return self._fn(*args)

    def __repr__(self) -> str:
        return self._name


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


class _TorchDType(_Inert):
    """Stand-in for a ``torch.<dtype>`` global."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    @property
    def itemsize(self) -> int:
        return 2 if self.name == "bfloat16" else np.dtype(_TORCH_DTYPES[self.name]).itemsize

    def __repr__(self) -> str:
        return f"torch.{self.name}"


_DTYPE_OBJECTS = {name: _TorchDType(name) for name in _TORCH_DTYPES}


class _StorageType(_Inert):
    """Stand-in for a ``torch.FloatStorage``-like class (only used as a marker)."""

    __slots__ = ("dtype", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.dtype = _DTYPE_OBJECTS[_STORAGE_DTYPES[name]]

    def __repr__(self) -> str:
        return f"torch.{self.name}"


_STORAGE_OBJECTS = {name: _StorageType(name) for name in _STORAGE_DTYPES}


def _bytes_to_array(buf: bytes | memoryview, dtype: _TorchDType, big_endian: bool) -> np.ndarray:
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


class _StorageRef(_Inert):
    """A storage named by a persistent id; bytes are attached once they are read."""

    __slots__ = ("data", "dtype", "key", "numel", "view_of", "view_offset")

    def __init__(self, key: str, dtype: _TorchDType, numel: int) -> None:
        self.key = key
        self.dtype = dtype
        self.numel = numel  # elements of ``dtype`` (bytes for untyped storages)
        self.data: bytes | memoryview | None = None
        self.view_of: _StorageRef | None = None  # legacy storage views
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


class _TensorRef(_Inert):
    """The arguments of one ``_rebuild_tensor*`` call, materialised after loading."""

    __slots__ = ("dtype", "offset", "size", "storage", "stride")

    def __init__(self, storage: Any, offset: Any, size: Any, stride: Any, dtype: Any) -> None:
        if not isinstance(storage, _StorageRef):
            raise _Refused("tensor rebuilt from something that is not a storage")
        if dtype is None:
            dtype = storage.dtype
        if not isinstance(dtype, _TorchDType):
            raise _Refused("tensor dtype is not a torch dtype")
        self.storage = storage
        self.offset = _check_int(offset, "storage offset")
        self.size = _check_int_tuple(size, "size")
        self.stride = _check_int_tuple(stride, "stride")
        if len(self.size) != len(self.stride):
            raise ValueError(f"size {self.size} and stride {self.stride} differ in length")
        self.dtype = dtype


def _check_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"bad tensor {what}: {value!r:.80}")
    return value


def _check_int_tuple(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, (tuple, list)):
        raise TypeError(f"bad tensor {what}: {value!r:.80}")
    return tuple(_check_int(v, what) for v in value)


def _rebuild_tensor(storage, storage_offset, size, stride):
    return _TensorRef(storage, storage_offset, size, stride, None)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    return _TensorRef(storage, storage_offset, size, stride, None)


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, backward_hooks,
                       dtype, metadata=None):
    return _TensorRef(storage, storage_offset, size, stride, dtype)


def _rebuild_parameter(data, requires_grad=True, backward_hooks=None):
    return data


def _rebuild_parameter_with_state(data, requires_grad, backward_hooks, state):
    return data


def _torch_size(values=()):
    return tuple(values)


class _NumpyDType:
    """Stand-in for ``numpy.dtype(obj, align, copy)`` followed by ``__setstate__``."""

    def __init__(self, obj: Any, align: Any = False, copy: Any = False) -> None:
        if not isinstance(obj, str):
            raise _Refused("numpy dtype built from a non-string")
        self.obj = obj
        self.order = "|"

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) < 2:
            raise _Refused("bad numpy dtype state")
        if len(state) > 3 and state[3] is not None:
            raise _Refused("structured numpy dtypes are not supported")
        self.order = state[1]

    def resolve(self) -> np.dtype:
        dtype = np.dtype(self.obj)
        if dtype.hasobject or dtype.fields is not None:
            raise _Refused(f"numpy dtype {self.obj!r} is not a plain numeric dtype")
        if self.order in ("<", ">"):
            dtype = dtype.newbyteorder(self.order)
        return dtype


class _NumpyArray:
    """Stand-in for ``numpy.core.multiarray._reconstruct`` + ``ndarray.__setstate__``."""

    def __init__(self, cls: Any = None, shape: Any = (0,), dtype: Any = b"b") -> None:
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def resolve(self) -> np.ndarray:
        state = self.state
        if not isinstance(state, tuple) or len(state) != 5:
            raise _Refused("bad numpy array state")
        _version, shape, dtype, fortran, raw = state
        if not isinstance(dtype, _NumpyDType) or not isinstance(raw, (bytes, bytearray)):
            raise _Refused("numpy array with object dtype or non-byte data")
        shape = _check_int_tuple(shape, "numpy shape")
        arr = np.frombuffer(bytes(raw), dtype=dtype.resolve())
        arr = arr.reshape(shape, order="F" if fortran else "C")
        return np.array(arr, dtype=arr.dtype.newbyteorder("="))


def _numpy_scalar(dtype: Any, raw: Any = None):
    if not isinstance(dtype, _NumpyDType) or not isinstance(raw, (bytes, bytearray)):
        raise _Refused("numpy scalar with object dtype or non-byte data")
    np_dtype = dtype.resolve()
    return np.frombuffer(bytes(raw), dtype=np_dtype, count=1)[0].astype(
        np_dtype.newbyteorder("="))


def _numpy_frombuffer(buf: Any, dtype: Any, shape: Any, order: Any):
    """Stand-in for ``numpy._core.numeric._frombuffer`` (numpy arrays in pickle protocol 5)."""
    if not isinstance(dtype, _NumpyDType) or not isinstance(buf, (bytes, bytearray)):
        raise _Refused("numpy array with object dtype or non-byte data")
    shape = _check_int_tuple(shape, "numpy shape")
    arr = np.frombuffer(bytes(buf), dtype=dtype.resolve()).reshape(shape, order=order)
    return np.array(arr, dtype=arr.dtype.newbyteorder("="))


def _codecs_encode(text: Any, encoding: Any = "utf-8"):
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise _Refused("_codecs.encode is only allowed for latin1 text")
    return text.encode("latin1")


def _allowed_globals() -> dict[tuple[str, str], Any]:
    callables: dict[tuple[str, str], Any] = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter_with_state,
        ("torch", "Size"): _torch_size,
        ("_codecs", "encode"): _codecs_encode,
        ("numpy", "dtype"): _NumpyDType,
    }
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        callables[(module, "_reconstruct")] = _NumpyArray
        callables[(module, "scalar")] = _numpy_scalar
    for module in ("numpy.core.numeric", "numpy._core.numeric"):
        callables[(module, "_frombuffer")] = _numpy_frombuffer
    table: dict[tuple[str, str], Any] = {
        key: _SafeCallable(fn, f"{key[0]}.{key[1]}") for key, fn in callables.items()
    }
    for name, obj in _STORAGE_OBJECTS.items():
        table[("torch", name)] = obj
    table[("torch.storage", "UntypedStorage")] = _STORAGE_OBJECTS["UntypedStorage"]
    for name, obj in _DTYPE_OBJECTS.items():
        table[("torch", name)] = obj
    table[("numpy", "ndarray")] = "numpy.ndarray"  # only ever passed to _reconstruct
    return table


_ALLOWED_GLOBALS = _allowed_globals()


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only allow-listed globals to local stand-ins."""

    def __init__(self, file: BinaryIO, storages: dict[str, _StorageRef] | None = None,
                 legacy: bool = False) -> None:
        super().__init__(file, encoding="utf-8")
        self._storages = storages
        self._legacy = legacy

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise _Refused(
                f"refuses to load global {module}.{name} (possible code execution)"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        if self._storages is None:
            raise _Refused("unexpected persistent id in a header pickle")
        if not isinstance(pid, tuple) or not pid:
            raise _Refused(f"unsupported persistent id {pid!r:.80}")
        typename = pid[0].decode("ascii") if isinstance(pid[0], bytes) else pid[0]
        if typename != "storage":
            raise _Refused(f"refuses persistent id of type {typename!r:.40} (only storages)")
        if self._legacy:
            if len(pid) != 6:
                raise ValueError(f"bad legacy storage id {pid!r:.120}")
            storage_type, key, _location, numel, view_metadata = pid[1:]
        else:
            if len(pid) != 5:
                raise ValueError(f"bad storage id {pid!r:.120}")
            storage_type, key, _location, numel = pid[1:]
            view_metadata = None
        if not isinstance(storage_type, _StorageType):
            raise _Refused(f"persistent id names {storage_type!r:.60}, not a storage type")
        key = str(key)
        numel = _check_int(numel, "storage numel")
        storage = self._storages.get(key)
        if storage is None:
            storage = _StorageRef(key, storage_type.dtype, numel)
            self._storages[key] = storage
        elif storage.dtype.name != storage_type.dtype.name or storage.numel != numel:
            raise ValueError(f"storage {key!r} declared twice with different type or size")
        if view_metadata is None:
            return storage
        view_key, view_offset, view_size = view_metadata
        view_key = str(view_key)
        view = self._storages.get(view_key)
        if view is None:
            view = _StorageRef(view_key, storage_type.dtype, _check_int(view_size, "view size"))
            view.view_of = storage
            view.view_offset = _check_int(view_offset, "view offset")
            self._storages[view_key] = view
        return view


# --------------------------------------------------------------------------------------
# materialisation
# --------------------------------------------------------------------------------------


def _tensor_to_array(ref: _TensorRef, big_endian: bool) -> np.ndarray:
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
    base = flat[ref.offset:]
    strides = tuple(s * flat.dtype.itemsize for s in ref.stride)
    view = np.lib.stride_tricks.as_strided(base, shape=ref.size, strides=strides,
                                           writeable=False)
    return np.array(view, dtype=native, order="C", copy=True)


def _materialise(obj: Any, big_endian: bool, depth: int = 0) -> Any:
    if depth > 200:
        raise ValueError("object graph nested too deeply")
    if isinstance(obj, _TensorRef):
        return _tensor_to_array(obj, big_endian)
    if isinstance(obj, (_NumpyArray, _NumpyDType)):
        return obj.resolve()
    if isinstance(obj, (_StorageRef, _StorageType, _TorchDType)):
        return obj
    if isinstance(obj, dict):
        out = type(obj)() if isinstance(obj, collections.OrderedDict) else {}
        for key, value in obj.items():
            out[_materialise(key, big_endian, depth + 1)] = _materialise(
                value, big_endian, depth + 1)
        return out
    if isinstance(obj, list):
        return [_materialise(v, big_endian, depth + 1) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_materialise(v, big_endian, depth + 1) for v in obj)
    if isinstance(obj, (set, frozenset)):
        return type(obj)(_materialise(v, big_endian, depth + 1) for v in obj)
    return obj


# --------------------------------------------------------------------------------------
# the two container formats
# --------------------------------------------------------------------------------------


def _load_zip(fileobj: BinaryIO) -> Any:
    with zipfile.ZipFile(fileobj) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n == "data.pkl" or n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise _NotCheckpoint("zip archive without exactly one data.pkl member")
        prefix = pickles[0][: -len("data.pkl")]
        big_endian = False
        if prefix + "byteorder" in names:
            order = archive.read(prefix + "byteorder").decode("ascii", "replace").strip()
            if order not in ("little", "big"):
                raise ValueError(f"unknown byteorder {order!r:.20}")
            big_endian = order == "big"
        storages: dict[str, _StorageRef] = {}
        data_pkl = archive.read(pickles[0])
        obj = _RestrictedUnpickler(io.BytesIO(data_pkl), storages).load()
        name_set = set(names)
        for key, storage in storages.items():
            member = f"{prefix}data/{key}"
            if member not in name_set:
                raise ValueError(f"storage member {member!r} is missing")
            data = archive.read(member)  # zipfile verifies the CRC-32 here
            expected = storage.numel * storage.dtype.itemsize
            if len(data) != expected:
                raise ValueError(
                    f"storage member {member!r} holds {len(data)} bytes, expected {expected}")
            storage.data = data
    return _materialise(obj, big_endian)


def _read_exact(fileobj: BinaryIO, n: int, what: str) -> bytes:
    remaining = os.fstat(fileobj.fileno()).st_size - fileobj.tell()
    if n > remaining:
        raise EOFError(f"file ends inside {what} (wanted {n} bytes, {remaining} left)")
    data = fileobj.read(n)
    if len(data) != n:
        raise EOFError(f"file ends inside {what} (wanted {n} bytes, got {len(data)})")
    return data


def _load_legacy(fileobj: BinaryIO) -> Any:
    magic = _RestrictedUnpickler(fileobj).load()
    if magic != LEGACY_MAGIC_NUMBER:
        raise _NotCheckpoint("pickle file without the torch magic number")
    protocol = _RestrictedUnpickler(fileobj).load()
    if protocol != LEGACY_PROTOCOL_VERSION:
        raise ValueError(f"unsupported legacy protocol version {protocol!r:.40}")
    _RestrictedUnpickler(fileobj).load()  # sys_info; storages are always little-endian
    storages: dict[str, _StorageRef] = {}
    obj = _RestrictedUnpickler(fileobj, storages, legacy=True).load()
    keys = _RestrictedUnpickler(fileobj).load()
    if not isinstance(keys, list):
        raise TypeError("storage key list is not a list")
    for key in keys:
        key = str(key)
        storage = storages.get(key)
        if storage is None or storage.view_of is not None:
            raise ValueError(f"storage key {key!r} is not used by the pickle")
        (numel,) = struct.unpack("<q", _read_exact(fileobj, 8, f"storage {key!r} header"))
        if numel != storage.numel:
            raise ValueError(f"storage {key!r} holds {numel} elements, expected {storage.numel}")
        storage.data = _read_exact(fileobj, numel * storage.dtype.itemsize, f"storage {key!r}")
    if fileobj.read(1):
        raise ValueError("trailing bytes after the last storage")
    return _materialise(obj, False)


_WRAPPED_ERRORS = (
    pickle.UnpicklingError,
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    EOFError,
    struct.error,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    OverflowError,
    UnicodeError,
    RecursionError,
    MemoryError,
    NotImplementedError,
)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:297] + "..."


def load_checkpoint_object(path: str | os.PathLike) -> Any:
    """Unpickle a whole ``torch.save`` file safely; tensors become numpy arrays.

    Raises :class:`CheckpointError` for a missing, unreadable, truncated, corrupt or
    non-checkpoint file, and for a pickle that references anything outside the allow-list.
    """
    where = os.fspath(path)
    try:
        with open(where, "rb") as fileobj:
            head = fileobj.read(4)
            fileobj.seek(0)
            if not head:
                raise _NotCheckpoint("empty file")
            if head in (_ZIP_MAGIC, _EMPTY_ZIP_MAGIC):
                return _load_zip(fileobj)
            if head[:1] == b"\x80":
                return _load_legacy(fileobj)
            if zipfile.is_zipfile(fileobj):
                fileobj.seek(0)
                return _load_zip(fileobj)
            raise _NotCheckpoint("neither a zip archive nor a pickle")
    except _Refused as exc:
        raise CheckpointError(f"{where}: {_one_line(exc)}") from None
    except _NotCheckpoint as exc:
        raise CheckpointError(f"{where}: not a PyTorch checkpoint: {_one_line(exc)}") from None
    except FileNotFoundError:
        raise CheckpointError(f"{where}: no such file") from None
    except IsADirectoryError:
        raise CheckpointError(f"{where}: is a directory, not a checkpoint file") from None
    except OSError as exc:
        raise CheckpointError(f"{where}: cannot read file: {_one_line(exc)}") from None
    except _WRAPPED_ERRORS as exc:
        raise CheckpointError(
            f"{where}: truncated or corrupted checkpoint ({type(exc).__name__}: "
            f"{_one_line(exc)})"
        ) from None


def _as_state_dict(obj: Any, where: str) -> collections.OrderedDict[str, np.ndarray]:
    if not isinstance(obj, dict) or not obj:
        raise CheckpointError(f"{where}: checkpoint holds no state_dict (got {type(obj).__name__})")
    state: collections.OrderedDict[str, np.ndarray] = collections.OrderedDict()
    for key, value in obj.items():
        if not isinstance(key, str):
            raise CheckpointError(f"{where}: state_dict key {key!r:.60} is not a string")
        if not isinstance(value, np.ndarray):
            raise CheckpointError(
                f"{where}: state_dict entry {key!r} is a {type(value).__name__}, not a tensor")
        state[key] = value
    if all(key.startswith("module.") for key in state):
        state = collections.OrderedDict((k[len("module."):], v) for k, v in state.items())
    return state


def load_state_dict_from_checkpoint(
    path: str | os.PathLike,
) -> tuple[collections.OrderedDict[str, np.ndarray], dict[str, Any]]:
    """Return ``(state_dict, extra_info)`` of a PANNs-style checkpoint.

    A dict with a ``'model'`` entry (the released PANNs layout ``{'iteration': N, 'model':
    state_dict}``; training checkpoints add ``'sampler'`` etc.) yields ``obj['model']`` and
    every other entry as ``extra_info``; a dict with a ``'state_dict'`` entry is treated the
    same way; otherwise the object itself must be a bare state_dict (``extra_info == {}``).
    A ``module.`` prefix on every key (``nn.DataParallel``) is stripped. Arrays keep torch
    layout and dtype (float32, int64 for ``num_batches_tracked``, ...).
    """
    where = os.fspath(path)
    obj = load_checkpoint_object(path)
    extra: dict[str, Any] = {}
    if isinstance(obj, dict):
        for wrapper_key in ("model", "state_dict"):
            inner = obj.get(wrapper_key)
            if isinstance(inner, dict):
                extra = {k: v for k, v in obj.items() if k != wrapper_key}
                obj = inner
                break
    return _as_state_dict(obj, where), extra


def read_torch_checkpoint(path: str | os.PathLike) -> collections.OrderedDict[str, np.ndarray]:
    """Read the state_dict of a ``torch.save`` checkpoint as an ordered dict of numpy arrays."""
    return load_state_dict_from_checkpoint(path)[0]
