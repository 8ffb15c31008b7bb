"""The exception types the command line shows as one message: mistakes a
user can fix, and a run that could not finish."""


class PresenceSimError(Exception):
    """A problem with the user's input: a scenario, a file, an option.

    The message names the offending field or file and says what would be
    valid. The command line shows it without a traceback and exits with 2.
    """


class RunAborted(Exception):
    """A run stopped by something outside the user's input, such as a worker
    process killed by the system. The command line shows the message without
    a traceback and exits with 1."""
