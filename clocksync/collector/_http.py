"""The collector's HTTP receiver (stdlib ``ThreadingHTTPServer``, HTTP/1.1 keep-alive).

* ``POST /v1/traces`` — OTLP/HTTP trace export: ``application/x-protobuf`` or
  ``application/json`` (else 415), ``Content-Encoding: gzip`` or identity (else 415). The
  answer is in the request's encoding: 200 with an ``ExportTraceServiceResponse`` (its
  ``partial_success`` counts the spans the sink refused and says why); 400 with a
  ``google.rpc.Status`` naming what is wrong when the body cannot be read; 413 past the
  body or decompressed size limit; 429 with ``Retry-After`` (whole seconds) while the sink
  is over its memory budget (checked before decoding); 503 with ``Retry-After`` while the
  server is closing.
* ``POST /v1/events`` — JSONL stage events (``request_id, stage, node, ts_ns`` + context),
  same status codes; answers ``{"accepted": n, "rejected": m, "message": ...}``, a bad line
  named ``/v1/events:LINE`` in the message.
* ``GET /metrics`` (the sink's Prometheus exposition), ``GET /healthz`` (200 or 503 with the
  sink's details as JSON), ``GET /report`` (the sink's report as JSON).

Anything else is 404, a wrong method 405. An exception in the sink is answered 500 with its
message and logged; the server keeps serving. Every payload refused whole is counted with
``Sink.rejected_payload(endpoint, reason)``. Binds 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from .._model._errors import InputError
from ._otlpin import (
    EVENTS_MEDIA_TYPES,
    INTERNAL,
    INVALID_ARGUMENT,
    JSON,
    PROTOBUF,
    RESOURCE_EXHAUSTED,
    UNAVAILABLE,
    PayloadError,
    decode_events,
    decode_traces,
    export_response,
    inflate,
    media_type,
    status_body,
)
from ._sink import Sink

__all__ = ["DEFAULT_MAX_BODY_BYTES", "DEFAULT_MAX_DECOMPRESSED_BYTES", "DEFAULT_PORT",
           "CollectorHttpServer"]

log = logging.getLogger("clocksync.collector")

#: the OTLP/HTTP port
DEFAULT_PORT = 4318
#: largest request body read (bytes, as sent: compressed or not)
DEFAULT_MAX_BODY_BYTES = 16 << 20
#: largest body once decompressed (bytes)
DEFAULT_MAX_DECOMPRESSED_BYTES = 64 << 20
#: a connection idle (or a client silent mid-request) this long is closed (s)
DEFAULT_IDLE_TIMEOUT_S = 30.0

TRACES, EVENTS = "/v1/traces", "/v1/events"
_GETS = ("/metrics", "/healthz", "/report")


class _BodyError(Exception):
    """A request body that cannot be read; the connection is closed after the answer."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message


