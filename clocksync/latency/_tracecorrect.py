"""Corrected traces for tracing UIs: every span annotated with its corrected start and bound.

For each span whose node the trace map names (:func:`node_of` on the map's node chain), three
attributes are added in the format's own attribute shape (OTLP ``KeyValue`` with
``stringValue``/``intValue``, int64 as JSON strings; Jaeger tags with their ``type``;
Zipkin tags, which are strings):

* ``clocksync.node`` (string): the node whose correction table was used;
* ``clocksync.start_ref_ns`` (int, ns since the Unix epoch, reference time): the corrected
  start of the span;
* ``clocksync.start_bound_ns`` (int, ns): the bound, rounded up so it stays a bound: the
  true reference time of the start lies in ``[ref - bound, ref + bound]`` whenever the
  table's assumptions hold.

A stamp coarser than 1 ns (Jaeger's and Zipkin's µs, or a trace-map rule that takes the
span's start with a ``resolution_ns``) says the true local time lies in
``[t, t + resolution)``: the reference time and bound then cover that whole stretch.

A span whose start the node's table cannot correct (before its first sample, in local time
the clock jumped over, past the holdover horizon, beyond int64) or whose node has no table
gets ``clocksync.node``, ``clocksync.status = "uncorrectable"`` and ``clocksync.reason``
instead, and is counted. Spans without a node are left as they are (counted).

Nothing else changes: the timestamps are the producer's, every other field is kept (the
document goes through ``json`` or protobuf and only gains keys). Attributes ``clocksync.*``
an earlier correction added are replaced, so correcting twice is correcting once.

All spans of one node are corrected with one vectorised :meth:`Corrector.correct` call
(two for coarse stamps: both ends of the stretch).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np
import numpy.typing as npt

from .._corrector import Corrector
from .._io._atomic import atomic_write_bytes
from .._model._errors import InputError, UnknownNodeError
from .._model._flags import VOID
from ._detect import TraceFormat, detect_format, doc_shape, is_binary
from ._fields import LINE_KEY, hex_id
from ._jsontext import _line_mode, json_values, read_text
from ._otlp import _messages, _pb_value
from ._schema import BadRecord
from ._spans import Span, SpanError, kind_name
from ._tracemap import TraceMapping, node_of
from ._traces import _TEXT_SUFFIXES, _check_read, _doc_spans

__all__ = ["CLOCKSYNC_ATTRIBUTES", "AnnotationCounts", "CorrectedTraceFile", "NodeCounts",
           "annotate_request", "correct_trace_file"]

_NODE = "clocksync.node"
_REF = "clocksync.start_ref_ns"
_BOUND = "clocksync.start_bound_ns"
_STATUS = "clocksync.status"
_REASON = "clocksync.reason"
#: The attributes a correction adds (and replaces when a span already has them).
CLOCKSYNC_ATTRIBUTES: tuple[str, ...] = (_NODE, _REF, _BOUND, _STATUS, _REASON)
_OURS = frozenset(CLOCKSYNC_ATTRIBUTES)
_INT64_MAX = (1 << 63) - 1
_NO_TABLE = "no correction table for the node"
_TAG_PATH = ""  # extractors name a span ":<index>" (see _tag)

T = TypeVar("T")
I64 = npt.NDArray[np.int64]
Attrs = list[tuple[str, str | int]]


# --- counts --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NodeCounts:
    """One node's spans: ``annotated`` (corrected start and bound added) and
    ``uncorrectable`` (marked ``clocksync.status = "uncorrectable"``)."""

    annotated: int = 0
    uncorrectable: int = 0


def _add_maps(a: Mapping[str, Any], b: Mapping[str, Any], add: Callable[[Any, Any], Any]
              ) -> dict[str, Any]:
    out = dict(a)
    for key, value in b.items():
        out[key] = add(out[key], value) if key in out else value
    return out


@dataclass(frozen=True, slots=True)
class AnnotationCounts:
    """What one annotation did.

    Attributes:
        spans: spans looked at (malformed ones included).
        annotated: spans given ``clocksync.start_ref_ns`` and ``clocksync.start_bound_ns``.
        uncorrectable: spans marked ``clocksync.status = "uncorrectable"``.
        no_node: spans for which the node chain found no node (left as they were).
        bad: malformed spans (left as they were).
        nodes: per node, its annotated and uncorrectable spans.
        reasons: why spans were uncorrectable -> how many.
    """

    spans: int = 0
    annotated: int = 0
    uncorrectable: int = 0
    no_node: int = 0
    bad: int = 0
    nodes: Mapping[str, NodeCounts] = field(default_factory=dict)
    reasons: Mapping[str, int] = field(default_factory=dict)

    def __add__(self, other: AnnotationCounts) -> AnnotationCounts:
        """The counts of both annotations together."""
        return AnnotationCounts(
            self.spans + other.spans, self.annotated + other.annotated,
            self.uncorrectable + other.uncorrectable, self.no_node + other.no_node,
            self.bad + other.bad,
            _add_maps(self.nodes, other.nodes, lambda a, b: NodeCounts(
                a.annotated + b.annotated, a.uncorrectable + b.uncorrectable)),
            _add_maps(self.reasons, other.reasons, lambda a, b: a + b))

    def summary(self) -> str:
        """One line: ``12 spans: 10 annotated, 1 uncorrectable, 1 without a node; per node:
        n1 6, n2 4 + 1 uncorrectable (past the table's holdover horizon: 1)``."""
        parts = [f"{self.annotated} annotated", f"{self.uncorrectable} uncorrectable"]
        if self.no_node:
            parts.append(f"{self.no_node} without a node")
        if self.bad:
            parts.append(f"{self.bad} malformed")
        line = f"{self.spans} spans: {', '.join(parts)}"
        if self.nodes:
            line += "; per node: " + ", ".join(
                f"{node} {c.annotated}" + (f" + {c.uncorrectable} uncorrectable"
                                           if c.uncorrectable else "")
                for node, c in sorted(self.nodes.items()))
        if self.reasons:
            line += " (" + "; ".join(f"{r}: {n}" for r, n in sorted(self.reasons.items())) + ")"
        return line


# --- correction of one node's starts -------------------------------------------------------


def _reasons(corrector: Corrector, node: str, lo: I64, hi: I64, big: npt.NDArray[np.bool_]
             ) -> list[str]:
    """Why each of these stretches ``[lo, hi]`` has no guaranteed correction."""
    cells = corrector.table(node).cells
    if len(cells) == 0:
        return ["the table has no cells"] * len(lo)
    first = int(cells.start_ns[0])
    void = ((corrector.flags(node, lo) | corrector.flags(node, hi)) & VOID) != 0
    out = []
    for t, is_big, is_void in zip(lo.tolist(), big.tolist(), void.tolist(), strict=True):
        if is_big:
            out.append("timestamp beyond int64")
        elif is_void:
            out.append("local time the clock jumped over (void)")
        elif t < first:
            out.append("before the table's first sample")
        else:
            out.append("past the table's holdover horizon")
    return out


def _correct_starts(corrector: Corrector, node: str, starts: list[int], res: list[int]
                    ) -> tuple[list[int], list[int], list[str | None]]:
    """``(ref_ns, bound_ns, reason)`` per start: the reference time and bound (rounded up)
    covering the true local time ``[t, t + res)``; ``reason`` is ``None`` when corrected,
    else why not (then ref and bound are 0)."""
    n = len(starts)
    try:
        corrector.table(node)
    except UnknownNodeError:
        return [0] * n, [0] * n, [_NO_TABLE] * n
    rs = np.array(res, dtype=np.int64)
    try:
        lo = np.array(starts, dtype=np.int64)
        big = lo > _INT64_MAX - rs
    except OverflowError:
        big = np.array([t > _INT64_MAX - r for t, r in zip(starts, res, strict=True)])
        lo = np.array([0 if b else t for t, b in zip(starts, big.tolist(), strict=True)],
                      dtype=np.int64)
    lo = np.where(big, 0, lo)
    ref, b = corrector.correct(node, lo, on_invalid="inf")
    coarse = rs > 1
    if coarse.any():
        hi = lo + np.where(coarse, rs, 0)
        ref_hi, b_hi = corrector.correct(node, hi, on_invalid="inf")
        ok = np.isfinite(b) & np.isfinite(b_hi) & ~big
        b, b_hi = np.where(ok, b, 0.0), np.where(ok, b_hi, 0.0)
        # the hull of both ends' intervals, relative to ref (differences stay exact floats)
        gap = np.where(ok, ref_hi - ref, 0).astype(np.float64)
        lo_off = np.minimum(-b, gap - b_hi)
        hi_off = np.maximum(b, gap + b_hi)
        shift = np.floor((lo_off + hi_off) / 2)
        ref = ref + shift.astype(np.int64)
        bound = np.ceil(np.maximum(hi_off - shift, shift - lo_off))
    else:
        hi = lo
        ok = np.isfinite(b) & ~big
        bound = np.ceil(np.where(ok, b, 0.0))
    reasons: list[str | None] = [None] * n
    if not ok.all():
        bad = np.flatnonzero(~ok)
        for i, why in zip(bad.tolist(), _reasons(corrector, node, lo[bad], hi[bad], big[bad]),
                          strict=True):
            reasons[i] = why
    ref = np.where(ok, ref, 0)
    return ref.tolist(), bound.astype(np.int64).tolist(), reasons


class _Batch(Generic[T]):
    """Spans grouped by node (each with where to write its attributes); :meth:`apply`
    corrects every node's starts in one call and writes the attributes."""

    def __init__(self, mapping: TraceMapping) -> None:
        self.mapping = mapping
        #: rules that take a span's start with a coarser resolution (e.g. Restate's
        #: invocation-start): a span they match has that resolution
        self.start_rules = tuple(r for r in mapping.rules
                                 if r.at == "start" and (r.resolution_ns or 1) > 1)
        self.groups: dict[str, tuple[list[T], list[int], list[int]]] = {}
        self.spans = self.no_node = self.bad = 0

    def resolution(self, span: Span) -> int:
        res = span.resolution_ns
        for rule in self.start_rules:
            if rule.matches(span):
                res = max(res, rule.resolution_ns or 1)
        return res

    def add(self, target: T, span: Span) -> None:
        found = node_of(span, self.mapping)
        self.add_node(target, None if found is None else found[0], span.start_ns,
                      self.resolution(span) if self.start_rules else span.resolution_ns)

    def add_node(self, target: T, node: str | None, start_ns: int, resolution_ns: int) -> None:
        self.spans += 1
        if node is None:
            self.no_node += 1
            return
        group = self.groups.get(node)
        if group is None:
            group = self.groups[node] = ([], [], [])
        group[0].append(target)
        group[1].append(start_ns)
        group[2].append(resolution_ns)

    def add_bad(self) -> None:
        self.spans += 1
        self.bad += 1

    def apply(self, corrector: Corrector, write: Callable[[T, str, int, int, str | None], None]
              ) -> AnnotationCounts:
        """Correct each node's starts and ``write(target, node, ref_ns, bound_ns, reason)``
        (``reason`` ``None``: corrected; else ref and bound are 0)."""
        nodes: dict[str, NodeCounts] = {}
        reasons: dict[str, int] = {}
        annotated = 0
        for node, (targets, starts, res) in self.groups.items():
            refs, bounds, whys = _correct_starts(corrector, node, starts, res)
            for target, ref, bound, why in zip(targets, refs, bounds, whys, strict=True):
                write(target, node, ref, bound, why)
            bad = len(whys) - whys.count(None)
            for why in whys if bad else ():
                if why is not None:
                    reasons[why] = reasons.get(why, 0) + 1
            nodes[node] = NodeCounts(len(targets) - bad, bad)
            annotated += len(targets) - bad
        uncorrectable = sum(c.uncorrectable for c in nodes.values())
        return AnnotationCounts(self.spans, annotated, uncorrectable, self.no_node, self.bad,
                                nodes, reasons)


# --- OTLP protobuf -------------------------------------------------------------------------


def _pb_request_class(path: str) -> Any:
    try:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )
    except ImportError:
        raise InputError(f"{path}: OTLP protobuf needs the opentelemetry-proto package "
                         "(pip install opentelemetry-proto)") from None
    return ExportTraceServiceRequest


