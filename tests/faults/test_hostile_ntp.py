"""Hostile NTP over real UDP sockets on loopback: every forged, replayed, absurd or hostile
reply is refused and counted in ``NtpClient.rejected``; forged replies never cancel the
genuine one that follows them.

The "server" is the crafting :class:`tests._fakentp.FakeServer` (a plain UDP socket that
answers each request with whatever datagrams a craft function returns).
"""

from __future__ import annotations

import dataclasses
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from clocksync.ntp import (
    KissOfDeathError,
    NtpClient,
    NtpMeasurement,
    NtpPacket,
    NtpRejectError,
    RejectReason,
    encode,
    ns_to_ntp,
    ntp_to_ns,
)
from tests._fakentp import Craft, FakeServer

Y2100_NTP = ns_to_ntp(4_102_444_800 * 10**9)  # 2100-01-01T00:00:00Z
#: 1969-12-31: an era-0 time before the Unix epoch (a negative Unix time)
NEGATIVE_NTP = ((2_208_988_800 - 86_400) << 32)
TIMEOUT_S = 0.3


def genuine(request: NtpPacket, t2: int) -> NtpPacket:
    """A sane stratum-2 server's basic-mode answer to ``request`` received at ``t2``."""
    return NtpPacket(leap=0, version=4, mode=4, stratum=2, precision=-20,
                     reference_id=0x0AC80301, reference_ts=t2, origin_ts=request.transmit_ts,
                     receive_ts=t2, transmit_ts=ns_to_ntp(ntp_to_ns(t2) + 1_000))


@pytest.fixture
def serve() -> Iterator[Callable[[Craft], FakeServer]]:
    made: list[FakeServer] = []

    def make(craft: Craft) -> FakeServer:
        made.append(FakeServer(craft))
        return made[-1]

    try:
        yield make
    finally:
        for server in made:
            server.close()


def _client(server: FakeServer) -> NtpClient:
    return NtpClient("127.0.0.1", server.port, timeout_s=TIMEOUT_S, interleaved=False)


def _changed(**changes: int) -> Craft:
    return lambda request, t2: [encode(dataclasses.replace(genuine(request, t2), **changes))]


def _assert_genuine(m: NtpMeasurement, server: FakeServer) -> None:
    """The measurement answers the last request (its nonce) and is loopback-sane."""
    assert m.reply.origin_ts == server.requests[-1].transmit_ts
    assert m.sample.bound_ns is not None
    assert abs(m.sample.offset_ns) <= m.sample.bound_ns + 1e6  # same clock on both ends


@pytest.mark.parametrize(("changes", "reason"), [
    ({"origin_ts": 12345}, RejectReason.BAD_ORIGIN),
    ({"mode": 3}, RejectReason.BAD_MODE),
    ({"mode": 5}, RejectReason.BAD_MODE),
    ({"version": 2}, RejectReason.BAD_VERSION),
    ({"version": 7}, RejectReason.BAD_VERSION),
    ({"stratum": 16}, RejectReason.BAD_STRATUM),
    ({"leap": 3}, RejectReason.UNSYNCHRONISED),
    ({"transmit_ts": 0}, RejectReason.ZERO_TRANSMIT),
    ({"receive_ts": 0}, RejectReason.ABSURD_TIMESTAMPS),
    ({"receive_ts": Y2100_NTP, "transmit_ts": Y2100_NTP + 100}, RejectReason.ABSURD_TIMESTAMPS),
    ({"receive_ts": NEGATIVE_NTP, "transmit_ts": NEGATIVE_NTP + 100},
     RejectReason.ABSURD_TIMESTAMPS),
    ({"root_dispersion": 17 << 16}, RejectReason.ABSURD_TIMESTAMPS),
], ids=lambda v: str(v) if isinstance(v, RejectReason) else ",".join(v))
def test_hostile_reply_is_refused_and_counted(serve: Callable[[Craft], FakeServer],
                                              changes: dict[str, int],
                                              reason: RejectReason) -> None:
    server = serve(_changed(**changes))
    with _client(server) as client, pytest.raises(NtpRejectError) as info:
        client.exchange()
    assert info.value.reason is reason
    assert client.rejected == {reason.value: 1}


