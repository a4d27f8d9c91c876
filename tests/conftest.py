"""Settings for the whole test session and every process it starts."""

from __future__ import annotations

import os
import tempfile

# One XLA compilation cache (JAX's persistent cache) for the test session, its xdist workers
# and the training subprocesses they start: the tiny test config's JAX training step is
# compiled once, not once per process. Content-addressed, so a stale entry cannot change a
# result; set JAX_COMPILATION_CACHE_DIR to choose another folder.
os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR",
    os.path.join(tempfile.gettempdir(), f"panns-keras-tests-xla-cache-{os.getuid()}"),
)


def pytest_collection_finish(session):
    """Move what collection imported (TensorFlow, Keras, JAX) out of the
    garbage collector's reach: every full collection after it would walk them all again (7% of
    a golden test's time was the collector). Objects made by the tests are collected as usual."""
    import gc

    gc.collect()
    gc.freeze()
