"""Transitional: the old import name of ``tests.helpers.train_data`` (delete once no test uses
it)."""

from tests.helpers.train_data import *  # noqa: F403
