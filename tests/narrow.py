"""Transitional: the old import name of ``tests.helpers.narrow`` (delete once no test uses it)."""

from tests.helpers.narrow import *  # noqa: F403