def test_transmit_before_receive_is_refused_and_counted(
        serve: Callable[[Craft], FakeServer]) -> None:
    def craft(request: NtpPacket, t2: int) -> list[bytes]:
        reply = genuine(request, t2)
        return [encode(dataclasses.replace(reply, transmit_ts=reply.receive_ts - (1 << 20)))]

    server = serve(craft)
    with _client(server) as client, pytest.raises(NtpRejectError, match="t3 < t2") as info:
        client.exchange()
    assert info.value.reason is RejectReason.ABSURD_TIMESTAMPS
    assert client.rejected == {"absurd_timestamps": 1}


@pytest.mark.parametrize(("code", "reason", "stop"), [
    (b"RATE", RejectReason.KOD_RATE, False),
    (b"DENY", RejectReason.KOD_DENY, True),
    (b"RSTR", RejectReason.KOD_RSTR, True),
    (b"XXXX", RejectReason.KOD_OTHER, False),
])
def test_kiss_of_death_is_obeyed_and_counted(serve: Callable[[Craft], FakeServer], code: bytes,
                                             reason: RejectReason, stop: bool) -> None:
    server = serve(_changed(stratum=0, reference_id=int.from_bytes(code, "big")))
    with _client(server) as client, pytest.raises(KissOfDeathError) as info:
        client.burst(count=3, interval_s=0.0)
    assert info.value.reason is reason and info.value.stop_polling is stop
    assert client.rejected == {reason.value: 1}
    assert len(server.requests) == 1  # the burst stopped at the first KoD


def test_forged_replies_before_the_genuine_one_are_ignored_and_counted(
        serve: Callable[[Craft], FakeServer]) -> None:
    """A blind spoofer racing the server with 20 guesses of the origin timestamp."""
    def craft(request: NtpPacket, t2: int) -> list[bytes]:
        forged = [encode(dataclasses.replace(genuine(request, t2), origin_ts=guess,
                                             receive_ts=Y2100_NTP, transmit_ts=Y2100_NTP))
                  for guess in range(1, 21)]
        return [*forged, encode(genuine(request, t2))]

    server = serve(craft)
    with _client(server) as client:
        m = client.exchange()
        _assert_genuine(m, server)
        assert client.rejected == {"bad_origin": 20}


def test_replayed_reply_is_refused_and_counted(serve: Callable[[Craft], FakeServer]) -> None:
    """Every answer is preceded by a replay of the previous (then valid) reply."""
    sent: list[bytes] = []

    def craft(request: NtpPacket, t2: int) -> list[bytes]:
        reply = encode(genuine(request, t2))
        out = [sent[-1], reply] if sent else [reply]
        sent.append(reply)
        return out

    server = serve(craft)
    with _client(server) as client:
        first = client.exchange()
        second = client.exchange()
        _assert_genuine(second, server)
        assert second.reply.origin_ts != first.reply.origin_ts
        assert client.rejected == {"bad_origin": 1}


def test_replay_alone_ends_in_bad_origin(serve: Callable[[Craft], FakeServer]) -> None:
    sent: list[bytes] = []

    def craft(request: NtpPacket, t2: int) -> list[bytes]:
        if not sent:
            sent.append(encode(genuine(request, t2)))
        return [sent[0]]  # always the first reply, replayed

    server = serve(craft)
    with _client(server) as client:
        client.exchange()
        with pytest.raises(NtpRejectError) as info:
            client.exchange()
        assert info.value.reason is RejectReason.BAD_ORIGIN
        assert client.rejected == {"bad_origin": 1}


def test_reply_from_another_address_never_reaches_the_client(
        serve: Callable[[Craft], FakeServer]) -> None:
    """An on-path attacker who saw the request sends a perfect reply from another port: the
    client's socket is connected to the server, so the kernel drops it."""
    attacker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    attacker.bind(("127.0.0.1", 0))
    holder: list[FakeServer] = []

    def craft(request: NtpPacket, t2: int) -> list[bytes]:
        forged = dataclasses.replace(genuine(request, t2), receive_ts=Y2100_NTP,
                                     transmit_ts=Y2100_NTP + 100)
        attacker.sendto(encode(forged), holder[0].peers[-1])
        return [encode(genuine(request, t2))]

    try:
        server = serve(craft)
        holder.append(server)
        with _client(server) as client:
            m = client.exchange()
            _assert_genuine(m, server)
            assert client.rejected == {}  # never seen: not even counted
    finally:
        attacker.close()


