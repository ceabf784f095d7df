"""The agent end to end with real components: chronyd (NTP and chronyc), our NTP server,
forged replies, Redis, the HTTP endpoint, restart, and the CLI under SIGTERM.

All clocks here are the one system clock, so the true offset is exactly 0: every offset the
agent reports must lie within its bound of 0."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from clocksync import CorrectionTable, Corrector
from clocksync.agent import Agent, AgentConfig, AgentHttpServer
from clocksync.ntp import NtpPacket, NtpServer, encode, ns_to_ntp
from tests._fakentp import Craft, FakeServer

from .conftest import Chronyd, RedisServer, free_port, kill_pid, needs_redis, start_redis

FAST = {"min_poll_s": 0.1, "max_poll_s": 0.2, "refit_min_s": 0.3, "timeout_s": 0.2,
        "burst": 2, "burst_interval_s": 0.01}


def _config(tmp_path: Path, **kw: object) -> AgentConfig:
    return AgentConfig.defaults(**{"node": "n1", "data_dir": str(tmp_path / "data"),
                                   "http_listen": "", **FAST, **kw})


@contextmanager
def running(agent: Agent) -> Iterator[Agent]:
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    try:
        yield agent
    finally:
        agent.request_stop()
        thread.join(10)
        assert not thread.is_alive()


def _wait(predicate, timeout_s: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail("condition not reached in time")
        time.sleep(0.05)


def _get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return reply.status, reply.headers["Content-Type"], reply.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.headers["Content-Type"], exc.read().decode()


def test_agent_against_chronyd(tmp_path: Path, chronyd: Chronyd,
                               redis_server: RedisServer) -> None:
    redis_url = redis_server.url(query=f"prefix=e2e{os.getpid()}")
    cfg = _config(tmp_path, ntp_servers=[f"{chronyd.host}:{chronyd.port}"],
                  stores=[str(tmp_path / "tables"), redis_url])
    agent = Agent(cfg)
    http = AgentHttpServer(agent.snapshot, "127.0.0.1", 0).start()
    try:
        assert _get(http.url + "/table")[0] == 404  # no table before the first fit
        with running(agent):
            _wait(lambda: agent.samples.appended >= 12 and agent.table is not None
                  and agent.table.sample_count >= 10)
            status, ctype, body = _get(http.url + "/metrics")
            assert status == 200 and ctype.startswith("text/plain")
            families = {f.name: f for f in text_string_to_metric_families(body)}
            model = [s for s in families["clocksync_offset_seconds"].samples
                     if s.labels["source"] == "model"]
            bound = [s for s in families["clocksync_offset_bound_seconds"].samples
                     if s.labels["source"] == "model"]
            assert abs(model[0].value) <= bound[0].value  # true offset is 0
            samples = families["clocksync_samples"].samples
            assert samples[0].labels["source"] == f"ntp:{chronyd.host}:{chronyd.port}"
            assert samples[0].value >= 12
            states = {s.labels["status"]: s.value for s in families["clocksync_status"].samples}
            assert states["synchronised"] == 1.0 and sum(states.values()) == 1.0
            status, ctype, body = _get(http.url + "/table")
            assert status == 200 and ctype == "application/json"
            assert CorrectionTable.from_json(body).node == "n1"
            status, _, body = _get(http.url + "/healthz")
            assert status == 200 and json.loads(body)["status"] == "synchronised"
            assert _get(http.url + "/nope")[0] == 404
            request = urllib.request.Request(http.url + "/table", data=b"x", method="POST")
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=5)
            refused.value.close()
            assert refused.value.code == 405
    finally:
        http.stop()
    for url in (str(tmp_path / "tables"), redis_url):
        corrector = Corrector.from_store(url)
        now = time.time_ns()
        ref, bound = corrector.correct("n1", now)
        assert abs(ref - now) <= bound, url
        assert bound < 1e6  # a loopback table is tight: well under a millisecond
    assert agent.samples.segments  # the log was flushed on stop


def test_chrony_source_reads_chronyd(tmp_path: Path, chronyd: Chronyd) -> None:
    cfg = _config(tmp_path, chrony=True, chronyc_host=chronyd.command_socket)
    agent = Agent(cfg)
    with running(agent):
        _wait(lambda: agent.table is not None and agent.table.sample_count >= 3)
    snap = agent.snapshot()
    (source,) = snap.sources
    assert source.name == "chrony:" + chronyd.command_socket
    assert source.last_offset_ns is not None and source.last_bound_ns is not None
    assert abs(source.last_offset_ns) <= source.last_bound_ns
    assert agent.table is not None and agent.table.reference.startswith("chrony:")


def test_chrony_source_reads_a_synchronised_chronyd_client(tmp_path: Path,
                                                          chronyd_client: str) -> None:
    """A chronyd that measures a server itself: the agent reports chronyd's estimate (one
    sample per poll, no NTP traffic of its own), within its bound of the true offset 0."""
    agent = Agent(_config(tmp_path, chrony=True, chronyc_host=chronyd_client))
    with running(agent):
        _wait(lambda: agent.table is not None and agent.table.sample_count >= 3)
    recent = agent.samples.recent(1e9, 100)
    assert all(abs(s.offset_ns) <= s.bound for s in recent)
    assert all(s.source == f"chrony:{chronyd_client}:127.0.0.1" for s in recent)
    assert all(s.bound > 1_000.0 for s in recent)  # root delay/dispersion of a real hop


def _forging(genuine: bool, deny: bool = False) -> Craft:
    """Answer each request with garbage, then a reply whose origin is wrong (spoofed),
    then — if ``genuine`` — the real answer with the system clock's time; or only a
    Kiss-o'-Death DENY when ``deny``."""

    def reply(origin: int, t2: int) -> bytes:
        return encode(NtpPacket(version=4, mode=4, stratum=1, reference_id=1,
                                origin_ts=origin, receive_ts=t2,
                                transmit_ts=ns_to_ntp(time.time_ns())))

    def craft(request: NtpPacket, t2: int) -> list[bytes]:
        if deny:  # Kiss-o'-Death DENY: stop polling this server
            return [encode(NtpPacket(
                version=4, mode=4, stratum=0,
                reference_id=int.from_bytes(b"DENY", "big"),
                origin_ts=request.transmit_ts, receive_ts=t2, transmit_ts=t2))]
        # garbage, then a spoofed reply claiming the clock is 1 s ahead
        out = [b"\x24garbage", reply(request.transmit_ts ^ 0xFFFF, t2 + (1 << 32))]
        if genuine:
            out.append(reply(request.transmit_ts, t2))
        return out

    return craft


