"""NTP client (RFC 5905 client mode) with kernel timestamps, producing bounded Samples.

Each exchange:

1. sends a mode-3 request whose transmit timestamp is a random 64-bit nonce, as chrony
   does: the server echoes it as the origin timestamp, which proves the reply answers *this*
   request (stale, duplicate and blind-spoofed replies are refused), and our clock reading is
   not disclosed. The real send time ``t1`` is the kernel TX stamp, kept locally;
   in interleaved mode (below) the receive field carries a second nonce;
2. takes ``t4`` from the kernel RX stamp of the reply;
3. maps ``t1`` and ``t4`` (system ``CLOCK_REALTIME``) through the node's
   :class:`clocksync.Clock`, so a :class:`clocksync.SimClock` makes the node
   look skewed;
4. validates the reply (:func:`~clocksync.ntp._packet.validate_reply`) and computes offset,
   delay and bound (:mod:`clocksync.ntp._exchange`).

Interleaved mode (as chrony's ``xleave``; draft-ietf-ntp-interleaved-modes): a server in
basic mode must write ``t3`` before the reply leaves, so ``t3`` is early by its send path
(chronyd 4.3 on a veth: ~7 µs, a -3.5 µs offset bias). After one basic exchange the client
puts the server's last receive timestamp in the request's origin field; a server that
supports the mode then echoes our receive-field nonce as origin and sends, as transmit
timestamp, the kernel TX time of its *previous* reply. That completes the previous exchange
with an exact ``t3``; :meth:`NtpClient.exchange` returns it. Which mode a reply is in is told
by which nonce it echoes.

Replies that fail the origin check are ignored and the client keeps listening until the
timeout (so a forged packet cannot cancel a genuine answer); any other failed check on a
reply that matches our nonce raises at once.

An optional :class:`RequestAuth` (NTS: :class:`~clocksync.ntp.NtsClient`) seals each request
after it is built and before it is sent (so ``t1``, the kernel TX stamp, is unaffected), and
checks each reply before anything else; replies it refuses as forged (wrong Unique
Identifier, bad authenticator) are ignored like origin mismatches.
"""

from __future__ import annotations

import collections
import contextlib
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from .._model._clock import Clock, SystemClock
from .._model._errors import InputError
from .._model._sample import Sample
from ..net import StampedSocket, StampKind
from ._errors import (
    KissOfDeathError,
    NtpAddressError,
    NtpRejectError,
    NtpTimeoutError,
    RejectReason,
)
from ._exchange import DEFAULT_FREQ_TOLERANCE_PPM, Exchange, exchange_bound_ns, select_min_delay
from ._packet import MODE_CLIENT, NtpPacket, decode, encode, ntp_to_ns, validate_reply

__all__ = ["IGNORED_REASONS", "Burst", "NtpClient", "NtpMeasurement", "RequestAuth", "resolve",
           "run_burst"]

#: refused replies after which the client keeps waiting for the genuine one (forged, stale)
IGNORED_REASONS = frozenset({RejectReason.BAD_ORIGIN, RejectReason.MALFORMED,
                             RejectReason.NTS_UNIQUE_ID, RejectReason.NTS_AUTH})


class RequestAuth(Protocol):
    """Authenticates requests and replies of one client (one request outstanding)."""

    def seal(self, request: bytes) -> bytes:
        """The wire octets for the 48-octet ``request`` header."""

    def check(self, data: bytes) -> None:
        """Raise :class:`NtpRejectError` unless ``data`` authentically answers the last
        sealed request."""


def resolve(host: str, port: int) -> tuple[int, tuple[str, int]]:
    """``(address_family, sockaddr)`` of a UDP server, first answer of ``getaddrinfo``.

    Raises:
        NtpAddressError: the name does not resolve or the port is out of range.
    """
    if not 0 < port < 65536:
        raise NtpAddressError(f"server port: {port} is not in 1..65535")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise NtpAddressError(f"server {host!r}: cannot resolve ({exc})") from None
    family, _type, _proto, _name, sockaddr = infos[0]
    return int(family), (str(sockaddr[0]), int(sockaddr[1]))


