"""OTLP traces: JSON (``ExportTraceServiceRequest`` / ``TracesData`` per the proto3 JSON
mapping) and protobuf.

JSON, as the proto3 JSON mapping allows producers to write it:

- field names in lowerCamelCase (``startTimeUnixNano``) or as the proto field names
  (``start_time_unix_nano``);
- default values left out: no ``name`` (empty), no ``kind`` (unspecified), no
  ``attributes``/``events``/``resource``;
- int64 values as JSON strings or numbers; enums (``kind``) as numbers or names
  (``SPAN_KIND_SERVER``);
- ``resourceSpans -> scopeSpans -> spans``, or the older ``instrumentationLibrarySpans``;
  a Jaeger API v3 answer (``{"result": {"resourceSpans": ...}}``) too.

Protobuf: one ``ExportTraceServiceRequest`` (an OTLP/HTTP body), or several each preceded by
its size as a 4-byte big-endian unsigned integer (the Collector's file exporter with
``format: proto``); decoded by protobuf with the ``opentelemetry-proto`` package's
descriptors (:func:`otlp_read_type`: span attributes read as the map they are on the wire).
"""

from __future__ import annotations

import base64
import functools
import itertools
import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from itertools import repeat
from operator import attrgetter
from typing import Any

import numpy as np

from .._model._errors import InputError
from ._fields import as_int, as_list, as_str, hex_id, where_of
from ._spanbatch import SpanBatch, gather, hex_texts
from ._spans import SPAN_KINDS, Span, SpanError, kind_name

__all__ = ["otlp_json_spans", "otlp_proto_request_type", "otlp_proto_spans", "otlp_read_type",
           "otlp_request", "otlp_request_batch", "otlp_request_spans",
           "otlp_shape"]

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def _snake(name: str) -> str:
    return _CAMEL.sub("_", name).lower()


_SNAKE: dict[str, str] = {}


def _get(obj: dict[str, Any], name: str) -> Any:
    """``obj[name]`` under its lowerCamel name or its proto field name."""
    if name in obj:
        return obj[name]
    snake = _SNAKE.get(name)
    if snake is None:
        snake = _SNAKE.setdefault(name, _snake(name))
    return obj.get(snake)


