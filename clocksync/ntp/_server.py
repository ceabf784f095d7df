"""NTP server (answers mode-3 client requests) from any Clock, in a background thread.

Timestamps:

- ``t2`` (receive) is the kernel RX stamp of the request, mapped through the clock.
- ``t3`` (transmit) must be written into the reply before it is sent, so it is an estimate:
  the reply is encoded up to its last field beforehand; a user-space reading is taken, the
  transmit timestamp appended and ``sendto`` called at once. ``t3`` = that reading plus the
  *send lag* — the time from that reading to the kernel TX stamp of the same datagram,
  measured for every reply from the error queue. The estimate is **3/4 of the smallest lag
  seen since the server started** (:data:`LAG_FRACTION`). The minimum keeps ``t3`` no later
  than the datagram's kernel TX stamp, which preserves the causal order the client's bound
  relies on. Before serving, :meth:`NtpServer.start` sends :data:`WARMUP_SENDS` datagrams
  to a private sink socket through the same code path, so the minimum is learnt warm; the
  1/4 margin absorbs later new minima (a cold Python server's lag fell by 30 % over its
  first replies: with the bare minimum, loopback tests saw ``t3`` up to 1 µs late and
  negative delays). Excess lag only lengthens the client's measured delay and
  biases its offset by half the excess, inside the bound. Without kernel TX stamps the lag
  is taken as 0 (``t3`` = the user-space reading, also causal).

Interleaved mode (chrony's ``xleave``, draft-ietf-ntp-interleaved-modes) is supported: the
server remembers, per client address (:data:`CLIENT_LOG_SIZE` most recent), the receive
timestamp of its last reply and that reply's kernel TX time. A request whose origin equals
that receive timestamp (and whose receive and transmit fields differ) gets a reply whose
origin is the request's receive field and whose transmit timestamp is that exact TX time.

When the reference is marked unsynchronised (:attr:`NtpServer.synchronised` = False) the
server answers like chrony does: leap indicator 3 and stratum 16, so clients refuse it.
"""

from __future__ import annotations

import collections
import contextlib
import socket
import struct
import threading
from dataclasses import dataclass

from .._model._clock import Clock, SystemClock
from .._model._errors import InputError
from ..net import Stamp, StampedSocket, StampKind
from ._errors import NtpRejectError
from ._packet import (
    LEAP_UNSYNCHRONISED,
    MODE_CLIENT,
    MODE_SERVER,
    NtpPacket,
    decode,
    encode,
    ns_to_ntp,
    ns_to_short,
)

__all__ = [
    "CLIENT_LOG_SIZE",
    "LAG_FRACTION",
    "WARMUP_SENDS",
    "NtpServer",
    "ServerStats",
    "reference_id_code",
]

UNSYNCHRONISED_STRATUM = 16
LAG_FRACTION = 0.75  #: share of the minimum send lag added to the pre-send reading
WARMUP_SENDS = 64  #: datagrams sent to a private sink at start to learn the send lag
CLIENT_LOG_SIZE = 4096  #: clients remembered for interleaved mode (oldest forgotten)
_TRANSMIT_AT = 40  # byte offset of the transmit timestamp
_U64 = struct.Struct("!Q")


def reference_id_code(code: str) -> int:
    """A 1..4 character ASCII reference id (``"LOCL"``, ``"GPS"``) as its 32-bit value."""
    raw = code.encode("ascii", errors="strict") if code.isascii() else b""
    if not 1 <= len(raw) <= 4:
        raise InputError(f"reference_id: {code!r} must be 1 to 4 ASCII characters")
    return int.from_bytes(raw.ljust(4, b"\0"), "big")


@dataclass(frozen=True, slots=True)
class ServerStats:
    """Counters of a running server."""

    answered: int
    ignored: int
    kernel_tx_stamps: int
    send_lag_ns: int