@pytest.mark.parametrize("genuine", [True, False])
def test_forged_and_garbled_replies_are_ignored(tmp_path: Path, genuine: bool) -> None:
    server = FakeServer(_forging(genuine))
    try:
        agent = Agent(_config(tmp_path, ntp_servers=[f"127.0.0.1:{server.port}"],
                              interleaved=False))
        with running(agent):
            if genuine:
                _wait(lambda: agent.samples.appended >= 5)
            else:
                _wait(lambda: sum(agent.snapshot().sources[0].errors.values()) >= 4)
                assert agent.status == "unknown"
    finally:
        server.close()
    snap = agent.snapshot()
    if genuine:
        for sample in agent.samples.recent(1e9, 1000):
            assert abs(sample.offset_ns) <= sample.bound  # never the forged +1 s
        # every poll succeeded, yet each forged and garbled reply is counted (per reply)
        requests = len(server.requests)
        errors = snap.sources[0].errors
        assert errors.get("timeout", 0) == 0
        assert 1 <= errors.get("bad_origin", 0) <= requests
        assert errors.get("bad_origin", 0) == errors.get("malformed", 0)
    else:
        assert agent.samples.appended == 0
        assert snap.sources[0].errors.get("bad_origin", 0) >= 1
        assert snap.status == "stopped" and snap.table is None  # nothing to publish


def test_kiss_of_death_deny_stops_polling(tmp_path: Path) -> None:
    server = FakeServer(_forging(genuine=False, deny=True))
    try:
        agent = Agent(_config(tmp_path, ntp_servers=[f"127.0.0.1:{server.port}"],
                              interleaved=False))
        with running(agent):
            _wait(lambda: agent.snapshot().sources[0].stopped)
            assert len(server.requests) == 1
            assert agent.status == "unknown"
            # that a stopped source is never polled again: test_agent_sim.py, simulated
    finally:
        server.close()
    assert agent.snapshot().sources[0].errors == {"kod_deny": 1}


