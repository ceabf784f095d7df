"""Exceptions raised by clocksync.

Every error a user can cause is a :class:`ClockSyncError`; the message names the file,
line/row and field involved, so the CLI prints it as it is and exits non-zero::

    ClockSyncError
    ├── InputError            bad input data (files, rows, fields, timestamps)
    │   ├── SchemaError       a correction table that fails validation (names the field)
    │   └── InvalidTimestampError  NaN, negative or out-of-range timestamps given to a Corrector
    ├── UnknownNodeError      a Corrector asked about a node it has no table for
    ├── OutOfRangeError       a timestamp no segment of the node's table covers
    ├── InconsistentError     constraints that cannot all be true (a sample bound or table is wrong)
    └── StoreError            a table store that cannot be read or written
"""

from __future__ import annotations

__all__ = [
    "ClockSyncError",
    "InconsistentError",
    "InputError",
    "InvalidTimestampError",
    "OutOfRangeError",
    "SchemaError",
    "SignatureError",
    "StoreError",
    "UnknownNodeError",
]


class ClockSyncError(Exception):
    """Base class of every error clocksync raises on purpose."""


class InputError(ClockSyncError, ValueError):
    """Input data is malformed; the message names the file, line/row and field."""


class SchemaError(InputError):
    """A correction table does not validate; the message names the offending field."""


class SignatureError(SchemaError):
    """A table whose HMAC signature is missing or wrong while a table key is configured."""


class InvalidTimestampError(InputError):
    """A timestamp is NaN, negative or not an integer number of nanoseconds."""


class UnknownNodeError(ClockSyncError, KeyError):
    """No correction table is known for the requested node."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class OutOfRangeError(ClockSyncError, ValueError):
    """A timestamp lies where the node's table gives no answer (before its first sample)."""


class InconsistentError(ClockSyncError):
    """Constraints contradict each other: a sample's bound or a table is wrong, or a clock
    stepped."""


class StoreError(ClockSyncError):
    """A table store could not be read or written."""
