"""The one exception class for mistakes a user can fix."""


class UserError(Exception):
    """Bad input the user can correct: the CLI prints `error: <message>` on one line and exits 2."""
