"""The one exception type for user mistakes.

Anything raised as `LstmkitError` is the user's to fix (a missing file, a bad flag value, a
corrupted model directory). The CLI prints its message on one line and exits with status 2;
every other exception is a bug in lstmkit and keeps its traceback.
"""


class LstmkitError(Exception):
    """A user-facing error: the message names the problem and the fix, on one line."""