def _span_keys(batch: _Batch[Any]) -> frozenset[str] | None:
    """The span attributes the node chain and the coarse start rules read (``None``: the
    whole span, events included, as a rule asks for an event)."""
    if any(rule.event is not None for rule in batch.start_rules):
        return None
    return frozenset(
        {str(ref.attribute) for ref in batch.mapping.node_chain
         if ref.attribute is not None and ref.scope != "resource"}
        | {m.key for rule in batch.start_rules for m in rule.attributes})


def _attrs(node: str, ref: int, bound: int, why: str | None) -> Attrs:
    """The attributes of one span: corrected (``why`` None), or uncorrectable and why."""
    if why is None:
        return [(_NODE, node), (_REF, ref), (_BOUND, bound)]
    return [(_NODE, node), (_STATUS, "uncorrectable"), (_REASON, why)]


def _set_pb(sp: Any, node: str, ref: int, bound: int, why: str | None) -> None:
    items = sp.attributes
    kv = items.add()
    kv.key = _NODE
    kv.value.string_value = node
    if why is None:
        kv = items.add()
        kv.key = _REF
        kv.value.int_value = ref
        kv = items.add()
        kv.key = _BOUND
        kv.value.int_value = bound
    else:
        kv = items.add()
        kv.key = _STATUS
        kv.value.string_value = "uncorrectable"
        kv = items.add()
        kv.key = _REASON
        kv.value.string_value = why


