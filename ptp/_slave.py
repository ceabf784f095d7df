"""The measure-only PTP slave on a network interface (E2E delay mechanism).

Over UDPv4 it opens its own sockets on ports 319 (event) and 320 (general) with
``SO_REUSEADDR``, bound to the interface and joined to 224.0.1.129; over Ethernet a packet
socket for ethertype 0x88F7 (:class:`ptp.UdpTransport`, :class:`ptp.L2Transport`). Either
way it runs beside a ptp4l on the same interface. Receive times are kernel
``SO_TIMESTAMPNS`` stamps, Delay_Req send times kernel ``SO_TIMESTAMPING`` stamps from the
error queue (:mod:`clocksync.net`), all mapped through a :class:`clocksync.Clock` so a
simulated clock can make the node skewed. It never sets or steers any clock.

Each completed exchange becomes a :class:`~clocksync.Sample` via :func:`to_sample`:
``offset_ns`` = reference (master) - local, the *negative* of ptp4l's ``master offset``;
``delay_ns`` = round trip (2 x meanPathDelay); ``bound_ns`` = the exchange's guaranteed
half-width (see :func:`ptp.measure`).
"""

from __future__ import annotations

import os
import select
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from clocksync import Clock, InputError, Sample, SystemClock
from clocksync.net import Received, StampKind

from ._codec import decode
from ._errors import PtpDecodeError
from ._messages import MessageType
from ._port import DelayReqDue, PortConfig, PtpResult, SlavePort
from ._transport import Transport, interface_mac, open_transport
from ._types import PortIdentity

__all__ = [
    "REJECT_DELAY_OUTLIER",
    "REJECT_MALFORMED",
    "REJECT_NON_CAUSAL",
    "STALE_DUE_S",
    "PtpSlave",
    "SlaveStats",
    "default_identity",
    "to_sample",
]

# Reasons beside the port's (``ptp.REJECT_*``), see :attr:`PtpSlave.rejected`.
#: the message did not decode (:class:`ptp.PtpDecodeError`)
REJECT_MALFORMED = "malformed"
#: the delay filter rejected the exchange (round trip > outlier_factor x the median)
REJECT_DELAY_OUTLIER = "delay_outlier"
#: the exchange's stamps imply a negative round trip (its bound is widened by the gap)
REJECT_NON_CAUSAL = "non_causal"
#: a Delay_Req due this long ago (s) when :meth:`PtpSlave.run` is called again is dropped
STALE_DUE_S = 1.0

_EVENT_TYPES = (
    MessageType.SYNC,
    MessageType.DELAY_REQ,
    MessageType.PDELAY_REQ,
    MessageType.PDELAY_RESP,
)


def default_identity(iface: str) -> bytes:
    """A clockIdentity from the interface's MAC, distinct from ptp4l's on the same MAC.

    ptp4l builds ``mac[0:3] ff fe mac[3:6]``; we use ``c5 5c`` in the middle so both can
    run side by side without taking each other's Delay_Resps. Random without a MAC.
    """
    mac = interface_mac(iface)
    if not mac or mac == b"\x00" * 6:
        return bytes([os.urandom(1)[0] | 0x02]) + os.urandom(7)  # locally administered
    return mac[:3] + b"\xc5\x5c" + mac[3:]


@dataclass
class SlaveStats:
    """Counters of one slave run."""

    received: int = 0
    malformed: int = 0
    delay_reqs: int = 0
    results: int = 0
    outliers: int = 0
    non_causal: int = 0  #: exchanges whose stamps imply a negative round trip
    user_stamps: int = 0  #: stamps that fell back to user space (kernel gave none)
    last_error: str = ""
    by_kind: dict[str, int] = field(default_factory=dict)


