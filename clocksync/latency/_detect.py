"""Which format a file holds, judged from its content.

:func:`detect_format` looks at one parsed JSON document (exact); :func:`sniff_format` at
the first bytes of a file (for choosing a reader before parsing): protobuf when they are
not text, else the keys of the first JSON value. A Jaeger span (``traceID``,
``operationName``) is never taken for a Zipkin one (``traceId``).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from ._jaeger import jaeger_shape
from ._otlp import otlp_shape
from ._zipkin import zipkin_shape

__all__ = ["SniffedFormat", "TraceFormat", "detect_format", "doc_shape", "is_binary",
           "sniff_format"]

TraceFormat = Literal["otlp", "jaeger", "zipkin"]
SniffedFormat = Literal["events", "otlp", "jaeger", "zipkin"]
_KEY = re.compile(r'"([A-Za-z_][A-Za-z0-9_.]*)"\s*:')
_JAEGER_KEYS = {"traceID", "spanID", "operationName", "processID", "processes"}
_ZIPKIN_KEYS = {"localEndpoint", "remoteEndpoint", "parentId", "id", "timestamp",
                "annotations"}
_EVENT_KEYS = {"request_id", "stage", "ts_ns"}


def detect_format(doc: Any) -> TraceFormat | None:
    """The trace format of one parsed JSON document, or ``None``."""
    if otlp_shape(doc):
        return "otlp"
    if jaeger_shape(doc):
        return "jaeger"
    if zipkin_shape(doc):
        return "zipkin"
    return None


def doc_shape(doc: Any, fmt: TraceFormat) -> str | None:
    """The shape of ``doc`` within ``fmt`` (a phrase for reports), or ``None`` if ``doc``
    is not a document of that format."""
    return {"otlp": otlp_shape, "jaeger": jaeger_shape, "zipkin": zipkin_shape}[fmt](doc)


def is_binary(head: bytes) -> bool:
    """Whether a file starting with ``head`` is binary (protobuf), not JSON text."""
    stripped = head.lstrip(b" \t\r\n\xef\xbb\xbf")
    if not stripped:
        return False
    if b"\x00" in head[:4096] or stripped[:1] not in (b"{", b"["):
        return True
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start < len(head) - 4  # a character cut at the end of the head is text
    return False


def sniff_format(head: bytes) -> SniffedFormat:
    """The format of a file from its first bytes (64 KiB are plenty): ``otlp`` for binary
    (protobuf), else judged from the first JSON value's keys; ``events`` when no trace
    format fits (an events JSONL file)."""
    if is_binary(head):
        return "otlp"
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
    keys = set(_KEY.findall(text))
    if "resourceSpans" in keys or "resource_spans" in keys:
        return "otlp"
    if text.startswith("{"):
        if keys >= _EVENT_KEYS:
            return "events"
        if keys & _JAEGER_KEYS or re.match(r'\{\s*"data"\s*:\s*\[', text):
            return "jaeger"
        if "traceId" in keys and keys & _ZIPKIN_KEYS:
            return "zipkin"
        return "events"
    if text.startswith("["):
        return "jaeger" if keys & _JAEGER_KEYS else "zipkin"
    return "events"