def _drop_ours_pb(sp: Any) -> None:
    items = sp.attributes
    for i in range(len(items) - 1, -1, -1):
        if items[i].key in _OURS:
            del items[i]


def _add_request(batch: _Batch[Any], request: Any, where: str, bad: list[BadRecord]) -> None:
    """Put every span of an ``ExportTraceServiceRequest`` into ``batch`` (earlier
    ``clocksync.*`` attributes dropped); a span that cannot be read goes to ``bad``."""
    mapping = batch.mapping
    keys = _span_keys(batch)
    # the fast path: when the chain reads no span field and a span has none of the span
    # attributes the chain and the rules read, its node is its resource's (found once per
    # resource) and its resolution depends on its name and kind only (found once per pair)
    by_resource = keys is not None and all(ref.field is None for ref in mapping.node_chain)
    for rs in request.resource_spans:
        resource = {kv.key: _pb_value(kv.value) for kv in rs.resource.attributes}
        node: str | None = None
        resolutions: dict[tuple[str, int], int] = {}
        if by_resource:
            found = node_of(Span(where, "", "", "", "", "unspecified", 0, 0, {}, resource),
                            mapping)
            node = None if found is None else found[0]
        for ss in rs.scope_spans:
            for sp in ss.spans:
                names = [kv.key for kv in sp.attributes]
                if not _OURS.isdisjoint(names):
                    _drop_ours_pb(sp)
                if by_resource and keys is not None and keys.isdisjoint(names):
                    res = 1
                    if batch.start_rules and node is not None:
                        pair = (sp.name, int(sp.kind))
                        found_res = resolutions.get(pair)
                        if found_res is None:
                            try:
                                kind = kind_name(pair[1])
                            except SpanError:
                                kind = "unspecified"  # no rule can ask for a kind that is none
                            found_res = resolutions[pair] = batch.resolution(Span(
                                where, "", "", "", pair[0], kind, 0, 0, {}, resource))
                        res = found_res
                    batch.add_node(sp, node, sp.start_time_unix_nano, res)
                    continue
                attrs = {kv.key: _pb_value(kv.value) for kv in sp.attributes
                         if keys is None or kv.key in keys}
                try:
                    span = Span(
                        where, hex_id(bytes(sp.trace_id), "trace_id", 16),
                        hex_id(bytes(sp.span_id), "span_id", 8),
                        hex_id(bytes(sp.parent_span_id), "parent_span_id", 8), sp.name,
                        kind_name(int(sp.kind)), int(sp.start_time_unix_nano),
                        int(sp.end_time_unix_nano), attrs, resource,
                        tuple((ev.name, int(ev.time_unix_nano)) for ev in sp.events)
                        if keys is None else (), 1)
                except SpanError as exc:
                    bad.append(BadRecord(where, str(exc)))
                    batch.add_bad()
                    continue
                batch.add(sp, span)


