"""The one exception type the CLI turns into a one-line error (no traceback)."""


class BenchError(Exception):
    """Bad input or a failed check: the message names the file or value and the problem."""
