"""Errors that are the user's to fix.

The CLI prints a ``UserError`` as one line and exits non-zero without a traceback;
anything else is a bug in tinkerx and keeps its traceback.
"""


class UserError(Exception):
    """A mistake in configuration, input data or environment that the user can correct."""


class ConfigError(UserError):
    """An invalid configuration value, caught before any work starts."""


class DataError(UserError):
    """A missing or malformed data file."""


class OutOfMemoryError(UserError):
    """Memory ran out in a step (CUDA OOM, a CPU allocator failure): which step, which sequence
    lengths and which key lowers the footprint. The run stops cleanly and can be resumed."""
