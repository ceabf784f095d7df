"""The collector's :class:`Forwarder` against a real HTTP server on 127.0.0.1: annotated
protobuf arrives gzip-compressed, 503 + ``Retry-After`` is honoured, a full queue drops
instead of blocking, retries give up after their limit, and ``close`` drains."""

from __future__ import annotations

import functools
import gzip
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from clocksync import Corrector, SimClock, fit_table
from clocksync.collector import Forwarder, ForwardStats
from clocksync.latency import annotate_request
from clocksync.testing import LinkModel, simulate_samples

T0 = 1_764_129_600_000_000_000


@dataclass
class Received:
    """One POST the upstream got: path, headers and the decoded request."""

    path: str
    headers: dict[str, str]
    request: ExportTraceServiceRequest
    at: float


@dataclass
class Upstream:
    """A loopback OTLP/HTTP receiver: answers from ``script`` (status, headers) in order,
    then 200; ``gate`` (when set) holds every answer until it is opened."""

    url: str
    received: list[Received] = field(default_factory=list)
    script: deque[tuple[int, dict[str, str]]] = field(default_factory=deque)
    gate: threading.Event | None = None
    arrived: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    state = Upstream("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            state.received.append(Received(self.path, dict(self.headers),
                                           ExportTraceServiceRequest.FromString(body),
                                           time.monotonic()))
            state.arrived.set()
            if state.gate is not None:
                state.gate.wait(10)
            status, headers = state.script.popleft() if state.script else (200, {})
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        if state.gate is not None:
            state.gate.set()
        server.shutdown()
        server.server_close()


def _request(local_ns: int, node: str = "n1", spans: int = 1) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.add(key="service.name", value=AnyValue(string_value=node))
    ss = rs.scope_spans.add()
    for i in range(spans):
        ss.spans.add(trace_id=b"\x01" * 16, span_id=(i + 1).to_bytes(8, "big"), name="op",
                     start_time_unix_nano=local_ns + i, end_time_unix_nano=local_ns + i + 5)
    return request


