"""A quiet command line: no TensorFlow C++ log lines and no absl INFO unless asked.

TensorFlow's native libraries log through C++ absl before ``absl::InitializeLog()`` runs,
so ``TF_CPP_MIN_LOG_LEVEL`` does not stop the lines printed while ``import tensorflow``
loads them (oneDNN, cudart stub, CPU features). :func:`setup` therefore sets the
environment before TensorFlow is imported and, when quiet, routes file descriptor 2 into a
temporary file for the duration of that one import; afterwards every captured line that is
not a native log line is written back to stderr. Nothing else is redirected.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import re
import sys
import tempfile

# The native (C++) log lines: "I0000 00:00:1796039640.357710    5600 port.cc:153] ...", absl's
# pre-InitializeLog banner, and the continuation line of the CPU-feature message.
NATIVE_LINE = re.compile(
    r"^(?:[IWE]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ \S+\.(?:cc|cpp|c|h):\d+\] "
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|To enable the following instructions: .* rebuild TensorFlow"
    r"|INFO: (?:Created|Initialized) TensorFlow Lite"
    # the TFLite converter / quantizer (MLIR) printing its settings and op counts
    r"|fully_quantize: \d+, inference_type: "
    r"|Estimated count of arithmetic ops: "
    r"|Summary on the non-converted ops:)"
)
_quiet = False


def is_native_log_line(line: str) -> bool:
    return bool(NATIVE_LINE.match(line))


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        with capture_native_stderr():
            self._loader.exec_module(module)


class _QuietImport(importlib.abc.MetaPathFinder):
    """Wraps the loader of the top-level ``tensorflow`` package (first import only)."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


class capture_native_stderr:
    """Sends fd 2 into a temporary file; on exit writes back the non-native lines."""

    def __enter__(self):
        sys.stderr.flush()
        self._saved = os.dup(2)
        self._file = tempfile.TemporaryFile(mode="w+b")
        os.dup2(self._file.fileno(), 2)
        return self

    def __exit__(self, *exc):
        try:
            sys.stderr.flush()
        finally:
            os.dup2(self._saved, 2)
            os.close(self._saved)
        self._file.seek(0)
        text = self._file.read().decode("utf-8", "replace")
        self._file.close()
        kept = [ln for ln in text.splitlines(keepends=True) if not is_native_log_line(ln)]
        if kept:
            sys.stderr.write("".join(kept))
            sys.stderr.flush()
        return False


def verbosity_of(args: list[str]) -> int | None:
    """The value of absl's ``--verbosity`` / ``-v`` in ``args`` (None when absent)."""
    value = None
    for i, arg in enumerate(args):
        name, sep, v = arg.lstrip("-").partition("=")
        if arg.startswith("-") and name in ("verbosity", "v"):
            v = v if sep else (args[i + 1] if i + 1 < len(args) else "")
            try:
                value = int(v)
            except ValueError:
                return None  # absl reports the bad value
    return value


def enabled() -> bool:
    """Whether :func:`setup` made this process quiet."""
    return _quiet


def native_quiet():
    """A context that drops native log lines (e.g. the TFLite runtime's "INFO: Created
    TensorFlow Lite XNNPACK delegate") written while it is open, when quiet; else a no-op."""
    import contextlib

    return capture_native_stderr() if _quiet else contextlib.nullcontext()


def setup(verbosity: int) -> None:
    """Quiet (verbosity < 0): TF C++ logging off, native import lines dropped. Must run
    before TensorFlow is imported; a no-op for that part if it already was."""
    global _quiet
    if verbosity >= 0:
        return
    _quiet = True
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    if "tensorflow" not in sys.modules and not any(
        isinstance(f, _QuietImport) for f in sys.meta_path
    ):
        sys.meta_path.insert(0, _QuietImport())
