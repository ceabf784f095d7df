"""Redis secrets and TLS against real redis-servers on free loopback ports: a wrong
password is a StoreError that never shows the password (message, traceback, logs, metrics
labels); mutual TLS options (client certificate and key) are honoured.

redis-server is started with the agent tests' helpers (``tests/agent/conftest.py``).
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clocksync import CorrectionTable, Sample, StoreError, fit_table, open_store
from clocksync._io._store._redis import (  # tests the private module clocksync._io._store._redis
    RedisStore,
    redact_url,
)
from clocksync.ntp import NtpServer
from tests.agent.conftest import (
    free_port,
    kill_pid,
    make_tls_files,
    needs_redis,
    redis_running,
    start_redis,
)

SECRET = "s3cret-Faults-Pa55"
WRONG = "Wr0ng-Faults-Guess"
T0 = 1_767_225_600 * 10**9


def _table(node: str = "n1") -> CorrectionTable:
    rng = np.random.default_rng(3)
    return fit_table([Sample(node, T0 + i * 10**9, float(rng.normal(0, 100)), 30_000.0)
                      for i in range(12)], reference="test")


@pytest.fixture(scope="module")
def redis_port() -> Iterator[int]:
    """A real redis-server requiring ``SECRET`` on a free loopback port."""
    with redis_running(SECRET, "csfaults_redis_") as port:
        yield port


def _no_secret(*texts: str) -> None:
    for text in texts:
        assert WRONG not in text and SECRET not in text, text
        assert urllib.parse.quote(WRONG) not in text


def test_wrong_password_is_a_store_error_without_the_password(
        redis_port: int, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"redis://:{WRONG}@127.0.0.1:{redis_port}/0?prefix=faults"
    store = RedisStore(url, timeout_s=2.0)
    _no_secret(store.url, repr(store.url))
    for call in (store.read_all, store.version, lambda: store.write(_table()),
                 lambda: store.wait_for_update(0.1)):
        with pytest.raises(StoreError) as info:
            call()
        text = str(info.value)
        assert "***" in text and f"127.0.0.1:{redis_port}" in text
        _no_secret(text, "".join(traceback.format_exception(info.value)))
    _no_secret(caplog.text)
    good = RedisStore(f"redis://:{SECRET}@127.0.0.1:{redis_port}/0?prefix=faults")
    good.write(_table())
    assert list(good.read_all()) == ["n1"]  # the server and the right password do work


def test_no_password_and_bad_urls_never_echo_the_password(redis_port: int) -> None:
    with pytest.raises(StoreError) as info:
        RedisStore(f"redis://127.0.0.1:{redis_port}/0", timeout_s=2.0).read_all()
    assert "auth" in str(info.value).lower()
    for bad in (f"redis://:{WRONG}@127.0.0.1:{redis_port}/0?ttl_s=soon",
                f"redis://:{WRONG}@127.0.0.1:{redis_port}/0?prefix=",
                f"redis://:{WRONG}@127.0.0.1:{redis_port}/notadb",
                f"redis://:{WRONG}@127.0.0.1:{redis_port}/0?socket_timeout=abc"):
        with pytest.raises(StoreError) as info:
            RedisStore(bad, timeout_s=1.0).read_all()
        _no_secret(str(info.value))


def test_agent_with_a_wrong_password_logs_and_exports_no_secret(
        redis_port: int, ntp_server: NtpServer, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """The agent keeps running, counts the failed publishes per store, and neither its log
    nor its /metrics labels nor its snapshot carry the password."""
    pytest.importorskip("prometheus_client", reason="/metrics needs prometheus-client")
    from prometheus_client import CollectorRegistry, generate_latest

    from clocksync.agent import Agent, AgentCollector, AgentConfig

    caplog.set_level(logging.DEBUG)
    url = f"redis://:{WRONG}@127.0.0.1:{redis_port}/0?prefix=faults-agent"
    config = AgentConfig.defaults(node="leaky", ntp_servers=[f"127.0.0.1:{ntp_server.port}"],
                                  stores=[url], data_dir=str(tmp_path / "data"),
                                  http_listen="", min_poll_s=0.05, max_poll_s=0.1,
                                  refit_min_s=0.1, timeout_s=0.3, burst=1)
    agent = Agent(config)
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 15
        while not sum(agent.snapshot().publish_errors.values()):
            assert time.monotonic() < deadline, "the agent never tried to publish"
            time.sleep(0.05)
    finally:
        agent.request_stop()
        thread.join(10)
    snap = agent.snapshot()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AgentCollector(agent.snapshot))
    metrics = generate_latest(registry).decode()
    assert "clocksync_publish_errors" in metrics
    _no_secret(caplog.text, metrics, repr(snap.publish_errors), repr(agent.store_urls))
    assert "publish failed" in caplog.text


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="ascii", exclude_characters="\r\n\t "),
               min_size=6, max_size=24),
       st.sampled_from(["redis", "rediss"]), st.sampled_from(["", "user"]))
def test_redact_url_hides_any_password(password: str, scheme: str, user: str) -> None:
    quoted = urllib.parse.quote(password, safe="")
    url = f"{scheme}://{user}:{quoted}@cache.example:6380/2?prefix=p"
    redacted = redact_url(url)
    assert quoted not in redacted
    assert redacted.startswith(f"{scheme}://{user}:***@cache.example:6380/2")


def test_mutual_tls_client_certificate_is_honoured(tmp_path: Path) -> None:
    """A server that demands client certificates: without ours the store fails (no secret
    shown), with ``ssl_certfile``/``ssl_keyfile`` it works."""
    needs_redis()
    ca, cert, key = make_tls_files(tmp_path)
    port = free_port()
    pid = start_redis(port, tmp_path, SECRET, tls=(ca, cert, key))
    try:
        import subprocess

        subprocess.run(["redis-cli", "--tls", "--cacert", str(ca), "--cert", str(cert),
                        "--key", str(key), "-p", str(port), "-a", SECRET, "--no-auth-warning",
                        "CONFIG", "SET", "tls-auth-clients", "yes"],
                       check=True, capture_output=True, timeout=10)
        base = (f"rediss://:{SECRET}@127.0.0.1:{port}/0?prefix=mtls&ssl_ca_certs={ca}"
                "&ssl_cert_reqs=required")
        with pytest.raises(StoreError) as info:
            RedisStore(base, timeout_s=2.0).read_all()
        _no_secret(str(info.value))
        store = open_store(f"{base}&ssl_certfile={cert}&ssl_keyfile={key}")
        store.write(_table("mtls-node"))
        assert list(store.read_all()) == ["mtls-node"]
    finally:
        kill_pid(pid)
