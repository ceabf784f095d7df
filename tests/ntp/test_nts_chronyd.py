"""Our NTS client against a REAL chronyd NTS server on loopback (it serves the system clock,
so the true offset is 0), with a proxy in the NTP path that tampers with datagrams."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from clocksync.agent import Agent, AgentCollector, AgentConfig
from clocksync.cli import main
from clocksync.net import StampKind
from clocksync.ntp import (
    MAX_COOKIES,
    NtpRejectError,
    NtpTimeoutError,
    NtsKeyExchangeError,
    NtsRejectError,
    RejectReason,
    key_exchange,
)
from tests._ntsserver import PROXY_ADDRESS, NtsServer, nts_chronyd

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def nts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NtsServer]:
    with nts_chronyd(tmp_path_factory.mktemp("nts")) as server:
        yield server


@pytest.fixture(autouse=True)
def _proxy_passes(nts: NtsServer) -> Iterator[None]:
    nts.proxy.set_mode("pass")
    yield
    nts.proxy.set_mode("pass")


def test_key_exchange_names_the_ntp_server_and_gives_cookies(nts: NtsServer) -> None:
    result = key_exchange("localhost", nts.ke_port, ca_file=str(nts.ca_cert))
    assert (result.ntp_host, result.ntp_port) == (PROXY_ADDRESS, nts.ntp_port)
    assert len(result.cookies) == MAX_COOKIES and all(result.cookies)
    assert len(result.keys.c2s) == len(result.keys.s2c) == 32
    assert result.keys.c2s != result.keys.s2c
    assert 0 < result.duration_s < 1.0


@pytest.mark.parametrize("interleaved", [False, True])
def test_authenticated_samples_hold_the_true_zero_offset(nts: NtsServer,
                                                         interleaved: bool) -> None:
    with nts.client(timeout_s=1.0, interleaved=interleaved) as client:
        burst = client.burst(count=8, interval_s=0.02)
        assert client.key_exchanges == 1 and not client.nts_failures
    assert len(burst.measurements) >= 7
    for m in burst.measurements:
        s = m.sample
        assert abs(s.offset_ns) <= s.bound, (s.offset_ns, s.bound)
        assert s.source == f"nts:localhost:{nts.ke_port}" and s.stratum == 1
        assert m.tx_kind is StampKind.KERNEL and m.rx_kind is StampKind.KERNEL
    assert any(m.interleaved for m in burst.measurements) is interleaved


def _tampered(nts: NtsServer, mode: str, exchanges: int, reason: RejectReason) -> None:
    nts.proxy.set_mode(mode)
    with nts.client(timeout_s=0.25, interleaved=False) as client:
        for _ in range(exchanges):
            with pytest.raises(NtpRejectError) as caught:
                client.exchange()
            assert caught.value.reason is reason
        refused = client.rejected[reason.value]
    assert nts.proxy.replies_sent >= exchanges
    assert refused == nts.proxy.replies_sent  # every single reply that arrived was refused


@pytest.mark.slow
def test_every_reply_with_one_flipped_byte_is_refused(nts: NtsServer) -> None:
    nts.proxy.set_mode("flip")
    with nts.client(timeout_s=0.25, interleaved=False) as client:
        samples = 0
        for _ in range(12):
            try:
                client.exchange()
                samples += 1
            except NtsRejectError:
                pass
        refused = client.rejected["nts_auth"] + client.rejected["nts_unique_id"]
        failures = client.nts_failures["auth"] + client.nts_failures["unique_id"]
    assert samples == 0
    assert nts.proxy.replies_sent >= 12 and refused == failures == nts.proxy.replies_sent


def test_replies_stripped_of_the_authenticator_are_refused(nts: NtsServer) -> None:
    _tampered(nts, "strip", 3, RejectReason.NTS_AUTH)


def test_a_replayed_old_reply_is_refused(nts: NtsServer) -> None:
    nts.proxy.set_mode("replay")
    with nts.client(timeout_s=0.25, interleaved=False) as client:
        client.exchange()  # the genuine first reply, which the proxy keeps
        for _ in range(3):
            with pytest.raises(NtsRejectError) as caught:
                client.exchange()
            assert caught.value.reason is RejectReason.NTS_UNIQUE_ID
        assert client.nts_failures["unique_id"] == 3
    assert nts.proxy.replies_sent == 4


def test_cookies_are_spent_replenished_and_renewed_by_key_exchange(nts: NtsServer) -> None:
    with nts.client(timeout_s=0.2, interleaved=False) as client:
        client.exchange()
        assert client.cookies == MAX_COOKIES and client.key_exchanges == 1
        nts.proxy.set_mode("drop")
        for left in range(MAX_COOKIES - 1, MAX_COOKIES - 4, -1):
            with pytest.raises(NtpTimeoutError):
                client.exchange()
            assert client.cookies == left  # a lost reply costs its cookie
        nts.proxy.set_mode("pass")
        client.exchange()  # placeholders ask for the missing cookies back
        assert client.cookies == MAX_COOKIES and client.key_exchanges == 1
        nts.proxy.set_mode("drop")
        for _ in range(MAX_COOKIES):
            with pytest.raises(NtpTimeoutError):
                client.exchange()
        assert client.cookies == 0 and client.key_exchanges == 1
        with pytest.raises(NtpTimeoutError):
            client.exchange()
        assert client.key_exchanges == 2  # the jar ran out: a new NTS-KE refilled it
        nts.proxy.set_mode("pass")
        client.exchange()
        assert client.cookies == MAX_COOKIES and client.key_exchanges == 2


def test_nts_nak_triggers_a_new_key_exchange(nts: NtsServer) -> None:
    with nts.client(timeout_s=0.5, interleaved=False) as client:
        client.exchange()
        nts.proxy.set_mode("nak", nak_left=1)
        with pytest.raises(NtsRejectError) as caught:
            client.exchange()
        assert caught.value.reason is RejectReason.NTS_NAK
        assert client.nts_failures["nak"] == 1 and client.cookies == 0
        m = client.exchange()
        assert client.key_exchanges == 2 and abs(m.sample.offset_ns) <= m.sample.bound


def test_an_untrusted_ca_fails_the_handshake(nts: NtsServer) -> None:
    with pytest.raises(NtsKeyExchangeError) as caught:
        key_exchange("localhost", nts.ke_port, ca_file=str(nts.other_ca_cert))
    assert caught.value.reason.value == "tls"
    with nts.client(timeout_s=0.3) as client:
        client.ca_file = str(nts.other_ca_cert)
        with pytest.raises(NtsKeyExchangeError):
            client.burst(count=3, interval_s=0.0)
        assert client.nts_failures == {"tls": 1} and client.server_address is None


def test_probe_cli_with_nts(nts: NtsServer) -> None:
    result = CliRunner().invoke(main, ["ntp", "probe", f"localhost:{nts.ke_port}", "--nts",
                                       "--nts-ca-file", str(nts.ca_cert), "--count", "3",
                                       "--interval", "0.01"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("#")]
    assert len(lines) == 3 and all("  nts  " in line for line in lines)
    bad = CliRunner().invoke(main, ["ntp", "probe", f"localhost:{nts.ke_port}", "--nts",
                                    "--nts-ca-file", str(nts.other_ca_cert), "--count", "1"])
    assert bad.exit_code != 0 and "[nts tls]" in bad.output and "Traceback" not in bad.output


def test_agent_counts_nts_failures_and_never_falls_back(nts: NtsServer,
                                                        tmp_path: Path) -> None:
    config = AgentConfig.defaults(node="nts-node", ntp_servers=[f"localhost:{nts.ke_port}"],
                                  nts=True, nts_ca_file=str(nts.other_ca_cert), burst=2,
                                  burst_interval_s=0.0, timeout_s=0.3,
                                  data_dir=str(tmp_path), http_listen="")
    agent = Agent(config)
    try:
        agent.step()
        snap = agent.snapshot()
    finally:
        agent.shutdown()
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(AgentCollector(lambda: snap))
    text = generate_latest(registry).decode()
    name = f"nts:localhost:{nts.ke_port}"
    assert (f'clocksync_nts_failures_total{{node="nts-node",reason="tls",server="{name}"}} 1.0'
            in text), text
    assert snap.sources[0].samples == 0 and agent.samples.appended == 0
