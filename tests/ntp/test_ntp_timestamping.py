"""Kernel timestamps on real loopback UDP sockets, and the user-space fallback."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator

import pytest

from clocksync.net import (
    SCM_TIMESTAMPING,
    SCM_TIMESTAMPNS,
    StampedSocket,
    StampKind,
    parse_rx_stamp_ns,
)


def _udp(**kwargs: bool) -> StampedSocket:
    sock = StampedSocket(socket.socket(socket.AF_INET, socket.SOCK_DGRAM), **kwargs)
    sock.socket.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture
def pair() -> Iterator[tuple[StampedSocket, StampedSocket]]:
    a, b = _udp(), _udp()
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def test_kernel_tx_and_rx_stamps_are_causal(pair: tuple[StampedSocket, StampedSocket]) -> None:
    a, b = pair
    assert a.kernel_tx and b.kernel_rx
    for i in range(5):
        before = time.time_ns()
        tx = a.send(b"ping %d" % i, b.socket.getsockname())
        got = b.recv(1.0)
        after = time.time_ns()
        assert got is not None and got.data == b"ping %d" % i
        assert tx.kind is StampKind.KERNEL and got.stamp.kind is StampKind.KERNEL
        assert before <= tx.system_ns <= got.stamp.system_ns <= after


def test_each_send_gets_its_own_tx_stamp(pair: tuple[StampedSocket, StampedSocket]) -> None:
    a, b = pair
    stamps = [a.send(b"x", b.socket.getsockname()) for _ in range(4)]
    assert all(s.kind is StampKind.KERNEL for s in stamps)
    assert [s.system_ns for s in stamps] == sorted(s.system_ns for s in stamps)
    assert len({s.system_ns for s in stamps}) == 4


def test_user_space_fallback_is_tagged_and_still_causal() -> None:
    a, b = _udp(tx_kernel=False), _udp(rx_kernel=False)
    try:
        tx = a.send(b"x", b.socket.getsockname())
        got = b.recv(1.0)
        assert got is not None
        assert tx.kind is StampKind.USER and got.stamp.kind is StampKind.USER
        assert tx.system_ns <= got.stamp.system_ns
    finally:
        a.close()
        b.close()


def test_recv_timeout_returns_none(pair: tuple[StampedSocket, StampedSocket]) -> None:
    assert pair[0].recv(0.01) is None


def test_parse_rx_stamp() -> None:
    ts = struct.pack("=qq", 1_800_000_000, 123_456_789)
    assert parse_rx_stamp_ns([(socket.SOL_SOCKET, SCM_TIMESTAMPNS, ts)]) \
        == 1_800_000_000_123_456_789
    three = ts + bytes(32)
    assert parse_rx_stamp_ns([(socket.SOL_SOCKET, SCM_TIMESTAMPING, three)]) \
        == 1_800_000_000_123_456_789
    assert parse_rx_stamp_ns([(socket.SOL_SOCKET, SCM_TIMESTAMPNS, bytes(16))]) is None
    assert parse_rx_stamp_ns([]) is None
