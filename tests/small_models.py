"""Transitional: the old import name of ``tests.helpers.small_models`` (delete once no test
uses it)."""

from tests.helpers.small_models import *  # noqa: F403
