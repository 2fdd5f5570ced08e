"""Errors that are the user's to fix.

`main.py` prints the message of a `UserError` alone (no traceback unless
`--debug`) and exits with status 2; every other exception is a bug or an
environment failure and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake in the command, config, data or files; the message names the fix."""


class ConfigError(UserError, ValueError):
    """A config value that cannot work; the message names the field and what would."""


class DataError(UserError, ValueError):
    """Training or evaluation data that cannot be used (missing lists, empty folders)."""


class CheckpointError(UserError, ValueError):
    """A checkpoint or weight file that does not fit the model or cannot be read."""


class ResourceError(UserError, OSError):
    """The machine refused: a full disk, a read-only directory."""
