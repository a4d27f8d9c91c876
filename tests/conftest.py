"""Settings for the whole test session and every process it starts."""

from __future__ import annotations

import functools
import os
import tempfile

import pytest

# The test process is as quiet as the command line it runs in-process (panns_keras.cli sets
# the same before TensorFlow loads): TensorFlow's C++ log lines (oneDNN, cuInit) would mix into
# the output the CLI tests read. The tests about those lines run a subprocess with their own
# environment.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# One XLA compilation cache (JAX's persistent cache) for the test session, its xdist workers
# and the training subprocesses they start: the tiny test config's JAX training step is
# compiled once, not once per process. Content-addressed, so a stale entry cannot change a
# result; set JAX_COMPILATION_CACHE_DIR to choose another folder.
os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR",
    os.path.join(tempfile.gettempdir(), f"panns-keras-tests-xla-cache-{os.getuid()}"),
)


@pytest.fixture
def cli(capfd):
    """``cli(*args, cwd=None)``: ``panns-keras *args`` run in-process (tests/helpers/cli.py);
    a ``subprocess.CompletedProcess`` with returncode, stdout and stderr."""
    from tests.helpers.cli import run_cli

    return functools.partial(run_cli, capfd)
