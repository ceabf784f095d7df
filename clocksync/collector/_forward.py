"""Relay OTLP trace requests upstream over OTLP/HTTP, annotated with corrected starts.

The collector's receivers hand each decoded ``ExportTraceServiceRequest`` (the
``opentelemetry-proto`` generated class) to :meth:`Forwarder.offer`, which never blocks: the
request goes into a bounded queue, or, when that is full, is dropped and counted. One
background thread takes the requests in order, annotates each (``annotate``, e.g.
:func:`clocksync.latency.annotate_request` bound to a corrector and a trace map), and POSTs it
as ``application/x-protobuf``, gzip-compressed, to the upstream URL (a tracing backend's OTLP/HTTP
receiver; a URL without a path gets ``/v1/traces``). The spans' timestamps are not changed.

Answers 429, 502, 503 and 504 and connection errors (refused, reset, timed out) are retried
with exponential backoff (``backoff_s``, doubling, at most ``max_backoff_s``); a
``Retry-After`` header (seconds or an HTTP date) says how long to wait instead, also capped
at ``max_backoff_s``. After ``max_attempts`` attempts the request is given up; any other
answer that is not 2xx gives it up at once. Given-up requests are counted as ``failed``.
"""

from __future__ import annotations

import contextlib
import email.utils
import gzip
import http.client
import queue
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

__all__ = ["ForwardStats", "Forwarder"]

#: Answers OTLP/HTTP says to retry.
RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
_POLL_S = 0.05


@dataclass(frozen=True, slots=True)
class ForwardStats:
    """What a :class:`Forwarder` did so far (counts of requests unless said otherwise).

    Attributes:
        sent: accepted upstream (a 2xx answer).
        dropped: never sent: the queue was full, the forwarder closed, or still queued when
            :meth:`Forwarder.close` gave up waiting.
        retried: retry attempts (a request retried twice counts 2).
        failed: given up: ``max_attempts`` retryable failures, or an answer that is not
            retryable (400, 401, 404, 413, 500...).
        queued: waiting in the queue now.
        annotate_errors: requests whose annotation raised (they are sent unannotated).
        rejected_spans: spans upstream reported rejected (OTLP partial success).
        last_error: the last failure (``""`` when none): status and body, or the exception.
    """

    sent: int = 0
    dropped: int = 0
    retried: int = 0
    failed: int = 0
    queued: int = 0
    annotate_errors: int = 0
    rejected_spans: int = 0
    last_error: str = ""


