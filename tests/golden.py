"""Transitional: the old import name of ``tests.helpers.golden`` (delete once no test uses it)."""

from tests.helpers.golden import *  # noqa: F403
