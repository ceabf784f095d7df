"""Spans as columns: one list per field, a value per span, which is what a trace map reads
of a batch of spans (:func:`clocksync.latency.span_events`).

A batch is made from :class:`Span` records (:meth:`SpanBatch.of_spans`) or straight from a
parsed OTLP protobuf request without a record per span
(:func:`clocksync.latency._otlp.otlp_request_batch`). Attributes, events and the records
themselves are read only when asked for; a batch is also a sequence of its spans. Ids may be
given as an arrow string array (a batch of OTLP protobuf spans turns its ids into hex all at
once): a trace map takes the rows it gives from it without a Python string per id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from operator import attrgetter, itemgetter
from typing import Any, overload

import numpy as np
import pyarrow as pa

from ._spans import Span

__all__ = ["IDS", "SpanBatch", "all_of", "every", "gather", "hex_texts"]

#: the span fields that are ids (lower-case hex text)
IDS = ("trace_id", "span_id", "parent_span_id")
#: the most hex text of one array made at once (string offsets are 32-bit)
_HEX_BYTES = 1 << 30

_WHERE, _TRACE, _SPAN, _PARENT, _NAME, _KIND, _START, _END, _RES, _RESOURCE, _ATTRS, \
    _EVENTS = map(attrgetter, ("where", "trace_id", "span_id", "parent_span_id", "name",
                               "kind", "start_ns", "end_ns", "resolution_ns", "resource",
                               "attributes", "events"))


def every(at: np.ndarray, n: int) -> bool:
    """Whether the indices ``at`` are ``0, 1, ..., n - 1`` (``n > 0``); at once for
    :func:`all_of`'s array."""
    if at is _ALL.get(n):
        return True
    return len(at) == n > 0 and at[0] == 0 and at[-1] == n - 1 and bool(
        (at[1:] > at[:-1]).all())


_ALL: dict[int, np.ndarray] = {}  # (a few sizes)


def all_of(at: np.ndarray, n: int) -> np.ndarray:
    """``at``, or when it is ``0, 1, ..., n - 1`` a read-only array of those that
    :func:`every` knows at once (one kept per ``n``, for the last few ``n``)."""
    got = _ALL.get(n)
    if got is None:
        if not every(at, n):
            return at
        if len(_ALL) >= 8:
            _ALL.clear()
        got = _ALL[n] = np.arange(n)
        got.flags.writeable = False
        return got
    return got if at is got or every(at, n) else at


def gather(values: Sequence[Any], at: Sequence[int] | np.ndarray) -> list[Any]:
    """``[values[i] for i in at]``, without a Python step per item (a copy of ``values``
    when ``at`` is an array of every index in order)."""
    if isinstance(at, np.ndarray):
        if every(at, len(values)):
            return list(values)
        at = at.tolist()
    if not at:
        return []
    if len(at) == 1:
        return [values[at[0]]]
    return list(itemgetter(*at)(values))


def hex_texts(ids: Sequence[bytes]) -> pa.Array | list[str]:
    """``[i.hex() for i in ids]``, as an arrow string array made of the ids joined and
    turned into hex at once (a list when the text is too long for one array)."""
    joined = b"".join(ids)
    if 2 * len(joined) >= _HEX_BYTES:
        return list(map(bytes.hex, ids))
    n = len(ids)
    offsets = np.zeros(n + 1, np.int32)
    np.cumsum(np.fromiter(map(len, ids), np.int32, n), out=offsets[1:])
    offsets *= 2
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets),
                                                  pa.py_buffer(joined.hex().encode())])


