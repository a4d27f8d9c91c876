"""A Python that has already imported TensorFlow and Keras, for the suite's subprocesses.

Most command-line tests start ``python -m panns_keras ...`` or ``python -c CODE``; each fresh
interpreter spends 5-6 CPU-seconds importing TensorFlow and Keras before the test's own work.
``[*python(), *ARGS]`` runs as ``[sys.executable, *ARGS]`` (``-m MODULE ...`` or ``-c CODE
...``): the same exit status (or the same killing signal), its stdin/stdout/stderr are the
caller's own file descriptors, its working directory and environment the caller's. The work
runs in a process forked from a server (one per test process, started by :func:`python`) that
imported TensorFlow, Keras and the package's libraries once and ran nothing else: no
TensorFlow op, no absl flag defined (the verb modules, which define the flags, are imported in
the fork as in a fresh process).

One server per Keras backend (``python(backend)``; TensorFlow and JAX). It falls back to a
fresh interpreter (``exec python ARGS``, the same behaviour) without TensorFlow (or JAX for
its server), with ``PANNS_TEST_WARM=0`` (to turn it off), when the caller's environment asks
for another Keras backend than the server's or for TensorFlow's log lines
(``TF_CPP_MIN_LOG_LEVEL=0``), or when the server cannot be reached.
Otherwise TensorFlow's C++ log level is the quiet command line's (3: fixed in the server).
Tests about what happens while TensorFlow is imported, or without it, run a fresh interpreter.

Protocol (a Unix stream socket): the client sends a length-prefixed JSON request with its
fds 0, 1, 2 attached; a handler forked by the server forks the runner, answers ``pid N`` at
once (the client forwards SIGTERM/SIGINT to it) and ``status S`` when it ends (S >= 0: exit
code, S < 0: killed by signal -S). A client that goes away takes its runner with it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import struct
import sys

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)


# --- the client: `python warm_python.py --via SOCKET BACKEND ARGS` --------------------------------


def _fallback(args: list[str]) -> None:
    os.execv(sys.executable, [sys.executable, *args])


def _client(path: str, backend: str, args: list[str]) -> None:
    if not args or args[0] not in ("-m", "-c"):
        _fallback(args)
    if os.environ.get("KERAS_BACKEND", "tensorflow") != backend:
        _fallback(args)
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0":  # TensorFlow's log lines wanted
        _fallback(args)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError:
        _fallback(args)
    body = json.dumps({"args": args, "cwd": os.getcwd(), "env": dict(os.environ)}).encode()
    socket.send_fds(sock, [struct.pack("!I", len(body))], [0, 1, 2])
    sock.sendall(body)
    reply = sock.makefile("r")
    line = reply.readline()
    if not line.startswith("pid "):
        print(f"warm_python: the server failed: {line!r}", file=sys.stderr)
        os._exit(70)
    pid = int(line.split()[1])

    def forward(signum, frame):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)

    for s in FORWARDED:
        signal.signal(s, forward)
    line = reply.readline()
    if not line.startswith("status "):
        print("warm_python: the server went away", file=sys.stderr)
        os._exit(70)
    status = int(line.split()[1])
    if status < 0:  # die of the same signal, so the caller sees the same returncode
        if -status in FORWARDED:
            signal.signal(-status, signal.SIG_DFL)
        os.kill(os.getpid(), -status)
    os._exit(status)


# --- the server ----------------------------------------------------------------------------


def _read_request(conn: socket.socket) -> tuple[dict, list[int]]:
    head, fds, _, _ = socket.recv_fds(conn, 4, 3)
    while len(head) < 4:
        head += conn.recv(4 - len(head))
    (n,) = struct.unpack("!I", head)
    body = b""
    while len(body) < n:
        chunk = conn.recv(n - len(body))
        if not chunk:
            raise EOFError("client went away")
        body += chunk
    return json.loads(body), fds


def _run(request: dict, fds: list[int]) -> None:
    """In the runner: become `python ARGS` and exit with its status."""
    for s in FORWARDED + (signal.SIGCHLD,):
        signal.signal(s, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for target, fd in zip((0, 1, 2), fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    extra = [p for p in request["env"].get("PYTHONPATH", "").split(os.pathsep) if p]
    sys.path[:] = ["", *extra, *(p for p in sys.path[1:] if p not in extra)]
    # The CUDA driver forgets at fork that it failed to start (no GPU, or CUDA_VISIBLE_DEVICES
    # empty) and logs the failure again when the devices are first listed; a fresh process
    # logs it while `import tensorflow` runs, where the quiet command line drops it. Listing
    # the devices here (no TensorFlow context is made) puts that line where it would be.
    from panns_keras.cli import quiet

    with quiet.capture_native_stderr():
        import tensorflow as tf

        tf.config.list_physical_devices()
    args = request["args"]
    code = 0
    try:
        if args[0] == "-m":
            import runpy

            sys.argv = [args[1], *args[2:]]  # runpy puts the module's path in argv[0]
            sys.path[0] = os.getcwd()
            runpy.run_module(args[1], run_name="__main__", alter_sys=True)
        else:
            import types

            sys.argv = ["-c", *args[2:]]
            main = types.ModuleType("__main__")
            main.__dict__["__builtins__"] = __builtins__
            sys.modules["__main__"] = main
            exec(compile(args[1], "<string>", "exec"), main.__dict__)
    except SystemExit as e:
        if e.code is None:
            code = 0
        elif isinstance(e.code, int):
            code = e.code
        else:
            print(e.code, file=sys.stderr)
            code = 1
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    try:
        import atexit

        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code & 0xFF)


def _handle(conn: socket.socket) -> None:
    """In the handler (forked per connection): fork the runner, report, wait."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    request, fds = _read_request(conn)
    pid = os.fork()
    if pid == 0:
        conn.close()
        _run(request, fds)
    for fd in fds:
        os.close(fd)
    conn.sendall(f"pid {pid}\n".encode())
    import select

    pidfd = os.pidfd_open(pid)
    while True:
        ready, _, _ = select.select([pidfd, conn], [], [])
        if pidfd in ready:
            break
        if not conn.recv(1, socket.MSG_PEEK):  # the client went away: so does its runner
            os.kill(pid, signal.SIGKILL)
            break
    _, status = os.waitpid(pid, 0)
    code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    with contextlib.suppress(OSError):
        conn.sendall(f"status {code}\n".encode())


