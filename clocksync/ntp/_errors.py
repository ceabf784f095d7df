"""Exceptions of the NTP source, and the reason codes of rejected replies.

Exception tree (all are :class:`~clocksync._model._errors.ClockSyncError`)::

    InputError
    ├── NtpAddressError        SERVER[:PORT] that is malformed or does not resolve
    └── NtpRejectError         a reply failed validation; ``.reason`` is a RejectReason
        ├── NtpDecodeError     bytes that are not an NTP packet (reason MALFORMED)
        └── KissOfDeathError   stratum 0; ``.code`` ("RATE", "DENY", ...), ``.stop_polling``
    NtpTimeoutError            no valid reply before the deadline
    NtsKeyExchangeError        NTS-KE failed; ``.reason`` is NtsFailure.TLS or NtsFailure.KE

NTS replies that fail their own checks raise :class:`NtsRejectError` (an
:class:`NtpRejectError` with reason ``nts_unique_id``, ``nts_auth`` or ``nts_nak``).

Decoding and validating untrusted bytes raises nothing but :class:`NtpRejectError` (and its
subclasses); the fuzz tests hold the codec to that.
"""

from __future__ import annotations

import enum

from .._model._errors import ClockSyncError, InputError

__all__ = [
    "KissOfDeathError",
    "NtpAddressError",
    "NtpDecodeError",
    "NtpRejectError",
    "NtpTimeoutError",
    "NtsFailure",
    "NtsKeyExchangeError",
    "NtsRejectError",
    "RejectReason",
]


class RejectReason(enum.StrEnum):
    """Why a reply was refused (one code per check, in the order the checks run)."""

    MALFORMED = "malformed"  #: shorter than 48 bytes, or a field out of range
    BAD_ORIGIN = "bad_origin"  #: origin timestamp is not our request's transmit (spoofed/stale)
    BAD_MODE = "bad_mode"  #: not mode 4 (server) in answer to a client request
    BAD_VERSION = "bad_version"  #: version other than 3 or 4
    KOD_RATE = "kod_rate"  #: Kiss-o'-Death RATE: poll less often
    KOD_DENY = "kod_deny"  #: Kiss-o'-Death DENY: access denied, stop polling this server
    KOD_RSTR = "kod_rstr"  #: Kiss-o'-Death RSTR: access restricted, stop polling this server
    KOD_OTHER = "kod_other"  #: any other stratum-0 reply (no usable time)
    UNSYNCHRONISED = "unsynchronised"  #: leap indicator 3: the server has no good time
    BAD_STRATUM = "bad_stratum"  #: stratum above 15 (16 = unsynchronised)
    ZERO_TRANSMIT = "zero_transmit"  #: transmit timestamp is zero
    ABSURD_TIMESTAMPS = "absurd_timestamps"  #: receive zero, t3 < t2, negative delay, ...
    NTS_UNIQUE_ID = "nts_unique_id"  #: NTS: no Unique Identifier, or not our request's
    NTS_AUTH = "nts_auth"  #: NTS: authenticator missing, misplaced or wrong; bad layout
    NTS_NAK = "nts_nak"  #: NTS: Kiss-o'-Death NTSN: the server refused our cookie


class NtsFailure(enum.StrEnum):
    """Why an NTS step failed (the ``reason`` label of the NTS failure counter)."""

    TLS = "tls"  #: no TLS 1.3 session with ALPN ntske/1 and a trusted, matching certificate
    KE = "ke"  #: the NTS-KE records were refused, malformed or incomplete
    NAK = "nak"  #: the NTP server answered NTS NAK (cookie refused): a new NTS-KE follows
    AUTH = "auth"  #: a reply whose authenticator is missing or does not verify
    UNIQUE_ID = "unique_id"  #: a reply that does not echo our request's Unique Identifier


class NtpAddressError(InputError):
    """A server address that is malformed or cannot be resolved."""


class NtpRejectError(InputError):
    """A reply that failed validation; ``reason`` says which check."""

    def __init__(self, reason: RejectReason, message: str):
        super().__init__(f"{message} [{reason.value}]")
        self.reason = reason


class NtpDecodeError(NtpRejectError):
    """Bytes that cannot be decoded as an NTP packet."""

    def __init__(self, message: str):
        super().__init__(RejectReason.MALFORMED, message)


class KissOfDeathError(NtpRejectError):
    """A Kiss-o'-Death reply (stratum 0). ``stop_polling`` is true for DENY and RSTR."""

    def __init__(self, reason: RejectReason, code: str, message: str):
        super().__init__(reason, message)
        self.code = code
        self.stop_polling = reason in (RejectReason.KOD_DENY, RejectReason.KOD_RSTR)


class NtpTimeoutError(ClockSyncError):
    """No valid reply arrived before the timeout."""


class NtsKeyExchangeError(ClockSyncError):
    """NTS key establishment failed; ``reason`` is :attr:`NtsFailure.TLS` or
    :attr:`NtsFailure.KE`."""

    def __init__(self, reason: NtsFailure, message: str):
        super().__init__(f"{message} [nts {reason.value}]")
        self.reason = reason


_NTS_FAILURE = {
    RejectReason.NTS_UNIQUE_ID: NtsFailure.UNIQUE_ID,
    RejectReason.NTS_AUTH: NtsFailure.AUTH,
    RejectReason.NTS_NAK: NtsFailure.NAK,
}


class NtsRejectError(NtpRejectError):
    """A reply refused by an NTS check; ``failure`` is its :class:`NtsFailure`."""

    def __init__(self, reason: RejectReason, message: str):
        super().__init__(reason, message)
        self.failure = _NTS_FAILURE[reason]
