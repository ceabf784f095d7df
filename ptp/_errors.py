"""The one error the PTP codec raises on malformed input.

::

    clocksync._errors.InputError
    └── PtpDecodeError     bytes that are not a well-formed IEEE 1588-2008 (PTPv2) message
"""

from __future__ import annotations

from clocksync._errors import InputError

__all__ = ["PtpDecodeError"]


class PtpDecodeError(InputError):
    """Bytes that are not a well-formed PTPv2 message; the message names the field at fault."""
