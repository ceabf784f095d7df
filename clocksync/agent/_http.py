"""The agent's read-only HTTP endpoint (stdlib ``ThreadingHTTPServer``).

* ``GET /metrics`` — Prometheus exposition (prometheus-client), see :class:`AgentCollector`;
* ``GET /table``   — the published table JSON (404 before the first fit);
* ``GET /healthz`` — a small JSON status: 200 while healthy, 503 with a ``reason`` while
  the loop stalled, there is no usable sample yet, the table is past its holdover horizon,
  or the agent stopped (a reference agent, status ``serving``, is healthy).

Binds 127.0.0.1 unless configured otherwise. prometheus-client (the ``metrics`` extra) is
imported only when the endpoint starts, so the package and the CLI load without it.
Only GET and HEAD (other methods: 405); request bodies are refused (413). A request line
plus headers over :data:`MAX_REQUEST_HEAD_BYTES` is answered 431 and the connection closed;
a client that has not sent its whole request head :data:`REQUEST_TIMEOUT_S` after
connecting (silent, or trickling bytes) is cut off; writes time out after the same time. So
a slow or huge request cannot pin a thread for long, and other clients are served meanwhile
(one thread per connection).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .._model._errors import InputError
from .._model._status import STATUSES
from ..ntp import NtsFailure
from ._agent import AgentSnapshot
from ._source import FAILURE_REASONS

__all__ = ["MAX_REQUEST_HEAD_BYTES", "NTS_FAILURE_REASONS", "REQUEST_TIMEOUT_S",
           "AgentCollector", "AgentHttpServer"]

#: the whole request head (request line + headers) must arrive within this (s)
REQUEST_TIMEOUT_S = 5.0
#: largest request line + headers accepted (bytes); more is answered 431
MAX_REQUEST_HEAD_BYTES = 8192
#: every reason of ``clocksync_nts_failures_total``, exported from 0 for each NTS server
NTS_FAILURE_REASONS = tuple(r.value for r in NtsFailure)


class AgentCollector:
    """Prometheus metrics computed from a fresh snapshot at every scrape.

    Offsets are reference - local in seconds (positive: the local clock is behind). The
    ``source`` label is ``"model"`` for the fitted table evaluated now, else a source name
    (its last raw sample).
    """

    def __init__(self, snapshot: Callable[[], AgentSnapshot]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        snap = self._snapshot()
        node = snap.node
        offset = GaugeMetricFamily("clocksync_offset_seconds",
                                   "Offset reference - local (s); source=model: the fitted "
                                   "table now, else the last sample of that source",
                                   labels=["node", "source"])
        bound = GaugeMetricFamily("clocksync_offset_bound_seconds",
                                  "Guaranteed half-width of the offset (s)",
                                  labels=["node", "source"])
        if snap.offset_now_ns is not None and snap.bound_now_ns is not None:
            offset.add_metric([node, "model"], snap.offset_now_ns / 1e9)
            bound.add_metric([node, "model"], snap.bound_now_ns / 1e9)
        for s in snap.sources:
            if s.last_offset_ns is not None and s.last_bound_ns is not None:
                offset.add_metric([node, s.name], s.last_offset_ns / 1e9)
                bound.add_metric([node, s.name], s.last_bound_ns / 1e9)
        yield offset
        yield bound
        skew = GaugeMetricFamily("clocksync_skew_ppm", "Estimated frequency error (ppm); "
                                 "positive: the local clock runs fast", labels=["node"])
        if snap.skew_ppm is not None:
            skew.add_metric([node], snap.skew_ppm)
        yield skew
        samples = CounterMetricFamily("clocksync_samples", "Samples taken since start",
                                      labels=["node", "source"])
        errors = CounterMetricFamily("clocksync_poll_errors", "Failed exchanges and rejected "
                                     "replies by reason (timeout, network, bad_origin, "
                                     "kod_rate, ...)", labels=["node", "source", "reason"])
        rejected = CounterMetricFamily("clocksync_rejected_replies", "Replies that failed "
                                       "validation, by reason", labels=["node", "source",
                                                                        "reason"])
        poll = GaugeMetricFamily("clocksync_poll_interval_seconds", "Current poll interval",
                                 labels=["node", "source"])
        reachable = GaugeMetricFamily("clocksync_source_reachable", "1 if the source "
                                      "answered recently", labels=["node", "source"])
        for s in snap.sources:
            samples.add_metric([node, s.name], s.samples)
            poll.add_metric([node, s.name], s.poll_s)
            reachable.add_metric([node, s.name], 1.0 if s.reachable else 0.0)
            for reason, count in sorted(s.errors.items()):
                errors.add_metric([node, s.name, reason], count)
                if reason not in FAILURE_REASONS:
                    rejected.add_metric([node, s.name, reason], count)
        yield from (samples, errors, rejected, poll, reachable)
        nts = CounterMetricFamily("clocksync_nts_failures", "NTS failures by reason: tls "
                                  "(TLS session or certificate), ke (NTS-KE records), nak "
                                  "(server refused our cookie), auth (reply authenticator "
                                  "missing or wrong), unique_id (reply not for our request)",
                                  labels=["node", "server", "reason"])
        for s in snap.sources:
            if s.name.startswith("nts:"):
                for reason in NTS_FAILURE_REASONS:
                    nts.add_metric([node, s.name, reason], s.nts_failures.get(reason, 0))
        yield nts
        falseticker = GaugeMetricFamily("clocksync_source_falseticker", "1 while the source's "
                                        "latest sample misses the offset interval a strict "
                                        "majority of sources agrees on", labels=["node",
                                                                                  "source"])
        for s in snap.sources:
            falseticker.add_metric([node, s.name], 1.0 if s.falseticker else 0.0)
        yield falseticker
        agree = GaugeMetricFamily("clocksync_sources_agree", "1 if the fresh samples of all "
                                  "sources overlap within their bounds, 0 if not (absent with "
                                  "fewer than two fresh sources)", labels=["node"])
        if snap.sources_agree is not None:
            agree.add_metric([node], 1.0 if snap.sources_agree else 0.0)
        yield agree
        status = GaugeMetricFamily("clocksync_status", "1 for the current ClockBound-style "
                                   "status of the node's clock model", labels=["node", "status"])
        for name in STATUSES:
            status.add_metric([node, name], 1.0 if snap.status == name else 0.0)
        yield status
        publishes = CounterMetricFamily("clocksync_publishes", "Tables written to stores",
                                        labels=["node"])
        publishes.add_metric([node], snap.publishes)
        yield publishes
        publish_errors = CounterMetricFamily("clocksync_publish_errors", "Failed table "
                                             "writes", labels=["node", "store"])
        for store, count in sorted(snap.publish_errors.items()):
            publish_errors.add_metric([node, store], count)
        yield publish_errors
        fits = CounterMetricFamily("clocksync_fits", "Model refits", labels=["node"])
        fits.add_metric([node], snap.fits)
        yield fits


class _HeadReader:
    """The request stream, refusing to hand out more than ``limit`` bytes of request head
    (:class:`http.client.LineTooLong` beyond; the stdlib answers it 431 for headers)."""

    def __init__(self, raw: Any, limit: int) -> None:
        self._raw = raw
        self._left = limit

    def readline(self, size: int = -1) -> bytes:
        want = self._left + 1 if size < 0 else min(size, self._left + 1)
        line: bytes = self._raw.readline(want)
        self._left -= len(line)
        if self._left < 0:
            raise http.client.LineTooLong(f"request head over {MAX_REQUEST_HEAD_BYTES} bytes")
        return line

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = REQUEST_TIMEOUT_S
    protocol_version = "HTTP/1.0"
    server_version = "clocksync-agent"

    def setup(self) -> None:
        super().setup()
        self.rfile = _HeadReader(self.rfile, MAX_REQUEST_HEAD_BYTES)  # type: ignore[assignment]
        # a deadline for the whole head: the socket timeout alone restarts with every byte
        self._watchdog = threading.Timer(REQUEST_TIMEOUT_S, self._cut_off)
        self._watchdog.daemon = True
        self._watchdog.start()

    def _cut_off(self) -> None:
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)  # the blocked read returns at once

    def parse_request(self) -> bool:
        ok = super().parse_request()
        self._watchdog.cancel()  # the head is in; the reply is bounded by the socket timeout
        return ok

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except http.client.LineTooLong:  # in the request line (headers: parse_request)
            self.requestline, self.request_version, self.command = "", "", ""
            self.close_connection = True
            self.send_error(431, f"request head over {MAX_REQUEST_HEAD_BYTES} bytes")

    def finish(self) -> None:
        self._watchdog.cancel()
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def _send(self, code: int, body: bytes, content_type: str, head: bool = False) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _json(self, code: int, obj: Any, head: bool) -> None:
        self._send(code, json.dumps(obj).encode(), "application/json", head)

    def _route(self, head: bool) -> None:
        length = self.headers.get("Content-Length")
        if length not in (None, "0") or self.headers.get("Transfer-Encoding"):
            self._json(413, {"error": "request bodies are not accepted"}, head)
            return
        path = self.path.split("?", 1)[0]
        snap = self.server.snapshot()
        if path == "/metrics":
            from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

            self._send(200, generate_latest(self.server.registry), CONTENT_TYPE_LATEST, head)
        elif path == "/table":
            if snap.table_json is None:
                self._json(404, {"error": "no table yet", "status": snap.status}, head)
            else:
                self._send(200, snap.table_json.encode(), "application/json", head)
        elif path == "/healthz":
            self._json(200 if snap.healthy else 503,
                       {"node": snap.node, "status": snap.status, "ok": snap.healthy,
                        "reason": snap.health_reason, "loop_age_s": snap.loop_age_s,
                        "samples": snap.samples_total, "sources_agree": snap.sources_agree,
                        "falsetickers": list(snap.falsetickers)}, head)
        else:
            self._json(404, {"error": "not found", "paths": ["/metrics", "/table", "/healthz"]},
                       head)

    def do_GET(self) -> None:
        self._route(head=False)

    def do_HEAD(self) -> None:
        self._route(head=True)

    def _refuse(self) -> None:
        self._json(405, {"error": "read-only endpoint: GET or HEAD"}, head=False)

    do_POST = do_PUT = do_DELETE = do_PATCH = _refuse  # noqa: N815


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 16

    def __init__(self, address: tuple[str, int], snapshot: Callable[[], AgentSnapshot],
                 registry: Any):
        super().__init__(address, _Handler)
        self.snapshot = snapshot
        self.registry = registry


class AgentHttpServer:
    """Serves an agent's snapshot over HTTP in a background thread.

    Args:
        snapshot: returns the agent's current state (``Agent.snapshot``).
        host, port: where to listen (port 0 picks a free one: see :attr:`port`).
    """

    def __init__(self, snapshot: Callable[[], AgentSnapshot], host: str = "127.0.0.1",
                 port: int = 9465) -> None:
        try:
            from prometheus_client import CollectorRegistry
        except ImportError:  # pragma: no cover - depends on the install
            raise InputError("http_listen: /metrics needs prometheus-client: pip install "
                             "'clocksync[metrics]' (or disable HTTP with --http '')") from None
        registry = CollectorRegistry(auto_describe=False)
        registry.register(AgentCollector(snapshot))
        try:
            self._server = _Server((host, port), snapshot, registry)
        except OSError as exc:
            raise InputError(f"http_listen: cannot listen on {host}:{port} "
                             f"({exc.strerror or exc})") from None
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.2},
                                        name="clocksync-agent-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = str(self._server.server_address[0])
        return f"http://{host}:{self.port}"

    def start(self) -> AgentHttpServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(2)
