"""``clocksync ntp probe`` through click's CliRunner against our server on loopback."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable

from click.testing import CliRunner

from clocksync.cli import main
from clocksync.ntp import NtpPacket, NtpServer, encode

from .conftest import Craft, FakeServer


def test_probe_lines_and_summary(ntp_server: NtpServer) -> None:
    result = CliRunner().invoke(main, ["ntp", "probe", f"127.0.0.1:{ntp_server.port}",
                                       "--count", "3", "--interval", "0.01"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    exchanges = [line for line in lines if line.startswith("#")]
    assert len(exchanges) == 3
    assert all("offset_ns=" in line and "bound_ns=" in line and "stratum 1" in line
               for line in exchanges)
    assert any(line.startswith("min-delay offset:") and " ± " in line for line in lines)
    assert "exchanges: 3 ok, 0 failed" in result.output


def test_probe_json_is_parsable(ntp_server: NtpServer) -> None:
    result = CliRunner().invoke(main, ["ntp", "probe", f"127.0.0.1:{ntp_server.port}",
                                       "--count", "4", "--interval", "0", "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    per_exchange, summary = rows[:-1], rows[-1]
    assert [r["exchange"] for r in per_exchange] == [1, 2, 3, 4]
    for r in per_exchange:
        assert abs(r["offset_ns"]) <= r["bound_ns"]  # our server serves the system clock
        assert r["delay_ns"] >= 0 and r["stratum"] == 1 and r["reference_id"] == "LOCL"
    assert summary["summary"] is True and summary["count"] == 4
    assert summary["best"]["delay_ns"] == min(r["delay_ns"] for r in per_exchange)
    assert summary["intersection_low_ns"] <= 0 <= summary["intersection_high_ns"]


def test_unresolvable_host_fails_clearly() -> None:
    result = CliRunner().invoke(main, ["ntp", "probe", "no-such-host.invalid", "--count", "1"])
    assert result.exit_code != 0
    assert "cannot resolve" in result.output


def test_bad_port_fails_clearly() -> None:
    result = CliRunner().invoke(main, ["ntp", "probe", "127.0.0.1:http", "--count", "1"])
    assert result.exit_code != 0
    assert "port 'http' is not a number" in result.output


def test_timeout_fails_with_non_zero_exit() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        result = CliRunner().invoke(main, ["ntp", "probe", f"127.0.0.1:{port}", "--count", "2",
                                           "--interval", "0", "--timeout", "0.1"])
    assert result.exit_code != 0
    assert "no reply within 0.1 s" in result.output
    assert "no successful exchange out of 2" in result.output


def test_kiss_of_death_stops_with_non_zero_exit(
        fake_server: Callable[[Craft], FakeServer]) -> None:
    def deny(request: NtpPacket, t2: int) -> list[bytes]:
        return [encode(NtpPacket(leap=3, version=4, mode=4, stratum=0,
                                 reference_id=int.from_bytes(b"DENY", "big"),
                                 origin_ts=request.transmit_ts, receive_ts=t2,
                                 transmit_ts=t2))]
    server = fake_server(deny)
    result = CliRunner().invoke(main, ["ntp", "probe", f"127.0.0.1:{server.port}",
                                       "--count", "3", "--interval", "0"])
    assert result.exit_code != 0
    assert "Kiss-o'-Death 'DENY'" in result.output
    assert len(server.requests) == 1  # it stopped polling


def test_probe_basic_flag_and_interleaved_default(ntp_server: NtpServer) -> None:
    target = f"127.0.0.1:{ntp_server.port}"
    for flags, expected in (([], [False, True, True]), (["--basic"], [False, False, False])):
        result = CliRunner().invoke(main, ["ntp", "probe", target, "--count", "3",
                                           "--interval", "0", "--json", *flags])
        assert result.exit_code == 0, result.output
        rows = [json.loads(line) for line in result.output.splitlines()][:-1]
        assert [r["interleaved"] for r in rows] == expected
