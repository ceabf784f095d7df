"""Decode what the collector's receivers are sent: OTLP trace exports and JSONL stage events.

* OTLP/HTTP bodies (``application/x-protobuf``: an ``ExportTraceServiceRequest`` read with
  the opentelemetry-proto classes; ``application/json``: the OTLP JSON encoding) and
  OTLP/gRPC requests become :class:`~clocksync.latency.Span` records plus a
  :class:`~clocksync.latency.BadRecord` per span that cannot be read, by the trace readers
  of :mod:`clocksync.latency` (one decoder for files and the wire).
* ``POST /v1/events`` bodies (one JSON object per line: ``request_id, stage, node, ts_ns``
  plus context fields) become a pyarrow table, validated as events files are; a bad line
  is a :class:`~clocksync.latency.BadRecord` named ``"<endpoint>:LINE"``.
* A payload refused as a whole raises :class:`PayloadError` with the HTTP status, a short
  reason (the label the sink counts it under) and a message naming what is wrong.
* The answers: ``ExportTraceServiceResponse`` (with ``partial_success``) and
  ``google.rpc.Status`` (optionally with a ``RetryInfo``), in protobuf or JSON.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.json as pajson

from .._io._tabular import _check_arrow
from .._model._errors import InputError
from ..latency import EVENT_COLUMNS, BadRecord, Span
from ..latency._events import checked_rows
from ..latency._otlp import otlp_json_spans, otlp_read_type, otlp_request_batch
from ..latency._spanbatch import SpanBatch
from ..latency._spans import SpanError

__all__ = [
    "EVENTS_MEDIA_TYPES",
    "JSON",
    "PROTOBUF",
    "REASONS",
    "PayloadError",
    "decode_events",
    "decode_traces",
    "export_response",
    "inflate",
    "media_type",
    "request_spans",
    "rpc_status",
    "status_body",
]

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
#: media types ``POST /v1/events`` takes (JSONL under its several names; also plain text)
EVENTS_MEDIA_TYPES = frozenset({
    "application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonl",
    "application/jsonlines", "application/x-jsonlines", "application/json-lines", JSON,
    "text/plain", ""})

#: every reason a payload is refused whole (the ``reason`` of ``Sink.rejected_payload``)
REASONS = ("unsupported_media_type", "unsupported_encoding", "too_large", "length_required",
           "bad_body", "bad_gzip", "bad_protobuf", "bad_json", "bad_otlp", "not_utf8",
           "internal_error")

#: google.rpc.Code numbers used in Status answers
INVALID_ARGUMENT, RESOURCE_EXHAUSTED, INTERNAL, UNAVAILABLE = 3, 8, 13, 14

_EVENT_SCHEMA = pa.schema([(c.name, pa.int64() if c.kind == "int64" else
                            pa.float64() if c.kind == "float64" else pa.string())
                           for c in EVENT_COLUMNS])
_EVENT_PARSE = pajson.ParseOptions(explicit_schema=_EVENT_SCHEMA,
                                   unexpected_field_behavior="infer")
#: a body is one block, read on the calling thread (threads cost CPU and win nothing here)
_EVENT_BLOCK_BYTES = 1 << 20


class PayloadError(Exception):
    """A payload refused as a whole.

    Attributes:
        status: the HTTP status (400, 413, 415, 411).
        reason: one of :data:`REASONS`, the label it is counted under.
        message: what is wrong (the ``google.rpc.Status`` message).
    """

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message


def media_type(header: str | None) -> str:
    """The media type of a ``Content-Type`` header, lower case, without parameters
    (``""`` when absent)."""
    return (header or "").split(";", 1)[0].strip().lower()


def _gzip_module() -> Any:
    """ISA-L's zlib interface where the ``isal`` package is installed (the ``collector``
    extra installs it: the same streams, inflated in about a third of zlib's time), else
    zlib."""
    try:
        from isal import isal_zlib
    except ImportError:
        return zlib
    return isal_zlib


#: what gzip bodies are inflated with (:func:`_gzip_module`)
_GZIP: Any = _gzip_module()


def inflate(body: bytes, encoding: str | None, limit_bytes: int) -> bytes:
    """The body under its ``Content-Encoding`` (``gzip`` or identity), decompressed to at
    most ``limit_bytes`` (:class:`PayloadError` 413 past it, so a gzip bomb costs no more
    memory than the limit; 415 for another encoding; 400 for a broken gzip stream)."""
    coding = (encoding or "identity").strip().lower()
    if coding in ("identity", ""):
        if len(body) > limit_bytes:
            raise PayloadError(413, "too_large", f"body over {limit_bytes} bytes")
        return body
    if coding not in ("gzip", "x-gzip"):
        raise PayloadError(415, "unsupported_encoding",
                           f"Content-Encoding {coding!r} is not supported (gzip or identity)")
    parts: list[bytes] = []
    size = 0
    rest = body
    try:
        while True:  # one gzip member after another (concatenated members are one stream)
            unzip = _GZIP.decompressobj(16 + zlib.MAX_WBITS)
            part = unzip.decompress(rest, limit_bytes + 1 - size)
            size += len(part)
            if size > limit_bytes:
                raise PayloadError(413, "too_large",
                                   f"body over {limit_bytes} bytes once decompressed")
            if not unzip.eof:
                raise PayloadError(400, "bad_gzip", "gzip body is truncated")
            parts.append(part)
            rest = unzip.unused_data
            if not rest.strip(b"\0"):
                return parts[0] if len(parts) == 1 else b"".join(parts)
    except _GZIP.error as exc:
        raise PayloadError(400, "bad_gzip", f"not a gzip body ({exc})") from None


def request_spans(request: Any, endpoint: str) -> tuple[SpanBatch, list[BadRecord]]:
    """The spans of a parsed ``ExportTraceServiceRequest`` (OTLP/gRPC), and a bad record
    ``"<endpoint>: span N"`` (N counts the request's spans from 1) for each span that
    cannot be read."""
    batch, bad = otlp_request_batch(endpoint, request)
    return batch, [BadRecord(f"{endpoint}: span {number}", why) for number, why in bad]


def decode_traces(body: bytes, media: str, endpoint: str) -> tuple[SpanBatch, list[BadRecord]]:
    """The spans of an OTLP/HTTP traces body of media type ``media`` (:func:`media_type`):
    :data:`PROTOBUF` or :data:`JSON`; :class:`PayloadError` for a body that cannot be read
    at all (415 for another media type, 400 for a malformed body)."""
    if media == PROTOBUF:
        try:
            request_type = otlp_read_type()
        except InputError as exc:  # pragma: no cover - depends on the install
            raise PayloadError(415, "unsupported_media_type", str(exc)) from None
        from google.protobuf.message import DecodeError

        request = request_type()
        try:
            request.ParseFromString(body)
        except (DecodeError, ValueError, RuntimeError) as exc:
            raise PayloadError(400, "bad_protobuf", "not an OTLP ExportTraceServiceRequest "
                               f"protobuf message ({exc})") from None
        return request_spans(request, endpoint)
    if media == JSON:
        try:
            doc = json.loads(body.decode("utf-8"))  # OTLP JSON is UTF-8 (no UTF-16 guess)
        except UnicodeDecodeError as exc:
            raise PayloadError(400, "not_utf8", f"body is not UTF-8 ({exc.reason} at byte "
                               f"{exc.start})") from None
        except (ValueError, RecursionError) as exc:
            raise PayloadError(400, "bad_json", f"body is not JSON ({exc})") from None
        if not isinstance(doc, dict):
            raise PayloadError(400, "bad_otlp", "expected an ExportTraceServiceRequest "
                               "JSON object")
        try:
            items = list(otlp_json_spans(endpoint, doc))
            spans = [span for _, span in items if type(span) is Span]
            return SpanBatch.of_spans(spans), [
                BadRecord(f"{endpoint}: span {number}", str(span))
                for number, (_, span) in enumerate(items, start=1) if type(span) is not Span]
        except (SpanError, AttributeError, TypeError, ValueError) as exc:
            raise PayloadError(400, "bad_otlp", str(exc) if isinstance(exc, SpanError)
                               else "malformed OTLP JSON document") from None
    raise PayloadError(415, "unsupported_media_type", f"Content-Type {media or 'missing'}: "
                       f"expected {PROTOBUF} or {JSON}")


# --- stage events --------------------------------------------------------------------------


def _fast_events(body: bytes, endpoint: str) -> pa.Table | None:
    """pyarrow's JSON reader for a clean body; ``None`` when the line-by-line path must
    judge (a line that does not parse or fails a check, mixed types, a context value that
    pyarrow would read as a timestamp: kept as text like the line-by-line path does)."""
    try:
        read = pajson.ReadOptions(use_threads=False,
                                  block_size=max(_EVENT_BLOCK_BYTES, len(body) + 1))
        table = pajson.read_json(pa.BufferReader(body), read_options=read,
                                 parse_options=_EVENT_PARSE)
        table = _check_arrow(table, EVENT_COLUMNS, endpoint, row_base=1)
    except (pa.ArrowException, InputError):
        return None
    if any(pa.types.is_temporal(f.type) for f in table.schema):
        return None
    return table


def _event_lines(text: str, endpoint: str
                 ) -> Iterator[tuple[str, dict[str, Any] | str, str]]:
    """``(where, record or the reason it is bad, the line)`` per non-blank line."""
    for lineno, line in enumerate(text.split("\n"), start=1):  # (U+2028 may be in a string)
        if not line.strip():
            continue
        where = f"{endpoint}:{lineno}"
        try:
            obj = json.loads(line)
        except ValueError as exc:
            yield where, f"not valid JSON ({getattr(exc, 'msg', exc)})", line
            continue
        except RecursionError:
            yield where, "not valid JSON (nested too deeply)", line
            continue
        yield where, obj if isinstance(obj, dict) else "expected a JSON object per line", line


def decode_events(body: bytes, endpoint: str) -> tuple[pa.Table, list[BadRecord]]:
    """Stage events of a JSONL body (columns ``request_id, stage, node, ts_ns`` + context),
    and a bad record ``"<endpoint>:LINE"`` per line that cannot be read or fails a check
    (the checks of events files); :class:`PayloadError` for a body that is not UTF-8.

    A clean body is read by pyarrow at once; otherwise each line is parsed, and the lines
    that are JSON objects are read by pyarrow again (one line that is not JSON costs little)
    unless one of them fails a check: then every line is checked on its own."""
    fast = _fast_events(body, endpoint) if body and not body.isspace() else None
    if fast is not None:
        return fast, []
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(400, "not_utf8", f"body is not UTF-8 ({exc.reason} at byte "
                           f"{exc.start})") from None
    records = list(_event_lines(text, endpoint))
    bad = [BadRecord(where, rec) for where, rec, _ in records if isinstance(rec, str)]
    if bad and len(bad) < len(records):
        objects = "\n".join(line for _, rec, line in records if not isinstance(rec, str))
        retry = _fast_events(objects.encode(), endpoint)
        if retry is not None:
            return retry, bad
    table, bad = checked_rows(((where, rec) for where, rec, _ in records), EVENT_COLUMNS,
                              endpoint)
    return table, bad


# --- answers -------------------------------------------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    value &= (1 << 64) - 1
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def rpc_status(code: int, message: str, retry_after_s: float | None = None) -> bytes:
    """A ``google.rpc.Status`` in protobuf (what gRPC sends as ``grpc-status-details-bin``
    and OTLP/HTTP as an error body), with a ``google.rpc.RetryInfo`` detail giving
    ``retry_after_s`` (seconds) when not ``None``."""
    out = (_varint(1 << 3) + _varint(code) if code else b"") + (
        _field(2, message.encode()) if message else b"")
    if retry_after_s is not None:
        seconds = min(max(0.0, retry_after_s), 1e9) if math.isfinite(retry_after_s) else 1.0
        whole = math.floor(seconds)
        nanos = min(round((seconds - whole) * 1e9), 999_999_999)
        duration = (_varint(1 << 3) + _varint(whole) if whole else b"") + (
            _varint(2 << 3) + _varint(nanos) if nanos else b"")
        retry_info = _field(1, duration)
        detail = _field(1, b"type.googleapis.com/google.rpc.RetryInfo") + _field(2, retry_info)
        out += _field(3, detail)
    return out


def status_body(code: int, message: str, media: str) -> tuple[bytes, str]:
    """``(body, content type)`` of a ``google.rpc.Status`` in the request's encoding
    (protobuf for :data:`PROTOBUF`, else JSON)."""
    if media == PROTOBUF:
        return rpc_status(code, message), PROTOBUF
    return json.dumps({"code": code, "message": message}).encode(), JSON


def export_response(rejected: int, message: str, media: str) -> tuple[bytes, str]:
    """``(body, content type)`` of an ``ExportTraceServiceResponse``: empty, or with
    ``partial_success {rejected_spans, error_message}`` when some spans were refused."""
    if media == PROTOBUF:
        if not rejected and not message:
            return b"", PROTOBUF  # (the empty message)
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTracePartialSuccess,
            ExportTraceServiceResponse,
        )

        response = ExportTraceServiceResponse()
        if rejected or message:
            response.partial_success.CopyFrom(ExportTracePartialSuccess(
                rejected_spans=rejected, error_message=message))
        return response.SerializeToString(), PROTOBUF
    if not rejected and not message:
        return b"{}", JSON
    doc: dict[str, Any] = {}
    if rejected:
        doc["rejectedSpans"] = str(rejected)  # int64 as a string (proto3 JSON)
    if message:
        doc["errorMessage"] = message
    return json.dumps({"partialSuccess": doc}).encode(), JSON
