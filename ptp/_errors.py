"""The errors of the ptp package: the codec's one error on malformed input, and ptp4l's.

Both are clocksync errors, so the CLI reports them like any other::

    clocksync.InputError
    └── PtpDecodeError          bytes that are not a well-formed IEEE 1588-2008 (PTPv2) message
    clocksync.ClockSyncError
    └── Ptp4lManagementError    a ptp4l management socket that cannot be read
"""

from __future__ import annotations

from clocksync import ClockSyncError, InputError

__all__ = ["Ptp4lManagementError", "PtpDecodeError"]


class PtpDecodeError(InputError):
    """Bytes that are not a well-formed PTPv2 message; the message names the field at fault."""


class Ptp4lManagementError(ClockSyncError):
    """ptp4l's management socket is missing, silent, or refused a GET (names the socket)."""