class NtpServer:
    """Answers NTP client requests with the time of ``clock``.

    Args:
        clock: the clock served (system stamps are mapped through it).
        address: address to bind (``"127.0.0.1"``, ``"10.200.3.1"``, ``"::1"``).
        port: UDP port to bind; 0 picks a free one (see :attr:`port`).
        stratum: stratum announced while synchronised (1..15).
        reference_id: ASCII reference id announced while synchronised.
        root_delay_ns, root_dispersion_ns: the served clock's distance to true time (ns).
        precision_log2: announced clock precision, log2 seconds (-20 ≈ 0.95 µs); clients add
            2^precision to their bounds.
        synchronised: start synchronised (True) or answering leap 3 / stratum 16 (False).
    """

    def __init__(
        self,
        clock: Clock | None = None,
        *,
        address: str = "127.0.0.1",
        port: int = 0,
        stratum: int = 1,
        reference_id: str = "LOCL",
        root_delay_ns: float = 0.0,
        root_dispersion_ns: float = 0.0,
        precision_log2: int = -20,
        synchronised: bool = True,
    ):
        if not 1 <= stratum <= 15:
            raise InputError(f"stratum: must be in 1..15, got {stratum}")
        if not -64 <= precision_log2 <= 10:
            raise InputError(f"precision_log2: must be in -64..10, got {precision_log2}")
        for name, value in (("root_delay_ns", root_delay_ns),
                            ("root_dispersion_ns", root_dispersion_ns)):
            if not 0 <= value < 16e9:
                raise InputError(f"{name}: must be in [0, 16 s), got {value!r}")
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.stratum = stratum
        self._ref_id = reference_id_code(reference_id)
        self._root_delay = ns_to_short(root_delay_ns)
        self._root_dispersion = ns_to_short(root_dispersion_ns)
        self.precision_log2 = precision_log2
        self._synchronised = synchronised
        try:
            family = socket.getaddrinfo(address, port, type=socket.SOCK_DGRAM)[0][0]
            raw = socket.socket(family, socket.SOCK_DGRAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise InputError(f"address: cannot resolve {address!r} ({exc})") from None
        try:
            raw.bind((address, port))
        except OSError as exc:
            raw.close()
            raise InputError(f"address: cannot bind {address}:{port} ({exc})") from None
        self._sock = StampedSocket(raw)
        self._min_lag_ns: int | None = None
        # per client: (receive timestamp we sent it last, TX time of that reply), NTP format
        self._clients: collections.OrderedDict[tuple[object, ...], tuple[int, int]] = (
            collections.OrderedDict())
        self._answered = 0
        self._ignored = 0
        self._kernel_tx = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        """The bound ``(host, port)``."""
        name = self._sock.socket.getsockname()
        return str(name[0]), int(name[1])

    @property
    def port(self) -> int:
        return self.address[1]

    @property
    def synchronised(self) -> bool:
        return self._synchronised

    @synchronised.setter
    def synchronised(self, value: bool) -> None:
        self._synchronised = bool(value)

    def stats(self) -> ServerStats:
        return ServerStats(self._answered, self._ignored, self._kernel_tx,
                           self._send_lag_ns())

    def _send_lag_ns(self) -> int:
        return int((self._min_lag_ns or 0) * LAG_FRACTION)

    def _warm_up(self) -> None:
        """Learn the send lag before serving: send :data:`WARMUP_SENDS` datagrams to a
        private sink socket through the same code path as replies."""
        host = self.address[0]
        family = self._sock.socket.family
        if host in ("0.0.0.0", "::"):
            host = "127.0.0.1" if family == socket.AF_INET else "::1"
        with socket.socket(family, socket.SOCK_DGRAM) as sink:
            try:
                sink.bind((host, 0))
            except OSError:
                return
            target = sink.getsockname()
            header = bytes(_TRANSMIT_AT)

            def build(user_ns: int) -> bytes:
                return header + _U64.pack(ns_to_ntp(user_ns + self._send_lag_ns()))

            for _ in range(WARMUP_SENDS):
                stamp, user_ns = self._sock.send_built(build, target)
                self._note_lag(stamp, user_ns)

    def _note_lag(self, stamp: Stamp, user_ns: int) -> None:
        if stamp.kind is StampKind.KERNEL:
            self._kernel_tx += 1
            lag_ns = max(0, stamp.system_ns - user_ns)
            if self._min_lag_ns is None or lag_ns < self._min_lag_ns:
                self._min_lag_ns = lag_ns

    def start(self) -> NtpServer:
        """Learn the send lag, then answer in a daemon thread; returns ``self``."""
        if self._thread is None:
            self._warm_up()
            self._thread = threading.Thread(target=self._run, name="clocksync-ntp-server",
                                            daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop the thread and close the socket (idempotent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._sock.close()

    def __enter__(self) -> NtpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                got = self._sock.recv(0.1)
            except OSError:
                if self._stop.is_set():
                    return
                raise
            if got is None:
                continue
            with contextlib.suppress(OSError):  # a client that vanished must not kill us
                self._answer(got.data, got.address, got.stamp.system_ns)

    def _answer(self, data: bytes, address: tuple[object, ...], t2_sys_ns: int) -> None:
        try:
            request = decode(data)
        except NtpRejectError:
            self._ignored += 1
            return
        if request.mode != MODE_CLIENT or not 1 <= request.version <= 4:
            self._ignored += 1
            return
        t2_ns = self.clock.read_ns(t2_sys_ns)
        synced = self._synchronised
        # The clock's offset from system time, read now; applied to the late send-time
        # reading it is off by at most skew x (build time), ~10 ns at 500 ppm.
        clock_minus_system_ns = t2_ns - t2_sys_ns
        lag_ns = self._send_lag_ns()
        client = tuple(address[:2])
        last = self._clients.get(client)
        interleaved = (last is not None and request.origin_ts == last[0]
                       and request.receive_ts != request.transmit_ts)
        receive_ntp = ns_to_ntp(t2_ns)
        header = encode(NtpPacket(
            leap=0 if synced else LEAP_UNSYNCHRONISED,
            version=request.version,
            mode=MODE_SERVER,
            stratum=self.stratum if synced else UNSYNCHRONISED_STRATUM,
            poll=request.poll,
            precision=self.precision_log2,
            root_delay=self._root_delay,
            root_dispersion=self._root_dispersion,
            reference_id=self._ref_id if synced else 0,
            reference_ts=receive_ntp if synced else 0,
            origin_ts=request.receive_ts if interleaved else request.transmit_ts,
            receive_ts=receive_ntp,
        ))[:_TRANSMIT_AT]
        sent_ntp = 0

        def build(user_ns: int) -> bytes:
            nonlocal sent_ntp
            if interleaved and last is not None:
                return header + _U64.pack(last[1])  # kernel TX time of the previous reply
            sent_ntp = ns_to_ntp(max(user_ns + lag_ns + clock_minus_system_ns, t2_ns))
            return header + _U64.pack(sent_ntp)

        stamp, user_ns = self._sock.send_built(build, address)
        self._answered += 1
        self._note_lag(stamp, user_ns)
        if stamp.kind is StampKind.KERNEL:
            tx_ntp = ns_to_ntp(stamp.system_ns + clock_minus_system_ns)
        else:
            tx_ntp = sent_ntp or ns_to_ntp(max(user_ns + clock_minus_system_ns, t2_ns))
        self._clients[client] = (receive_ntp, tx_ntp)
        self._clients.move_to_end(client)
        while len(self._clients) > CLIENT_LOG_SIZE:
            self._clients.popitem(last=False)
