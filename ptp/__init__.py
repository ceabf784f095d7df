"""PTPv2 (IEEE 1588-2008) messages and a measure-only software-timestamping slave.

The codec (:func:`decode`, :func:`encode` and the message classes) is pure: bytes in, typed
messages out, no sockets. :class:`SlavePort` is the slave's pure state machine (BMCA,
matching, delay filter, bounds); :class:`PtpSlave` runs it on an interface with kernel
timestamps, and :func:`to_sample` turns each exchange into a :class:`clocksync.Sample`.

Sign: offset = master (reference) - local, the negative of ptp4l's ``master offset``.
"""

from ._bmca import AnnounceDataset, ForeignMasters, compare_datasets
from ._codec import decode, encode
from ._errors import PtpDecodeError
from ._exchange import DelayFilter, Exchange, Measurement, measure
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
from ._port import PortConfig, PtpResult, SlavePort
from ._probe import ProbeSummary, result_line, result_record, summarize
from ._slave import PtpSlave, default_identity, to_sample
from ._types import ClockQuality, PortIdentity, Timestamp

__all__ = [
    "ETHERTYPE_PTP",
    "EVENT_PORT",
    "GENERAL_PORT",
    "Announce",
    "AnnounceDataset",
    "ClockQuality",
    "DelayFilter",
    "DelayReq",
    "DelayResp",
    "Exchange",
    "FollowUp",
    "ForeignMasters",
    "Management",
    "ManagementTlv",
    "Measurement",
    "MessageType",
    "PdelayReq",
    "PdelayResp",
    "PdelayRespFollowUp",
    "PortConfig",
    "PortIdentity",
    "ProbeSummary",
    "PtpDecodeError",
    "PtpMessage",
    "PtpResult",
    "PtpSlave",
    "Signaling",
    "SlavePort",
    "Sync",
    "Timestamp",
    "Tlv",
    "compare_datasets",
    "decode",
    "default_identity",
    "encode",
    "measure",
    "result_line",
    "result_record",
    "summarize",
    "to_sample",
]