def annotate_request(request: Any, corrector: Corrector, mapping: TraceMapping | None = None
                     ) -> AnnotationCounts:
    """Annotate an ``ExportTraceServiceRequest`` (the ``opentelemetry-proto`` generated
    class) in place: ``clocksync.node``, ``clocksync.start_ref_ns`` and
    ``clocksync.start_bound_ns`` (or ``clocksync.status``/``clocksync.reason``) on every
    span with a node (``mapping``: the default :class:`TraceMapping` when ``None``).
    Timestamps are not changed. A span that cannot be read (an unknown kind) is left as it
    is and counted as ``bad``."""
    batch: _Batch[Any] = _Batch(mapping or TraceMapping())
    _add_request(batch, request, "request", [])
    return batch.apply(corrector, _set_pb)


def _correct_proto(name: str, corrector: Corrector, mapping: TraceMapping, skip_bad: bool
                   ) -> tuple[bytes, AnnotationCounts, list[BadRecord]]:
    from google.protobuf.message import DecodeError

    request_class = _pb_request_class(name)
    with open(name, "rb") as handle:
        data = handle.read()
    parts = _messages(name, data)
    framed = len(parts) > 1 or len(parts[0]) != len(data)
    batch: _Batch[Any] = _Batch(mapping)
    bad: list[BadRecord] = []
    requests: list[Any] = []
    for number, blob in enumerate(parts, start=1):
        where = f"{name}: message {number}"
        request = request_class()
        try:
            request.ParseFromString(blob)
        except (DecodeError, ValueError, RuntimeError) as exc:
            bad.append(BadRecord(where, f"not an OTLP protobuf message ({exc})"))
            requests.append(blob)  # kept as it was
            continue
        _add_request(batch, request, where, bad)
        requests.append(request)
    if bad and not skip_bad:
        raise InputError(str(bad[0]))
    counts = batch.apply(corrector, _set_pb)
    blobs = [r if isinstance(r, bytes) else r.SerializeToString() for r in requests]
    if not framed:
        return blobs[0], counts, bad
    return b"".join(len(b).to_bytes(4, "big") + b for b in blobs), counts, bad


