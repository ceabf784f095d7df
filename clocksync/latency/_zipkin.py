"""Zipkin v2 JSON traces (times in µs, so every stamp has 1 µs resolution).

Shapes, each as Zipkin writes it: a list of spans (``POST /api/v2/spans``, ``GET
/api/v2/trace/{id}``), one span, or a list of traces (``GET /api/v2/traces``: a list of
lists of spans).

The resource of a span is its ``localEndpoint``: ``service.name`` from ``serviceName`` and
``host.ip`` from ``ipv4`` (else ``ipv6``), so an endpoint with only an address still names a
node. The kind is ``kind`` (``CLIENT``, ``SERVER``, ``PRODUCER``, ``CONSUMER``; absent:
unspecified); annotations are events named by their ``value``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ._fields import LINE_KEY, as_int, as_list, as_str, hex_id, where_of
from ._spans import Span, SpanError, kind_name

__all__ = ["zipkin_shape", "zipkin_spans"]

_US = 1000


def _is_span(obj: Any) -> bool:
    return isinstance(obj, dict) and "traceId" in obj and "resourceSpans" not in obj


def zipkin_shape(doc: Any) -> str | None:
    """Which Zipkin shape ``doc`` is (a phrase for reports), or None."""
    if _is_span(doc):
        return "Zipkin span"
    if isinstance(doc, list):
        if not doc:
            return "Zipkin span list (empty)"
        if isinstance(doc[0], list):
            inner = next((t[0] for t in doc if isinstance(t, list) and t), None)
            return "Zipkin trace list" if inner is None or _is_span(inner) else None
        if _is_span(doc[0]):
            return "Zipkin span list"
    return None


def _span(path: str, sp: Any) -> Span:
    if not isinstance(sp, dict):
        raise SpanError("expected a span object")
    endpoint = sp.get("localEndpoint") or {}
    resource: dict[str, Any] = {}
    if endpoint.get("serviceName") not in (None, ""):
        resource["service.name"] = endpoint["serviceName"]
    address = endpoint.get("ipv4") or endpoint.get("ipv6")
    if address:
        resource["host.ip"] = address
    tags = sp.get("tags") or {}
    if not isinstance(tags, dict):
        raise SpanError("field 'tags' must be an object")
    start = as_int(sp.get("timestamp"), "timestamp", _US)
    events = tuple(
        (as_str(a.get("value"), "annotations.value", default=""),
         as_int(a.get("timestamp"), "annotations.timestamp", _US))
        for a in as_list(sp.get("annotations"), "annotations")
    )
    return Span(
        where_of(path, sp), hex_id(sp.get("traceId"), "traceId", 16, required=True),
        hex_id(sp.get("id"), "id", 8), hex_id(sp.get("parentId"), "parentId", 8),
        as_str(sp.get("name"), "name", default=""), kind_name(sp.get("kind")), start,
        start + as_int(sp.get("duration", 0), "duration", _US),
        {k: v for k, v in tags.items() if k != LINE_KEY}, resource, events, _US)


def zipkin_spans(path: str, doc: Any) -> Iterator[tuple[str, Span | str]]:
    """``(where, span or the reason it is bad)`` for every span of one Zipkin document."""
    if isinstance(doc, dict):
        items: list[Any] = [doc]
    elif isinstance(doc, list) and any(isinstance(t, list) for t in doc):
        items = [sp for t in doc for sp in (t if isinstance(t, list) else [t])]
    else:
        items = as_list(doc, "spans")
    for sp in items:
        try:
            yield where_of(path, sp), _span(path, sp)
        except (SpanError, AttributeError, TypeError, ValueError) as exc:
            yield where_of(path, sp), (str(exc) if isinstance(exc, SpanError)
                                       else "malformed span")
