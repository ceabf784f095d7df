"""Our client against our server on loopback, with simulated clocks of known truth."""

from __future__ import annotations

import socket
import time

import pytest

from clocksync import InputError, SimClock
from clocksync.net import StampKind
from clocksync.ntp import (
    NtpClient,
    NtpPacket,
    NtpRejectError,
    NtpServer,
    RejectReason,
    encode,
    parse_target,
    probe,
)


def _truth_local(sim: SimClock, t_local_ns: int, offset_ns: float) -> float:
    """True offset of a simulated local clock at local time ``t_local_ns``."""
    return float(sim.offset_ns(t_local_ns + round(offset_ns)))


@pytest.mark.parametrize("interleaved", [False, True])
def test_skewed_client_truth_within_every_bound(ntp_server: NtpServer,
                                                interleaved: bool) -> None:
    sim = SimClock(t0_ns=time.time_ns(), offset0_ns=250_000.0, skew_ppm=-120.0,
                   wander_ppb_per_s=10.0, wander_knot_s=1.0, seed=7)
    with NtpClient("127.0.0.1", ntp_server.port, node="n1", clock=sim,
                   interleaved=interleaved) as client:
        burst = client.burst(count=12, interval_s=0.01)
    assert len(burst.measurements) >= 10
    for m in burst.measurements:
        s = m.sample
        assert s.node == "n1" and s.source == f"ntp:127.0.0.1:{ntp_server.port}"
        assert s.stratum == 1
        assert abs(s.offset_ns - _truth_local(sim, s.t_local_ns, s.offset_ns)) <= s.bound
        assert m.tx_kind is StampKind.KERNEL and m.rx_kind is StampKind.KERNEL
    assert [m.interleaved for m in burst.measurements][1:] == [interleaved] * (
        len(burst.measurements) - 1)
    assert burst.best.sample.delay_ns == min(s.delay_ns for s in burst.samples)


def test_no_exchange_is_measured_twice(ntp_server: NtpServer) -> None:
    """An interleaved chain starts in basic mode; the interleaved completion of that first
    exchange must not come back as a second measurement of it."""
    with NtpClient("127.0.0.1", ntp_server.port, interleaved=True) as client:
        measured = [client.exchange() for _ in range(5)]
    times = [m.sample.t_local_ns for m in measured]
    assert len(set(times)) == len(times)
    assert [m.interleaved for m in measured] == [False, True, True, True, True]
    assert times == sorted(times)


def test_skewed_server_truth_within_every_bound() -> None:
    """The server serves a simulated clock; the client's (system) offset is -sim offset."""
    sim = SimClock(t0_ns=time.time_ns(), offset0_ns=-3_000_000.0, skew_ppm=400.0)
    with NtpServer(sim, stratum=3, reference_id="SIM") as server, \
            NtpClient("127.0.0.1", server.port) as client:
        burst = client.burst(count=8, interval_s=0.01)
    for m in burst.measurements:
        s = m.sample
        truth = -float(sim.offset_ns(s.t_local_ns))
        assert abs(s.offset_ns - truth) <= s.bound
        assert s.stratum == 3


def test_unsynchronised_server_is_refused_then_accepted_again(ntp_server: NtpServer) -> None:
    ntp_server.synchronised = False
    with NtpClient("127.0.0.1", ntp_server.port, timeout_s=0.5) as client:
        with pytest.raises(NtpRejectError) as info:
            client.exchange()
        assert info.value.reason is RejectReason.UNSYNCHRONISED
        ntp_server.synchronised = True
        assert client.exchange().sample.stratum == 1


def test_server_ignores_non_client_packets(ntp_server: NtpServer) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.3)
        s.sendto(encode(NtpPacket(version=4, mode=4, transmit_ts=5)), ntp_server.address)
        s.sendto(b"garbage", ntp_server.address)
        with pytest.raises(TimeoutError):
            s.recvfrom(100)
    assert ntp_server.stats().ignored == 2
    assert ntp_server.stats().answered == 0


def test_server_learns_its_send_lag_and_stops_cleanly() -> None:
    server = NtpServer(port=0).start()
    port = server.port
    stats = server.stats()
    assert stats.kernel_tx_stamps > 0 and stats.send_lag_ns > 0
    server.stop()
    server.stop()  # idempotent
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", port))  # the port is free again


@pytest.mark.parametrize("kwargs", [{"stratum": 0}, {"stratum": 16}, {"reference_id": "TOOLONG"},
                                    {"root_dispersion_ns": 20e9}, {"address": "256.1.1.1"}])
def test_bad_server_configuration(kwargs: dict[str, object]) -> None:
    with pytest.raises(InputError):
        NtpServer(**kwargs)  # type: ignore[arg-type]


def test_probe_library_function(ntp_server: NtpServer) -> None:
    summary = probe(f"127.0.0.1:{ntp_server.port}", count=3, interval_s=0.0)
    assert summary.count == 3 and len(summary.measurements) == 3
    assert summary.best in summary.measurements
    assert summary.low_ns is not None and summary.high_ns is not None
    assert summary.low_ns <= 0 <= summary.high_ns  # the server serves the system clock


def test_probe_parse_target() -> None:
    assert parse_target("example.org") == ("example.org", 123)
    assert parse_target("10.200.3.1:11123") == ("10.200.3.1", 11123)
    assert parse_target("[::1]:123") == ("::1", 123)
    assert parse_target("::1") == ("::1", 123)
    for bad in ("", ":123", "[::1", "host:0", "host:70000"):
        with pytest.raises(InputError):
            parse_target(bad)


def test_ipv6_loopback_with_kernel_stamps() -> None:
    try:
        server = NtpServer(address="::1").start()
    except InputError as exc:
        pytest.skip(f"needs IPv6 loopback: {exc}")
    try:
        with NtpClient("::1", server.port) as client:
            burst = client.burst(count=4, interval_s=0.01)
    finally:
        server.stop()
    for m in burst.measurements:
        assert abs(m.sample.offset_ns) <= m.sample.bound
        assert m.tx_kind is StampKind.KERNEL and m.rx_kind is StampKind.KERNEL
    assert burst.measurements[-1].interleaved
