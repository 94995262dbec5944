"""The error raised for bad data on disk."""

from __future__ import annotations


class DataError(ValueError):
    """A data file or folder is missing, unreadable or holds values we cannot use.

    The message always names the file (or folder searched) and the problem, so a user can find
    and fix the offending sample without a debugger. It is a ``ValueError`` so callers that
    already catch bad values keep working.
    """
