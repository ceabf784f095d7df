"""Kernel software timestamps on datagram sockets, with a user-space fallback (Linux).

Shared by the NTP and PTP sources. A :class:`StampedSocket` wraps a datagram socket and:

- enables ``SO_TIMESTAMPNS``: every received datagram carries the ``CLOCK_REALTIME`` time at
  which the kernel's network stack received it (``SCM_TIMESTAMPNS`` control message);
- enables ``SO_TIMESTAMPING`` with ``SOF_TIMESTAMPING_TX_SOFTWARE``: after each send the
  kernel queues the time the driver handed the datagram to the device on the socket's error
  queue (``MSG_ERRQUEUE``), tagged with a per-socket send counter (``OPT_ID``) so a stamp is
  matched to its own datagram;
- falls back to the tightest user-space stamps when the kernel gives none: a TX stamp read
  just *before* ``sendto`` (never later than the true send) and an RX stamp read just *after*
  ``poll`` reports the datagram waiting (never earlier than the true arrival).

Both kinds therefore keep causal order (a TX stamp is never later than the departure, an RX
stamp never earlier than the arrival); user-space stamps only widen the measured delay.
Every stamp says which kind it is (:class:`StampKind`). All stamps are system
``CLOCK_REALTIME`` nanoseconds; callers map them through a :class:`clocksync.Clock`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .._model._stamps import Stamp, StampKind

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
    "StampedSocket",
    "parse_rx_stamp_ns",
    "parse_tx_stamp",
]

# Linux socket option numbers (asm-generic/socket.h; identical on x86_64 and arm64). The
# "old" option numbers deliver 64-bit timespecs on 64-bit architectures.
#: socket option: RX stamps as ``struct timespec`` control messages
SO_TIMESTAMPNS = 35
#: control message type of an ``SO_TIMESTAMPNS`` stamp
SCM_TIMESTAMPNS = SO_TIMESTAMPNS
#: socket option: RX/TX stamps as selected by the ``SOF_TIMESTAMPING_*`` flags
SO_TIMESTAMPING = 37
#: control message type of an ``SO_TIMESTAMPING`` stamp (three timespecs, software first)
SCM_TIMESTAMPING = SO_TIMESTAMPING
#: flag: stamp each datagram as the driver hands it to the device (TX, error queue)
SOF_TIMESTAMPING_TX_SOFTWARE = 1 << 1
#: flag: report software stamps
SOF_TIMESTAMPING_SOFTWARE = 1 << 4
#: flag: tag each TX stamp with the socket's send counter
SOF_TIMESTAMPING_OPT_ID = 1 << 7
#: flag: TX stamps without a copy of the datagram
SOF_TIMESTAMPING_OPT_TSONLY = 1 << 11
#: ``sock_extended_err.ee_origin`` of a timestamp on the error queue
SO_EE_ORIGIN_TIMESTAMPING = 4
#: ``sock_extended_err.ee_info`` of a stamp taken at send
SCM_TSTAMP_SND = 0
#: control message type (level ``IPPROTO_IP``) carrying ``sock_extended_err``
IP_RECVERR = 11
#: control message type (level ``IPPROTO_IPV6``) carrying ``sock_extended_err``
IPV6_RECVERR = 25
#: ``recvmsg`` flag: read the socket's error queue (where TX stamps arrive)
MSG_ERRQUEUE = 0x2000

_TIMESPEC = struct.Struct("=qq")  # struct timespec on 64-bit Linux
_EXT_ERR = struct.Struct("=IBBBBII")  # struct sock_extended_err
_CMSG_SPACE = 256


@dataclass(frozen=True, slots=True)
class Received:
    """A received datagram, the address it came from, and its RX stamp."""

    data: bytes
    address: tuple[Any, ...]
    stamp: Stamp


def _timespec_ns(raw: bytes, index: int = 0) -> int:
    sec, nsec = _TIMESPEC.unpack_from(raw, index * _TIMESPEC.size)
    return int(sec) * 1_000_000_000 + int(nsec)


def parse_rx_stamp_ns(ancdata: list[tuple[int, int, bytes]]) -> int | None:
    """The kernel RX time (system ns) from ``recvmsg`` control messages, or ``None``.

    Accepts ``SCM_TIMESTAMPNS`` and the software slot of ``SCM_TIMESTAMPING``; a zero stamp
    (the kernel's "none") counts as missing.
    """
    for level, kind, raw in ancdata:
        if level != socket.SOL_SOCKET:
            continue
        if kind == SCM_TIMESTAMPNS and len(raw) >= _TIMESPEC.size:
            ns = _timespec_ns(raw)
        elif kind == SCM_TIMESTAMPING and len(raw) >= _TIMESPEC.size:
            ns = _timespec_ns(raw, 0)
        else:
            continue
        if ns > 0:
            return ns
    return None


def parse_tx_stamp(ancdata: list[tuple[int, int, bytes]]) -> tuple[int, int] | None:
    """``(system_ns, send_key)`` of a TX software stamp read from the error queue, or ``None``.

    ``send_key`` is the kernel's ``OPT_ID`` counter of the datagram the stamp belongs to
    (0 for the first datagram sent after timestamping was enabled).
    """
    stamp_ns: int | None = None
    key: int | None = None
    for level, kind, raw in ancdata:
        if level == socket.SOL_SOCKET and kind == SCM_TIMESTAMPING and len(raw) >= _TIMESPEC.size:
            ns = _timespec_ns(raw, 0)
            stamp_ns = ns if ns > 0 else None
        elif (level, kind) in ((socket.IPPROTO_IP, IP_RECVERR),
                               (socket.IPPROTO_IPV6, IPV6_RECVERR)) and len(raw) >= _EXT_ERR.size:
            ee_errno, origin, _type, _code, _pad, info, data = _EXT_ERR.unpack_from(raw)
            if ee_errno == errno.ENOMSG and origin == SO_EE_ORIGIN_TIMESTAMPING \
                    and info == SCM_TSTAMP_SND:
                key = int(data)
    if stamp_ns is None or key is None:
        return None
    return stamp_ns, key


class StampedSocket:
    """A UDP socket whose sends and receives come back with timestamps.

    Args:
        sock: a bound or unbound ``SOCK_DGRAM`` socket; this object takes ownership.
        rx_kernel: ask the kernel for RX stamps (``SO_TIMESTAMPNS``).
        tx_kernel: ask the kernel for TX stamps (``SO_TIMESTAMPING``, error queue).

    If the kernel refuses an option, or gives no stamp for a datagram, the user-space stamp
    is used and tagged :attr:`StampKind.USER`.
    """

    def __init__(self, sock: socket.socket, *, rx_kernel: bool = True, tx_kernel: bool = True):
        self._sock = sock
        self._sock.setblocking(False)
        self._rx_kernel = rx_kernel and self._try_setsockopt(SO_TIMESTAMPNS, 1)
        flags = (SOF_TIMESTAMPING_TX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE
                 | SOF_TIMESTAMPING_OPT_ID | SOF_TIMESTAMPING_OPT_TSONLY)
        self._tx_kernel = tx_kernel and self._try_setsockopt(SO_TIMESTAMPING, flags)
        self._next_key = 0  # OPT_ID counter of the next datagram we send

    def _try_setsockopt(self, option: int, value: int) -> bool:
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, option, value)
        except OSError:
            return False
        return True

    @property
    def socket(self) -> socket.socket:
        """The wrapped socket (for ``bind``, ``getsockname``, ``fileno``)."""
        return self._sock

    @property
    def kernel_rx(self) -> bool:
        """Whether kernel RX stamps were enabled."""
        return self._rx_kernel

    @property
    def kernel_tx(self) -> bool:
        """Whether kernel TX stamps were enabled."""
        return self._tx_kernel

    def send(self, data: bytes, address: tuple[Any, ...], tx_timeout_s: float = 0.02) -> Stamp:
        """Send one datagram; return its TX stamp (kernel if it arrives within the timeout).

        Raises:
            OSError: the send itself failed (unreachable network, ...).
        """
        return self.send_built(lambda _user_ns: data, address, tx_timeout_s)[0]

    def send_built(
        self,
        build: Callable[[int], bytes],
        address: tuple[Any, ...],
        tx_timeout_s: float = 0.02,
    ) -> tuple[Stamp, int]:
        """Send ``build(user_ns)``, built right after a user-space reading ``user_ns``.

        For protocols that write their own send time into the datagram (an NTP server's
        transmit timestamp): ``build`` should be quick, as everything it does lands between
        the reading and the real departure. Returns the TX stamp and ``user_ns``.
        """
        self._drain_error_queue()
        user_ns = time.time_ns()
        self._sock.sendto(build(user_ns), address)
        key = self._next_key
        self._next_key += 1
        if self._tx_kernel:
            kernel_ns = self._wait_tx_stamp(key, tx_timeout_s)
            if kernel_ns is not None:
                return Stamp(kernel_ns, StampKind.KERNEL), user_ns
        return Stamp(user_ns, StampKind.USER), user_ns

    def _read_error_queue(self) -> tuple[int, int] | None:
        try:
            _data, ancdata, _flags, _addr = self._sock.recvmsg(0, _CMSG_SPACE, MSG_ERRQUEUE)
        except (BlockingIOError, InterruptedError):
            return None
        return parse_tx_stamp(ancdata) or (-1, -1)

    def _drain_error_queue(self) -> None:
        if not self._tx_kernel:
            return
        while self._read_error_queue() is not None:
            pass

    def _wait_tx_stamp(self, key: int, timeout_s: float) -> int | None:
        deadline = time.monotonic() + timeout_s
        poller = select.poll()
        poller.register(self._sock.fileno(), select.POLLERR)
        while True:
            got = self._read_error_queue()
            if got is not None:
                stamp_ns, got_key = got
                if got_key >= key:
                    # a failed earlier send can shift the kernel's counter: follow it
                    self._next_key = got_key + 1
                    return stamp_ns if stamp_ns > 0 and got_key == key else None
                continue
            left_s = deadline - time.monotonic()
            if left_s <= 0:
                return None
            poller.poll(max(1, int(left_s * 1000)))

    def _raise_pending_error(self) -> None:
        """Raise the socket's pending error (``SO_ERROR``), if any, as :class:`OSError`."""
        code = self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            raise OSError(code, os.strerror(code))

    def recv(self, timeout_s: float, bufsize: int = 2048) -> Received | None:
        """The next datagram with its RX stamp, or ``None`` when ``timeout_s`` passes first."""
        poller = select.poll()
        poller.register(self._sock.fileno(), select.POLLIN)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                data, ancdata, _flags, address = self._sock.recvmsg(bufsize, _CMSG_SPACE)
            except (BlockingIOError, InterruptedError):
                left_s = deadline - time.monotonic()
                if left_s <= 0:
                    return None
                events = poller.poll(max(1, int(left_s * 1000)))
                if not events:
                    continue
                if not any(mask & select.POLLIN for _fd, mask in events):
                    self._drain_error_queue()  # a late TX stamp: clear it, do not spin
                    self._raise_pending_error()  # e.g. ICMP port unreachable (connected)
                    continue
                user_ns = time.time_ns()  # after poll: the datagram is already queued
                try:
                    data, ancdata, _flags, address = self._sock.recvmsg(bufsize, _CMSG_SPACE)
                except (BlockingIOError, InterruptedError):
                    continue
            else:
                user_ns = time.time_ns()
            kernel_ns = parse_rx_stamp_ns(ancdata) if self._rx_kernel else None
            if kernel_ns is not None:
                return Received(data, tuple(address), Stamp(kernel_ns, StampKind.KERNEL))
            return Received(data, tuple(address), Stamp(user_ns, StampKind.USER))

    def close(self) -> None:
        """Close the socket (idempotent)."""
        with contextlib.suppress(OSError):
            self._sock.close()

    def __enter__(self) -> StampedSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
