"""Transitional: the fork server is gone; ``[*python(), ARGS]`` is ``[sys.executable, ARGS]``
(delete once no test imports it; new tests use the ``cli`` fixture or ``sys.executable``)."""

import sys


def python(backend: str | None = None) -> list[str]:
    del backend
    return [sys.executable]
