"""Project-wide exceptions and warning categories.

Libraries raise these (never ``print``); the CLI turns them into one clear line for the user.
"""

from __future__ import annotations


class HeartlineError(Exception):
    """Base class of every error Heartline raises on purpose."""


class DataError(HeartlineError):
    """A data file or record is missing, truncated or corrupt. The message names the file."""


class DataNotFoundError(DataError):
    """A database or record is not on disk. The message says how to fetch it."""


class SignalError(HeartlineError, ValueError):
    """A signal cannot be processed (empty, wrong shape, bad sampling rate...)."""


class HeartlineWarning(UserWarning):
    """Recoverable data problem: processing continued and a quality flag was set."""