class PtpSlave:
    """A measure-only E2E slave on ``iface`` (UDPv4 multicast or Ethernet).

    Args:
        iface: network interface name.
        config: port options (domain, filter, assumptions).
        clock: maps system times to this node's local clock (default: the system clock).
        identity: our 8-octet clockIdentity (default: :func:`default_identity`).
        transport: ``"udp"`` (UDPv4 multicast) or ``"l2"`` (Ethernet, ethertype 0x88F7).

    Raises:
        InputError: the interface does not exist.
        ValueError: unknown transport name.
        OSError: the sockets cannot be opened (e.g. no permission for the ports).
    """

    iface: str
    clock: Clock  #: maps system times (kernel stamps) to this node's local clock
    port: SlavePort  #: the protocol state machine
    stats: SlaveStats
    transport: Transport

    def __init__(
        self,
        iface: str,
        *,
        config: PortConfig | None = None,
        clock: Clock | None = None,
        identity: bytes | None = None,
        transport: str = "udp",
    ) -> None:
        try:
            ifindex = socket.if_nametoindex(iface)
        except OSError:
            raise InputError(f"ptp: interface {iface!r}: no such network interface") from None
        self.iface = iface
        self.clock = clock if clock is not None else SystemClock()
        ident = identity if identity is not None else default_identity(iface)
        self.port = SlavePort(
            PortIdentity(clockIdentity=ident, portNumber=1), config or PortConfig()
        )
        self.stats = SlaveStats()
        self.transport = open_transport(transport, iface, ifindex)
        self._due: DelayReqDue | None = None

    @property
    def rejected(self) -> dict[str, int]:
        """Dropped messages and unusable exchanges since the start, by reason: the port's
        (``ptp.REJECT_*``: wrong domain, no or another master, wrong sequenceId,
        duplicates), ``malformed``, ``delay_outlier`` and ``non_causal`` exchanges (still
        yielded by :meth:`run`, flagged by ``accepted`` / their interval)."""
        out = dict(self.port.rejected)
        for reason, count in ((REJECT_MALFORMED, self.stats.malformed),
                              (REJECT_DELAY_OUTLIER, self.stats.outliers),
                              (REJECT_NON_CAUSAL, self.stats.non_causal)):  # fmt: skip
            if count:
                out[reason] = count
        return out

    def close(self) -> None:
        """Close the transport's sockets (idempotent)."""
        self.transport.close()

    def __enter__(self) -> PtpSlave:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, seconds: float) -> Iterator[PtpResult]:
        """Listen for ``seconds``; yield each completed exchange as it completes.

        Call it again to go on: a Delay_Req still due from the previous call is sent, unless
        it is over :data:`STALE_DUE_S` late (its Sync is then too old to pair with).
        """
        poller = select.poll()
        socks = {s.socket.fileno(): s for s in self.transport.sockets()}
        for fd in socks:
            poller.register(fd, select.POLLIN)
        deadline = time.monotonic() + seconds
        if self._due is not None and time.monotonic() - self._due.at_s > STALE_DUE_S:
            self._due = None
        while (left_s := deadline - time.monotonic()) > 0:
            if self._due is not None:
                left_s = min(left_s, max(0.0, self._due.at_s - time.monotonic()))
            for fd, _ev in poller.poll(max(0, int(left_s * 1000 + 0.999))):
                sock = socks[fd]
                while (got := sock.recv(0.0)) is not None:
                    result = self._handle(got)
                    if result is not None:
                        yield result
            if self._due is not None and time.monotonic() >= self._due.at_s:
                self._send_delay_req(self._due.cold)

    def _send_delay_req(self, cold: bool) -> None:
        self._due = None
        seq, wire = self.port.delay_req(time.monotonic(), cold)
        stamp = self.transport.send_event(wire)
        if stamp.kind is StampKind.USER:
            self.stats.user_stamps += 1
        self.stats.delay_reqs += 1
        self.port.sent(seq, self.clock.read_ns(stamp.system_ns))

    def _handle(self, got: Received) -> PtpResult | None:
        payload = self.transport.unwrap(got)
        if payload is None:
            return None
        self.stats.received += 1
        try:
            msg = decode(payload, allow_padding=self.transport.padded)
        except PtpDecodeError as exc:
            self.stats.malformed += 1
            self.stats.last_error = str(exc)
            return None
        kind = type(msg).__name__
        self.stats.by_kind[kind] = self.stats.by_kind.get(kind, 0) + 1
        if got.stamp.kind is StampKind.USER and msg.message_type in _EVENT_TYPES:
            self.stats.user_stamps += 1
        now_s = time.monotonic()
        out = self.port.on_message(msg, self.clock.read_ns(got.stamp.system_ns), now_s)
        if isinstance(out, DelayReqDue):
            self._due = out
            if out.at_s <= now_s:
                self._send_delay_req(out.cold)
            return None
        if isinstance(out, PtpResult):
            self.stats.results += 1
            self.stats.outliers += 0 if out.accepted else 1
            self.stats.non_causal += 1 if out.measurement.upper_ns < out.measurement.lower_ns else 0
            return out
        return None


def to_sample(result: PtpResult, node: str, iface: str) -> Sample:
    """The clocksync :class:`Sample` of one exchange (source ``"ptp:IFACE"``)."""
    m = result.measurement
    return Sample(
        node=node,
        t_local_ns=m.t_local_ns,
        offset_ns=m.offset_ns,
        delay_ns=max(0.0, m.round_trip_ns),
        bound_ns=m.bound_ns,
        source=f"ptp:{iface}",
    )
