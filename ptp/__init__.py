"""PTPv2 (IEEE 1588-2008) messages and a measure-only software-timestamping slave.

The codec (:func:`decode`, :func:`encode` and the message classes) is pure: bytes in, typed
messages out, no sockets.
"""

from ._codec import decode, encode
from ._errors import PtpDecodeError
from ._messages import (
    ETHERTYPE_PTP,
    EVENT_PORT,
    GENERAL_PORT,
    Announce,
    DelayReq,
    DelayResp,
    FollowUp,
    Management,
    ManagementTlv,
    MessageType,
    PdelayReq,
    PdelayResp,
    PdelayRespFollowUp,
    PtpMessage,
    Signaling,
    Sync,
    Tlv,
)
from ._types import ClockQuality, PortIdentity, Timestamp

__all__ = [
    "ETHERTYPE_PTP",
    "EVENT_PORT",
    "GENERAL_PORT",
    "Announce",
    "ClockQuality",
    "DelayReq",
    "DelayResp",
    "FollowUp",
    "Management",
    "ManagementTlv",
    "MessageType",
    "PdelayReq",
    "PdelayResp",
    "PdelayRespFollowUp",
    "PortIdentity",
    "PtpDecodeError",
    "PtpMessage",
    "Signaling",
    "Sync",
    "Timestamp",
    "Tlv",
    "decode",
    "encode",
]
