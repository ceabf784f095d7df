"""Read traces as tracing systems export them and turn them into stage events.

Formats (detected from the content, or named):

- ``otlp``: OTLP/JSON, one ``ExportTraceServiceRequest`` per file or per line (the
  OpenTelemetry collector's file exporter writes JSONL): ``resourceSpans -> scopeSpans ->
  spans``, times in ns (``startTimeUnixNano``), span ``events`` with ``timeUnixNano``.
- ``jaeger``: Jaeger's JSON (``{"data": [{"traceID", "spans", "processes"}]}``), times in µs
  (so the events carry µs resolution), span ``logs`` with an ``event`` field.
- ``zipkin``: Zipkin v2 JSON (a list of spans), times in µs, ``annotations`` as events.

Each span becomes attributes (resource/process attributes, then span attributes, plus
``service.name``), a name, a start, an end and named events. A :class:`TraceMapping` says
which span boundary or event is which stage, which attribute names the node, and which
attribute (default: the trace id) is the request id. Malformed spans are fatal by default
(:class:`InputError` naming ``file:line``); with ``skip_bad`` they are skipped and returned
as :class:`BadRecord` so they are counted and shown.
"""

from __future__ import annotations

import bisect
import fnmatch
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from json import decoder as _jd
from json import scanner as _js
from typing import Any, Literal

from .._errors import InputError
from .._tabular import _rows_to_table, file_format
from ._schema import DEFAULT_STAGES, EVENT_COLUMNS, BadRecord, Events

__all__ = [
    "StageRule",
    "TraceFormat",
    "TraceMapping",
    "detect_format",
    "read_trace_file",
]

TraceFormat = Literal["otlp", "jaeger", "zipkin"]
_LINE = "__line__"
_INT64_MAX = (1 << 63) - 1
_json_object: Any = getattr(_jd, "JSONObject")  # noqa: B009 - untyped in typeshed
_py_make_scanner: Any = getattr(_js, "py_make_scanner")  # noqa: B009


@dataclass(frozen=True, slots=True)
class StageRule:
    """Where a stage's timestamp comes from.

    Attributes:
        stage: stage name it produces (e.g. ``pp_exit``).
        span: span name (Jaeger ``operationName``) to match, shell wildcards allowed.
        at: ``"start"``, ``"end"``, or ``"event:NAME"`` (first span event / Jaeger log /
            Zipkin annotation called NAME).
    """

    stage: str
    span: str = "*"
    at: str = "start"

    def __post_init__(self) -> None:
        if self.at not in ("start", "end") and not (
            self.at.startswith("event:") and len(self.at) > 6
        ):
            raise ValueError(f"StageRule.at: expected start, end or event:NAME, got {self.at!r}")


@dataclass(frozen=True, slots=True)
class TraceMapping:
    """How spans map to stage events.

    Attributes:
        rules: stage rules; a span may feed several stages.
        node_keys: attribute names tried in order for the node (resource/process attributes
            and span attributes; ``service.name`` is always available).
        request_id_key: span attribute holding the request id; ``None`` = the trace id.
        context_keys: attributes copied into context columns of the events.
    """

    rules: tuple[StageRule, ...] = field(
        default_factory=lambda: tuple(StageRule(s, "*", f"event:{s}") for s in DEFAULT_STAGES)
    )
    node_keys: tuple[str, ...] = ("service.instance.id", "host.name", "hostname")
    request_id_key: str | None = None
    context_keys: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> TraceMapping:
        """Load a mapping file: ``{"stages": [{"stage", "span", "at"}], "node_keys": [...],
        "request_id_key": ..., "context_keys": [...]}`` (all but ``stages`` optional)."""
        name = str(path)
        try:
            with open(name, encoding="utf-8") as handle:
                obj = json.load(handle)
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"{name}: cannot read trace mapping ({exc})") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("stages"), list):
            raise InputError(f"{name}: field 'stages' must be a list of rules")
        rules = []
        for i, rule in enumerate(obj["stages"]):
            try:
                rules.append(StageRule(str(rule["stage"]), str(rule.get("span", "*")),
                                       str(rule.get("at", "start"))))
            except (KeyError, TypeError, AttributeError, ValueError) as exc:
                raise InputError(f"{name}: stages[{i}]: bad rule ({exc})") from None
        default = cls()
        return cls(
            rules=tuple(rules),
            node_keys=tuple(obj.get("node_keys", default.node_keys)),
            request_id_key=obj.get("request_id_key"),
            context_keys=tuple(obj.get("context_keys", ())),
        )


