"""Every reject reason, driven by crafted replies from a real UDP socket on loopback."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from clocksync.ntp import (
    KissOfDeathError,
    NtpAddressError,
    NtpClient,
    NtpPacket,
    NtpRejectError,
    NtpTimeoutError,
    RejectReason,
    encode,
    ns_to_ntp,
    ntp_to_ns,
)

from .conftest import Craft, FakeServer

MakeServer = Callable[[Craft], FakeServer]


def genuine(request: NtpPacket, t2: int) -> NtpPacket:
    """What a sane stratum-2 server answers in basic mode."""
    return NtpPacket(leap=0, version=4, mode=4, stratum=2, precision=-20,
                     reference_id=0x0AC80301, reference_ts=t2, origin_ts=request.transmit_ts,
                     receive_ts=t2, transmit_ts=ns_to_ntp(ntp_to_ns(t2) + 1_000))


def mutated(**changes: int) -> Craft:
    def craft(request: NtpPacket, t2: int) -> list[bytes]:
        return [encode(dataclasses.replace(genuine(request, t2), **changes))]
    return craft


def _exchange(make: MakeServer, craft: Craft, timeout_s: float = 0.3) -> None:
    server = make(craft)
    with NtpClient("127.0.0.1", server.port, timeout_s=timeout_s, interleaved=False) as c:
        c.exchange()


@pytest.mark.parametrize(("changes", "reason"), [
    ({"mode": 2}, RejectReason.BAD_MODE),
    ({"version": 5}, RejectReason.BAD_VERSION),
    ({"leap": 3}, RejectReason.UNSYNCHRONISED),
    ({"stratum": 16}, RejectReason.BAD_STRATUM),
    ({"transmit_ts": 0}, RejectReason.ZERO_TRANSMIT),
    ({"receive_ts": 0}, RejectReason.ABSURD_TIMESTAMPS),
    ({"root_delay": 20 << 16}, RejectReason.ABSURD_TIMESTAMPS),
])
def test_reject_reason(fake_server: MakeServer, changes: dict[str, int],
                       reason: RejectReason) -> None:
    with pytest.raises(NtpRejectError) as info:
        _exchange(fake_server, mutated(**changes))
    assert info.value.reason is reason


def test_t3_before_t2_is_absurd(fake_server: MakeServer) -> None:
    def craft(request: NtpPacket, t2: int) -> list[bytes]:
        reply = genuine(request, t2)
        return [encode(dataclasses.replace(reply, transmit_ts=ns_to_ntp(ntp_to_ns(t2) - 10)))]
    with pytest.raises(NtpRejectError) as info:
        _exchange(fake_server, craft)
    assert info.value.reason is RejectReason.ABSURD_TIMESTAMPS


def test_server_holding_longer_than_the_exchange_is_absurd(fake_server: MakeServer) -> None:
    def craft(request: NtpPacket, t2: int) -> list[bytes]:
        late = ns_to_ntp(ntp_to_ns(t2) + 10_000_000_000)
        return [encode(dataclasses.replace(genuine(request, t2), transmit_ts=late))]
    with pytest.raises(NtpRejectError, match="negative round-trip delay") as info:
        _exchange(fake_server, craft)
    assert info.value.reason is RejectReason.ABSURD_TIMESTAMPS


@pytest.mark.parametrize(("code", "reason", "stop"), [
    (b"RATE", RejectReason.KOD_RATE, False),
    (b"DENY", RejectReason.KOD_DENY, True),
    (b"RSTR", RejectReason.KOD_RSTR, True),
    (b"INIT", RejectReason.KOD_OTHER, False),
])
def test_kiss_of_death(fake_server: MakeServer, code: bytes, reason: RejectReason,
                       stop: bool) -> None:
    craft = mutated(stratum=0, leap=3, reference_id=int.from_bytes(code, "big"))
    with pytest.raises(KissOfDeathError) as info:
        _exchange(fake_server, craft)
    assert info.value.reason is reason
    assert info.value.stop_polling is stop


def test_kiss_of_death_with_wrong_origin_is_ignored(fake_server: MakeServer) -> None:
    craft = mutated(stratum=0, reference_id=int.from_bytes(b"DENY", "big"), origin_ts=12345)
    with pytest.raises(NtpRejectError) as info:
        _exchange(fake_server, craft)
    assert not isinstance(info.value, KissOfDeathError)
    assert info.value.reason is RejectReason.BAD_ORIGIN


def test_only_spoofed_replies_end_in_bad_origin(fake_server: MakeServer) -> None:
    with pytest.raises(NtpRejectError) as info:
        _exchange(fake_server, mutated(origin_ts=1))
    assert info.value.reason is RejectReason.BAD_ORIGIN


def test_spoofed_reply_before_the_genuine_one_is_skipped(fake_server: MakeServer) -> None:
    def craft(request: NtpPacket, t2: int) -> list[bytes]:
        good = genuine(request, t2)
        spoof = dataclasses.replace(good, origin_ts=request.transmit_ts ^ 1, stratum=1)
        return [encode(spoof), b"\x00" * 10, encode(good)]
    server = fake_server(craft)
    with NtpClient("127.0.0.1", server.port, timeout_s=1.0, interleaved=False) as client:
        m = client.exchange()
        m2 = client.exchange()
        rejected = dict(client.rejected)
    assert m.sample.stratum == 2  # the genuine reply, not the spoof (stratum 1)
    assert m2.sample.stratum == 2
    # each ignored datagram is counted once, though both exchanges succeeded
    assert rejected == {"bad_origin": 2, "malformed": 2}


def test_malformed_only_ends_in_malformed(fake_server: MakeServer) -> None:
    with pytest.raises(NtpRejectError) as info:
        _exchange(fake_server, lambda request, t2: [b"\x24" * 20])
    assert info.value.reason is RejectReason.MALFORMED


def test_silence_is_a_timeout(fake_server: MakeServer) -> None:
    with pytest.raises(NtpTimeoutError, match=r"no reply within 0\.2 s"):
        _exchange(fake_server, lambda request, t2: [], timeout_s=0.2)


def test_request_carries_a_random_nonce_not_our_time(fake_server: MakeServer) -> None:
    server = fake_server(lambda request, t2: [encode(genuine(request, t2))])
    with NtpClient("127.0.0.1", server.port, timeout_s=1.0, interleaved=False) as client:
        client.exchange()
        client.exchange()
    first, second = server.requests
    assert first.mode == 3 and first.version == 4
    assert first.transmit_ts != second.transmit_ts
    assert first.origin_ts == first.receive_ts == 0


def test_source_address_is_used(fake_server: MakeServer) -> None:
    server = fake_server(lambda request, t2: [encode(genuine(request, t2))])
    with NtpClient("127.0.0.1", server.port, interleaved=False,
                   source_address="127.0.0.2") as client:
        client.exchange()
    assert server.peers[0][0] == "127.0.0.2"
    with pytest.raises(NtpAddressError, match="source address"):
        NtpClient("127.0.0.1", server.port, source_address="192.0.2.1")