def _retry_header(seconds: float) -> str:
    """``Retry-After`` in whole seconds (at least 1)."""
    return str(max(1, math.ceil(seconds))) if math.isfinite(seconds) else "1"


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "clocksync-collector"
    # an answer is written whole, then sent at once (:meth:`_send`): one packet, sent now
    wbufsize = 1 << 16
    disable_nagle_algorithm = True
    #: ``(second, its Date header)``: the last one made (shared by the threads)
    _date: tuple[int, str] = (-1, "")

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.idle_timeout_s)

    def log_message(self, format: str, *args: Any) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s", self.address_string(), format % args)

    def handle_expect_100(self) -> bool:
        """``100 Continue`` sent now (the client waits for it before the body)."""
        super().handle_expect_100()
        self.wfile.flush()
        return True

    def date_time_string(self, timestamp: float | None = None) -> str:
        if timestamp is not None:
            return super().date_time_string(timestamp)
        second = int(time.time())
        date = _Handler._date
        if date[0] != second:
            date = _Handler._date = (second, super().date_time_string(second))
        return date[1]

    # --- writing -------------------------------------------------------------------------

    def _send(self, code: int, body: bytes, content_type: str,
              headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()

    def _json(self, code: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self._send(code, json.dumps(obj).encode(), JSON, headers)

    def _status(self, code: int, rpc_code: int, message: str, media: str,
                headers: dict[str, str] | None = None) -> None:
        """An error answer: a ``google.rpc.Status`` for traces, else ``{"error": ...}``."""
        if self.path.split("?", 1)[0] == TRACES:
            body, content_type = status_body(rpc_code, message, media)
            self._send(code, body, content_type, headers)
        else:
            self._json(code, {"error": message}, headers)

    # --- reading -------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        """The request body (Content-Length or chunked), at most ``max_body_bytes``."""
        limit = self.server.max_body_bytes
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked(limit)
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        try:
            size = int(length)
            if size < 0:
                raise ValueError
        except ValueError:
            raise _BodyError(400, "bad_body", f"bad Content-Length {length!r}") from None
        if size > limit:
            raise _BodyError(413, "too_large", f"body of {size} bytes, over {limit} bytes")
        body = self.rfile.read(size)
        if len(body) != size:
            raise _BodyError(400, "bad_body", "body shorter than its Content-Length")
        return body

    def _read_chunked(self, limit: int) -> bytes:
        out = bytearray()
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
                if size < 0 or not line.endswith(b"\n"):
                    raise ValueError
            except ValueError:
                raise _BodyError(400, "bad_body", "malformed chunked body") from None
            if size == 0:
                for _ in range(100):  # trailers, up to the empty line
                    if self.rfile.readline(8192) in (b"\r\n", b"\n", b""):
                        return bytes(out)
                raise _BodyError(400, "bad_body", "too many trailer lines")
            if len(out) + size > limit:
                raise _BodyError(413, "too_large", f"chunked body over {limit} bytes")
            chunk = self.rfile.read(size)
            if len(chunk) != size or self.rfile.readline(3).strip():
                raise _BodyError(400, "bad_body", "malformed chunked body")
            out += chunk

    def _discard_body(self) -> None:
        """Read and drop a body this request does not use (or close the connection)."""
        try:
            self._read_body()
        except (_BodyError, OSError):
            self.close_connection = True

    # --- routes --------------------------------------------------------------------------

    def _refuse(self, endpoint: str, reason: str) -> None:
        try:
            self.server.sink.rejected_payload(endpoint, reason)
        except Exception:
            log.exception("collector: the sink failed to count a refused payload")

    def _ingest(self, endpoint: str) -> None:
        sink = self.server.sink
        media = media_type(self.headers.get("Content-Type"))
        answer_media = PROTOBUF if media == PROTOBUF and endpoint == TRACES else JSON
        try:
            body = self._read_body()
        except _BodyError as exc:
            self.close_connection = True
            self._refuse(endpoint, exc.reason)
            self._status(exc.status, INVALID_ARGUMENT, exc.message, answer_media)
            return
        try:
            if endpoint == TRACES and media not in (PROTOBUF, JSON):
                raise PayloadError(415, "unsupported_media_type", f"Content-Type "
                                   f"{media or 'missing'}: expected {PROTOBUF} or {JSON}")
            if endpoint == EVENTS and media not in EVENTS_MEDIA_TYPES:
                raise PayloadError(415, "unsupported_media_type", f"Content-Type {media}: "
                                   "expected application/x-ndjson (JSON lines)")
            if self.server.closing:
                self._status(503, UNAVAILABLE, "the collector is shutting down",
                             answer_media, {"Retry-After": "1"})
                return
            wait_s = sink.retry_after_s()
            if wait_s is not None:
                self._status(429, RESOURCE_EXHAUSTED, "over the collector's memory budget: "
                             f"retry after {wait_s:.3g} s", answer_media,
                             {"Retry-After": _retry_header(wait_s)})
                return
            with sink.decoding():
                data = inflate(body, self.headers.get("Content-Encoding"),
                               self.server.max_decompressed_bytes)
                if endpoint == TRACES:
                    spans, bad = decode_traces(data, media, endpoint)
                    accepted = sink.accept_spans(spans, bad)
                    forward = getattr(sink, "forward_body", None)
                    if forward is not None:  # the engine relays upstream (--forward)
                        forward(data, media)
                else:
                    table, bad_lines = decode_events(data, endpoint)
                    accepted = sink.accept_events(table, bad_lines)
            if endpoint == TRACES:
                out, content_type = export_response(accepted.rejected, accepted.message,
                                                    answer_media)
                self._send(200, out, content_type)
            else:
                self._json(200, {"accepted": accepted.items, "rejected": accepted.rejected,
                                 "message": accepted.message})
        except PayloadError as exc:
            self._refuse(endpoint, exc.reason)
            self._status(exc.status, INVALID_ARGUMENT, exc.message, answer_media)
        except Exception as exc:
            log.exception("collector: %s failed", endpoint)
            self._refuse(endpoint, "internal_error")
            self._status(500, INTERNAL, f"internal error: {type(exc).__name__}: {exc}",
                         answer_media)

    def _get(self, path: str) -> None:
        sink = self.server.sink
        try:
            if path == "/metrics":
                body, content_type = sink.metrics_text()
                self._send(200, body, content_type)
            elif path == "/healthz":
                healthy, details = sink.health()
                self._json(200 if healthy else 503, details)
            else:
                self._json(200, sink.report())
        except Exception as exc:
            log.exception("collector: GET %s failed", path)
            self._json(500, {"error": f"internal error: {type(exc).__name__}: {exc}"})

    def _route(self) -> None:
        path = self.path.split("?", 1)[0]
        method = self.command
        try:
            if path in (TRACES, EVENTS) and method == "POST":
                self._ingest(path)
                return
            self._discard_body()
            if path in _GETS and method in ("GET", "HEAD"):
                self._get(path)
            elif path in (TRACES, EVENTS):
                self._json(405, {"error": f"{method} {path}: use POST"}, {"Allow": "POST"})
            elif path in _GETS:
                self._json(405, {"error": f"{method} {path}: use GET"},
                           {"Allow": "GET, HEAD"})
            else:
                self._json(404, {"error": f"no such endpoint: {path}",
                                 "paths": [TRACES, EVENTS, *_GETS]})
        except OSError:  # the client went away mid-answer
            self.close_connection = True

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _route  # noqa: N815


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], sink: Sink, max_body_bytes: int,
                 max_decompressed_bytes: int, idle_timeout_s: float) -> None:
        super().__init__(address, _Handler)
        self.sink = sink
        self.max_body_bytes = max_body_bytes
        self.max_decompressed_bytes = max_decompressed_bytes
        self.idle_timeout_s = idle_timeout_s
        self.closing = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.exception("collector: connection from %s failed", client_address)


