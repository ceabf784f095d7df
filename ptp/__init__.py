"""PTPv2 (IEEE 1588-2008) messages and a measure-only software-timestamping slave.

Two parts, in one-way dependence:

* the **protocol** part, socket-free (no ``socket``/``select``, no :mod:`clocksync.net`):
  the codec (:func:`decode`, :func:`encode` and the message classes: bytes in, typed
  messages out), the BMCA (:class:`ForeignMasters`), the exchange arithmetic
  (:class:`Exchange`, :func:`measure`, :class:`DelayFilter`), the slave's state machine
  (:class:`SlavePort`) and ptp4l's configuration text and log lines (:func:`config_text`,
  :func:`parse_offset_line`). Of clocksync it uses only the error classes and
  :class:`clocksync.Assumptions`.
* the **I/O** part: :class:`PtpSlave` runs a :class:`SlavePort` on an interface over a
  :class:`Transport` (:class:`UdpTransport`, :class:`L2Transport`) with kernel timestamps
  (:mod:`clocksync.net`), :func:`to_sample` turns each exchange into a
  :class:`clocksync.Sample`, :class:`Ptp4lClient` reads a running ptp4l's measurements over
  its management socket, and :func:`summarize` and :func:`result_line` report a probe run.

Sign: offset = master (reference) - local, the negative of ptp4l's ``master offset``.
"""

from ._bmca import AnnounceDataset, ForeignMasters, compare_datasets
from ._codec import decode, encode, with_sequence_id
from ._errors import Ptp4lManagementError, PtpDecodeError
from ._exchange import DelayFilter, Exchange, Measurement, RateEstimator, measure
from ._messages import (
    ETHERTYPE_PTP,
    EVENT_PORT,
    FLAG_NAMES,
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
from ._port import (
    REJECT_DUPLICATE,
    REJECT_NO_MASTER,
    REJECT_NOT_MASTER,
    REJECT_WRONG_DOMAIN,
    REJECT_WRONG_SEQUENCE,
    DelayReqDue,
    PortConfig,
    PtpResult,
    SlavePort,
)
from ._probe import ProbeSummary, result_line, result_record, summarize
from ._ptp4l import MASTER_OPTIONS, SLAVE_OPTIONS, Ptp4lOffset, config_text, parse_offset_line
from ._slave import (
    REJECT_DELAY_OUTLIER,
    REJECT_MALFORMED,
    REJECT_NON_CAUSAL,
    STALE_DUE_S,
    PtpSlave,
    SlaveStats,
    default_identity,
    to_sample,
)
from ._transport import (
    PTP_PRIMARY_MAC,
    PTP_PRIMARY_MULTICAST,
    L2Transport,
    Transport,
    UdpTransport,
    ethernet_payload,
    interface_mac,
    open_transport,
)
from ._types import ClockQuality, PortIdentity, Timestamp, format_clock_identity

__all__ = [
    "ETHERTYPE_PTP",
    "EVENT_PORT",
    "FLAG_NAMES",
    "GENERAL_PORT",
    "MASTER_OPTIONS",
    "PTP_PRIMARY_MAC",
    "PTP_PRIMARY_MULTICAST",
    "REJECT_DELAY_OUTLIER",
    "REJECT_DUPLICATE",
    "REJECT_MALFORMED",
    "REJECT_NON_CAUSAL",
    "REJECT_NOT_MASTER",
    "REJECT_NO_MASTER",
    "REJECT_WRONG_DOMAIN",
    "REJECT_WRONG_SEQUENCE",
    "SLAVE_OPTIONS",
    "STALE_DUE_S",
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
    "L2Transport",
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
    "Ptp4lOffset",
    "PtpDecodeError",
    "PtpMessage",
    "PtpResult",
    "PtpSlave",
    "RateEstimator",
    "Signaling",
    "SlavePort",
    "SlaveStats",
    "Sync",
    "TimeStatus",
    "Timestamp",
    "Tlv",
    "Transport",
    "UdpTransport",
    "compare_datasets",
    "config_text",
    "decode",
    "default_identity",
    "encode",
    "ethernet_payload",
    "format_clock_identity",
    "interface_mac",
    "measure",
    "open_transport",
    "parse_offset_line",
    "result_line",
    "result_record",
    "summarize",
    "to_sample",
    "with_sequence_id",
]
