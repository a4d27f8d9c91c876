"""Exceptions for user mistakes: the CLI prints them as one line, without a traceback."""


class UserError(Exception):
    """A problem with the user's input (file, flag, data) rather than a bug."""


class Stopped(UserError):
    """A run stopped by a signal after saving its checkpoint; the same command resumes it.

    The CLI exits with :attr:`exit_code` (143 = 128 + SIGTERM, as a shell reports a process
    ended by SIGTERM), so a scheduler does not take the run for a finished job.
    """

    exit_code = 143