# --- JSON ----------------------------------------------------------------------------------


def _tag(doc: Any) -> tuple[list[dict[str, Any]], list[Any]]:
    """Number every object of ``doc``: its line (the reader's ``LINE_KEY``) is replaced by
    its index, so the span an extractor names (``where`` = ``":<index>"``) can be found and
    written to. Returns the objects and their lines; :func:`_untag` undoes it."""
    objs: list[dict[str, Any]] = []
    lines: list[Any] = []
    stack: list[Any] = [doc]
    pop, push = stack.pop, stack.append
    while stack:
        value = pop()
        if type(value) is dict:
            lines.append(value.get(LINE_KEY))
            value[LINE_KEY] = len(objs)
            objs.append(value)
            value = value.values()
        for item in value:  # (a list, or the object's values)
            kind = type(item)
            if kind is dict or kind is list:
                push(item)
    return objs, lines


def _untag(objs: list[dict[str, Any]]) -> None:
    for obj in objs:
        obj.pop(LINE_KEY, None)


def _set_otlp_json(sp: dict[str, Any], attrs: Attrs) -> None:
    items = sp.get("attributes")
    if not isinstance(items, list):
        items = sp["attributes"] = []
    if any(isinstance(kv, dict) and kv.get("key") in _OURS for kv in items):
        items[:] = [kv for kv in items if not (isinstance(kv, dict) and kv.get("key") in _OURS)]
    items.extend({"key": k, "value": {"stringValue": v} if isinstance(v, str)
                  else {"intValue": str(v)}} for k, v in attrs)