@dataclass(frozen=True, slots=True)
class NtpMeasurement:
    """One validated exchange: the sample plus what the wire said.

    Attributes:
        sample: offset, delay and bound (all ns) at local time ``sample.t_local_ns``.
        exchange: the four timestamps, t1/t4 in the local clock, t2/t3 in the server's.
        reply: the decoded reply.
        tx_kind, rx_kind: which kind of stamp t1 and t4 are.
        interleaved: t3 is the server's TX time of its previous reply (interleaved mode)
            and the measurement is of the previous exchange.
    """

    sample: Sample
    exchange: Exchange
    reply: NtpPacket
    tx_kind: StampKind
    rx_kind: StampKind
    interleaved: bool = False

    @property
    def reference_id(self) -> str:
        return self.reply.reference_text


@dataclass(frozen=True, slots=True)
class _Pending:
    """Our stamps and the reply of the last exchange, kept for interleaved mode."""

    t1_sys_ns: int
    tx_kind: StampKind
    t4_sys_ns: int
    rx_kind: StampKind
    reply: NtpPacket
    measured: bool  # its basic-mode measurement was returned already


@dataclass(frozen=True, slots=True)
class Burst:
    """The exchanges of one burst, with the minimum-delay one selected.

    Attributes:
        measurements: successful exchanges in the order they were made.
        failures: errors of the exchanges that failed (timeouts, rejected replies).
    """

    measurements: tuple[NtpMeasurement, ...]
    failures: tuple[Exception, ...] = ()

    @property
    def best(self) -> NtpMeasurement:
        """The exchange with the smallest round-trip delay (least queueing)."""
        return select_min_delay(self.measurements,
                                [m.sample.delay_ns for m in self.measurements])

    @property
    def samples(self) -> tuple[Sample, ...]:
        return tuple(m.sample for m in self.measurements)


