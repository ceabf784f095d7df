"""The span record every trace reader produces, and the checks the readers share.

A :class:`Span` is format-neutral: OTLP, Jaeger and Zipkin spans all become one. Resource
attributes are the OTLP resource, the Jaeger process (its tags and ``service.name``) or the
Zipkin ``localEndpoint`` (``service.name`` and ``host.ip``); span attributes are the OTLP
span attributes, Jaeger tags or Zipkin tags. Span kinds are the lower-case OTLP names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SPAN_KINDS", "Span", "SpanError", "kind_name"]

#: Span kinds, as OTLP numbers them (``SPAN_KIND_UNSPECIFIED`` = 0 ... ``CONSUMER`` = 5).
SPAN_KINDS: tuple[str, ...] = (
    "unspecified", "internal", "server", "client", "producer", "consumer")


class SpanError(Exception):
    """A span (or document) that cannot be read; the message names the field."""


def kind_name(value: Any) -> str:
    """A span kind as one of :data:`SPAN_KINDS`, from an OTLP number (0..5), an OTLP enum
    name (``SPAN_KIND_SERVER``), a Jaeger ``span.kind`` tag (``server``) or a Zipkin kind
    (``SERVER``); ``None`` is ``unspecified``. Anything else raises :class:`SpanError`."""
    if value is None:
        return "unspecified"
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(SPAN_KINDS):
        return SPAN_KINDS[value]
    if isinstance(value, str):
        text = value.strip().lower().removeprefix("span_kind_")
        if text in SPAN_KINDS:
            return text
        if text.isdigit() and int(text) < len(SPAN_KINDS):
            return SPAN_KINDS[int(text)]
    raise SpanError(f"unknown span kind {value!r} (expected one of {', '.join(SPAN_KINDS)})")


@dataclass(frozen=True, slots=True)
class Span:
    """One span, whatever format it came in.

    Attributes:
        where: ``"FILE:LINE"`` (JSON; the line where the span object starts) or
            ``"FILE: message N"`` (protobuf).
        trace_id, span_id, parent_span_id: lower-case hex (``""`` when absent).
        name: span name (Jaeger ``operationName``); ``""`` when the producer left it out.
        kind: one of :data:`SPAN_KINDS`.
        start_ns, end_ns: local timestamps, ns since the Unix epoch (the clock of the node
            that took them).
        attributes: span attributes (Jaeger tags, Zipkin tags).
        resource: resource attributes (Jaeger process tags, Zipkin local endpoint); always
            ``service.name`` when the producer named a service.
        events: ``(name, time_ns)`` of the span events (Jaeger logs, Zipkin annotations).
        resolution_ns: the format's timestamp resolution: the true time of a stamp ``t`` lies
            in ``[t, t + resolution_ns)`` (1 for OTLP's ns, 1000 for Jaeger's and Zipkin's µs).
    """

    where: str
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: str
    start_ns: int
    end_ns: int
    attributes: Mapping[str, Any] = field(default_factory=dict)
    resource: Mapping[str, Any] = field(default_factory=dict)
    events: tuple[tuple[str, int], ...] = ()
    resolution_ns: int = 1

    @property
    def service(self) -> str:
        """``service.name`` of the resource, or ``""``."""
        value = self.resource.get("service.name")
        return "" if value is None else str(value)

    def attribute(self, key: str) -> Any:
        """The span attribute ``key``, else the resource attribute, else ``None``."""
        value = self.attributes.get(key)
        return self.resource.get(key) if value is None else value
