"""The agent's HTTP endpoint under hostile clients, over raw sockets on loopback: read-only,
loopback by default, bounded request size and time, other clients served meanwhile.

The request deadline is lowered from 5 s to 1 s for these tests (module constant, read at
each connection); the assertions on time are generous bounds (a cut-off that does not
happen leaves the trickling client connected for 10 s or more).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from clocksync.agent import (
    Agent,
    AgentConfig,
    AgentHttpServer,
    _http,  # tests the private module clocksync.agent._http (its limits)
)
from clocksync.agent._http import MAX_REQUEST_HEAD_BYTES

DEADLINE_S = 1.0
GENEROUS_S = 4.0


@pytest.fixture
def http(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AgentHttpServer]:
    pytest.importorskip("prometheus_client", reason="the endpoint needs prometheus-client")
    monkeypatch.setattr(_http, "REQUEST_TIMEOUT_S", DEADLINE_S)
    agent = Agent(AgentConfig.defaults(node="hostile", data_dir=str(tmp_path / "data"),
                                       http_listen=""))
    server = AgentHttpServer(agent.snapshot, "127.0.0.1", 0).start()
    try:
        yield server
    finally:
        server.stop()


def _connect(server: AgentHttpServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def _exchange(server: AgentHttpServer, request: bytes) -> bytes:
    """Send ``request`` and read until the server closes; a reset counts as a close."""
    with _connect(server) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(request)
        out = b""
        try:
            while chunk := sock.recv(65536):
                out += chunk
        except ConnectionResetError:
            pass
        return out


def _status(response: bytes) -> int:
    return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/") else 0


def test_get_works(http: AgentHttpServer) -> None:
    response = _exchange(http, b"GET /healthz HTTP/1.0\r\n\r\n")
    assert _status(response) == 200 and b'"node": "hostile"' in response


@pytest.mark.parametrize("method", [b"POST", b"PUT", b"DELETE", b"PATCH"])
def test_writes_are_refused_405(http: AgentHttpServer, method: bytes) -> None:
    response = _exchange(http, method + b" /table HTTP/1.0\r\nContent-Length: 2\r\n\r\n{}")
    assert _status(response) == 405


@pytest.mark.parametrize("method", [b"OPTIONS", b"TRACE", b"CONNECT", b"BREW"])
def test_other_methods_are_refused(http: AgentHttpServer, method: bytes) -> None:
    assert _status(_exchange(http, method + b" /table HTTP/1.0\r\n\r\n")) in (405, 501)


def test_get_with_a_body_is_refused_413(http: AgentHttpServer) -> None:
    response = _exchange(http, b"GET /table HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello")
    assert _status(response) == 413


def test_binds_loopback_by_default(tmp_path: Path) -> None:
    pytest.importorskip("prometheus_client", reason="the endpoint needs prometheus-client")
    assert AgentConfig.defaults().http_listen.startswith("127.0.0.1:")
    agent = Agent(AgentConfig.defaults(node="d", data_dir=str(tmp_path), http_listen=""))
    server = AgentHttpServer(agent.snapshot, port=0).start()
    try:
        assert server.url.startswith("http://127.0.0.1:")
    finally:
        server.stop()


def test_huge_request_line_is_refused_431(http: AgentHttpServer) -> None:
    path = b"/" + b"a" * (MAX_REQUEST_HEAD_BYTES + 100)
    response = _exchange(http, b"GET " + path + b" HTTP/1.0\r\n\r\n")
    assert _status(response) == 431


def test_huge_headers_are_refused_431(http: AgentHttpServer) -> None:
    headers = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"p" * 60) for i in range(150))
    assert len(headers) > MAX_REQUEST_HEAD_BYTES
    response = _exchange(http, b"GET /healthz HTTP/1.0\r\n" + headers + b"\r\n")
    assert _status(response) == 431


def test_headers_just_under_the_limit_are_served(http: AgentHttpServer) -> None:
    headers = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"p" * 60) for i in range(90))
    assert len(headers) < MAX_REQUEST_HEAD_BYTES - 100
    assert _status(_exchange(http, b"GET /healthz HTTP/1.0\r\n" + headers + b"\r\n")) == 200


def test_silent_client_is_cut_off(http: AgentHttpServer) -> None:
    with _connect(http) as sock:
        start = time.monotonic()
        with contextlib.suppress(ConnectionResetError):  # a reset is a close too
            assert sock.recv(1024) == b""  # the server closed the connection
        assert time.monotonic() - start < GENEROUS_S


def test_trickling_client_is_cut_off_while_others_are_served(http: AgentHttpServer) -> None:
    """One byte every 0.2 s would take 10 s; the server cuts it off at its deadline while
    normal clients keep getting answers."""
    trickle = b"GET /healthz HTTP/1.0\r\n" + b"X-Slow: " + b"z" * 40 + b"\r\n\r\n"
    done = threading.Event()
    cut_after: list[float] = []

    def slow() -> None:
        with _connect(http) as sock:
            start = time.monotonic()
            try:
                for byte in trickle:
                    sock.sendall(bytes([byte]))
                    time.sleep(0.2)
            except OSError:  # reset or broken pipe: cut off
                pass
            try:
                sock.settimeout(GENEROUS_S)
                while sock.recv(1024):
                    pass
            except OSError:
                pass
            cut_after.append(time.monotonic() - start)
            done.set()

    thread = threading.Thread(target=slow)
    thread.start()
    served = 0
    try:
        while not done.is_set() and served < 50:
            assert _status(_exchange(http, b"GET /healthz HTTP/1.0\r\n\r\n")) == 200
            served += 1
            time.sleep(0.05)
    finally:
        thread.join(15)
    assert served >= 1
    assert cut_after and cut_after[0] < GENEROUS_S  # the trickle alone would take 10 s


def test_many_idle_connections_do_not_block_a_scrape(http: AgentHttpServer) -> None:
    idle = [_connect(http) for _ in range(24)]
    try:
        response = _exchange(http, b"GET /metrics HTTP/1.0\r\n\r\n")
        assert _status(response) == 200 and b"clocksync_status" in response
    finally:
        for sock in idle:
            sock.close()
