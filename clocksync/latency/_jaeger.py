"""Jaeger JSON traces (times in µs, so every stamp has 1 µs resolution).

Shapes, each as Jaeger writes it:

- the query API's answer ``{"data": [trace, ...]}``, which the UI's "Trace JSON" shows
  and its "Download Results" writes (on one line);
- one bare trace ``{"traceID", "spans", "processes"}``, or a list of them;
- a bare list of spans, or one span; a span names its process by ``processID`` (looked up
  in the trace's ``processes``) or carries it inline as ``process``.

A span's parent is its ``CHILD_OF`` (else first) reference, or ``parentSpanID``; its kind is
the ``span.kind`` tag; a log is an event named by its ``event`` field (else ``message``,
else ``""``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ._fields import as_int, as_list, as_str, hex_id, where_of
from ._spans import Span, SpanError, kind_name

__all__ = ["jaeger_shape", "jaeger_spans"]

_US = 1000


def _is_span(obj: Any) -> bool:
    return isinstance(obj, dict) and any(
        k in obj for k in ("operationName", "spanID", "traceID")) and "spans" not in obj


def _is_trace(obj: Any) -> bool:
    return isinstance(obj, dict) and isinstance(obj.get("spans"), list)


def jaeger_shape(doc: Any) -> str | None:
    """Which Jaeger shape ``doc`` is (a phrase for reports), or None."""
    if isinstance(doc, dict):
        if isinstance(doc.get("data"), list):
            return 'Jaeger query API ({"data": [...]})'
        if _is_trace(doc) and ("traceID" in doc or "processes" in doc):
            return "Jaeger trace object"
        if _is_span(doc):
            return "Jaeger span"
    if isinstance(doc, list) and doc:
        if _is_trace(doc[0]):
            return "Jaeger trace list"
        if _is_span(doc[0]):
            return "Jaeger span list"
    return None


def _tags(items: Any, what: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in as_list(items, what):
        if isinstance(kv, dict) and isinstance(kv.get("key"), str):
            out[kv["key"]] = kv.get("value")
    return out


def _parent(sp: dict[str, Any]) -> str:
    refs = [r for r in as_list(sp.get("references"), "references") if isinstance(r, dict)]
    ref = next((r for r in refs if r.get("refType") == "CHILD_OF"), refs[0] if refs else None)
    if ref is not None:
        return hex_id(ref.get("spanID"), "references.spanID", 8)
    return hex_id(sp.get("parentSpanID"), "parentSpanID", 8)


def _span(path: str, sp: Any, processes: dict[str, Any]) -> Span:
    if not isinstance(sp, dict):
        raise SpanError("expected a span object")
    pid = sp.get("processID")
    proc = (processes.get(pid) if pid is not None else None) or sp.get("process") or {}
    resource = _tags(proc.get("tags"), "process.tags")
    if proc.get("serviceName") not in (None, ""):
        resource["service.name"] = proc["serviceName"]
    attrs = _tags(sp.get("tags"), "tags")
    start = as_int(sp.get("startTime"), "startTime", _US)
    events = []
    for log in as_list(sp.get("logs"), "logs"):
        fields = _tags(log.get("fields"), "logs.fields")
        name = fields.get("event", fields.get("message", ""))
        events.append((name if isinstance(name, str) else str(name),
                       as_int(log.get("timestamp"), "logs.timestamp", _US)))
    return Span(
        where_of(path, sp), hex_id(sp.get("traceID"), "traceID", 16, required=True),
        hex_id(sp.get("spanID"), "spanID", 8), _parent(sp),
        as_str(sp.get("operationName"), "operationName", default=""),
        kind_name(attrs.get("span.kind")), start,
        start + as_int(sp.get("duration", 0), "duration", _US), attrs, resource,
        tuple(events), _US)


def _traces(doc: Any) -> list[tuple[dict[str, Any], list[Any]] | None]:
    """``(processes, spans)`` per trace of ``doc`` (None for an entry that is no trace)."""
    if isinstance(doc, dict) and "data" in doc:
        traces = as_list(doc["data"], "data")
    elif isinstance(doc, dict) and _is_trace(doc):
        traces = [doc]
    elif isinstance(doc, dict):
        return [({}, [doc])]
    elif isinstance(doc, list) and doc and _is_trace(doc[0]):
        traces = doc
    elif isinstance(doc, list):
        return [({}, doc)]
    else:
        raise SpanError("not a Jaeger document")
    out: list[tuple[dict[str, Any], list[Any]] | None] = []
    for trace in traces:
        if not isinstance(trace, dict):
            out.append(None)
            continue
        processes = trace.get("processes") or {}
        if not isinstance(processes, dict):
            raise SpanError("field 'processes' must be an object")
        out.append((processes, as_list(trace.get("spans"), "spans")))
    return out


def jaeger_spans(path: str, doc: Any) -> Iterator[tuple[str, Span | str]]:
    """``(where, span or the reason it is bad)`` for every span of one Jaeger document."""
    for trace in _traces(doc):
        if trace is None:
            yield where_of(path, doc), "data: expected trace objects"
            continue
        processes, spans = trace
        for sp in spans:
            try:
                yield where_of(path, sp), _span(path, sp, processes)
            except (SpanError, AttributeError, TypeError, ValueError) as exc:
                yield where_of(path, sp), (str(exc) if isinstance(exc, SpanError)
                                           else "malformed span")
