"""Non-root tests of the slave's I/O-side helpers, the probe records and the CLI."""

from __future__ import annotations

import json
import socket

import pytest
from click.testing import CliRunner
from scapy.layers.l2 import Dot1Q, Ether

import ptp
from clocksync.cli import main
from ptp import (
    SLAVE_OPTIONS,
    Exchange,
    PtpResult,
    config_text,
    ethernet_payload,
    interface_mac,
    measure,
    parse_offset_line,
)


def result(offset_ns: float, bound_scale: float = 1.0, accepted: bool = True) -> PtpResult:
    ex = Exchange(t1_ns=1_000_000, t2_ns=1_002_000 - round(offset_ns), t3_ns=1_003_000,
                  t4_ns=1_005_000 + round(offset_ns))  # fmt: skip
    m = measure(ex, 2_000 * bound_scale, max_skew_ppm=0, timestamp_error_ns=0)
    return PtpResult("0a0000.fffe.000001-1", 7, ex, m, accepted)


def test_to_sample_carries_offset_round_trip_and_bound() -> None:
    r = result(500.0)
    s = ptp.to_sample(r, node="n1", iface="veth0")
    assert s.offset_ns == r.measurement.offset_ns == 500.0
    assert s.delay_ns == r.exchange.round_trip_ns == 4_000
    assert s.bound_ns == r.measurement.bound_ns
    assert s.t_local_ns == r.exchange.t2_ns
    assert s.source == "ptp:veth0"


def test_summary_picks_best_bound_and_skips_outliers() -> None:
    rs = [result(100.0), result(300.0, bound_scale=1.5), result(9_000.0, accepted=False)]
    summary = ptp.summarize(rs)
    assert summary is not None
    assert summary.count == 3 and summary.outliers == 1
    assert summary.best_offset_ns == 100.0
    assert summary.median_offset_ns == pytest.approx(
        (rs[0].measurement.offset_ns + rs[1].measurement.offset_ns) / 2
    )
    assert ptp.summarize([result(1.0, accepted=False)]) is None
    rec = ptp.result_record(rs[0])
    assert json.loads(json.dumps(rec))["offset_ns"] == 100.0
    assert "± " in ptp.result_line(rs[0]) and "outlier" in ptp.result_line(rs[2])
    assert "negative" in summary.lines()[-1]


def test_default_identity_differs_from_ptp4l_on_the_same_mac() -> None:
    ident = ptp.default_identity("lo")  # lo's MAC is all zero: random, locally administered
    assert len(ident) == 8 and ident[0] & 0x02
    for _, name in socket.if_nameindex():
        mac = interface_mac(name)
        if mac and mac != bytes(6):
            ours = ptp.default_identity(name)
            assert ours == mac[:3] + b"\xc5\x5c" + mac[3:]  # ptp4l puts ff fe in the middle


def test_ethernet_payload_strips_header_and_vlan_tag() -> None:
    sync = ptp.encode(ptp.Sync(sequenceId=9))
    plain = bytes(Ether(dst="01:1b:19:00:00:00", type=0x88F7) / sync)
    tagged = bytes(Ether(dst="01:1b:19:00:00:00") / Dot1Q(vlan=5, type=0x88F7) / sync)
    assert ethernet_payload(plain) == sync
    assert ethernet_payload(tagged) == sync
    assert ethernet_payload(bytes(Ether(type=0x0800)) + sync) is None
    assert ethernet_payload(b"\x01\x02") is None
    padded = ethernet_payload(plain + b"\x00\x00")
    assert padded is not None and ptp.decode(padded, allow_padding=True).sequenceId == 9


def test_ptp4l_offset_lines_and_sign() -> None:
    line = "ptp4l[1250.651]: master offset        199 s0 freq     -39 path delay      2105"
    got = parse_offset_line(line)
    assert got is not None
    assert (got.master_offset_ns, got.offset_ns, got.freq_ppb, got.path_delay_ns) == (
        199, -199, -39, 2105
    )  # fmt: skip
    assert got.state == "s0" and got.monotonic_s == 1250.651
    assert parse_offset_line("ptp4l[1.0]: port 1: LISTENING to MASTER") is None


def test_ptp4l_config_always_free_running() -> None:
    text = config_text("/tmp/x.sock", {**SLAVE_OPTIONS, "free_running": "0"})
    lines = text.splitlines()
    assert lines[0] == "[global]"
    assert "free_running 1" in lines and "free_running 0" not in lines
    assert "uds_address /tmp/x.sock" in lines and "slaveOnly 1" in lines


def test_cli_probe_help_and_errors() -> None:
    runner = CliRunner()
    helped = runner.invoke(main, ["ptp", "probe", "--help"])
    assert helped.exit_code == 0 and "--domain" in helped.output and "negative" in helped.output
    missing = runner.invoke(main, ["ptp", "probe", "nosuchif0", "--seconds", "0.1"])
    assert missing.exit_code == 1
    assert "nosuchif0" in missing.output and "no such network interface" in missing.output
    bad = runner.invoke(main, ["ptp", "probe", "lo", "--domain", "256"])
    assert bad.exit_code == 2


def test_slave_rejects_unknown_transport() -> None:
    with pytest.raises(ValueError, match="transport"):
        ptp.PtpSlave("lo", transport="ipv6")


def test_skew_assumption_is_the_project_wide_one() -> None:
    from clocksync import Assumptions

    assert ptp.PortConfig().max_skew_ppm == Assumptions().max_skew_ppm
    helped = CliRunner().invoke(main, ["ptp", "probe", "--help"])
    assert f"default: {Assumptions().max_skew_ppm}" in helped.output.replace("\n", " ")