def _retry_after_s(value: str | None, now: float | None = None) -> float | None:
    """A ``Retry-After`` header's delay in seconds (delay-seconds, or an HTTP date relative
    to ``now``, Unix seconds; default the current time); ``None`` when absent or
    unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now_dt = datetime.now(UTC) if now is None else datetime.fromtimestamp(now, UTC)
    return max(0.0, (when - now_dt).total_seconds())


class Forwarder:
    """Relays ``ExportTraceServiceRequest`` messages to an upstream OTLP/HTTP URL from a
    background thread (started at construction).

    Args:
        url: the upstream endpoint, ``http://`` or ``https://`` (``/v1/traces`` is added when
            it has no path).
        timeout_s: connect and read timeout of one POST (s).
        queue_max: requests the queue holds; :meth:`offer` drops beyond that.
        annotate: called with each request (in the background thread) before it is sent, to
            change it in place; ``None``: sent as offered.
        max_attempts: POSTs per request before it is given up (>= 1).
        backoff_s: wait before the first retry (s); doubles with each retry.
        max_backoff_s: longest wait between attempts (s), ``Retry-After`` included.
        compress: gzip the body (``Content-Encoding: gzip``).
        headers: extra HTTP headers (e.g. an authorization header).
    """

    def __init__(self, url: str, *, timeout_s: float = 5.0, queue_max: int = 1024,
                 annotate: Callable[[Any], object] | None = None, max_attempts: int = 6,
                 backoff_s: float = 0.2, max_backoff_s: float = 30.0, compress: bool = True,
                 headers: Mapping[str, str] | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"forward URL {url!r}: expected http://HOST[:PORT][/PATH] or "
                             "https://...")
        if queue_max < 1 or max_attempts < 1 or timeout_s <= 0 or backoff_s < 0 \
                or max_backoff_s < 0:
            raise ValueError("Forwarder: queue_max and max_attempts must be >= 1, timeout_s "
                             "> 0, backoff_s and max_backoff_s >= 0")
        self.url = url
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        path = parts.path if parts.path not in ("", "/") else "/v1/traces"
        self._path = path + (f"?{parts.query}" if parts.query else "")
        self._timeout_s = timeout_s
        self._annotate = annotate
        self._max_attempts = max_attempts
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self._compress = compress
        self._headers = {"Content-Type": "application/x-protobuf",
                         "User-Agent": "clocksync-forwarder", **(headers or {})}
        if compress:
            self._headers["Content-Encoding"] = "gzip"
        self._queue: queue.Queue[Any] = queue.Queue(queue_max)
        self._lock = threading.Lock()
        self._counts = {"sent": 0, "dropped": 0, "retried": 0, "failed": 0,
                        "annotate_errors": 0, "rejected_spans": 0}
        self._last_error = ""
        self._closing = threading.Event()  # no more offers; drain, then stop
        self._abort = threading.Event()  # stop now: interrupts a backoff wait
        self._conn: http.client.HTTPConnection | None = None
        self._thread = threading.Thread(target=self._run, name="clocksync-forwarder",
                                        daemon=True)
        self._thread.start()

    # -- the receiver's side ------------------------------------------------------------------
    def offer(self, request: Any) -> bool:
        """Queue ``request`` for sending; never blocks. ``False`` (counted as dropped) when
        the queue is full or the forwarder is closed. The forwarder owns the request from
        here (it is annotated in place): do not change or read it afterwards."""
        if self._closing.is_set():
            self._count("dropped")
            return False
        try:
            self._queue.put_nowait(request)
        except queue.Full:
            self._count("dropped")
            return False
        return True

    def stats(self) -> ForwardStats:
        """The counts so far."""
        with self._lock:
            c = dict(self._counts)
            last = self._last_error
        return ForwardStats(c["sent"], c["dropped"], c["retried"], c["failed"],
                            self._queue.qsize(), c["annotate_errors"], c["rejected_spans"],
                            last)

    def close(self, timeout_s: float = 10.0) -> bool:
        """Stop taking requests and send what is queued, waiting at most ``timeout_s``
        seconds; then stop (a wait between retries is cut short) and count what is still
        queued as dropped. ``True`` when everything queued was sent or given up in time."""
        self._closing.set()
        self._thread.join(max(0.0, timeout_s))
        drained = not self._thread.is_alive()
        if not drained:
            self._abort.set()
            self._thread.join(self._timeout_s + 1.0)
        left = 0
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
            left += 1
        if left:
            self._count("dropped", left)
        return drained and left == 0

    # -- the background thread ----------------------------------------------------------------
    def _count(self, key: str, n: int = 1, error: str | None = None) -> None:
        with self._lock:
            self._counts[key] += n
            if error is not None:
                self._last_error = error

    def _run(self) -> None:
        try:
            while not self._abort.is_set():
                try:
                    request = self._queue.get(timeout=_POLL_S)
                except queue.Empty:
                    if self._closing.is_set():
                        return
                    continue
                self._forward(request)
        finally:
            self._disconnect()

    def _forward(self, request: Any) -> None:
        if self._annotate is not None:
            try:
                self._annotate(request)
            except Exception as exc:  # a bad annotation must not stop relaying
                self._count("annotate_errors", error=f"annotate: {type(exc).__name__}: {exc}")
        body = request.SerializeToString()
        if self._compress:
            body = gzip.compress(body, compresslevel=1)
        attempt = 0
        while True:
            attempt += 1
            status, wait_s, detail = self._post(body)
            if status is not None and 200 <= status < 300:
                self._count("sent")
                return
            retryable = status is None or status in RETRYABLE_STATUS
            if not retryable or attempt >= self._max_attempts or self._abort.is_set():
                self._count("failed", error=detail)
                return
            self._count("retried", error=detail)
            delay = self._backoff_s * 2 ** (attempt - 1) if wait_s is None else wait_s
            if self._abort.wait(min(delay, self._max_backoff_s)):
                self._count("failed", error=detail)
                return

    def _connect(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            self._conn = cls(self._host, self._port, timeout=self._timeout_s)
        return self._conn

    def _disconnect(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.close()
            self._conn = None

    def _post(self, body: bytes) -> tuple[int | None, float | None, str]:
        """``(status or None on a connection error, Retry-After s, what went wrong)``."""
        conn = self._connect()
        try:
            conn.request("POST", self._path, body, self._headers)
            response = conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self._disconnect()
            return None, None, f"{self.url}: {type(exc).__name__}: {exc}"
        if response.will_close:
            self._disconnect()
        status = response.status
        if 200 <= status < 300:
            self._partial_success(response, data)
            return status, None, ""
        text = data[:200].decode("utf-8", errors="replace").strip()
        return status, _retry_after_s(response.getheader("Retry-After")), \
            f"{self.url}: HTTP {status} {response.reason}" + (f": {text}" if text else "")

    def _partial_success(self, response: http.client.HTTPResponse, data: bytes) -> None:
        """Count the spans an OTLP partial-success answer says were rejected."""
        if not data or "protobuf" not in (response.getheader("Content-Type") or ""):
            return
        try:
            from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
                ExportTraceServiceResponse,
            )

            answer = ExportTraceServiceResponse.FromString(data)
        except Exception:  # an unreadable answer body is still a 2xx
            return
        rejected = int(answer.partial_success.rejected_spans)
        if rejected:
            message = answer.partial_success.error_message
            self._count("rejected_spans", rejected,
                        error=f"{self.url}: {rejected} spans rejected: {message}")
