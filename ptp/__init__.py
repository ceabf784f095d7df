"""PTPv2 (IEEE 1588-2008) messages and a measure-only software-timestamping slave.

The codec (:func:`decode`, :func:`encode` and the message classes) is pure: bytes in, typed
messages out, no sockets. :class:`SlavePort` is the slave's pure state machine (BMCA,
matching, delay filter, bounds); :class:`PtpSlave` runs it on an interface with kernel
timestamps, and :func:`to_sample` turns each exchange into a :class:`clocksync.Sample`.

:class:`Ptp4lClient` reads a running ptp4l's measurements over its management socket.

Sign: offset = master (reference) - local, the negative of ptp4l's ``master offset``.
"""

from ._bmca import AnnounceDataset, ForeignMasters, compare_datasets
from ._codec import decode, encode, with_sequence_id
from ._errors import Ptp4lManagementError, PtpDecodeError
from ._exchange import DelayFilter, Exchange, Measurement, RateEstimator, measure
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
from ._pmc import CurrentDataSet, Ptp4lClient, TimeStatus
from ._port import DelayReqDue, PortConfig, PtpResult, SlavePort
from ._probe import ProbeSummary, result_line, result_record, summarize
from ._slave import PtpSlave, default_identity, to_sample
from ._types import ClockQuality, PortIdentity, Timestamp, format_clock_identity

__all__ = [
    "ETHERTYPE_PTP",
    "EVENT_PORT",
    "GENERAL_PORT",
    "Announce",
    "AnnounceDataset",
    "ClockQuality",
    "CurrentDataSet",
    "DelayFilter",
    "DelayReq",
    "DelayReqDue",
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
    "Ptp4lClient",
    "Ptp4lManagementError",
    "PtpDecodeError",
    "PtpMessage",
    "PtpResult",
    "PtpSlave",
    "RateEstimator",
    "Signaling",
    "SlavePort",
    "Sync",
    "TimeStatus",
    "Timestamp",
    "Tlv",
    "compare_datasets",
    "decode",
    "default_identity",
    "encode",
    "format_clock_identity",
    "measure",
    "result_line",
    "result_record",
    "summarize",
    "to_sample",
    "with_sequence_id",
]
