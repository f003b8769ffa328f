"""The one exception type for problems a user can fix."""

from __future__ import annotations


class YolosslError(Exception):
    """Bad input or an impossible request: the message names the file and what to do.

    The CLI prints it as one line and exits with code 2; it never becomes a traceback.
    """


def first_line(error: BaseException) -> str:
    """The first line of a library's error message (or its type): enough for a one-line error."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