def _obj(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SpanError(f"field '{what}' must be an object")
    return value


def otlp_shape(doc: Any) -> str | None:
    """``"OTLP JSON"`` for an OTLP JSON document (also a Jaeger API v3 answer), else None."""
    if not isinstance(doc, dict):
        return None
    if _get(doc, "resourceSpans") is not None:
        return "OTLP JSON"
    result = doc.get("result")
    if isinstance(result, dict) and _get(result, "resourceSpans") is not None:
        return "OTLP JSON (Jaeger API v3 result)"
    return None


def _double(value: Any) -> float:
    if isinstance(value, str):  # proto3 JSON writes NaN and infinities as strings
        return float(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SpanError(f"doubleValue must be a number, got {value!r}")
    return float(value)


def _any_value(value: Any) -> Any:
    """An ``AnyValue`` as a Python value (absent or empty: ``None``)."""
    if not isinstance(value, dict):
        return None
    for name in ("stringValue", "boolValue"):
        got = _get(value, name)
        if got is not None:
            return got
    got = _get(value, "intValue")
    if got is not None:
        if isinstance(got, bool) or not isinstance(got, int | str | float):
            raise SpanError(f"intValue must be an integer, got {got!r}")
        out = int(got) if not isinstance(got, float) else int(got) if got.is_integer() else None
        if out is None:
            raise SpanError(f"intValue must be an integer, got {got!r}")
        return out
    got = _get(value, "doubleValue")
    if got is not None:
        number = _double(got)
        return number if math.isfinite(number) else str(number)
    got = _get(value, "arrayValue")
    if got is not None:
        return [_any_value(v) for v in as_list(_obj(got, "arrayValue").get("values"), "values")]
    got = _get(value, "kvlistValue")
    if got is not None:
        return _attrs(_obj(got, "kvlistValue").get("values"), "kvlistValue.values")
    got = _get(value, "bytesValue")
    if got is not None:
        return base64.b64decode(str(got)).hex()
    return None


def _attrs(items: Any, what: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in as_list(items, what):
        if isinstance(kv, dict) and isinstance(kv.get("key"), str):
            out[kv["key"]] = _any_value(kv.get("value"))
    return out


def _json_span(path: str, sp: Any, resource: dict[str, Any]) -> Span:
    if not isinstance(sp, dict):
        raise SpanError("expected a span object")
    events = tuple(
        (as_str(_get(_obj(ev, "events"), "name"), "events.name", default=""),
         as_int(_get(ev, "timeUnixNano"), "events.timeUnixNano"))
        for ev in as_list(_get(sp, "events"), "events")
    )
    return Span(
        where_of(path, sp),
        hex_id(_get(sp, "traceId"), "traceId", 16, required=True),
        hex_id(_get(sp, "spanId"), "spanId", 8),
        hex_id(_get(sp, "parentSpanId"), "parentSpanId", 8),
        as_str(_get(sp, "name"), "name", default=""),
        kind_name(_get(sp, "kind")),
        as_int(_get(sp, "startTimeUnixNano"), "startTimeUnixNano"),
        as_int(_get(sp, "endTimeUnixNano"), "endTimeUnixNano"),
        _attrs(_get(sp, "attributes"), "attributes"), resource, events, 1)


def otlp_json_spans(path: str, doc: Any) -> Iterator[tuple[str, Span | str]]:
    """``(where, span or the reason it is bad)`` for every span of one OTLP JSON document;
    a structure that breaks raises :class:`SpanError` (or what hostile JSON raises)."""
    result = doc.get("result") if isinstance(doc, dict) else None
    if isinstance(result, dict) and _get(doc, "resourceSpans") is None:
        doc = result
    for rs in as_list(_get(doc, "resourceSpans"), "resourceSpans"):
        if not isinstance(rs, dict):
            yield where_of(path, doc), "resourceSpans: expected objects"
            continue
        # (a resource that is not an object breaks the document: "malformed otlp document")
        resource = _attrs((_get(rs, "resource") or {}).get("attributes"), "resource.attributes")
        scopes = as_list(_get(rs, "scopeSpans"), "scopeSpans") + as_list(
            _get(rs, "instrumentationLibrarySpans"), "instrumentationLibrarySpans")
        for ss in scopes:
            for sp in as_list(ss.get("spans") if isinstance(ss, dict) else None, "spans"):
                try:
                    yield where_of(path, sp), _json_span(path, sp, resource)
                except (SpanError, AttributeError, TypeError, ValueError) as exc:
                    yield where_of(path, sp), (str(exc) if isinstance(exc, SpanError)
                                               else "malformed span")


# --- protobuf ------------------------------------------------------------------------------


def _pb_value(value: Any) -> Any:
    text = value.string_value  # the common case first: one field read, no oneof lookup
    if text:
        return text
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [_pb_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _pb_value(kv.value) for kv in value.kvlist_value.values}
    if which == "bytes_value":
        return bytes(value.bytes_value).hex()
    got = getattr(value, which)
    if isinstance(got, float) and not math.isfinite(got):
        return str(got)
    return got


def _pb_attributes(items: Any) -> dict[str, Any]:
    return {kv.key: _pb_value(kv.value) for kv in items}


class _PbAttributes(Mapping[str, Any]):
    """The attributes of one protobuf span, decoded when read.

    Reading a protobuf attribute costs about half a microsecond; a collector that maps spans
    by name and reads two attributes of those it maps need not pay for all of them. ``get``
    and ``[]`` decode the one value asked for; iterating decodes them all into a plain dict,
    in key order (a map keeps no order).
    Until then the mapping holds the span's attribute map (see :func:`otlp_read_type`), so
    the whole request stays in memory while the span does. It compares, prints and pickles
    as a dict.
    """

    __slots__ = ("_data",)

    def __init__(self, items: Any) -> None:
        # one slot, swapped whole (threads may read it meanwhile): the attribute map, then
        # the decoded dict
        self._data: Any = items

    def _dict(self) -> dict[str, Any]:
        data = self._data
        if type(data) is dict:
            return data
        decoded = {key: _pb_value(value) for key, value in sorted(data.items())}
        self._data = decoded
        return decoded

    def _value(self, key: object, missing: Any) -> Any:
        data = self._data
        if type(data) is dict:
            return data.get(key, missing)
        value = data.get(key) if isinstance(key, str) else None
        return missing if value is None else _pb_value(value)

    def __getitem__(self, key: str) -> Any:
        value = self._value(key, _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        return self._value(key, default)

    def __contains__(self, key: object) -> bool:
        return self._value(key, _MISSING) is not _MISSING

    def __iter__(self) -> Iterator[str]:
        return iter(self._dict())

    def __len__(self) -> int:
        return len(self._dict())

    def __repr__(self) -> str:
        return repr(self._dict())

    def __reduce__(self) -> tuple[Any, ...]:
        return dict, (self._dict(),)


_MISSING = object()


def _messages(path: str, data: bytes) -> list[bytes]:
    """One message, or the file exporter's size-prefixed messages (when the sizes chain
    exactly to the end of the file)."""
    pos, parts = 0, []
    while pos + 4 <= len(data):
        size = int.from_bytes(data[pos:pos + 4], "big")
        if pos + 4 + size > len(data):
            break
        parts.append(data[pos + 4:pos + 4 + size])
        pos += 4 + size
    if pos == len(data) and parts:
        return parts
    return [data]


def otlp_read_type() -> Any:
    """The class trace exports are read with: opentelemetry-proto's
    ``ExportTraceServiceRequest`` as protobuf builds it from the package's own descriptors,
    but for ``Span.attributes``, which it reads as ``map<string, AnyValue>``.

    On the wire the two are the same (a map is a repeated message of ``key = 1`` and
    ``value = 2``, which is what ``KeyValue`` is); read as a map, one attribute is looked up
    without a Python object for every other one, and a key given twice keeps its last value,
    as a dict does. Messages to send on are made with :func:`otlp_proto_request_type`
    (:func:`otlp_request`), which keeps the attributes' order. :class:`InputError` naming
    the package to install when opentelemetry-proto is missing."""
    otlp_proto_request_type()  # (names the package when it is missing)
    return _read_type()


@functools.cache
def _read_type() -> Any:
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    from opentelemetry.proto.trace.v1 import trace_pb2

    pool = descriptor_pool.DescriptorPool()
    for dep in trace_pb2.DESCRIPTOR.dependencies:  # common, resource (as they are)
        _add_file(pool, dep, descriptor_pb2)
    trace = descriptor_pb2.FileDescriptorProto()
    trace_pb2.DESCRIPTOR.CopyToProto(trace)
    span = next(m for m in trace.message_type if m.name == "Span")
    field = next(f for f in span.field if f.name == "attributes")
    entry = span.nested_type.add(name="AttributesEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, label=field.LABEL_OPTIONAL, type=field.TYPE_STRING)
    entry.field.add(name="value", number=2, label=field.LABEL_OPTIONAL,
                    type=field.TYPE_MESSAGE, type_name=field.type_name.replace(
                        "KeyValue", "AnyValue"))
    field.type_name = f".{trace.package}.Span.AttributesEntry"
    pool.Add(trace)
    service = descriptor_pb2.FileDescriptorProto(
        name="clocksync/otlp_read.proto", package="clocksync.otlp_read",
        dependency=[trace.name])
    request = service.message_type.add(name="ExportTraceServiceRequest")
    request.field.add(name="resource_spans", number=1, label=field.LABEL_REPEATED,
                      type=field.TYPE_MESSAGE, type_name=f".{trace.package}.ResourceSpans")
    pool.Add(service)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("clocksync.otlp_read.ExportTraceServiceRequest"))


def _add_file(pool: Any, file: Any, descriptor_pb2: Any) -> None:
    """``file`` and what it depends on into ``pool`` (each once)."""
    try:
        pool.FindFileByName(file.name)
        return
    except KeyError:
        pass
    for dep in file.dependencies:
        _add_file(pool, dep, descriptor_pb2)
    proto = descriptor_pb2.FileDescriptorProto()
    file.CopyToProto(proto)
    pool.Add(proto)


def otlp_proto_request_type() -> Any:
    """The generated ``ExportTraceServiceRequest`` class; :class:`InputError` naming the
    package to install when opentelemetry-proto is missing."""
    try:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )
    except ImportError:
        raise InputError("reading OTLP protobuf needs the opentelemetry-proto package "
                         "(pip install opentelemetry-proto)") from None
    return ExportTraceServiceRequest


#: the span fields a batch reads of every span (in one call per span: :data:`_SPAN_FIELDS`)
_SPAN_FIELD_NAMES = ("trace_id", "kind", "span_id", "parent_span_id", "name",
                     "start_time_unix_nano", "attributes")
_SPAN_FIELDS = attrgetter(*_SPAN_FIELD_NAMES)
_END = attrgetter("end_time_unix_nano")
_STRING = attrgetter("string_value")


class _PbColumns:
    """The protobuf spans of one request, kept for what a :class:`SpanBatch` reads late:
    attributes (per key, for all spans at once), end times, events, whole records."""

    def __init__(self) -> None:
        self.attributes: list[Any] = []  # per span, its attribute map
        self._parts: list[tuple[Any, list[int] | None]] = []  # spans, kept ones (None: all)
        self._spans: list[Any] | None = None
        self.ids: tuple[list[str], list[str], list[str]] | None = None  # (for records)

    def add(self, spans: Any, kept: list[int] | None) -> None:
        """Keep the spans ``kept`` (``None``: all) of one repeated spans field."""
        self._parts.append((spans, kept))
        self._spans = None

    @property
    def spans(self) -> list[Any]:
        """The kept protobuf spans, in order."""
        if self._spans is None:
            self._spans = [sp for spans, kept in self._parts
                           for sp in (spans if kept is None else gather(spans, kept))]
        return self._spans

    def attribute(self, key: str) -> list[Any]:
        maps = self.attributes
        if not maps:
            return []
        found = list(map(type(maps[0]).get, maps, repeat(key)))  # (no bound method each)
        if all(found):  # (a message is true, absent is None) every span has it
            texts = list(map(_STRING, found))
            if all(texts):
                return texts
        else:
            texts = [None if v is None else v.string_value for v in found]
        return [text or (None if v is None else _pb_value(v))  # another type, or ""
                for v, text in zip(found, texts, strict=True)]

    def end_times(self) -> list[int]:
        return list(map(_END, self.spans))

    def events(self) -> list[tuple[tuple[str, int], ...]]:
        return [tuple((ev.name, ev.time_unix_nano) for ev in sp.events) if len(sp.events)
                else () for sp in self.spans]


def _scope_fields(spans: Any, number: int, bad: list[tuple[int, str]]
                  ) -> tuple[list[Sequence[Any]], list[int] | None]:
    """The fields (:data:`_SPAN_FIELDS`, a column each) of the readable spans of one scope,
    and which those are (``None``: all); appends ``(N, reason)`` to ``bad`` for the others
    (``number`` spans of the request came before)."""
    columns: list[Sequence[Any]] = list(zip(*map(_SPAN_FIELDS, spans), strict=True))
    tids, ks = columns[0], columns[1]
    if all(tids) and (0 <= ks[0] < len(SPAN_KINDS) if ks.count(ks[0]) == len(ks)
                      else min(ks) >= 0 and max(ks) < len(SPAN_KINDS)):
        return columns, None
    kept = []
    for j, (tid, k) in enumerate(zip(tids, ks, strict=True)):
        if not tid:
            bad.append((number + j + 1, "field 'trace_id' is missing"))
        elif not 0 <= k < len(SPAN_KINDS):
            try:
                kind_name(k)
            except SpanError as exc:
                bad.append((number + j + 1, str(exc)))
        else:
            kept.append(j)
    return [gather(column, kept) for column in columns], kept


def _kind_names(kinds: Sequence[int]) -> list[str]:
    """The names of valid span kind numbers."""
    if kinds.count(kinds[0]) == len(kinds):  # (mostly one kind)
        return [SPAN_KINDS[kinds[0]]] * len(kinds)
    return gather(SPAN_KINDS, kinds)


def otlp_request_batch(where: str, request: Any) -> tuple[SpanBatch, list[tuple[int, str]]]:
    """The spans of a parsed ``ExportTraceServiceRequest`` (read with
    :func:`otlp_read_type`; one of :func:`otlp_proto_request_type` is read again as that)
    as a :class:`SpanBatch` (``where`` for every span), and ``(N, reason)`` for each span
    that cannot be read (N counts the request's spans from 1). Span fields are read a span
    at a time, all at once, into columns; attributes, end times and events when the batch
    is asked for them; resource attributes at once."""
    read_type = otlp_read_type()
    if type(request) is not read_type:
        copy = read_type()
        copy.ParseFromString(request.SerializeToString())
        request = copy
    keep = _PbColumns()
    parts: list[list[Sequence[Any]]] = []  # per scope, its columns
    codes: list[np.ndarray] = []
    resources: list[Mapping[str, Any]] = []
    bad: list[tuple[int, str]] = []
    number = 0
    for rs in request.resource_spans:
        resource = _pb_attributes(rs.resource.attributes)
        for ss in rs.scope_spans:
            spans: Any = ss.spans
            if not len(spans):
                continue
            got, kept = _scope_fields(spans, number, bad)
            number += len(spans)
            if not got[0]:
                continue
            if not resources or resources[-1] is not resource:
                resources.append(resource)
            codes.append(np.full(len(got[0]), len(resources) - 1, np.int64))
            keep.add(spans, kept)
            got[1] = _kind_names(got[1])
            parts.append(got)
    columns: list[list[Any]] = [list(c) for c in parts[0]] if len(parts) == 1 else [
        list(itertools.chain.from_iterable(c)) for c in zip(*parts, strict=True)] if parts \
        else [[] for _ in _SPAN_FIELD_NAMES]
    trace, kinds, span_ids, parents, names, starts, keep.attributes = columns
    n = len(trace)
    batch = SpanBatch(
        where=[where] * n, trace_id=hex_texts(trace), span_id=hex_texts(span_ids),
        parent_span_id=hex_texts(parents),
        name=names, kind=kinds, start_ns=starts, end_ns=keep.end_times,
        resolution_ns=[1] * n,
        resource_code=np.concatenate(codes) if codes else np.zeros(0, np.int64),
        resources=resources, attribute=keep.attribute, events=keep.events,
        span=functools.partial(_record, keep))  # (no reference back to the batch)
    return batch, bad


def _record(keep: _PbColumns, batch: SpanBatch, i: int) -> Span:
    ids = keep.ids
    if ids is None:  # (the batch's ids as lists, made once)
        ids = keep.ids = (batch.trace_id, batch.span_id, batch.parent_span_id)
    return Span(batch.where[i], ids[0][i], ids[1][i], ids[2][i], batch.name[i], batch.kind[i],
                batch.start_ns[i], batch.end_ns[i], _PbAttributes(keep.attributes[i]),
                batch.resources[int(batch.resource_code[i])], batch.events()[i], 1)


def otlp_request_spans(where: str, request: Any) -> Iterator[tuple[str, Span | str]]:
    """``(where, span or reason)`` for every span of a parsed ``ExportTraceServiceRequest``,
    in order. Span attributes are decoded when first read (a mapping that then behaves as a
    dict); resource attributes at once."""
    batch, bad = otlp_request_batch(where, request)
    spans = iter(batch)
    number = 1
    for at, reason in bad:
        for _ in range(at - number):
            yield where, next(spans)
        yield where, reason
        number = at + 1
    for span in spans:
        yield where, span


def otlp_proto_spans(path: str, data: bytes) -> Iterator[tuple[str, Span | str]]:
    """``(where, span or reason)`` for every span of an OTLP protobuf file."""
    try:
        request_type = otlp_read_type()
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None
    from google.protobuf.message import DecodeError

    for number, blob in enumerate(_messages(path, data), start=1):
        where = f"{path}: message {number}"
        request = request_type()
        try:
            request.ParseFromString(blob)
        except (DecodeError, ValueError, RuntimeError) as exc:
            yield where, f"not an OTLP protobuf message ({exc})"
            continue
        yield from otlp_request_spans(where, request)


def _hex_ids_to_base64(doc: Any) -> Any:
    """A copy of an OTLP JSON document with its hex ids (OTLP/JSON) as base64 (the proto3
    JSON mapping of bytes), for the protobuf JSON parser."""
    copy = json.loads(json.dumps(doc))
    for rs in as_list(_get(copy, "resourceSpans"), "resourceSpans"):
        scopes = as_list(_get(rs, "scopeSpans"), "scopeSpans") if isinstance(rs, dict) else []
        for ss in scopes:
            for span in as_list(ss.get("spans") if isinstance(ss, dict) else None, "spans"):
                if not isinstance(span, dict):
                    continue
                for key in ("traceId", "spanId", "parentSpanId", "trace_id", "span_id",
                            "parent_span_id"):
                    value = span.get(key)
                    if isinstance(value, str) and value:
                        try:
                            span[key] = base64.b64encode(bytes.fromhex(value)).decode()
                        except ValueError:
                            raise ValueError(f"span field '{key}': not hex: {value!r}") \
                                from None
    return copy


def otlp_request(body: bytes, media: str) -> Any:
    """An OTLP/HTTP traces body (``application/x-protobuf`` or ``application/json``) as an
    ``ExportTraceServiceRequest`` message (:class:`ValueError` when it is not one)."""
    from google.protobuf import json_format
    from google.protobuf.message import DecodeError

    request = otlp_proto_request_type()()
    try:
        if media == "application/json":
            json_format.ParseDict(_hex_ids_to_base64(json.loads(body)), request)
        else:
            request.ParseFromString(body)
    except (DecodeError, json_format.ParseError, SpanError, ValueError, TypeError) as exc:
        raise ValueError(f"not an OTLP traces request ({exc})") from None
    return request
