"""The suite's warm Python (tests/warm_python.py) behaves as a fresh interpreter: the same
output, exit status, killing signal, working directory, environment, argv and sys.path[0]."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from warm_python import python

pytest.importorskip("tensorflow")
if os.environ.get("PANNS_TEST_WARM") == "0" or os.environ.get("KERAS_BACKEND", "tensorflow") != (
    "tensorflow"
):
    pytest.skip("the warm Python is off here", allow_module_level=True)

_SHOW = """
import json, os, sys
print(json.dumps({"argv": sys.argv, "cwd": os.getcwd(), "path0": sys.path[0],
                  "x": os.environ.get("WARM_TEST_X"), "main": __name__,
                  "stdin": sys.stdin.read()}))
print("to stderr", file=sys.stderr)
sys.exit(int(sys.argv[1]))
"""


def _both(args, **kw):
    fresh = subprocess.run([sys.executable, *args], capture_output=True, text=True, **kw)
    warm = subprocess.run([*python(), *args], capture_output=True, text=True, **kw)
    return fresh, warm


def test_the_server_is_used_here():
    assert len(python()) == 5 and python()[2] == "--via"  # TensorFlow backend, TF installed


def test_code_runs_as_in_a_fresh_interpreter(tmp_path):
    env = dict(os.environ, WARM_TEST_X="42")
    fresh, warm = _both(["-c", _SHOW, "3", "two"], cwd=tmp_path, env=env, input="in")
    assert (warm.returncode, warm.stdout, warm.stderr) == (3, fresh.stdout, fresh.stderr)
    assert '"x": "42"' in warm.stdout and '"stdin": "in"' in warm.stdout


def test_a_module_runs_as_with_python_dash_m(tmp_path):
    (tmp_path / "warm_mod.py").write_text(_SHOW.replace("int(sys.argv[1])", "None"))
    fresh, warm = _both(["-m", "warm_mod", "a"], cwd=tmp_path, input="")
    assert (warm.returncode, warm.stdout, warm.stderr) == (0, fresh.stdout, fresh.stderr)
    assert '"main": "__main__"' in warm.stdout and str(tmp_path / "warm_mod.py") in warm.stdout


def test_exceptions_and_signals_end_it_as_a_fresh_one(tmp_path):
    fresh, warm = _both(["-c", "raise ValueError('no')"])
    assert warm.returncode == fresh.returncode == 1
    assert warm.stderr.splitlines()[-1] == fresh.stderr.splitlines()[-1] == "ValueError: no"
    fresh, warm = _both(["-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"])
    assert warm.returncode == fresh.returncode == -signal.SIGKILL


def test_sigterm_reaches_the_work_and_the_caller_sees_its_end(tmp_path):
    code = ("import signal, sys, time\n"
            "signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))\n"
            "print('ready', flush=True); time.sleep(60)")  # fmt: skip
    p = subprocess.Popen([*python(), "-c", code], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline() == "ready\n"
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=30) == 143


def test_the_work_ends_when_its_caller_is_killed(tmp_path):
    pid_file = tmp_path / "pid"
    code = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    p = subprocess.Popen([*python(), "-c", code])
    deadline = time.monotonic() + 30
    while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
        time.sleep(0.01)
    worker = int(pid_file.read_text())
    p.kill()
    p.wait()
    while time.monotonic() < deadline:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            return
        time.sleep(0.01)
    pytest.fail(f"the work ({worker}) outlived its caller")


def test_each_backend_has_its_server_and_another_gets_a_fresh_interpreter():
    code = ("import sys; warm = 'panns_keras.train.trainer' in sys.modules; import keras; "
            "print(warm, keras.backend.backend())")  # fmt: skip
    jax_env = dict(os.environ, KERAS_BACKEND="jax")
    warm = subprocess.run([*python("jax"), "-c", code], capture_output=True, text=True,
                          env=jax_env)  # fmt: skip
    assert warm.stdout == "True jax\n", warm.stderr
    assert python("jax") != python()
    # The TensorFlow server's command, asked for JAX: the caller's environment wins.
    fresh = subprocess.run([*python(), "-c", code], capture_output=True, text=True, env=jax_env)
    assert fresh.stdout == "False jax\n", fresh.stderr