def _set_jaeger(sp: dict[str, Any], attrs: Attrs) -> None:
    items = sp.get("tags")
    if not isinstance(items, list):
        items = sp["tags"] = []
    if any(isinstance(kv, dict) and kv.get("key") in _OURS for kv in items):
        items[:] = [kv for kv in items if not (isinstance(kv, dict) and kv.get("key") in _OURS)]
    items.extend({"key": k, "type": "string" if isinstance(v, str) else "int64", "value": v}
                 for k, v in attrs)


def _set_zipkin(sp: dict[str, Any], attrs: Attrs) -> None:
    tags = sp.get("tags")
    if not isinstance(tags, dict):
        tags = sp["tags"] = {}
    for key in _OURS & tags.keys():
        del tags[key]
    tags.update((k, str(v)) for k, v in attrs)


_JSON_WRITERS: dict[str, Callable[[dict[str, Any], Attrs], None]] = {
    "otlp": _set_otlp_json, "jaeger": _set_jaeger, "zipkin": _set_zipkin}


def _write_json(target: tuple[str, dict[str, Any]], node: str, ref: int, bound: int,
                why: str | None) -> None:
    _JSON_WRITERS[target[0]](target[1], _attrs(node, ref, bound, why))


def _dumps(doc: Any) -> str:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


@dataclass(slots=True)
class _JsonDoc:
    line: int
    doc: Any
    objs: list[dict[str, Any]]


def _json_doc_spans(name: str, fmt: TraceFormat | None, doc: _JsonDoc, lines: list[Any],
                    seen: dict[str, dict[str, int]]
                    ) -> Iterator[tuple[str, tuple[str, dict[str, Any]] | None, Span | str]]:
    """``(file:line, (format, span object), span or reason)`` for one document."""
    kind = fmt or detect_format(doc.doc)
    shape = doc_shape(doc.doc, kind) if kind else None
    if kind is None or shape is None:
        other = detect_format(doc.doc) if fmt else None
        yield f"{name}:{doc.line}", None, (
            f"not a document of format {fmt}" if fmt
            else "not an OTLP, Jaeger or Zipkin trace document") + (
            f" (it looks like {other})" if other else "")
        return
    seen["formats"][kind] = seen["formats"].get(kind, 0) + 1
    seen["shapes"][shape] = seen["shapes"].get(shape, 0) + 1
    for where, item in _doc_spans(kind, _TAG_PATH, doc.doc):
        index = where.rpartition(":")[2]
        if index.isdigit():
            obj = doc.objs[int(index)]
            yield f"{name}:{lines[int(index)]}", (kind, obj), item
        else:
            yield f"{name}:{doc.line}", None, item


def _correct_json(name: str, corrector: Corrector, mapping: TraceMapping,
                  fmt: TraceFormat | None, skip_bad: bool
                  ) -> tuple[bytes, AnnotationCounts, list[BadRecord], dict[str, dict[str, int]]]:
    text = read_text(name)
    line_mode = _line_mode(name, text)
    bad: list[BadRecord] = []
    batch: _Batch[tuple[str, dict[str, Any]]] = _Batch(mapping)
    seen: dict[str, dict[str, int]] = {"formats": {}, "shapes": {}}
    docs: list[_JsonDoc] = []
    spans = 0
    for line, value in json_values(name, text, skip_bad, bad):
        objs, lines = _tag(value)
        doc = _JsonDoc(line, value, objs)
        docs.append(doc)
        for where, target, item in _json_doc_spans(name, fmt, doc, lines, seen):
            if isinstance(item, str):
                if not skip_bad:
                    raise InputError(f"{where}: {item}")
                bad.append(BadRecord(where, item))
                if target is not None:
                    batch.add_bad()
                continue
            spans += 1
            assert target is not None
            batch.add(target, item)
    if not line_mode and any(b.reason.startswith("not valid JSON") for b in bad):
        first = next(b for b in bad if b.reason.startswith("not valid JSON"))
        raise InputError(f"{first}; the rest of the document cannot be read, so a corrected "
                         "copy would lose it")
    _check_read(name, fmt, spans, len(bad))
    counts = batch.apply(corrector, _write_json)
    for doc in docs:
        _untag(doc.objs)
    if line_mode:  # line for line: blank and skipped lines stay as they were
        out = text.split("\n")
        for doc in docs:
            out[doc.line - 1] = _dumps(doc.doc)
        body = "\n".join(out)
    else:
        body = "\n".join(_dumps(doc.doc) for doc in docs) + "\n"
    if len(docs) > 1 and seen["shapes"].get("OTLP JSON"):
        seen["shapes"]["OTLP JSON lines"] = seen["shapes"].pop("OTLP JSON")
    return body.encode("utf-8"), counts, bad, seen


