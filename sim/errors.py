"""The one exception type for mistakes a user can fix."""


class PresenceSimError(Exception):
    """A problem with the user's input: a scenario, a file, an option.

    The message names the offending field or file and says what would be
    valid. The command line shows it without a traceback and exits with 2.
    """
