"""Where presets are cached, and the lock that lets several processes share the cache.

Layout under :func:`home` (``PANNS_KERAS_HOME``, else the user cache folder)::

    presets/<name>/<file>.pth        the downloaded checkpoint (checked, then renamed into place)
    presets/<name>/<file>.pth.part   a download in progress (resumed with an HTTP Range request)
    presets/<name>/model/            the converted model directory
    presets/<name>/preset.json       written last: what the files were made from
    .locks/<name>.lock               held (fcntl.flock) while a process fetches <name>
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path

HOME_ENV = "PANNS_KERAS_HOME"
MARKER = "preset.json"
MODEL_DIR = "model"


def home() -> Path:
    """``PANNS_KERAS_HOME``, else the platform's user cache folder + ``panns_keras``."""
    if os.environ.get(HOME_ENV):
        return Path(os.path.expanduser(os.environ[HOME_ENV]))
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "panns_keras"


def preset_dir(name: str) -> Path:
    return home() / "presets" / name


def read_marker(name: str) -> dict | None:
    try:
        return json.loads((preset_dir(name) / MARKER).read_text())
    except (OSError, ValueError):
        return None


def write_marker(name: str, value: dict) -> None:
    path = preset_dir(name) / MARKER
    tmp = path.with_name(f".{MARKER}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(value, indent=2) + "\n")
    os.replace(tmp, path)


@contextlib.contextmanager
def lock(name: str, on_wait=None):
    """Holds an exclusive lock on preset ``name`` (a no-op where ``fcntl`` is missing).

    ``on_wait()`` is called once if another process holds it (before blocking).
    """
    try:
        import fcntl
    except ImportError:  # Windows: no cross-process lock; the renames stay atomic
        yield
        return
    path = home() / ".locks" / f"{name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