@pytest.mark.slow
def test_server_down_free_running_and_bound_grows(tmp_path: Path,
                                                  ntp_server: NtpServer) -> None:
    agent = Agent(_config(tmp_path, ntp_servers=[f"127.0.0.1:{ntp_server.port}"]))
    with running(agent):
        _wait(lambda: agent.status == "synchronised" and agent.samples.appended >= 10)
        ntp_server.stop()
        _wait(lambda: agent.status == "free_running" and agent.table is not None
              and agent.table.sample_count == agent.samples.appended)  # last refit done
        later = agent.snapshot()
        table = Corrector.from_store(str(tmp_path / "data" / "tables")).table("n1")
        assert table.status == "free_running"  # published with the status
    # that the holdover bound keeps growing: test_agent_sim.py, in simulated time
    assert later.bound_now_ns is not None
    assert later.offset_now_ns is not None and abs(later.offset_now_ns) <= later.bound_now_ns
    table = Corrector.from_store(str(tmp_path / "data" / "tables")).table("n1")
    assert table.status == "stopped"  # the final table of an agent that shut down
    # the stopped server's closed port answers ICMP port unreachable: the connected client
    # socket fails at once ("network"), no timeouts to wait for
    assert later.sources[0].errors.get("network", 0) >= 1
    assert not later.sources[0].reachable


@pytest.mark.slow
def test_restart_resumes_the_sample_log(tmp_path: Path, ntp_server: NtpServer) -> None:
    cfg = _config(tmp_path, ntp_servers=[f"127.0.0.1:{ntp_server.port}"])
    first = Agent(cfg)
    with running(first):
        _wait(lambda: first.samples.appended >= 8)
    taken = first.samples.appended
    second = Agent(cfg)
    assert second.samples.resumed == taken
    assert second.table is None  # the constructor only wires; resume() fits
    second.resume()
    assert second.table is not None  # refitted and republished from the log at once
    assert second.table.sample_count == taken
    with running(second):
        _wait(lambda: second.samples.appended >= 3 and second.table is not None
              and second.table.sample_count >= taken + 3)


