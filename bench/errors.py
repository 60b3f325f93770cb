"""The one exception type the CLI turns into a one-line error (no traceback)."""


class BenchError(Exception):
    """Bad input or a failed check: the message names the file or value and the problem."""


def did_you_mean(word: str, choices) -> str:
    """' (did you mean "x"?)' for the closest of ``choices`` to a misspelt ``word`` (difflib), else ""."""
    import difflib
    choices = [str(c) for c in choices]
    close = difflib.get_close_matches(str(word), choices, n=1, cutoff=0.6)
    starting = [c for c in choices if c.startswith(str(word))] if word else []
    close = close or (starting if len(starting) == 1 else [])  # "natural" for "natural-frequency"
    return f" (did you mean {close[0]!r}?)" if close else ""