@dataclass(frozen=True, slots=True)
class _Span:
    where: str
    trace_id: str
    name: str
    start_ns: int
    end_ns: int
    attrs: Mapping[str, Any]
    events: tuple[tuple[str, int], ...]


class _SpanError(Exception):
    """A span that cannot be read; the message names the field."""


_MALFORMED = (_SpanError, AttributeError, TypeError, ValueError)  # what hostile JSON raises


# --- JSON with line numbers -------------------------------------------------------------


class _LineDecoder(_jd.JSONDecoder):
    """A JSON decoder that stores the line where each object starts under ``__line__``
    (``first_line`` is the line number of ``text``'s first line)."""

    def __init__(self, text: str, first_line: int = 1) -> None:
        super().__init__()
        newlines = [i for i, ch in enumerate(text) if ch == "\n"]

        def parse_object(s_and_end: tuple[str, int], *args: Any) -> tuple[Any, int]:
            obj, end = _json_object(s_and_end, *args)
            obj[_LINE] = bisect.bisect_left(newlines, s_and_end[1]) + first_line
            return obj, end

        self.parse_object = parse_object
        self.memo: dict[str, str] = {}
        self.scan_once = _py_make_scanner(self)


def _json_docs(path: str, skip_bad: bool, bad: list[BadRecord]) -> Iterator[Any]:
    """Every top-level JSON value of ``path``: one document (``.json``) or one per line."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    if file_format(path) == "jsonl" and not path.lower().endswith(".json"):
        chunks = [(line, i) for i, line in enumerate(text.split("\n"), start=1)]
    else:
        chunks = [(text, 1)]
    for chunk, first_line in chunks:
        if not chunk.strip():
            continue
        try:
            yield _LineDecoder(chunk, first_line).decode(chunk)
        except json.JSONDecodeError as exc:
            where = f"{path}:{exc.lineno + first_line - 1}"
            if not skip_bad:
                raise InputError(f"{where}: not valid JSON ({exc.msg})") from None
            bad.append(BadRecord(where, f"not valid JSON ({exc.msg})"))


def detect_format(doc: Any) -> TraceFormat | None:
    """The trace format of one parsed JSON document, or ``None``."""
    if isinstance(doc, dict):
        if "resourceSpans" in doc:
            return "otlp"
        if isinstance(doc.get("data"), list):
            return "jaeger"
    if isinstance(doc, list) and doc and isinstance(doc[0], dict) and "traceId" in doc[0]:
        return "zipkin"
    return None


# --- per-format span extraction -----------------------------------------------------------


def _int(value: Any, what: str, scale: int = 1) -> int:
    if isinstance(value, bool) or value is None:
        raise _SpanError(f"field '{what}' is missing or not an integer")
    try:
        out = int(value) if not isinstance(value, float) or value.is_integer() else None
    except (TypeError, ValueError):
        out = None
    if out is None or out < 0:
        raise _SpanError(f"field '{what}' must be a non-negative integer, got {value!r}")
    return out * scale


def _str(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise _SpanError(f"field '{what}' is missing or not a string")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _SpanError(f"field '{what}' must be a list")
    return value


def _otlp_value(value: Any) -> Any:
    if not isinstance(value, dict):
        return None
    for key in ("stringValue", "boolValue", "doubleValue"):
        if key in value:
            return value[key]
    if "intValue" in value:
        return int(value["intValue"])
    if "arrayValue" in value:
        return [_otlp_value(v) for v in value["arrayValue"].get("values", [])]
    return None


def _otlp_attrs(items: Any, what: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in _list(items, what):
        if isinstance(kv, dict) and isinstance(kv.get("key"), str):
            out[kv["key"]] = _otlp_value(kv.get("value"))
    return out


def _where(path: str, obj: Any) -> str:
    return f"{path}:{obj.get(_LINE, '?')}" if isinstance(obj, dict) else f"{path}:?"


def _otlp_spans(path: str, doc: Any) -> Iterator[tuple[str, _Span | str]]:
    for rs in _list(doc.get("resourceSpans"), "resourceSpans"):
        if not isinstance(rs, dict):
            yield _where(path, doc), "resourceSpans: expected objects"
            continue
        res = rs.get("resource") or {}
        res_attrs = _otlp_attrs(res.get("attributes"), "resource.attributes")
        for ss in _list(rs.get("scopeSpans"), "scopeSpans"):
            for sp in _list(ss.get("spans") if isinstance(ss, dict) else None, "spans"):
                where = _where(path, sp)
                try:
                    if not isinstance(sp, dict):
                        raise _SpanError("expected a span object")
                    attrs = {**res_attrs, **_otlp_attrs(sp.get("attributes"), "attributes")}
                    events = tuple(
                        (_str(ev.get("name"), "events.name"),
                         _int(ev.get("timeUnixNano"), "events.timeUnixNano"))
                        for ev in _list(sp.get("events"), "events")
                    )
                    yield where, _Span(
                        where, _str(sp.get("traceId"), "traceId"), _str(sp.get("name"), "name"),
                        _int(sp.get("startTimeUnixNano"), "startTimeUnixNano"),
                        _int(sp.get("endTimeUnixNano"), "endTimeUnixNano"), attrs, events)
                except _MALFORMED as exc:
                    yield where, str(exc) if isinstance(exc, _SpanError) else "malformed span"


def _jaeger_tags(items: Any, what: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in _list(items, what):
        if isinstance(kv, dict) and isinstance(kv.get("key"), str):
            out[kv["key"]] = kv.get("value")
    return out


def _jaeger_spans(path: str, doc: Any) -> Iterator[tuple[str, _Span | str]]:
    for trace in _list(doc.get("data"), "data"):
        if not isinstance(trace, dict):
            yield _where(path, doc), "data: expected trace objects"
            continue
        processes = trace.get("processes") or {}
        for sp in _list(trace.get("spans"), "spans"):
            where = _where(path, sp)
            try:
                if not isinstance(sp, dict):
                    raise _SpanError("expected a span object")
                proc = processes.get(sp.get("processID")) or sp.get("process") or {}
                attrs = {**_jaeger_tags(proc.get("tags"), "process.tags")}
                if "serviceName" in proc:
                    attrs["service.name"] = proc["serviceName"]
                attrs.update(_jaeger_tags(sp.get("tags"), "tags"))
                start = _int(sp.get("startTime"), "startTime", 1000)
                events = []
                for log in _list(sp.get("logs"), "logs"):
                    fields = _jaeger_tags(log.get("fields"), "logs.fields")
                    name = fields.get("event", fields.get("message"))
                    events.append((_str(name, "logs.fields.event"),
                                   _int(log.get("timestamp"), "logs.timestamp", 1000)))
                yield where, _Span(
                    where, _str(sp.get("traceID"), "traceID"),
                    _str(sp.get("operationName"), "operationName"), start,
                    start + _int(sp.get("duration"), "duration", 1000), attrs, tuple(events))
            except _MALFORMED as exc:
                yield where, str(exc) if isinstance(exc, _SpanError) else "malformed span"


def _zipkin_spans(path: str, doc: Any) -> Iterator[tuple[str, _Span | str]]:
    for sp in doc:
        where = _where(path, sp)
        try:
            if not isinstance(sp, dict):
                raise _SpanError("expected a span object")
            endpoint = sp.get("localEndpoint") or {}
            attrs: dict[str, Any] = {}
            if "serviceName" in endpoint:
                attrs["service.name"] = endpoint["serviceName"]
            if "ipv4" in endpoint or "ipv6" in endpoint:
                attrs["host.ip"] = endpoint.get("ipv4") or endpoint.get("ipv6")
            tags = sp.get("tags") or {}
            if not isinstance(tags, dict):
                raise _SpanError("field 'tags' must be an object")
            attrs.update(tags)
            start = _int(sp.get("timestamp"), "timestamp", 1000)
            events = tuple(
                (_str(a.get("value"), "annotations.value"),
                 _int(a.get("timestamp"), "annotations.timestamp", 1000))
                for a in _list(sp.get("annotations"), "annotations")
            )
            yield where, _Span(
                where, _str(sp.get("traceId"), "traceId"), _str(sp.get("name", ""), "name"),
                start, start + _int(sp.get("duration", 0), "duration", 1000), attrs, events)
        except _MALFORMED as exc:
            yield where, str(exc) if isinstance(exc, _SpanError) else "malformed span"


_EXTRACTORS = {"otlp": _otlp_spans, "jaeger": _jaeger_spans, "zipkin": _zipkin_spans}


def _doc_spans(kind: TraceFormat, path: str, doc: Any) -> Iterator[tuple[str, _Span | str]]:
    """The extractor's spans; a document whose structure breaks it (``resourceSpans`` not a
    list, ``resource`` not an object...) ends in one bad record instead of an exception."""
    try:
        yield from _EXTRACTORS[kind](path, doc)
    except _MALFORMED as exc:
        yield _where(path, doc), (str(exc) if isinstance(exc, _SpanError)
                                  else f"malformed {kind} document")


# --- spans to stage events ----------------------------------------------------------------


def _span_rows(span: _Span, mapping: TraceMapping) -> list[dict[str, Any]]:
    """The stage events one span yields (empty when no rule matches)."""
    rows: list[dict[str, Any]] = []
    node: Any = None
    for rule in mapping.rules:
        if not fnmatch.fnmatchcase(span.name, rule.span):
            continue
        if rule.at == "start":
            ts: int | None = span.start_ns
        elif rule.at == "end":
            ts = span.end_ns
        else:
            wanted = rule.at[6:]
            ts = next((t for name, t in span.events if name == wanted), None)
        if ts is None:
            continue
        if ts > _INT64_MAX:
            raise _SpanError(f"timestamp {ts} ns of stage {rule.stage} is beyond int64")
        if node is None:
            node = next((span.attrs[k] for k in mapping.node_keys
                         if span.attrs.get(k) not in (None, "")), None)
            if node is None:
                raise _SpanError(
                    f"no node attribute (tried {', '.join(mapping.node_keys)})")
        rid = span.attrs.get(mapping.request_id_key) if mapping.request_id_key else None
        row: dict[str, Any] = {
            "request_id": str(rid) if rid not in (None, "") else span.trace_id,
            "stage": rule.stage, "node": str(node), "ts_ns": ts, "trace_id": span.trace_id,
        }
        for key in mapping.context_keys:
            row[key] = span.attrs.get(key)
        rows.append(row)
    return rows


def read_trace_file(
    path: str | os.PathLike[str],
    mapping: TraceMapping | None = None,
    skip_bad: bool = False,
    fmt: TraceFormat | None = None,
) -> Events:
    """Stage events from one trace file (format detected per document unless ``fmt``)."""
    name = str(path)
    rules = mapping or TraceMapping()
    bad: list[BadRecord] = []
    rows: list[dict[str, Any]] = []
    wheres: list[str] = []
    records = 0

    def fail(where: str, reason: str) -> None:
        if not skip_bad:
            raise InputError(f"{where}: {reason}")
        bad.append(BadRecord(where, reason))

    for doc in _json_docs(name, skip_bad, bad):
        kind = fmt or detect_format(doc)
        if kind is None:
            records += 1
            fail(_where(name, doc), "not an OTLP, Jaeger or Zipkin trace document")
            continue
        for where, span in _doc_spans(kind, name, doc):
            records += 1
            if isinstance(span, str):
                fail(where, span)
                continue
            try:
                got = _span_rows(span, rules)
            except _SpanError as exc:
                fail(where, str(exc))
                continue
            rows.extend(got)
            wheres.extend([where] * len(got))
    records += sum(1 for b in bad if "not valid JSON" in b.reason)
    return Events(_rows_to_table(rows, wheres, EVENT_COLUMNS, name), tuple(bad), records)