@pytest.mark.slow
def test_cli_sigterm_publishes_and_exits_zero(tmp_path: Path, ntp_server: NtpServer) -> None:
    http_port = free_port()
    data = tmp_path / "data"
    proc = subprocess.Popen(
        [sys.executable, "-c", "from clocksync.cli import main; main()", "agent", "run",
         "--node", "cli-node", "--ntp-server", f"127.0.0.1:{ntp_server.port}",
         "--data-dir", str(data), "--http", f"127.0.0.1:{http_port}", "--min-poll-s", "100ms",
         "--max-poll-s", "200ms", "--refit-min-s", "60", "--timeout-s", "0.2",
         "--max-skew-ppm", "100"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=Path(__file__).parents[2])
    try:
        table_file = data / "tables" / "cli-node.table.json"
        _wait(lambda: table_file.exists() or proc.poll() is not None, 20)
        assert proc.poll() is None, proc.communicate()[1].decode()
        first = CorrectionTable.from_json(table_file.read_text())
        assert first.assumptions["max_skew_ppm"] == 100
        _wait(lambda: _metric(http_port, "clocksync_samples_total") >= first.sample_count + 3)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err.decode()
    final = CorrectionTable.from_json(table_file.read_text())
    # refit-min-s 60 kept the loop from refitting; the stop refitted and published
    assert final.sample_count > first.sample_count
    assert final.generation > first.generation
    segments = sorted((data / "samples").glob("seg-*.jsonl"))
    assert segments  # the open journal was flushed on stop
    assert "stopped" in err.decode()


def _metric(port: int, name: str) -> float:
    try:
        _, _, body = _get(f"http://127.0.0.1:{port}/metrics")
    except OSError:
        return 0.0
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if sample.name == name:
                return float(sample.value)
    return 0.0


def test_publish_retries_until_redis_comes_up(tmp_path: Path) -> None:
    needs_redis()
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0?prefix=retry&ttl_s=60"
    server = NtpServer(address="127.0.0.1", port=0).start()
    pid = None
    try:
        agent = Agent(_config(tmp_path, ntp_servers=[f"127.0.0.1:{server.port}"],
                              stores=[str(tmp_path / "tables"), url],
                              publish_backoff_max_s=0.4))
        with running(agent):
            _wait(lambda: (tmp_path / "tables" / "n1.table.json").exists())
            _wait(lambda: agent.snapshot().publish_errors[agent.store_urls[1]] >= 2)
            pid = start_redis(port, tmp_path)  # the store comes back
            _wait(lambda: "n1" in _read_redis(url))
        assert Corrector.from_store(url).table("n1").sample_count >= 1
    finally:
        server.stop()
        if pid is not None:
            kill_pid(pid)


def _read_redis(url: str) -> dict[str, CorrectionTable]:
    from clocksync import StoreError, open_store

    try:
        return open_store(url).read_all()
    except StoreError:
        return {}


def test_signed_tables_end_to_end(tmp_path: Path, ntp_server: NtpServer) -> None:
    """With --table-key-file the agent signs what it publishes (store and /table); readers
    with the key accept it, readers with another key refuse it."""
    from clocksync import SignatureError, TableKey

    key_file = tmp_path / "table.key"
    key_file.write_text("0123456789abcdef0123456789abcdef\n")
    agent = Agent(_config(tmp_path, ntp_servers=[f"127.0.0.1:{ntp_server.port}"],
                          table_key_file=str(key_file)))
    http = AgentHttpServer(agent.snapshot, "127.0.0.1", 0).start()
    try:
        with running(agent):
            _wait(lambda: agent.snapshot().publishes >= 1)
            status, _, body = _get(f"{http.url}/table")
            key = TableKey(b"0123456789abcdef0123456789abcdef")
            by_http = Corrector.from_store(http.url, table_key=key)
    finally:
        http.stop()
    assert status == 200 and json.loads(body)["signature"]["key_id"] == key.key_id
    assert by_http.nodes == ("n1",)
    store = str(tmp_path / "data" / "tables")
    assert Corrector.from_store(store, table_key=key).nodes == ("n1",)
    with pytest.raises(SignatureError, match="signed with key"):
        Corrector.from_store(store, table_key=TableKey(b"x" * 32), strict=True)
    other_key = Corrector.from_store(store, table_key=TableKey(b"x" * 32))
    assert other_key.nodes == () and "signed with key" in other_key.load_errors["n1"]


def test_healthz_503_while_the_only_server_refuses(tmp_path: Path) -> None:
    """The only NTP server's port is closed (every exchange draws ICMP port unreachable):
    /healthz answers 503 with the reason, and the poll backs off to max_poll_s."""
    port = free_port(socket.SOCK_DGRAM)  # nothing listens there
    agent = Agent(_config(tmp_path, ntp_servers=[f"127.0.0.1:{port}"], min_poll_s=0.05,
                          max_poll_s=0.4))
    http = AgentHttpServer(agent.snapshot, "127.0.0.1", 0).start()
    try:
        with running(agent):
            _wait(lambda: agent.snapshot().sources[0].errors.get("network", 0) >= 4)
            status, _, body = _get(http.url + "/healthz")
            health = json.loads(body)
            assert status == 503 and health["ok"] is False
            assert health["reason"] == "no usable sample yet"
            assert health["status"] == "unknown" and health["samples"] == 0
            # 0.1, 0.2, 0.4, 0.4 s: doubled per failure, capped at max_poll_s
            _wait(lambda: agent.snapshot().sources[0].poll_s == 0.4)
    finally:
        http.stop()


def test_reference_agent_is_healthy_and_serving(tmp_path: Path) -> None:
    agent = Agent(_config(tmp_path))  # no sources: a reference
    server = agent.start_server(port=0)
    http = AgentHttpServer(agent.snapshot, "127.0.0.1", 0).start()
    try:
        assert server is not None and server.synchronised  # a reference serves as synced
        with running(agent):
            status, _, body = _get(http.url + "/healthz")
            assert status == 200 and json.loads(body)["status"] == "serving"
            assert _get(http.url + "/table")[0] == 404  # nothing to publish
    finally:
        http.stop()
    assert agent.status == "stopped" and agent.table is None
