"""NTP source: packet codec, client with kernel timestamps, server, probe.

Modules: ``_packet`` (pure codec and reply validation), ``_exchange`` (pure offset/delay/bound
arithmetic), ``_poll`` (pure adaptive poll policy), ``_client``, ``_server``, ``_probe``.
"""

from ._client import Burst, NtpClient, NtpMeasurement
from ._errors import (
    KissOfDeathError,
    NtpAddressError,
    NtpDecodeError,
    NtpRejectError,
    NtpTimeoutError,
    RejectReason,
)
from ._exchange import STAMP_ERROR_NS, Exchange, exchange_bound_ns, select_min_delay
from ._packet import NtpPacket, decode, encode, ns_to_ntp, ntp_to_ns, validate_reply
from ._poll import PollPolicy
from ._probe import (
    ProbeSummary,
    iter_probe,
    measurement_record,
    parse_target,
    probe,
    summarize,
)
from ._server import NtpServer

__all__ = [
    "STAMP_ERROR_NS",
    "Burst",
    "Exchange",
    "KissOfDeathError",
    "NtpAddressError",
    "NtpClient",
    "NtpDecodeError",
    "NtpMeasurement",
    "NtpPacket",
    "NtpRejectError",
    "NtpServer",
    "NtpTimeoutError",
    "PollPolicy",
    "ProbeSummary",
    "RejectReason",
    "decode",
    "encode",
    "exchange_bound_ns",
    "iter_probe",
    "measurement_record",
    "ns_to_ntp",
    "ntp_to_ns",
    "parse_target",
    "probe",
    "select_min_delay",
    "summarize",
    "validate_reply",
]