def _wait(predicate: Any, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_forwards_annotated_protobuf(upstream: Upstream) -> None:
    clock = SimClock(t0_ns=T0, offset0_ns=-400_000.0, skew_ppm=20.0)
    table = fit_table(simulate_samples(clock, "n1", T0, 120.0, 1.0, LinkModel(),
                                       np.random.default_rng(4)))
    corrector = Corrector([table])
    truth = T0 + 60 * 10**9
    local = int(clock.local_ns(truth))
    fwd = Forwarder(upstream.url, annotate=functools.partial(
        annotate_request, corrector=corrector))
    assert fwd.offer(_request(local))
    assert fwd.close(5.0)
    got, = upstream.received
    assert got.path == "/v1/traces"
    assert got.headers["Content-Type"] == "application/x-protobuf"
    assert got.headers["Content-Encoding"] == "gzip"
    span = got.request.resource_spans[0].scope_spans[0].spans[0]
    assert span.start_time_unix_nano == local  # the timestamp itself is unchanged
    attrs = {kv.key: getattr(kv.value, kv.value.WhichOneof("value")) for kv in span.attributes}
    assert attrs["clocksync.node"] == "n1"
    assert abs(attrs["clocksync.start_ref_ns"] - truth) <= attrs["clocksync.start_bound_ns"]
    assert abs(local - truth) > 300_000 > attrs["clocksync.start_bound_ns"]
    stats = fwd.stats()
    assert isinstance(stats, ForwardStats)
    assert (stats.sent, stats.dropped, stats.retried, stats.failed) == (1, 0, 0, 0)


def test_retries_503_after_retry_after(upstream: Upstream) -> None:
    upstream.script.append((503, {"Retry-After": "1"}))
    fwd = Forwarder(upstream.url + "/custom/path", backoff_s=0.01, compress=False)
    assert fwd.offer(_request(T0))
    _wait(lambda: len(upstream.received) == 2)
    first, second = upstream.received
    assert second.at - first.at >= 0.9  # waited as told, not the 10 ms backoff
    assert second.path == "/custom/path" and "Content-Encoding" not in second.headers
    assert second.request == first.request
    assert fwd.close(5.0)
    stats = fwd.stats()
    assert (stats.sent, stats.retried, stats.failed) == (1, 1, 0)
    assert "HTTP 503" in stats.last_error


def test_full_queue_drops_without_blocking(upstream: Upstream) -> None:
    upstream.gate = threading.Event()
    fwd = Forwarder(upstream.url, queue_max=2)
    assert fwd.offer(_request(T0))
    assert upstream.arrived.wait(5)  # the first is in flight, held by the upstream
    assert fwd.offer(_request(T0 + 1)) and fwd.offer(_request(T0 + 2))
    started = time.monotonic()
    assert not fwd.offer(_request(T0 + 3))  # full: refused at once
    assert time.monotonic() - started < 0.1
    assert fwd.stats().dropped == 1 and fwd.stats().queued == 2
    upstream.gate.set()
    assert fwd.close(5.0)  # drains what was queued
    stats = fwd.stats()
    assert (stats.sent, stats.dropped, stats.queued) == (3, 1, 0)
    assert [r.request.resource_spans[0].scope_spans[0].spans[0].start_time_unix_nano
            for r in upstream.received] == [T0, T0 + 1, T0 + 2]
    assert not fwd.offer(_request(T0 + 4))  # closed
    assert fwd.stats().dropped == 2


def test_gives_up_after_the_limit_and_on_permanent_errors(upstream: Upstream) -> None:
    upstream.script.extend([(503, {})] * 3 + [(400, {})])
    fwd = Forwarder(upstream.url, max_attempts=3, backoff_s=0.01)
    assert fwd.offer(_request(T0)) and fwd.offer(_request(T0 + 1))
    assert fwd.close(5.0)
    stats = fwd.stats()
    assert (stats.sent, stats.retried, stats.failed) == (0, 2, 2)  # 3 x 503, then one 400
    assert len(upstream.received) == 4 and "HTTP 400" in stats.last_error


def test_connection_errors_are_retried() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    fwd = Forwarder(f"http://127.0.0.1:{port}", max_attempts=3, backoff_s=0.01, timeout_s=1.0)
    assert fwd.offer(_request(T0))
    assert fwd.close(5.0)
    stats = fwd.stats()
    assert (stats.sent, stats.retried, stats.failed) == (0, 2, 1)
    assert "ConnectionRefusedError" in stats.last_error


def test_close_drains_many_and_cuts_a_long_backoff_short(upstream: Upstream) -> None:
    fwd = Forwarder(upstream.url, queue_max=100)
    for i in range(50):
        assert fwd.offer(_request(T0 + i, spans=10))
    assert fwd.close(10.0)
    assert fwd.stats().sent == 50 and len(upstream.received) == 50
    # a retry told to wait a minute: close does not wait for it, and says what it lost
    upstream.script.append((429, {"Retry-After": "60"}))
    fwd = Forwarder(upstream.url, max_backoff_s=120.0)
    assert fwd.offer(_request(T0)) and upstream.arrived.wait(5)
    _wait(lambda: fwd.stats().retried == 1)
    fwd.offer(_request(T0 + 1))
    started = time.monotonic()
    assert not fwd.close(0.2)
    assert time.monotonic() - started < 5
    stats = fwd.stats()
    assert (stats.sent, stats.failed, stats.dropped) == (0, 1, 1)


def test_bad_urls_and_a_failing_annotation(upstream: Upstream) -> None:
    with pytest.raises(ValueError, match="expected http"):
        Forwarder("ftp://example")

    def broken(request: Any) -> None:
        raise RuntimeError("no tables")

    fwd = Forwarder(upstream.url, annotate=broken)
    assert fwd.offer(_request(T0))
    assert fwd.close(5.0)
    stats = fwd.stats()
    assert stats.sent == 1 and stats.annotate_errors == 1 and "no tables" in stats.last_error