class NtpClient:
    """Measures the local clock against one NTP server.

    Args:
        host: server name or address.
        port: server UDP port.
        node: node name written into every :class:`Sample`.
        clock: the local clock (system stamps are mapped through it).
        timeout_s: how long one exchange waits for a valid reply.
        freq_tolerance_ppm: largest frequency error of either clock during an exchange.
        poll_log2: the poll exponent announced in requests (informational for servers).
        interleaved: ask for interleaved mode (chrony's ``xleave``); servers that support it
            (chronyd, :class:`~clocksync.ntp.NtpServer`) then send the kernel TX time of
            their previous reply, which removes the server's send latency from the offset.
            Servers that do not answer in basic mode, which is detected per reply.
        source_address: local address to send from (default: chosen by the kernel). Servers
            keep interleaved state per client *address*, so clients sharing one address
            interrupt each other's interleaved chains.
        auth: seals requests and checks replies (NTS); ``None``: plain NTP.
    """

    def __init__(
        self,
        host: str,
        port: int = 123,
        *,
        node: str = "local",
        clock: Clock | None = None,
        timeout_s: float = 1.0,
        freq_tolerance_ppm: float = DEFAULT_FREQ_TOLERANCE_PPM,
        poll_log2: int = 0,
        interleaved: bool = True,
        source_address: str | None = None,
        auth: RequestAuth | None = None,
    ):
        if not timeout_s > 0:
            raise InputError(f"timeout_s: must be > 0, got {timeout_s!r}")
        family, self._address = resolve(host, port)
        self.host = host
        self.port = port
        self.node = node
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.timeout_s = timeout_s
        self.freq_tolerance_ppm = freq_tolerance_ppm
        self.poll_log2 = poll_log2
        self.interleaved = interleaved
        self.auth = auth
        self._prev: _Pending | None = None
        #: every reply refused so far, by reason (:class:`RejectReason` values) — including
        #: forged or stale replies that were ignored while the genuine reply still arrived.
        #: (Datagrams from anyone but the server never reach the connected socket.)
        self.rejected: collections.Counter[str] = collections.Counter()
        raw = socket.socket(family, socket.SOCK_DGRAM)
        if source_address is not None:
            try:
                raw.bind((source_address, 0))
            except OSError as exc:
                raw.close()
                raise NtpAddressError(f"source address {source_address!r}: {exc}") from None
        try:
            # connected, as chronyd's client sockets are: the kernel drops datagrams from
            # anyone but the server, and reports ICMP errors (port/host unreachable) as
            # ConnectionRefusedError etc. at once instead of a silent timeout
            raw.connect(self._address)
        except OSError as exc:
            raw.close()
            raise NtpAddressError(f"{host}:{port}: {exc}") from None
        self._sock = StampedSocket(raw)

    @property
    def source(self) -> str:
        """``"ntp:HOST:PORT"``, the ``source`` of every sample."""
        return f"ntp:{self.host}:{self.port}"

    @property
    def server_address(self) -> tuple[str, int]:
        return self._address

    def _flush(self) -> None:
        while self._sock.recv(0.0) is not None:
            pass

    def exchange(self) -> NtpMeasurement:
        """One request/reply exchange.

        In interleaved mode (after a first basic exchange, if the server supports it) the
        measurement returned is that of the *previous* exchange, completed with the server's
        kernel TX time of its previous reply.

        Raises:
            NtpTimeoutError: no reply matching our request within ``timeout_s``.
            KissOfDeathError: the server sent a Kiss-o'-Death.
            NtpRejectError: the reply failed validation (the reason code says which check);
                also raised on timeout when only origin-mismatched replies came.
            OSError: the request could not be sent (e.g. network unreachable).

        No exchange is ever measured twice: when a chain starts, the first exchange is
        reported in basic mode; the interleaved completion of that same exchange (the next
        reply) is dropped and one more request completes the second exchange instead.
        """
        measurement, repeated = self._exchange_once()
        if repeated:
            measurement, _ = self._exchange_once()
        return measurement

    def _exchange_once(self) -> tuple[NtpMeasurement, bool]:
        """One request/reply; also whether the measurement repeats an exchange already
        returned (see :meth:`exchange`)."""
        self._flush()
        basic_nonce = secrets.randbits(64) or 1
        prev = self._prev if self.interleaved else None
        xleave_nonce = 0
        if prev is not None:
            xleave_nonce = secrets.randbits(64) or 2
            if xleave_nonce == basic_nonce:
                xleave_nonce ^= 1
        request = encode(NtpPacket(
            version=4, mode=MODE_CLIENT, poll=self.poll_log2,
            origin_ts=prev.reply.receive_ts if prev is not None else 0,
            receive_ts=xleave_nonce, transmit_ts=basic_nonce))
        if self.auth is not None:
            request = self.auth.seal(request)
        self._prev = None  # a failed exchange breaks the interleaved chain
        tx = self._sock.send(request, self._address)
        deadline = time.monotonic() + self.timeout_s
        ignored: NtpRejectError | None = None
        while True:
            left_s = deadline - time.monotonic()
            got = self._sock.recv(max(left_s, 0.0)) if left_s > 0 else None
            if got is None:
                if ignored is not None:
                    raise ignored
                raise NtpTimeoutError(f"{self.source}: no reply within {self.timeout_s:g} s")
            if got.address[:2] != self._address:  # cannot happen on a connected socket
                self.rejected["foreign_address"] += 1
                continue
            try:
                if self.auth is not None:
                    self.auth.check(got.data)
                reply = decode(got.data)
                interleaved = prev is not None and reply.origin_ts == xleave_nonce
                validate_reply(reply, xleave_nonce if interleaved else basic_nonce,
                               interleaved=interleaved)
            except NtpRejectError as exc:
                self.rejected[exc.reason.value] += 1
                if isinstance(exc, KissOfDeathError):
                    raise
                if exc.reason in IGNORED_REASONS:
                    ignored = exc  # keep waiting for the genuine reply
                    continue
                raise
            current = _Pending(tx.system_ns, tx.kind, got.stamp.system_ns, got.stamp.kind,
                               reply, measured=not interleaved)
            try:  # the four timestamps themselves can be absurd (negative delay, t4 < t1)
                if interleaved and prev is not None:
                    measurement = self._measure(
                        reply, prev.t1_sys_ns, prev.tx_kind, prev.t4_sys_ns, prev.rx_kind,
                        t2_ntp=prev.reply.receive_ts, interleaved=True)
                else:
                    measurement = self._measure(reply, tx.system_ns, tx.kind,
                                                got.stamp.system_ns, got.stamp.kind)
            except NtpRejectError as exc:
                self.rejected[exc.reason.value] += 1
                raise
            self._prev = current
            return measurement, interleaved and prev is not None and prev.measured

    def _measure(self, reply: NtpPacket, t1_sys_ns: int, tx_kind: StampKind,
                 t4_sys_ns: int, rx_kind: StampKind, *, t2_ntp: int | None = None,
                 interleaved: bool = False) -> NtpMeasurement:
        exchange = Exchange(
            t1_ns=self.clock.read_ns(t1_sys_ns),
            t2_ns=ntp_to_ns(reply.receive_ts if t2_ntp is None else t2_ntp),
            t3_ns=ntp_to_ns(reply.transmit_ts),
            t4_ns=self.clock.read_ns(t4_sys_ns),
        )
        bound_ns = exchange_bound_ns(
            exchange,
            root_delay_ns=reply.root_delay_ns,
            root_dispersion_ns=reply.root_dispersion_ns,
            server_precision_ns=reply.precision_ns,
            tx_kind=tx_kind,
            rx_kind=rx_kind,
            freq_tolerance_ppm=self.freq_tolerance_ppm,
        )
        sample = Sample(
            node=self.node,
            t_local_ns=exchange.t_mid_ns,
            offset_ns=exchange.offset_ns,
            delay_ns=exchange.delay_ns,
            bound_ns=bound_ns,
            source=self.source,
            root_delay_ns=reply.root_delay_ns,
            root_dispersion_ns=reply.root_dispersion_ns,
            stratum=reply.stratum,
        )
        return NtpMeasurement(sample, exchange, reply, tx_kind, rx_kind, interleaved)

    def burst(self, count: int = 4, interval_s: float = 0.05) -> Burst:
        """``count`` exchanges ``interval_s`` apart; the best is :attr:`Burst.best`.

        Timeouts and rejected replies are collected in :attr:`Burst.failures`; a
        Kiss-o'-Death ends the burst at once by raising.

        Raises:
            KissOfDeathError: the server asked us to back off or stop.
            NtpTimeoutError, NtpRejectError, OSError: every exchange failed (the last error).
        """
        return run_burst(self.exchange, count, interval_s)

    def sample(self, count: int = 4, interval_s: float = 0.05) -> Sample:
        """The minimum-delay sample of a burst of ``count`` exchanges."""
        return self.burst(count, interval_s).best.sample

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()

    def __enter__(self) -> NtpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_burst(exchange: Callable[[], NtpMeasurement], count: int,
              interval_s: float) -> Burst:
    """``count`` calls of ``exchange`` ``interval_s`` apart, as :meth:`NtpClient.burst`."""
    if count < 1:
        raise InputError(f"count: must be >= 1, got {count}")
    measurements: list[NtpMeasurement] = []
    failures: list[Exception] = []
    for i in range(count):
        if i:
            time.sleep(interval_s)
        try:
            measurements.append(exchange())
        except KissOfDeathError:
            raise
        except (NtpTimeoutError, NtpRejectError, OSError) as exc:
            failures.append(exc)
    if not measurements:
        raise failures[-1]
    return Burst(tuple(measurements), tuple(failures))