class CollectorHttpServer:
    """The collector's HTTP receiver, serving in a background thread (one thread per
    connection).

    Args:
        sink: what decoded spans and events are handed to (the collector's engine).
        host, port: where to listen (127.0.0.1 by default; port 0 picks a free one: see
            :attr:`address`).
        max_body_bytes: largest request body read, as sent (more: 413 and the connection
            closed).
        max_decompressed_bytes: largest body once gzip-decompressed (more: 413).
        idle_timeout_s: a keep-alive connection idle this long, or a client silent this
            long mid-request, is closed (s).
    """

    def __init__(self, sink: Sink, host: str = "127.0.0.1", port: int = DEFAULT_PORT, *,
                 max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
                 max_decompressed_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES,
                 idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S) -> None:
        if max_body_bytes <= 0 or max_decompressed_bytes <= 0 or idle_timeout_s <= 0:
            raise ValueError("max_body_bytes, max_decompressed_bytes and idle_timeout_s "
                             "must be positive")
        try:
            self._server = _Server((host, port), sink, max_body_bytes, max_decompressed_bytes,
                                   idle_timeout_s)
        except OSError as exc:
            raise InputError(f"collector: cannot listen on {host}:{port} "
                             f"({exc.strerror or exc})") from None
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name="clocksync-collector-http", daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` actually bound."""
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        """``http://HOST:PORT``."""
        host, port = self.address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def start(self) -> CollectorHttpServer:
        """Serve in a background thread; returns ``self``."""
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving (requests still arriving meanwhile are answered 503) and close the
        listening socket. Idempotent."""
        self._server.closing = True
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(5)
        with contextlib.suppress(OSError):
            self._server.server_close()

    def __enter__(self) -> CollectorHttpServer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