class SpanBatch(Sequence[Span]):
    """A batch of spans as columns.

    Attributes (aligned lists, one value per span, as :class:`Span` has them):
        where, trace_id, span_id, parent_span_id, name, kind, start_ns, end_ns,
        resolution_ns. The ids may be given as arrow string arrays: :meth:`ids` takes
        some spans' ids from them; the attribute gives them as a list when first read.
        resource_code: per span, its resource: an index into ``resources`` (spans of one
            resource share it, so what is read from a resource is read once).
        resources: the distinct resources' attributes.

    ``attribute(key)`` gives a span attribute's values (``None`` where absent), ``events()``
    the spans' events, ``service()`` their services; each is made once, when first asked.
    The record of span ``i`` is the constructor's ``span(batch, i)`` (given the batch, it
    need not refer to it: a batch is freed as soon as it is dropped).
    """

    __slots__ = ("_attribute", "_cache", "_end_ns", "_events", "_ids", "_span", "kind", "name",
                 "resolution_ns", "resource_code", "resources", "start_ns", "where")

    def __init__(self, *, where: list[str], trace_id: list[str] | pa.Array,
                 span_id: list[str] | pa.Array, parent_span_id: list[str] | pa.Array,
                 name: list[str], kind: list[str],
                 start_ns: list[int], end_ns: list[int] | Callable[[], list[int]],
                 resolution_ns: list[int],
                 resource_code: np.ndarray, resources: list[Mapping[str, Any]],
                 attribute: Callable[[str], list[Any]],
                 events: Callable[[], list[tuple[tuple[str, int], ...]]],
                 span: Callable[[SpanBatch, int], Span]) -> None:
        self.where, self.name, self.kind = where, name, kind
        self._ids: dict[str, list[str] | pa.Array] = {
            "trace_id": trace_id, "span_id": span_id, "parent_span_id": parent_span_id}
        self.start_ns, self._end_ns, self.resolution_ns = start_ns, end_ns, resolution_ns
        self.resource_code, self.resources = resource_code, resources
        self._attribute, self._events, self._span = attribute, events, span
        self._cache: dict[Any, Any] = {}

    @classmethod
    def of_spans(cls, spans: Sequence[Span]) -> SpanBatch:
        """The batch of ``spans`` (records of any format)."""
        spans = list(spans)
        codes: dict[int, int] = {}
        resources: list[Mapping[str, Any]] = []
        code = np.empty(len(spans), np.int64)
        for k, res in enumerate(map(_RESOURCE, spans)):
            at = codes.get(id(res))
            if at is None:
                at = codes[id(res)] = len(resources)
                resources.append(res)
            code[k] = at
        return cls(where=list(map(_WHERE, spans)), trace_id=list(map(_TRACE, spans)),
                   span_id=list(map(_SPAN, spans)), parent_span_id=list(map(_PARENT, spans)),
                   name=list(map(_NAME, spans)), kind=list(map(_KIND, spans)),
                   start_ns=list(map(_START, spans)), end_ns=list(map(_END, spans)),
                   resolution_ns=list(map(_RES, spans)), resource_code=code,
                   resources=resources,
                   attribute=lambda key: [a.get(key) for a in map(_ATTRS, spans)],
                   events=lambda: list(map(_EVENTS, spans)),
                   span=lambda _, i: spans[i])

    def _id_list(self, name: str) -> list[str]:
        got = self._ids[name]
        if isinstance(got, pa.Array):
            self._cache[("ids", name)] = got
            got = self._ids[name] = got.to_pylist()
        return got

    @property
    def trace_id(self) -> list[str]:
        return self._id_list("trace_id")

    @property
    def span_id(self) -> list[str]:
        return self._id_list("span_id")

    @property
    def parent_span_id(self) -> list[str]:
        return self._id_list("parent_span_id")

    def ids(self, name: str, at: np.ndarray) -> list[str] | pa.Array:
        """The ids ``name`` (one of :data:`IDS`) of the spans ``at``: an arrow string array
        when the batch was given them as one, else a list."""
        got = self._cache.get(("ids", name), self._ids[name])
        if isinstance(got, pa.Array):
            return got if every(at, len(got)) else got.take(at)
        return gather(got, at)

    @property
    def end_ns(self) -> list[int]:
        """Every span's end (read when first asked, when given as a function)."""
        got = self._end_ns
        if callable(got):
            got = self._end_ns = got()
        return got

    def attribute(self, key: str) -> list[Any]:
        """Span attribute ``key`` of every span (``None`` where absent)."""
        got: list[Any] | None = self._cache.get(("attribute", key))
        if got is None:
            got = self._cache[("attribute", key)] = self._attribute(key)
        return got

    def resource_values(self, key: str) -> np.ndarray:
        """Resource attribute ``key`` of every span (an object array, ``None`` where
        absent)."""
        got: np.ndarray | None = self._cache.get(("resource", key))
        if got is None:
            per = np.empty(len(self.resources), dtype=object)
            for k, res in enumerate(self.resources):  # (one at a time: a value may be a list)
                per[k] = res.get(key)
            got = self._cache[("resource", key)] = per[self.resource_code]
        return got

    def service(self) -> list[str]:
        """Every span's service (``service.name`` of its resource, ``""`` when absent)."""
        got: list[str] | None = self._cache.get("service")
        if got is None:
            got = self._cache["service"] = [
                "" if v is None else str(v) for v in self.resource_values("service.name")]
        return got

    def events(self) -> list[tuple[tuple[str, int], ...]]:
        """Every span's events, ``(name, time_ns)``."""
        got: list[tuple[tuple[str, int], ...]] | None = self._cache.get("events")
        if got is None:
            got = self._cache["events"] = self._events()
        return got

    def __len__(self) -> int:
        return len(self.name)

    @overload
    def __getitem__(self, index: int) -> Span: ...

    @overload
    def __getitem__(self, index: slice) -> list[Span]: ...

    def __getitem__(self, index: int | slice) -> Span | list[Span]:
        if isinstance(index, slice):
            return [self._span(self, i) for i in range(len(self))[index]]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError("span index out of range")
        return self._span(self, index)

    def __iter__(self) -> Iterator[Span]:
        return (self._span(self, i) for i in range(len(self)))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, str):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"SpanBatch({len(self)} spans)"
