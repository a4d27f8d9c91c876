"""The restricted unpickler of torch checkpoints: an explicit allow-list, nothing else.

``find_class`` resolves only the allow-listed globals (``collections.OrderedDict``, torch's
tensor rebuild functions, dtypes and storage types, numpy's array reconstruction), each
mapped to a local, inert stand-in of :mod:`panns_keras.convert.torch_objects`, and refuses
everything else (``os.system``, ``builtins.eval``, ...) with
:class:`~panns_keras.convert.torch_objects.Refused`. Persistent ids name storages, which
are collected for the container reader (:mod:`panns_keras.convert.torch_format`) to fill.
"""

from __future__ import annotations

import collections
import pickle
from typing import Any, BinaryIO

from panns_keras.convert.torch_objects import (
    DTYPE_OBJECTS,
    STORAGE_OBJECTS,
    Inert,
    NumpyArray,
    NumpyDType,
    Refused,
    StorageRef,
    StorageType,
    check_int,
    codecs_encode,
    numpy_frombuffer,
    numpy_scalar,
    rebuild_parameter,
    rebuild_parameter_with_state,
    rebuild_tensor,
    rebuild_tensor_v2,
    rebuild_tensor_v3,
    torch_size,
)


class _SafeCallable(Inert):
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


def _allowed_globals() -> dict[tuple[str, str], Any]:
    callables: dict[tuple[str, str], Any] = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor"): rebuild_tensor,
        ("torch._utils", "_rebuild_tensor_v2"): rebuild_tensor_v2,
        ("torch._utils", "_rebuild_tensor_v3"): rebuild_tensor_v3,
        ("torch._utils", "_rebuild_parameter"): rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): rebuild_parameter_with_state,
        ("torch", "Size"): torch_size,
        ("_codecs", "encode"): codecs_encode,
        ("numpy", "dtype"): NumpyDType,
    }
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        callables[(module, "_reconstruct")] = NumpyArray
        callables[(module, "scalar")] = numpy_scalar
    for module in ("numpy.core.numeric", "numpy._core.numeric"):
        callables[(module, "_frombuffer")] = numpy_frombuffer
    table: dict[tuple[str, str], Any] = {
        key: _SafeCallable(fn, f"{key[0]}.{key[1]}") for key, fn in callables.items()
    }
    for name, obj in STORAGE_OBJECTS.items():
        table[("torch", name)] = obj
    table[("torch.storage", "UntypedStorage")] = STORAGE_OBJECTS["UntypedStorage"]
    for name, obj in DTYPE_OBJECTS.items():
        table[("torch", name)] = obj
    table[("numpy", "ndarray")] = "numpy.ndarray"  # only ever passed to _reconstruct
    return table


_ALLOWED_GLOBALS = _allowed_globals()


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only allow-listed globals to local stand-ins."""

    def __init__(
        self, file: BinaryIO, storages: dict[str, StorageRef] | None = None, legacy: bool = False
    ) -> None:
        super().__init__(file, encoding="utf-8")
        self._storages = storages
        self._legacy = legacy

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise Refused(
                f"refuses to load global {module}.{name} (possible code execution)"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        if self._storages is None:
            raise Refused("unexpected persistent id in a header pickle")
        if not isinstance(pid, tuple) or not pid:
            raise Refused(f"unsupported persistent id {pid!r:.80}")
        typename = pid[0].decode("ascii") if isinstance(pid[0], bytes) else pid[0]
        if typename != "storage":
            raise Refused(f"refuses persistent id of type {typename!r:.40} (only storages)")
        if self._legacy:
            if len(pid) != 6:
                raise ValueError(f"bad legacy storage id {pid!r:.120}")
            storage_type, key, _location, numel, view_metadata = pid[1:]
        else:
            if len(pid) != 5:
                raise ValueError(f"bad storage id {pid!r:.120}")
            storage_type, key, _location, numel = pid[1:]
            view_metadata = None
        if not isinstance(storage_type, StorageType):
            raise Refused(f"persistent id names {storage_type!r:.60}, not a storage type")
        key = str(key)
        numel = check_int(numel, "storage numel")
        storage = self._storages.get(key)
        if storage is None:
            storage = StorageRef(key, storage_type.dtype, numel)
            self._storages[key] = storage
        elif storage.dtype.name != storage_type.dtype.name or storage.numel != numel:
            raise ValueError(f"storage {key!r} declared twice with different type or size")
        if view_metadata is None:
            return storage
        view_key, view_offset, view_size = view_metadata
        view_key = str(view_key)
        view = self._storages.get(view_key)
        if view is None:
            view = StorageRef(view_key, storage_type.dtype, check_int(view_size, "view size"))
            view.view_of = storage
            view.view_offset = check_int(view_offset, "view offset")
            self._storages[view_key] = view
        return view
