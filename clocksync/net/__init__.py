"""Kernel timestamps on datagram sockets (Linux), shared by the NTP and PTP sources.

:class:`StampedSocket` wraps a ``SOCK_DGRAM`` (or packet) socket: every send returns a TX
:class:`Stamp` (kernel ``SO_TIMESTAMPING`` software stamp from the error queue, matched to
its datagram by the kernel's send counter) and every receive a :class:`Received` datagram
with its RX :class:`Stamp` (kernel ``SO_TIMESTAMPNS``). When the kernel gives none, the
tightest user-space reading is used: before ``sendto``, after ``poll`` — so every stamp keeps
causal order (a TX stamp is never later than the departure, an RX stamp never earlier than
the arrival). :class:`StampKind` tells which kind each stamp is.

Stamps are system ``CLOCK_REALTIME`` nanoseconds; callers map them through a
:class:`clocksync.Clock`. The ``SO_*``, ``SOF_TIMESTAMPING_*``, ``SCM_*`` and
``MSG_ERRQUEUE`` constants and :func:`parse_rx_stamp_ns` / :func:`parse_tx_stamp` are for
transports that read stamps themselves (e.g. TX stamps on a packet socket).
"""

from .._model._stamps import Stamp, StampKind
from ._timestamping import (
    IP_RECVERR,
    IPV6_RECVERR,
    MSG_ERRQUEUE,
    SCM_TIMESTAMPING,
    SCM_TIMESTAMPNS,
    SCM_TSTAMP_SND,
    SO_EE_ORIGIN_TIMESTAMPING,
    SO_TIMESTAMPING,
    SO_TIMESTAMPNS,
    SOF_TIMESTAMPING_OPT_ID,
    SOF_TIMESTAMPING_OPT_TSONLY,
    SOF_TIMESTAMPING_SOFTWARE,
    SOF_TIMESTAMPING_TX_SOFTWARE,
    Received,
    StampedSocket,
    parse_rx_stamp_ns,
    parse_tx_stamp,
)

__all__ = [
    "IPV6_RECVERR",
    "IP_RECVERR",
    "MSG_ERRQUEUE",
    "SCM_TIMESTAMPING",
    "SCM_TIMESTAMPNS",
    "SCM_TSTAMP_SND",
    "SOF_TIMESTAMPING_OPT_ID",
    "SOF_TIMESTAMPING_OPT_TSONLY",
    "SOF_TIMESTAMPING_SOFTWARE",
    "SOF_TIMESTAMPING_TX_SOFTWARE",
    "SO_EE_ORIGIN_TIMESTAMPING",
    "SO_TIMESTAMPING",
    "SO_TIMESTAMPNS",
    "Received",
    "Stamp",
    "StampKind",
    "StampedSocket",
    "parse_rx_stamp_ns",
    "parse_tx_stamp",
]
