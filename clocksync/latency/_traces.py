"""Read trace files as tracing systems write them and turn their spans into stage events.

Formats (docs/latency.md has the table):

- ``otlp``: OTLP JSON (one ``ExportTraceServiceRequest`` per file, per line as the
  OpenTelemetry Collector's file exporter writes, or one after another) and OTLP protobuf;
- ``jaeger``: the query API's ``{"data": [...]}``, a bare trace, a list of traces, a bare
  span list or one span;
- ``zipkin``: Zipkin v2, a list of spans, one span, or a list of traces.

The format is detected per document from its content (:func:`detect_format`) unless named.
A named format that reads no span is an error naming what the file looks like instead.

Each span becomes a :class:`Span`; a :class:`TraceMapping` turns spans into stage events.
Malformed spans are fatal by default (:class:`InputError` naming ``file:line``); with
``skip_bad`` they are skipped and returned as :class:`BadRecord` so they are counted and
shown.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from .._io._tabular import Values, _as_list, _columns_to_table
from .._model._errors import InputError
from ._detect import TraceFormat, detect_format, doc_shape, is_binary
from ._fields import where_of
from ._jaeger import jaeger_spans
from ._jsontext import json_values, read_text
from ._otlp import otlp_json_spans, otlp_proto_spans
from ._schema import EVENT_COLUMNS, BadRecord, Events
from ._spanbatch import SpanBatch, gather
from ._spans import Span, SpanError
from ._tracemap import RuleMemo, TraceMapping, batch_columns
from ._zipkin import zipkin_spans

__all__ = [
    "TraceFile",
    "TraceFormat",
    "detect_format",
    "iter_spans",
    "read_spans",
    "read_trace_file",
    "span_events",
]

_TEXT_SUFFIXES = (".json", ".jsonl", ".ndjson")
_Extractor = Callable[[str, Any], Iterator[tuple[str, Span | str]]]
_EXTRACTORS: dict[str, _Extractor] = {
    "otlp": otlp_json_spans, "jaeger": jaeger_spans, "zipkin": zipkin_spans}
_MALFORMED = (SpanError, AttributeError, TypeError, ValueError)  # what hostile JSON raises


@dataclass(slots=True)
class _Seen:
    """What a read saw: formats and shapes per document, records, bad records."""

    formats: dict[TraceFormat, int]
    shapes: dict[str, int]
    records: int = 0


@dataclass(frozen=True, slots=True)
class TraceFile:
    """The spans of one trace file and how it was read.

    Attributes:
        path: the file.
        format: the trace format read (``None``: no document was a trace).
        detected: whether the format was detected from the content (else named).
        shapes: the document shapes seen, e.g. ``("OTLP JSON lines",)``.
        spans: the spans read.
        bad: malformed records skipped (empty unless ``skip_bad``).
        records: records looked at (spans, documents that were no trace, bad lines).
    """

    path: str
    format: TraceFormat | None
    detected: bool
    shapes: tuple[str, ...]
    spans: tuple[Span, ...]
    bad: tuple[BadRecord, ...]
    records: int

    def describe(self) -> str:
        """``FILE: otlp (OTLP JSON lines; detected from the content)``."""
        how = "detected from the content" if self.detected else "named by --format"
        shapes = ", ".join(self.shapes) or "no trace document"
        return f"{self.path}: {self.format or 'unknown'} ({shapes}; {how})"


def _doc_spans(kind: TraceFormat, path: str, doc: Any) -> Iterator[tuple[str, Span | str]]:
    """The extractor's spans; a document whose structure breaks it (``resourceSpans`` not a
    list, ``resource`` not an object...) ends in one bad record instead of an exception."""
    try:
        yield from _EXTRACTORS[kind](path, doc)
    except _MALFORMED as exc:
        yield where_of(path, doc), (str(exc) if isinstance(exc, SpanError)
                                    else f"malformed {kind} document")


def _json_spans(path: str, text: str, fmt: TraceFormat | None, skip_bad: bool,
                bad: list[BadRecord], seen: _Seen) -> Iterator[tuple[str, Span | str]]:
    docs = 0
    for line, doc in json_values(path, text, skip_bad, bad):
        docs += 1
        kind = fmt or detect_format(doc)
        shape = doc_shape(doc, kind) if kind else None
        if kind is None or shape is None:
            other = detect_format(doc) if fmt else None
            yield f"{path}:{line}", (
                f"not a document of format {fmt}" if fmt
                else "not an OTLP, Jaeger or Zipkin trace document") + (
                f" (it looks like {other})" if other else "")
            continue
        seen.formats[kind] = seen.formats.get(kind, 0) + 1
        seen.shapes[shape] = seen.shapes.get(shape, 0) + 1
        yield from _doc_spans(kind, path, doc)
    if docs > 1 and seen.shapes.get("OTLP JSON"):
        seen.shapes["OTLP JSON lines"] = seen.shapes.pop("OTLP JSON")


def iter_spans(path: str | os.PathLike[str], fmt: TraceFormat | None = None,
               skip_bad: bool = False, bad: list[BadRecord] | None = None,
               seen: _Seen | None = None) -> Iterator[Span]:
    """Every span of one trace file, in file order. Malformed records raise
    :class:`InputError` naming ``file:line``, or with ``skip_bad`` are appended to
    ``bad``."""
    name = str(path)
    bad = [] if bad is None else bad
    seen = _Seen({}, {}) if seen is None else seen
    try:
        with open(name, "rb") as handle:
            head = handle.read(65_536)
    except OSError as exc:
        raise InputError(f"{name}: cannot read ({exc.strerror})") from None
    source: Iterator[tuple[str, Span | str]]
    if fmt in (None, "otlp") and is_binary(head) and not name.lower().endswith(_TEXT_SUFFIXES):
        with open(name, "rb") as handle:
            data = handle.read()
        seen.formats["otlp"] = 1
        seen.shapes["OTLP protobuf"] = 1
        source = otlp_proto_spans(name, data)
    else:
        source = _json_spans(name, read_text(name), fmt, skip_bad, bad, seen)
    for where, span in source:
        seen.records += 1
        if isinstance(span, str):
            if not skip_bad:
                raise InputError(f"{where}: {span}")
            bad.append(BadRecord(where, span))
            continue
        yield span
    seen.records += sum(1 for b in bad if "not valid JSON" in b.reason)


def _check_read(name: str, fmt: TraceFormat | None, spans: int, bad: int) -> None:
    """A named format that read no span is an error naming what the file looks like."""
    if fmt is None or spans:
        return
    try:
        with open(name, "rb") as handle:
            head = handle.read(65_536)
    except OSError:
        head = b""
    from ._detect import sniff_format

    looks = sniff_format(head)
    hint = f"; the content looks like {looks}" if looks != fmt else ""
    skipped = f" ({bad} malformed records skipped)" if bad else ""
    raise InputError(f"{name}: read as {fmt} (named by --format), but no {fmt} span was "
                     f"found{skipped}{hint}")


def read_spans(path: str | os.PathLike[str], fmt: TraceFormat | None = None,
               skip_bad: bool = False) -> TraceFile:
    """All spans of one trace file, with the format and shapes read."""
    name = str(path)
    bad: list[BadRecord] = []
    seen = _Seen({}, {})
    spans = tuple(iter_spans(name, fmt, skip_bad, bad, seen))
    _check_read(name, fmt, len(spans), len(bad))
    ranked = sorted(seen.formats, key=seen.formats.__getitem__)
    kind = fmt or (ranked[-1] if ranked else None)
    return TraceFile(name, kind, fmt is None, tuple(seen.shapes), spans, tuple(bad),
                     seen.records)


def read_trace_file(
    path: str | os.PathLike[str],
    mapping: TraceMapping | None = None,
    skip_bad: bool = False,
    fmt: TraceFormat | None = None,
) -> Events:
    """Stage events from one trace file (format detected per document unless ``fmt``)."""
    name = str(path)
    bad: list[BadRecord] = []
    seen = _Seen({}, {})
    counted = _Counted(iter_spans(name, fmt, skip_bad, bad, seen))
    table = span_events(counted, mapping, bad if skip_bad else None, name)
    _check_read(name, fmt, counted.n, len(bad))
    return Events(table, tuple(bad), seen.records)


class _Counted:
    """Spans passed through, counted."""

    def __init__(self, spans: Iterable[Span]) -> None:
        self._spans, self.n = spans, 0

    def __iter__(self) -> Iterator[Span]:
        for span in self._spans:
            self.n += 1
            yield span


#: spans mapped at a time (bounds the memory of the columns of one batch)
_BATCH_SPANS = 65_536


def _batches(spans: Iterable[Span]) -> Iterator[SpanBatch]:
    if isinstance(spans, SpanBatch):
        yield spans
        return
    it = iter(spans)
    while part := list(itertools.islice(it, _BATCH_SPANS)):
        yield SpanBatch.of_spans(part)


def span_events(spans: Iterable[Span], mapping: TraceMapping | None = None,
                bad: list[BadRecord] | None = None, source: str = "spans") -> pa.Table:
    """The stage events of ``spans`` (records, or a :class:`SpanBatch`) under ``mapping``
    (default: :class:`TraceMapping`).

    A span a rule matches but that gives no valid event (no node, a stamp beyond int64)
    raises :class:`InputError` naming it, or is appended to ``bad`` when given."""
    rules = mapping or TraceMapping()
    memo = RuleMemo.of(rules)
    cols: dict[str, Values] = {}
    wheres: list[str] = []
    for batch in _batches(spans):
        got, at, failed = batch_columns(batch, rules, memo)
        if failed:
            if bad is None:
                span, why = failed[0]
                raise InputError(f"{batch.where[span]}: {why}")
            bad.extend(BadRecord(batch.where[span], why) for span, why in failed)
        if not cols:
            cols, wheres = got, gather(batch.where, at)
            continue
        n_old, n_new = len(wheres), len(at)
        for key in [*cols, *(k for k in got if k not in cols)]:  # (in order)
            merged = _as_list(cols[key]) if key in cols else [None] * n_old
            merged.extend(_as_list(got[key]) if key in got else [None] * n_new)
            cols[key] = merged
        wheres.extend(gather(batch.where, at))
    return _columns_to_table(cols, lambda: wheres, EVENT_COLUMNS, source)
