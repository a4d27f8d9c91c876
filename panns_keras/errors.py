"""Exceptions for user mistakes: the CLI prints them as one line, without a traceback."""


class UserError(Exception):
    """A problem with the user's input (file, flag, data) rather than a bug."""
