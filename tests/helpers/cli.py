"""``panns-keras VERB ARGS`` run in the test process through ``panns_keras.cli.main(argv)``.

Each verb is an absl program whose module defines its flags when imported, and two verbs
may define the same flag name (``--out``, ``--model``). So every call starts and ends with
no verb imported: the flags the package's modules defined are deleted and the verb modules
are unloaded, and the next call imports its verb anew with only its own flags (as a fresh
``panns-keras`` process would). Output is read from pytest's ``capfd`` (file-descriptor
capture: absl's log handler, the progress lines and ``print`` alike).

What a test cannot check in-process (a TensorFlow log line printed while TensorFlow is
imported, a signal, the installed entry point) runs ``[sys.executable, "-m", "panns_keras",
...]`` in a subprocess instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from absl import flags

_OWNERS = ("panns_keras.", "data_prep.")  # modules whose flags a verb defines


def forget_verbs() -> None:
    """Deletes every flag the package defined and unloads the verb modules."""
    fv = flags.FLAGS
    for module, defined in list(fv.flags_by_module_dict().items()):
        if module.startswith(_OWNERS):
            for flag in list(defined):  # deleting a flag edits this list
                for name in {flag.name, flag.short_name} - {None}:
                    if name in fv:
                        delattr(fv, name)
    for name in [m for m in sys.modules if m.startswith("panns_keras.cli.")]:
        del sys.modules[name]


def run_cli(capfd, *args, cwd: str | os.PathLike | None = None) -> subprocess.CompletedProcess:
    """``panns-keras *args`` in-process (in ``cwd`` if given): returncode, stdout, stderr."""
    from panns_keras.cli import main

    argv = ["panns-keras", *map(str, args)]
    capfd.readouterr()  # what the test printed before belongs to no command
    previous = Path.cwd()
    forget_verbs()
    try:
        if cwd is not None:
            os.chdir(cwd)
        rc = main(argv)
    finally:
        os.chdir(previous)
        forget_verbs()
    out, err = capfd.readouterr()
    return subprocess.CompletedProcess(argv, rc, out, err)
