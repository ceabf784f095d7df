"""The one error the PTP codec raises on malformed input.

::

    clocksync._errors.InputError
    └── PtpDecodeError          bytes that are not a well-formed IEEE 1588-2008 (PTPv2) message
    clocksync._errors.ClockSyncError
    └── Ptp4lManagementError    a ptp4l management socket that cannot be read
"""

from __future__ import annotations

from clocksync._errors import ClockSyncError, InputError

__all__ = ["Ptp4lManagementError", "PtpDecodeError"]


class PtpDecodeError(InputError):
    """Bytes that are not a well-formed PTPv2 message; the message names the field at fault."""


class Ptp4lManagementError(ClockSyncError):
    """ptp4l's management socket is missing, silent, or refused a GET (names the socket)."""