def test_garbage_then_genuine_reply(serve: Callable[[Craft], FakeServer]) -> None:
    def craft(request: NtpPacket, t2: int) -> list[bytes]:
        return [b"", b"\x24" * 47, b"\xff" * 1000, encode(genuine(request, t2))]

    server = serve(craft)
    with _client(server) as client:
        _assert_genuine(client.exchange(), server)
        # two too short to decode; 1000 x 0xff decodes, with someone else's origin
        assert client.rejected == {"malformed": 2, "bad_origin": 1}


def test_burst_survives_hostile_exchanges(serve: Callable[[Craft], FakeServer]) -> None:
    """Odd requests get a hostile reply, even ones a genuine one: the burst keeps the good
    ones, lists the failures, and the counter has one entry per refused reply."""
    def craft(request: NtpPacket, t2: int) -> list[bytes]:
        n = len(server.requests)
        hostile = [{"mode": 2}, {"receive_ts": Y2100_NTP, "transmit_ts": Y2100_NTP + 100},
                   {"leap": 3}]
        if n % 2:
            return [encode(dataclasses.replace(genuine(request, t2), **hostile[n // 2 % 3]))]
        return [encode(genuine(request, t2))]

    server = serve(craft)
    with _client(server) as client:
        burst = client.burst(count=6, interval_s=0.0)
        assert len(burst.measurements) == 3 and len(burst.failures) == 3
        assert client.rejected == {"bad_mode": 1, "absurd_timestamps": 1, "unsynchronised": 1}


def _holding(request: NtpPacket, t2: int) -> list[bytes]:
    """A server claiming it held the request for 10 s (t3 - t2) on a loopback exchange."""
    reply = genuine(request, t2)
    return [encode(dataclasses.replace(reply, transmit_ts=reply.receive_ts + (10 << 32)))]


def test_server_holding_longer_than_the_exchange_is_refused(
        serve: Callable[[Craft], FakeServer]) -> None:
    server = serve(_holding)
    with _client(server) as client, pytest.raises(NtpRejectError, match="negative") as info:
        client.exchange()
    assert info.value.reason is RejectReason.ABSURD_TIMESTAMPS


def test_negative_delay_is_counted(serve: Callable[[Craft], FakeServer]) -> None:
    server = serve(_holding)
    with _client(server) as client, pytest.raises(NtpRejectError):
        client.exchange()
    assert client.rejected == {"absurd_timestamps": 1}


def test_agent_exports_refused_replies_in_metrics(serve: Callable[[Craft], FakeServer],
                                                  tmp_path: Path) -> None:
    """Through the agent: every poll meets a forged reply (then the genuine one); the agent
    keeps sampling and /metrics counts the forgeries by reason."""
    pytest.importorskip("prometheus_client", reason="/metrics needs prometheus-client")
    from clocksync.agent import Agent, AgentConfig, AgentHttpServer

    def craft(request: NtpPacket, t2: int) -> list[bytes]:
        forged = dataclasses.replace(genuine(request, t2), origin_ts=request.transmit_ts ^ 1)
        return [encode(forged), encode(genuine(request, t2))]

    server = serve(craft)
    config = AgentConfig.defaults(node="spoofed", ntp_servers=[f"127.0.0.1:{server.port}"],
                                  data_dir=str(tmp_path / "data"), http_listen="",
                                  min_poll_s=0.05, max_poll_s=0.1, refit_min_s=0.1,
                                  timeout_s=TIMEOUT_S, burst=1, interleaved=False)
    agent = Agent(config)
    http = AgentHttpServer(agent.snapshot, "127.0.0.1", 0).start()
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 15
        while agent.snapshot().samples_total < 5:
            assert time.monotonic() < deadline, "the agent stopped sampling"
            time.sleep(0.05)
        with urllib.request.urlopen(f"{http.url}/metrics", timeout=5) as response:
            metrics = response.read().decode()
    finally:
        agent.request_stop()
        thread.join(10)
        http.stop()
    counts = [float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
              if line.startswith("clocksync_rejected_replies_total{")
              and 'reason="bad_origin"' in line]
    assert counts and counts[0] >= 5  # at least one forgery per sample taken