# --- files ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CorrectedTraceFile:
    """One corrected trace file.

    Attributes:
        path: the file read.
        out: the file written (same format and shape).
        format: the trace format read (``None``: no document was a trace).
        shapes: the document shapes seen, e.g. ``("OTLP JSON lines",)``.
        counts: what the annotation did.
        bad: malformed records skipped (empty unless ``skip_bad``); they are in the output
            as they were.
    """

    path: str
    out: str
    format: TraceFormat | None
    shapes: tuple[str, ...]
    counts: AnnotationCounts
    bad: tuple[BadRecord, ...]

    def describe(self) -> str:
        """One line: ``IN -> OUT (otlp, OTLP JSON lines): 12 spans: 10 annotated, ...``."""
        shapes = ", ".join(self.shapes) or "no trace document"
        skipped = f"; {len(self.bad)} malformed records skipped" if self.bad else ""
        return (f"{self.path} -> {self.out} ({self.format or 'unknown'}, {shapes}): "
                f"{self.counts.summary()}{skipped}")


def correct_trace_file(path: str | os.PathLike[str], out: str | os.PathLike[str],
                       corrector: Corrector, mapping: TraceMapping | None = None,
                       fmt: TraceFormat | None = None, skip_bad: bool = False
                       ) -> CorrectedTraceFile:
    """Write ``out``: the trace file ``path`` in its own format and shape (OTLP JSON
    document or JSON lines, OTLP protobuf message or size-prefixed messages, Jaeger,
    Zipkin), every span with a node annotated (see the module's description); the format
    is detected per document unless ``fmt``.

    ``out`` is written atomically, and not at all when the input is bad: no span with a
    node is an :class:`~clocksync.InputError` (the map's node chain matches nothing); a
    malformed record
    raises :class:`~clocksync.InputError` naming ``file:line`` (``file: message N`` for
    protobuf), or with ``skip_bad`` is counted and left in the output as it was (JSON
    lines, protobuf messages; a document that is not valid JSON is always an error, as the
    rest of it cannot be read)."""
    name = str(path)
    rules = mapping or TraceMapping()
    try:
        with open(name, "rb") as handle:
            head = handle.read(65_536)
    except OSError as exc:
        raise InputError(f"{name}: cannot read ({exc.strerror})") from None
    if fmt in (None, "otlp") and is_binary(head) and not name.lower().endswith(_TEXT_SUFFIXES):
        data, counts, bad = _correct_proto(name, corrector, rules, skip_bad)
        _check_read(name, fmt, counts.spans - counts.bad, len(bad))
        kind: TraceFormat | None = "otlp"
        shapes: tuple[str, ...] = ("OTLP protobuf",)
    else:
        data, counts, bad, seen = _correct_json(name, corrector, rules, fmt, skip_bad)
        ranked = sorted(seen["formats"], key=seen["formats"].__getitem__)
        kind = fmt or (ranked[-1] if ranked else None)  # type: ignore[assignment]
        shapes = tuple(seen["shapes"])
    if counts.spans > counts.bad and counts.no_node == counts.spans - counts.bad:
        tried = ", ".join(r.describe() for r in rules.node_chain)
        raise InputError(f"{name}: no span has a node (tried {tried}); nothing to correct "
                         "(a trace map's node chain names it: clocksync traces inspect)")
    atomic_write_bytes(out, data)
    return CorrectedTraceFile(name, str(out), kind, shapes, counts, tuple(bad))
