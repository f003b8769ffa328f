"""The one exception type for problems a user can fix."""

from __future__ import annotations


class YolosslError(Exception):
    """Bad input or an impossible request: the message names the file and what to do.

    The CLI prints it as one line and exits with code 2; it never becomes a traceback.
    """