def serve(path: str) -> None:
    """Listen first (clients queue while the imports run), import, then fork per client."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    # TensorFlow fixes its C++ log level when it first logs: the quiet command line's level
    # (TensorFlow's own errors not shown), which the children then share.
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    from panns_keras.cli import quiet

    with quiet.capture_native_stderr():
        import keras  # noqa: F401

        import panns_keras
        import panns_keras.data.pipeline
        import panns_keras.models
        import panns_keras.train.trainer  # noqa: F401
    # What the imports made goes out of the collector's reach: a runner's full collections
    # no longer walk (and so copy, page by page, from the server) TensorFlow's objects.
    import gc

    gc.collect()
    gc.freeze()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # handlers are reaped by the kernel
    import select

    while True:
        ready, _, _ = select.select([listener, sys.stdin], [], [])
        if sys.stdin in ready and not os.read(sys.stdin.fileno(), 4096):
            return  # the test process ended
        if listener not in ready:
            continue
        conn, _ = listener.accept()
        if os.fork() == 0:
            listener.close()
            try:
                _handle(conn)
            finally:
                os._exit(0)
        conn.close()


_commands: dict[str, list[str]] = {}


def python(backend: str | None = None) -> list[str]:
    """The command to use where a test would run ``[sys.executable, ...]`` for a child whose
    Keras backend is ``backend`` (default: this process's): this file through that backend's
    server, started on the first call (TensorFlow installed; for JAX also JAX), else
    ``[sys.executable]`` itself."""
    backend = backend or os.environ.get("KERAS_BACKEND", "tensorflow")
    if backend not in _commands:
        _commands[backend] = _start(backend) or [sys.executable]
    return _commands[backend]


def _start(backend: str) -> list[str] | None:
    import importlib.util

    if os.environ.get("PANNS_TEST_WARM") == "0" or backend not in ("tensorflow", "jax"):
        return None
    if any(importlib.util.find_spec(m) is None for m in {"tensorflow", backend}):
        return None
    import atexit
    import subprocess
    import tempfile
    import time

    directory = tempfile.mkdtemp(prefix="panns-keras-warm-")
    path = os.path.join(directory, "warm.sock")
    # The server reads its stdin until EOF: when this process ends, so does the server.
    env = {**os.environ, "KERAS_BACKEND": backend}
    server = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--serve", path],
                              stdin=subprocess.PIPE, env=env)  # fmt: skip
    deadline = time.monotonic() + 60
    while not os.path.exists(path) and server.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    if not os.path.exists(path):
        return None

    def stop():
        server.stdin.close()
        server.wait(timeout=30)
        import shutil

        shutil.rmtree(directory, ignore_errors=True)

    atexit.register(stop)
    return [sys.executable, os.path.abspath(__file__), "--via", path, backend]


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve(sys.argv[2])
    elif sys.argv[1:2] == ["--via"]:
        _client(sys.argv[2], sys.argv[3], sys.argv[4:])
    else:
        _fallback(sys.argv[1:])
