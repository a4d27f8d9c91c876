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
pickles are read with a restricted unpickler (:mod:`panns_keras.convert.torch_pickle`):
``find_class`` resolves only an explicit allow-list of globals, each mapped to a local, inert
stand-in (:mod:`panns_keras.convert.torch_objects`), and refuses everything else
(``os.system``, ``builtins.eval``, ...) with :class:`CheckpointError`. Tensors come back as
numpy arrays in torch layout (C-contiguous copies honouring storage offset, size and stride).

This module reads the two containers and is the public door: :func:`load_checkpoint_object`,
:func:`load_state_dict_from_checkpoint`, :func:`read_torch_checkpoint`.
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

from panns_keras.convert.torch_objects import Refused, StorageRef, materialise
from panns_keras.convert.torch_pickle import RestrictedUnpickler

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


class _NotCheckpoint(Exception):
    """Internal: the file is readable but is not a torch checkpoint."""


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
        storages: dict[str, StorageRef] = {}
        data_pkl = archive.read(pickles[0])
        obj = RestrictedUnpickler(io.BytesIO(data_pkl), storages).load()
        name_set = set(names)
        for key, storage in storages.items():
            member = f"{prefix}data/{key}"
            if member not in name_set:
                raise ValueError(f"storage member {member!r} is missing")
            data = archive.read(member)  # zipfile verifies the CRC-32 here
            expected = storage.numel * storage.dtype.itemsize
            if len(data) != expected:
                raise ValueError(
                    f"storage member {member!r} holds {len(data)} bytes, expected {expected}"
                )
            storage.data = data
    return materialise(obj, big_endian)


def _read_exact(fileobj: BinaryIO, n: int, what: str) -> bytes:
    remaining = os.fstat(fileobj.fileno()).st_size - fileobj.tell()
    if n > remaining:
        raise EOFError(f"file ends inside {what} (wanted {n} bytes, {remaining} left)")
    data = fileobj.read(n)
    if len(data) != n:
        raise EOFError(f"file ends inside {what} (wanted {n} bytes, got {len(data)})")
    return data


def _load_legacy(fileobj: BinaryIO) -> Any:
    magic = RestrictedUnpickler(fileobj).load()
    if magic != LEGACY_MAGIC_NUMBER:
        raise _NotCheckpoint("pickle file without the torch magic number")
    protocol = RestrictedUnpickler(fileobj).load()
    if protocol != LEGACY_PROTOCOL_VERSION:
        raise ValueError(f"unsupported legacy protocol version {protocol!r:.40}")
    RestrictedUnpickler(fileobj).load()  # sys_info; storages are always little-endian
    storages: dict[str, StorageRef] = {}
    obj = RestrictedUnpickler(fileobj, storages, legacy=True).load()
    keys = RestrictedUnpickler(fileobj).load()
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
    return materialise(obj, False)


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
    except Refused as exc:
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
            f"{where}: truncated or corrupted checkpoint ({type(exc).__name__}: {_one_line(exc)})"
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
                f"{where}: state_dict entry {key!r} is a {type(value).__name__}, not a tensor"
            )
        state[key] = value
    if all(key.startswith("module.") for key in state):
        state = collections.OrderedDict((k[len("module.") :], v) for k, v in state.items())
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
