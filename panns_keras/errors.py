"""Exceptions for user mistakes: the CLI prints them as one line, without a traceback.

Exit codes of ``panns-keras``: 2 for a usage mistake (:class:`UsageError`, a bad or unknown
flag, a flag value out of bounds, a bad ``--config``), 1 for every other
:class:`UserError` (an input that cannot be used: a missing or unreadable file, a model that
does not load, bad data; the verbs that take several inputs process the others first).
"""


class UserError(Exception):
    """A problem with the user's input (file, flag, data) rather than a bug."""


class UsageError(UserError):
    """The command line itself is wrong (exit code 2)."""


class Stopped(UserError):
    """A run stopped by a signal after saving its checkpoint; the same command resumes it.

    The CLI exits with :attr:`exit_code` (143 = 128 + SIGTERM, as a shell reports a process
    ended by SIGTERM), so a scheduler does not take the run for a finished job.
    """

    exit_code = 143
