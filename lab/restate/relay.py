"""A per-node OTLP/HTTP relay that puts a Restate node's spans on that node's simulated clock.

Restate is a static musl binary: ``LD_PRELOAD`` and faketime cannot give it another clock.
So each node exports its spans (``tracing-endpoint = "otlp+http://127.0.0.1:PORT/v1/traces"``)
to its own relay, which

1. decodes the ``ExportTraceServiceRequest`` (protobuf; gzip accepted) with the
   ``opentelemetry-proto`` generated classes,
2. records every span's ORIGINAL start and end stamps (true time: every process here reads
   the one system clock) in the truth file, one JSON object per span,
3. rewrites the start, end and event times with the node's simulated clock
   (:func:`clocksync.agent.parse_clock`, the same text the node's agent measures), and
4. hands the rewritten request to its sinks: the spans file (one OTLP JSON
   ``ExportTraceServiceRequest`` per line, like the OpenTelemetry Collector's file exporter,
   ids in hex as OTLP JSON writes them) and, when given, a collector's ``/v1/traces``.

Restate itself keeps reading the real clock (gossip, timers, its skew checks are unaffected);
only what leaves the node in its spans carries the simulated clock, which is what a tracing
pipeline of a cluster with skewed clocks would see.
"""

from __future__ import annotations

import base64
import gzip
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, BinaryIO

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from clocksync import Clock

__all__ = ["Relay", "RelayStats", "SpansFile", "forward_to"]

log = logging.getLogger("lab.restate.relay")

_ID_FIELDS = ("traceId", "spanId", "parentSpanId")

#: a sink takes one rewritten request (as protobuf bytes and as its decoded message)
Sink = Callable[[bytes, ExportTraceServiceRequest], None]


def otlp_json(request: ExportTraceServiceRequest) -> str:
    """One line of OTLP JSON: the proto3 JSON mapping with hex ids (OTLP's own rule)."""
    doc = json_format.MessageToDict(request)

    def fix(obj: Any) -> None:
        if isinstance(obj, dict):
            for key, value in obj.items():
                if key in _ID_FIELDS and isinstance(value, str):
                    obj[key] = base64.b64decode(value).hex()
                else:
                    fix(value)
        elif isinstance(obj, list):
            for item in obj:
                fix(item)

    fix(doc)
    return json.dumps(doc, separators=(",", ":"))


class SpansFile:
    """Appends each request as one OTLP JSON line (thread-safe; flushed per line)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._handle = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def __call__(self, body: bytes, request: ExportTraceServiceRequest) -> None:
        line = otlp_json(request)
        with self._lock:
            self._handle.write(line + "\n")
            self._handle.flush()

    def close(self) -> None:
        with self._lock:
            self._handle.close()


def forward_to(url: str, timeout_s: float = 5.0, attempts: int = 4,
               retries: dict[str, int] | None = None) -> Sink:
    """A sink POSTing the rewritten protobuf body to an OTLP/HTTP receiver (the collector);
    a 5xx or 429 answer or a connection error is retried (``attempts`` in all, 0.2 s, 0.4 s,
    ... apart), each retry counted in ``retries`` by its reason."""
    tally = retries if retries is not None else {}

    def send(body: bytes, request: ExportTraceServiceRequest) -> None:
        for attempt in range(attempts):
            post = urllib.request.Request(url, data=body, method="POST",
                                          headers={"Content-Type": "application/x-protobuf"})
            try:
                with urllib.request.urlopen(post, timeout=timeout_s) as reply:
                    reply.read()
                return
            except urllib.error.HTTPError as exc:
                exc.close()
                if (exc.code < 500 and exc.code != 429) or attempt == attempts - 1:
                    raise
                reason = f"HTTP {exc.code}"
            except urllib.error.URLError as exc:
                if attempt == attempts - 1:
                    raise
                reason = str(exc.reason)
            tally[reason] = tally.get(reason, 0) + 1
            time.sleep(0.2 * (attempt + 1))

    return send


@dataclass
class RelayStats:
    requests: int = 0
    spans: int = 0
    errors: int = 0
    sink_errors: int = 0
    last_error: str = ""


@dataclass
class Relay:
    """One node's relay on ``127.0.0.1:port`` (``port`` 0: a free one, see :attr:`port`).

    Attributes:
        node: the node's name (as in ``service.instance.id``).
        clock: the node's simulated clock.
        truth: file handle the ORIGINAL stamps are written to, one JSON object per span:
            ``{"node", "span_id", "parent_span_id", "name", "invocation_id",
            "true_start_ns", "true_end_ns", "sim_start_ns", "sim_end_ns"}``.
        sinks: where rewritten requests go.
    """

    node: str
    clock: Clock
    truth: BinaryIO
    sinks: Sequence[Sink]
    port: int = 0
    truth_lock: threading.Lock = field(default_factory=threading.Lock)
    stats: RelayStats = field(default_factory=RelayStats)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def rewrite(self, request: ExportTraceServiceRequest) -> list[dict[str, Any]]:
        """Rewrite every stamp of ``request`` in place; the truth records of its spans."""
        read = self.clock.read_ns
        records: list[dict[str, Any]] = []
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    start, end = span.start_time_unix_nano, span.end_time_unix_nano
                    span.start_time_unix_nano = read(start) if start else 0
                    span.end_time_unix_nano = read(end) if end else 0
                    for event in span.events:
                        if event.time_unix_nano:
                            event.time_unix_nano = read(event.time_unix_nano)
                    invocation = next((a.value.string_value for a in span.attributes
                                       if a.key == "restate.invocation.id"), "")
                    records.append({
                        "node": self.node, "span_id": span.span_id.hex(),
                        "parent_span_id": span.parent_span_id.hex(), "name": span.name,
                        "invocation_id": invocation, "true_start_ns": start,
                        "true_end_ns": end, "sim_start_ns": span.start_time_unix_nano,
                        "sim_end_ns": span.end_time_unix_nano})
        return records

    def handle(self, body: bytes, encoding: str) -> None:
        if encoding == "gzip":
            body = gzip.decompress(body)
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        records = self.rewrite(request)
        if records:
            text = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records)
            with self.truth_lock:
                self.truth.write(text.encode())
                self.truth.flush()
        out = request.SerializeToString()
        self.stats.requests += 1
        self.stats.spans += len(records)
        for sink in self.sinks:
            try:
                sink(out, request)
            except Exception as exc:  # a sink down must not lose the other sinks' copy
                self.stats.sink_errors += 1
                self.stats.last_error = f"sink: {exc}"
                log.warning("%s relay: sink failed: %s", self.node, exc)

    def start(self) -> Relay:
        relay = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                try:
                    relay.handle(body, (self.headers.get("Content-Encoding") or "").lower())
                except Exception as exc:
                    relay.stats.errors += 1
                    relay.stats.last_error = str(exc)
                    log.warning("%s relay: bad request: %s", relay.node, exc)
                    self.send_error(400, str(exc)[:200])
                    return
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name=f"relay-{self.node}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
