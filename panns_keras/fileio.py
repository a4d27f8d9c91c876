"""Atomic writes: the one place that writes to a temporary sibling and renames it in place.

A reader (or a crash) sees either the old file / directory or the complete new one, never a
half-written one: the temporary sibling sits in the same folder, so the rename is atomic.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "", fsync: bool = False) -> Iterator[Path]:
    """Yields a temporary path beside ``path``; renames it onto ``path`` when the block ends.

    The block writes the temporary file (any writer: ``np.savez``, ``fig.savefig``, ...).
    ``suffix`` keeps the file type for writers that go by it (``.png``). On an error the
    temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a name, not mkstemp: the file gets the usual permissions (mkstemp's are 0600)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp{suffix}")
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(path: str | os.PathLike, data: bytes | str, fsync: bool = False) -> Path:
    """Replaces ``path`` with ``data`` (text is written as UTF-8) in one step."""
    path = Path(path)
    with atomic_path(path, fsync=fsync) as tmp:
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yields an empty staging directory beside ``path`` that replaces ``path`` at the end.

    An existing ``path`` is moved aside, the staging directory renamed onto it, then the old
    one removed; on an error the staging directory is removed and ``path`` left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
