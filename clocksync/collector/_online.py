"""Online completion: stage events arrive in batches, late, out of order and from several
nodes; this turns them into completed units (pairs of parent and child span events, or
whole requests of a stage chain) as soon as they are complete, and names what is missing
when they time out.

Pairs follow :func:`clocksync.latency.hop_table`'s batch rules exactly: an event repeated
with the same trace, span and stage is a duplicate (the first wins); a child pairs with the
first event its parent span gave; a child whose parent never comes lacks
``"parent of <stage>"``. A request of a chain is complete when every stage of the chain has
an event, and is released at once with all its events: a batch first releases the requests
it holds whole that none waits for (their events in arrival order), then takes its other
events in arrival order, each completing its request when it gives the last missing stage
(an event after that opens the request anew). At its timeout a request is released with what
it has (as batch analysis would see it) and counted incomplete, naming the stages it lacks.
Over the memory budget the oldest entries are dropped (counted evicted); an event of a stage
outside the chain is counted, by stage.

Time here is arrival time (a monotonic clock, s): an entry waits ``timeout_s`` after its
arrival. Nothing here corrects a timestamp.
"""

from __future__ import annotations

import collections
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..latency._arrow import dictionary_codes, index_in

__all__ = ["ChainCompleter", "Completed", "PairCompleter"]

#: bytes one pending entry of :class:`PairCompleter` costs beyond its batch's table: a span's
#: key with its dict slot and reference (or an orphan's parent key, slot and reference).
#: tracemalloc measured 173 B an entry over 331k Restate spans with 49-character text keys,
#: and 178 B over 50k-200k spans or orphans with keys of OTLP's ids (48 bytes: 32 hex digits
#: of trace, 16 of span); tests/collector/test_online_pairs.py measures it
PAIR_ENTRY_BYTES = 176
#: bytes one pending request of a chain costs beyond its events (its id, dict entry and
#: slot number, its slot in five arrays) and one pending event beyond its row (its link and
#: holder): measured with tracemalloc over 1 M pending requests of one and of two events
#: (173 and 190 B per request, growing arrays included)
REQUEST_BYTES = 156
EVENT_BYTES = 17


@dataclass
class Completed:
    """What one call made complete.

    Attributes:
        parents, children: pairs mode: the parent and child event of each pair (aligned),
            without ``span_id`` and ``parent_span_id`` (read by pairing only).
        events: chain mode: the events of whole (or timed-out) requests; ``request_id``
            dictionary-encoded (one code per request id of the table, in the order the ids
            first appear).
        duplicates: events dropped as exact repeats.
        incomplete: what timed-out units lacked -> how many.
        evicted: pending entries dropped to stay within the memory budget.
    """

    parents: list[pa.Table] = field(default_factory=list)
    children: list[pa.Table] = field(default_factory=list)
    events: list[pa.Table] = field(default_factory=list)
    duplicates: int = 0
    incomplete: collections.Counter[str] = field(default_factory=collections.Counter)
    evicted: int = 0


def _take_rows(refs: list[tuple[pa.Table, int]]) -> pa.Table | None:
    """The rows ``(table, index)`` as one table, in the order given (one ``take`` per
    source table, then one to put the rows in order)."""
    if not refs:
        return None
    by_table: dict[int, tuple[pa.Table, list[int], list[int]]] = {}
    for at, (table, row) in enumerate(refs):
        got = by_table.get(id(table))
        if got is None:
            by_table[id(table)] = got = (table, [], [])
        got[1].append(row)
        got[2].append(at)
    if len(by_table) == 1:
        table, rows, _ = next(iter(by_table.values()))
        return table.take(pa.array(rows, pa.int64()))
    parts = [table.take(pa.array(rows, pa.int64())) for table, rows, _ in by_table.values()]
    order = np.empty(len(refs), dtype=np.int64)  # position in the concatenation -> output
    at = 0
    for _, rows, where in by_table.values():
        order[at:at + len(rows)] = where
        at += len(rows)
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    whole = pa.concat_tables(parts, promote_options="default")
    return whole.take(pa.array(inverse))


@dataclass
class _Batch:
    """One arrival batch's pending entries (expired together)."""

    seq: int
    arrival_s: float
    table: pa.Table
    keys: list[str | bytes] = field(default_factory=list)  # span keys / request ids it added
    waits: list[str | bytes] = field(default_factory=list)  # parent keys its children wait on
    nbytes: int = 0  # what it counts in pending_bytes


class _Completer:
    """Arrival batches held while their entries wait, expired oldest first."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._batches: collections.deque[_Batch] = collections.deque()
        self._seq = 0
        self.pending_bytes = 0

    def _new_batch(self, table: pa.Table, arrival_s: float) -> _Batch:
        self._seq += 1
        return _Batch(self._seq, arrival_s, table)

    def _hold(self, batch: _Batch, entries: int, entry_bytes: int,
              table_bytes: int | None = None) -> None:
        """Keep ``batch`` (its table, of ``table_bytes``, by default its ``nbytes``, and
        ``entries`` pending entries of ``entry_bytes`` each) until it expires."""
        if table_bytes is None:
            table_bytes = batch.table.nbytes
        batch.nbytes = table_bytes + entry_bytes * entries
        self.pending_bytes += batch.nbytes
        self._batches.append(batch)

    def _expired(self, now_s: float, budget_bytes: float) -> Iterator[tuple[_Batch, bool]]:
        """``(batch, over budget)`` for each batch, oldest first, that is past the timeout
        or must go to bring the pending bytes within ``budget_bytes``."""
        while self._batches:
            batch = self._batches[0]
            over = self.pending_bytes > budget_bytes
            if now_s - batch.arrival_s < self.timeout_s and not over:
                return
            self._batches.popleft()
            self.pending_bytes -= batch.nbytes
            yield batch, over

    def expire(self, now_s: float, out: Completed, budget_bytes: float = np.inf) -> None:
        raise NotImplementedError

    def flush(self, out: Completed) -> None:
        """Time every entry out now (shutdown, or the end of a replay)."""
        self.expire(np.inf, out)


#: an event's reference: its batch's sequence number << _PAIR_ROW_BITS | its row (a larger
#: table is taken in slices)
_PAIR_ROW_BITS = 24
_PAIR_ROW_MASK = (1 << _PAIR_ROW_BITS) - 1
_PAIR_SEQ_MASK = (1 << (63 - _PAIR_ROW_BITS)) - 1  # wraps (after years): int64 references


@dataclass
class _PairBatch(_Batch):
    """One arrival batch of events that pair by parent span (``keys``: the spans whose
    first event it gave; ``waits``: the parent spans its children wait for)."""

    seen: list[str] = field(default_factory=list)  # its keys in PairCompleter._seen


def _pair_text(table: pa.Table, name: str) -> pa.Array:
    """Column ``name`` as one string array (nulls stay null)."""
    col = table.column(name)
    arr = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    return arr if arr.type == pa.string() else arr.cast(pa.string())


def _pair_stages(table: pa.Table) -> pa.Array:
    """Each row's stage as its key text (a null stage is ``"None"``)."""
    return _pair_text(table, "stage").fill_null("None")


def _pair_filled(arr: pa.Array) -> np.ndarray:
    """Which strings of ``arr`` (a string array) are neither null nor empty."""
    if not len(arr):
        return np.zeros(0, dtype=bool)
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32)[arr.offset:arr.offset + len(arr) + 1]
    filled: np.ndarray = offsets[1:] > offsets[:-1]
    if arr.null_count:
        filled &= np.asarray(arr.is_valid())
    return filled


def _pair_join(trace: pa.Array, span: pa.Array) -> pa.Array:
    """``"<trace>/<span>"`` of each row (a null is empty)."""
    return pc.binary_join_element_wise(trace, span, "/", null_handling="replace")


def _pair_dkeys(trace: pa.Array, span: pa.Array, table: pa.Table) -> list[str]:
    """``"<trace>/<span>/<stage>"`` of each row."""
    out: list[str] = pc.binary_join_element_wise(_pair_join(trace, span), _pair_stages(table),
                                                 "/").to_pylist()
    return out


#: the widths (characters) of trace and span ids as OTLP gives them (hex digits)
_TRACE_CHARS, _SPAN_CHARS = 32, 16
_SLASH = ord("/")


def _pair_fixed(arr: pa.Array, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The rows of ``arr`` (a string array) of ``width`` bytes without a ``"/"``: ``(their
    bytes, shape (n, width), zero elsewhere; which rows they are)``."""
    n = len(arr)
    if not n:
        return np.zeros((0, width), dtype=np.uint8), np.zeros(0, dtype=bool)
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32)[arr.offset:arr.offset + n + 1]
    size = offsets[1:] - offsets[:-1]
    ok = size == width
    if ok.all():  # one run of ids
        data = np.frombuffer(arr.buffers()[2], dtype=np.uint8)
        out = data[offsets[0]:offsets[-1]].reshape(n, width)
    else:
        out = np.zeros((n, width), dtype=np.uint8)
        if ok.any():
            data = np.frombuffer(arr.buffers()[2], dtype=np.uint8)
            if (ok | (size == 0)).all():  # ids and empty strings: the ids in one run
                out[ok] = data[offsets[0]:offsets[-1]].reshape(-1, width)
            else:
                out[ok] = data[offsets[:-1][ok, None] + np.arange(width)]
    if arr.null_count:
        ok &= np.asarray(arr.is_valid())
    if np.count_nonzero(out == _SLASH):  # "a/b" + "c" must stay the key of "a" + "b/c"
        ok &= ~(out == _SLASH).any(axis=1)
    return out, ok


#: a trace id column: its text and :func:`_pair_fixed` of it
_PairTrace = tuple[pa.Array, np.ndarray, np.ndarray]


def _pair_keys(trace: _PairTrace, span: pa.Array,
               rows: np.ndarray | None = None) -> list[str | bytes]:
    """Each row's key of ``(trace, span)`` (``trace``: the text, :func:`_pair_fixed` of
    it; ``rows``: those rows only). Ids of OTLP's widths (without a ``"/"``) are keyed by
    their 48 bytes, others by ``"<trace>/<span>"``: ids that give one ``"<trace>/<span>"``
    give one key, others another (text is never equal to bytes)."""
    text, trace_bytes, trace_ok = trace
    span_bytes, span_ok = _pair_fixed(span, _SPAN_CHARS)
    fast = trace_ok & span_ok
    if rows is not None:
        trace_bytes, span_bytes, fast = trace_bytes[rows], span_bytes[rows], fast[rows]
    both = np.concatenate([trace_bytes, span_bytes], axis=1)
    if fast.all():
        # (numpy drops trailing zero bytes: still one key for each 48 bytes)
        out: list[str | bytes] = both.view(f"S{_TRACE_CHARS + _SPAN_CHARS}").ravel().tolist()
        return out
    joined = _pair_join(text, span)
    out = (joined if rows is None else joined.take(pa.array(rows))).to_pylist()
    at = np.flatnonzero(fast)
    fixed = both[at].view(f"S{_TRACE_CHARS + _SPAN_CHARS}").ravel().tolist()
    for k, key in zip(at.tolist(), fixed, strict=True):
        out[k] = key
    return out


#: columns that only pairing reads
_PAIR_IDS = ("span_id", "parent_span_id")


def _pair_paired(table: pa.Table) -> pa.Table:
    """``table`` without the columns only pairing reads (no copy)."""
    return table.drop_columns([name for name in _PAIR_IDS if name in table.column_names])


def _pair_order(made_p: list[np.ndarray], made_c: list[np.ndarray],
                place: list[np.ndarray | None], base: int) -> tuple[np.ndarray, np.ndarray]:
    """The pairs ``(made_p, made_c)`` of one batch (whose references start at ``base``) in
    the order the one-event-at-a-time rules make them. A pair's place is ``3 * row +
    rank``: at a row that gives a span, the children that waited for it (rank 0, in the
    order they came), then this batch's earlier children of it (rank 1); a child whose
    parent came first pairs at its own row (rank 2; ``None``: every pair of its part)."""
    parents, children = np.concatenate(made_p), np.concatenate(made_c)
    if len(place) == 1 and place[0] is None:  # in row order already
        return parents, children
    where = np.concatenate([w if w is not None else (c - base) * 3 + 2
                            for w, c in zip(place, made_c, strict=True)])
    order = np.argsort(where, kind="stable")
    return parents[order], children[order]


class PairCompleter(_Completer):
    """Pairs by parent span, online (see the module docstring).

    An event is referred to by one int, its batch's sequence number shifted left by
    :data:`_PAIR_ROW_BITS` plus its row. A span's first event is kept under
    ``"<trace>/<span>"``; a later event of the same span with another stage is kept (to tell
    its repeats) under ``"<trace>/<span>/<stage>"``. Pairs made by :meth:`add` are gathered
    into tables at the next :meth:`expire` (one ``take`` a round, not one a batch)."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__(timeout_s)
        self._spans: dict[str | bytes, int] = {}  # trace/span -> its first event
        self._seen: dict[str, int] = {}  # trace/span/stage -> batch seq (not the first event)
        # trace/parent -> kid(s), arrival order
        self._waiting: dict[str | bytes, int | list[int]] = {}
        self._orphans = 0  # children in _waiting
        self._by_seq: dict[int, _PairBatch] = {}
        self._made: list[tuple[np.ndarray, np.ndarray]] = []  # (parents, children) refs

    @property
    def pending(self) -> int:
        """Entries waiting: spans that may still get children, and children without
        their parent."""
        return len(self._spans) + self._orphans

    def add(self, table: pa.Table, arrival_s: float, out: Completed) -> None:
        """Take a batch of events (with ``trace_id, span_id, parent_span_id``); its pairs
        come out at the next :meth:`expire`, in the order the events made them."""
        n = table.num_rows
        if n > _PAIR_ROW_MASK + 1:
            for at in range(0, n, _PAIR_ROW_MASK + 1):
                self.add(table.slice(at, _PAIR_ROW_MASK + 1), arrival_s, out)
            return
        self._seq = seq = (self._seq + 1) & _PAIR_SEQ_MASK  # unique among live batches
        base = seq << _PAIR_ROW_BITS
        batch = _PairBatch(seq, arrival_s, table)
        self._by_seq[seq] = batch
        text = _pair_text(table, "trace_id")
        trace = (text, *_pair_fixed(text, _TRACE_CHARS))
        span = _pair_text(table, "span_id")
        keys = _pair_keys(trace, span)
        new, first_of_span, dkeys = self._pair_first(table, text, span, keys, base)
        other = np.flatnonzero(new & ~first_of_span)  # another stage of a known span
        if len(other):
            dkeys = dkeys or _pair_dkeys(text, span, table)
            batch.seen = list(map(dkeys.__getitem__, other.tolist()))
            self._seen.update(zip(batch.seen, itertools.repeat(seq)))
        out.duplicates += n - int(np.count_nonzero(new))
        reg = np.flatnonzero(first_of_span)
        batch.keys = keys if len(reg) == n else list(map(keys.__getitem__, reg.tolist()))
        # pairs, each placed where the one-by-one rules make it (see _pair_order)
        made_p: list[np.ndarray] = []
        made_c: list[np.ndarray] = []
        place: list[np.ndarray | None] = []  # each pair's place; None: its child's row
        if self._waiting and batch.keys:
            self._pair_woken(batch.keys, made_p, made_c, place)
        parent_id = _pair_text(table, "parent_span_id")
        kids = np.flatnonzero(new & _pair_filled(parent_id))
        if len(kids):
            self._pair_kids(trace, parent_id, kids, batch, made_p, made_c, place)
        if made_p:
            self._made.append(_pair_order(made_p, made_c, place, base))
        # the buffers the table keeps alive (its nbytes takes ~30 us to sum)
        self._hold(batch, len(batch.keys) + len(batch.seen) + len(batch.waits),
                   PAIR_ENTRY_BYTES, table.get_total_buffer_size())

    def _pair_first(self, table: pa.Table, trace: pa.Array, span: pa.Array,
                    keys: list[str | bytes], base: int
                    ) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Which rows are new (not repeats) and which give their span's first event (kept
        in ``_spans`` from here on); with each row's ``"<trace>/<span>/<stage>"`` when that
        was needed (else ``[]``)."""
        n = len(keys)
        if not self._seen:  # one probe a row: a known span keeps its first event
            got = np.fromiter(map(self._spans.setdefault, keys, range(base, base + n)),
                              np.int64, n)
            first_of_span = got - base == np.arange(n)
            if first_of_span.all():  # the usual case: every span new, none twice
                return first_of_span, first_of_span, []
            known = np.where(got >> _PAIR_ROW_BITS == base >> _PAIR_ROW_BITS, -1, got)
            if len(set(keys)) == n:
                return self._pair_known(table, known, first_of_span), first_of_span, []
            # a span twice in the batch: its first row (always new here) is kept already
            return self._pair_repeats(table, trace, span, keys, known, base, False)
        known = np.fromiter(map(self._spans.get, keys, itertools.repeat(-1)), np.int64, n)
        return self._pair_repeats(table, trace, span, keys, known, base, len(set(keys)) == n)

    def _pair_repeats(self, table: pa.Table, trace: pa.Array, span: pa.Array,
                      keys: list[str | bytes], known: np.ndarray, base: int, distinct: bool
                      ) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """:meth:`_pair_first` when events may repeat earlier ones or each other
        (``known``: each row's span's first event before the batch, or -1; ``distinct``: no
        span twice in the batch)."""
        n = len(keys)
        new = self._pair_known(table, known, np.ones(n, dtype=bool))
        dkeys = _pair_dkeys(trace, span, table)
        if self._seen:
            new &= ~np.fromiter(map(self._seen.__contains__, dkeys), np.bool_, n)
        if not distinct:  # of repeats within the batch, the first counts
            first_at: dict[str | bytes, int] = {}
            codes = np.fromiter(map(first_at.setdefault, keys, range(n)), np.int64, n)
            stage = pc.dictionary_encode(_pair_stages(table)).indices.to_numpy()
            _, first = np.unique(codes * n + stage, return_index=True)
            new &= np.isin(np.arange(n), first)
        # a span's first event: the first new row of a span unknown before the batch
        first_of_span = np.zeros(n, dtype=bool)
        rows = np.flatnonzero(new & (known < 0))
        if not distinct:
            rows = rows[np.unique(codes[rows], return_index=True)[1]]
        first_of_span[rows] = True
        self._spans.update(zip(map(keys.__getitem__, rows.tolist()), (rows + base).tolist(),
                               strict=True))
        return new, first_of_span, dkeys

    def _pair_known(self, table: pa.Table, known: np.ndarray, new: np.ndarray
                    ) -> np.ndarray:
        """``new`` without the rows that repeat their known span's first event (``known``:
        its reference, -1 for a span not known before the batch)."""
        again = np.flatnonzero(known >= 0)
        if not len(again):
            return new
        mine = _pair_stages(table).take(pa.array(again)).to_pylist()
        new = new.copy()
        new[again] = [a != b for a, b in zip(self._pair_stage_names(known[again]), mine,
                                             strict=True)]
        return new

    def _pair_stage_names(self, refs: np.ndarray) -> list[str]:
        """The stages (as key text) of the events ``refs``."""
        seqs, rows = refs >> _PAIR_ROW_BITS, refs & _PAIR_ROW_MASK
        out: list[str] = [""] * len(refs)
        for s in np.unique(seqs).tolist():
            at = np.flatnonzero(seqs == s)
            names = _pair_stages(self._by_seq[s].table).take(pa.array(rows[at])).to_pylist()
            for k, name in zip(at.tolist(), names, strict=True):
                out[k] = name
        return out

    def _pair_woken(self, reg_keys: list[str | bytes], made_p: list[np.ndarray],
                    made_c: list[np.ndarray], place: list[np.ndarray | None]) -> None:
        """Pair the children of earlier batches that waited for the spans ``reg_keys``
        (just registered), each at its parent's row, in the order they came."""
        spans, waiting = self._spans, self._waiting
        # no span waited for was known before the batch: the smaller side is enough to scan
        woken = ([key for key in waiting if key in spans] if len(waiting) < len(reg_keys)
                 else waiting.keys() & reg_keys)
        if not woken:
            return
        p: list[int] = []
        c: list[int] = []
        for key in woken:
            got = waiting.pop(key)
            ref = spans[key]
            if isinstance(got, int):
                p.append(ref)
                c.append(got)
            else:
                p.extend([ref] * len(got))
                c.extend(got)
        self._orphans -= len(c)
        parents = np.array(p, dtype=np.int64)
        made_p.append(parents)
        made_c.append(np.array(c, dtype=np.int64))
        place.append((parents & _PAIR_ROW_MASK) * 3)

    def _pair_kids(self, trace: _PairTrace, parent_id: pa.Array, kids: np.ndarray,
                   batch: _PairBatch, made_p: list[np.ndarray], made_c: list[np.ndarray],
                   place: list[np.ndarray | None]) -> None:
        """Pair the children ``kids`` (rows of ``batch``) with their parent spans' first
        events; those whose parent is not known yet wait for it."""
        n, base = len(parent_id), batch.seq << _PAIR_ROW_BITS
        pkeys = _pair_keys(trace, parent_id, kids if len(kids) < n else None)
        parent = np.fromiter(map(self._spans.get, pkeys, itertools.repeat(-1)), np.int64,
                             len(kids))
        paired = parent >= 0
        every = bool(paired.all())
        p, c = (parent, kids) if every else (parent[paired], kids[paired])
        if len(p):
            made_p.append(p)
            made_c.append(c + base)
            row = p - base  # in [0, n) for a parent of this batch
            later = (row > c) & (row < n)  # pairs at its parent's row, after those woken
            place.append(np.where(later, row * 3 + 1, c * 3 + 2) if later.any() else None)
        if not every:
            lost = np.flatnonzero(~paired)
            self._pair_wait(list(map(pkeys.__getitem__, lost.tolist())),
                            (kids[lost] + base).tolist(), batch)

    def _pair_wait(self, pkeys: list[str | bytes], refs: list[int], batch: _PairBatch) -> None:
        """Children ``refs`` wait for their parent spans ``pkeys``, after those that
        already wait."""
        waiting = self._waiting
        if len(set(pkeys)) == len(pkeys) and not waiting.keys() & pkeys:
            waiting.update(zip(pkeys, refs, strict=True))
        else:
            for key, ref in zip(pkeys, refs, strict=True):
                got = waiting.get(key)
                if got is None:
                    waiting[key] = ref
                elif isinstance(got, int):
                    waiting[key] = [got, ref]
                else:
                    got.append(ref)
        self._orphans += len(refs)
        batch.waits = pkeys

    def _pair_rows(self, *refs: np.ndarray) -> list[pa.Table]:
        """The events of each of ``refs`` as one table, in the order given: the batches
        they use are concatenated once (when they share a schema) and taken from once a
        table."""
        every = refs[0] if len(refs) == 1 else np.concatenate(refs)
        seqs, rows = every >> _PAIR_ROW_BITS, every & _PAIR_ROW_MASK
        low = int(seqs.min())
        if int(seqs.max()) - low < 1 << 20:  # (unless the numbers wrapped) without a sort
            used = np.flatnonzero(np.bincount(seqs - low)) + low
            at = np.zeros(int(used[-1]) - low + 1, dtype=np.int64)
            at[used - low] = np.arange(len(used))
            which = at[seqs - low]
        else:
            used, which = np.unique(seqs, return_inverse=True)
        tables = [_pair_paired(self._by_seq[s].table) for s in used.tolist()]
        if len(tables) == 1:
            whole = tables[0]
        elif len(refs) > 1 and any(t.schema != tables[0].schema for t in tables):
            return [table for part in refs for table in self._pair_rows(part)]
        else:
            offset = np.cumsum([0] + [t.num_rows for t in tables[:-1]])
            rows = offset[which.reshape(-1)] + rows
            # one take from one chunk: faster than from the chunks of many batches
            whole = pa.concat_tables(tables, promote_options="default").combine_chunks()
        index = pa.array(rows)
        bounds = np.cumsum([0] + [len(part) for part in refs]).tolist()
        return [whole.take(index.slice(start, end - start))
                for start, end in itertools.pairwise(bounds)]

    def _emit(self, out: Completed) -> None:
        """The pairs made since the last call, as aligned tables."""
        if not self._made:
            return
        parents = np.concatenate([p for p, _ in self._made])
        children = np.concatenate([c for _, c in self._made])
        self._made.clear()
        taken_parents, taken_children = self._pair_rows(parents, children)
        out.parents.append(taken_parents)
        out.children.append(taken_children)

    def expire(self, now_s: float, out: Completed, budget_bytes: float = np.inf) -> None:
        """Emit the pairs made since the last call; then drop entries older than the
        timeout (children still waiting count as incomplete), and the oldest ones while
        over ``budget_bytes`` (counted evicted)."""
        self._emit(out)
        spans, seen, waiting = self._spans, self._seen, self._waiting
        for held, over in self._expired(now_s, budget_bytes):
            batch = self._by_seq.pop(held.seq)
            # a key is set only while absent and dropped only here: the batch's keys are
            # still its own
            collections.deque(map(spans.__delitem__, batch.keys), maxlen=0)
            if batch.seen:
                collections.deque(map(seen.__delitem__, batch.seen), maxlen=0)
            lost: list[int] = []
            for pkey, got in zip(batch.waits, map(waiting.get, batch.waits), strict=True):
                if got is None:
                    continue
                if isinstance(got, int):
                    if got >> _PAIR_ROW_BITS == batch.seq:
                        del waiting[pkey]
                        lost.append(got & _PAIR_ROW_MASK)
                    continue
                keep = [k for k in got if k >> _PAIR_ROW_BITS != batch.seq]
                if len(keep) == len(got):
                    continue
                lost.extend(k & _PAIR_ROW_MASK for k in got if k >> _PAIR_ROW_BITS == batch.seq)
                if keep:
                    waiting[pkey] = keep
                else:
                    del waiting[pkey]
            if not lost:
                continue
            self._orphans -= len(lost)
            if over:
                out.evicted += len(lost)
                continue
            stages = _pair_stages(batch.table).take(pa.array(lost)).to_pylist()
            for name, k in collections.Counter(stages).items():  # in the order they came
                out.incomplete[f"parent of {name}"] += k


@dataclass
class _ChainBatch(_Batch):
    """An arrival batch of the chain completer: the rows of its events still pending
    (``table``: all of the batch's rows, or only those) and the requests it opened."""

    first_event: int = 0  # number of the event at row 0 of ``table`` (held without ids)
    id_at: int = 0  # the position of ``request_id`` among the batch's columns
    events: int = 0  # its events still pending
    opened: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))  # slots, in order
    table_bytes: int = 0  # what its rows count in ``nbytes``
    held: bool = True  # still queued (its ``nbytes`` counted in ``pending_bytes``)


_NO_ROWS = pa.table({})


class ChainCompleter(_Completer):
    """Whole requests of a stage chain, online (see the module docstring).

    A pending request is a *slot*: its id (bytes) maps to the slot's number, and numpy
    arrays hold per slot its stages (bits), the batch that opened it and its first and last
    pending event. Pending events are numbered in arrival order; per event, arrays hold the
    next event of its request and the batch that holds its row. A batch keeps the rows of
    its pending events (all of its rows when most are pending) until none is. Requests are
    found, completed and released with numpy operations: Python works per pending request
    (its dict entry), never per event."""

    def __init__(self, chain: tuple[str, ...], timeout_s: float) -> None:
        super().__init__(timeout_s)
        if len(chain) > 63:
            raise ValueError(f"a chain of at most 63 stages, got {len(chain)}")
        self.chain = chain
        self._full = (1 << len(chain)) - 1
        self._bit = np.left_shift(1, np.arange(len(chain), dtype=np.int64))
        bits = next(t for t in (np.uint8, np.uint16, np.uint32, np.uint64)
                    if np.iinfo(t).bits >= len(chain))
        self.unknown_stage: collections.Counter[str] = collections.Counter()
        self._slot_of: dict[bytes, int] = {}  # request id -> slot
        self._ids = np.empty(0, dtype=object)  # slot -> request id (None: free)
        self._have = np.empty(0, dtype=bits)  # slot -> stage bits
        self._opener = np.empty(0, dtype=np.int64)  # slot -> seq of its batch (-1: free)
        self._head = np.empty(0, dtype=np.int64)  # slot -> its first pending event
        self._tail = np.empty(0, dtype=np.int64)  # slot -> its last pending event
        self._free = np.empty(0, dtype=np.int64)  # free slots: _free[:_n_free]
        self._n_free = 0
        self._n_slots = 0  # slots ever used
        self._next = np.empty(0, dtype=np.int64)  # event - _first -> next event (-1: none)
        self._holder = np.empty(0, dtype=np.int64)  # event - _first -> seq of its batch
        self._first = 0  # number of the event at _next[0]
        self._end = 0  # number of the next event
        self._held: dict[int, _ChainBatch] = {}  # seq -> batch with pending events

    @property
    def pending(self) -> int:
        """Requests waiting for a stage."""
        return len(self._slot_of)

    def add(self, table: pa.Table, arrival_s: float, out: Completed) -> None:
        """Take a batch of events (``request_id, stage, node, ts_ns`` + context); the
        requests it completes go to ``out`` (all their events)."""
        stage = table.column("stage")
        sidx = index_in(stage, self.chain)
        known = sidx >= 0
        if not known.all():
            counts = pc.value_counts(stage.filter(pa.array(~known)))
            for name, n in zip(counts.field("values").to_pylist(),
                               counts.field("counts").to_pylist(), strict=True):
                self.unknown_stage[str(name)] += n
        rid, ids = dictionary_codes(table.column("request_id"), np.int32)
        id_at = table.schema.get_field_index("request_id")
        rows_only = table.remove_column(id_at)  # the ids are kept as codes, not strings
        ok = known & (rid >= 0)
        if not ok.any():
            return
        n_ids, n_stages = len(ids), len(self.chain)
        present = np.zeros(n_ids * n_stages, dtype=bool)
        present[rid[ok] * n_stages + sidx[ok]] = True
        bits = present.reshape(n_ids, n_stages) @ self._bit
        keys: list[bytes] = []
        slot = np.full(n_ids, -1, dtype=np.int64)
        if self._slot_of:
            keys = ids.cast(pa.binary()).to_pylist()
            slot = np.fromiter(map(self._slot_of.get, keys, itertools.repeat(-1)),
                               dtype=np.int64, count=n_ids)
        whole = ok & ((bits == self._full) & (slot < 0))[rid]  # whole here, not opened before
        done = np.flatnonzero(whole)
        rest = np.flatnonzero(ok & ~whole)
        if not len(rest):
            if len(done):
                out.events.append(_with_ids(rows_only.take(pa.array(done)), id_at, rid[done],
                                            ids))
            return
        # the other rows in arrival order: a request completes at the row that gives its
        # last missing stage, and a row after that opens it again (a part of its own)
        part = rid[rest]
        origin = np.arange(n_ids, dtype=np.int64)  # part -> request
        have = np.zeros(n_ids, dtype=np.int64)
        have[slot >= 0] = self._have[slot[slot >= 0]]
        stage_of = sidx[rest]
        done_at = self._completion(part, stage_of, have)
        if (done_at[part] < np.arange(len(rest))).any():
            part, origin, have, slot = self._split(part, stage_of, have, slot)
            done_at = self._completion(part, stage_of, have)
        n_parts = len(origin)
        here = np.zeros(n_parts, dtype=bool)
        here[part] = True
        completes = here & (done_at < len(rest))
        finished = np.flatnonzero(completes)
        finished = finished[np.argsort(done_at[finished])]
        rank = np.full(n_parts, -1, dtype=np.int64)
        rank[finished] = np.arange(len(finished))
        earlier = slot[finished]
        opened_before = np.flatnonzero(earlier >= 0)
        owner, events = self._events_of(earlier[opened_before])
        row_done = completes[part]
        mine = rest[row_done]
        mine_rank = rank[part[row_done]]
        # released: the whole requests' rows, then each completed request in the order of
        # completion, its earlier events before this batch's rows
        sources, position = self._sources(rows_only, events)
        by_rank = np.argsort(np.concatenate([opened_before[owner] * 2, mine_rank * 2 + 1]),
                             kind="stable")
        rows = np.concatenate([done, np.concatenate([position, mine])[by_rank]])
        if len(rows):
            request = np.concatenate([origin[finished[opened_before[owner]]],
                                      rid[mine]])[by_rank]
            out.events.append(_with_ids(_take(sources, rows), id_at,
                                        np.concatenate([rid[done], request]), ids))
        if len(opened_before):
            self._release(earlier[opened_before], events)
        waiting = here & ~completes
        keep = waiting[part]
        if keep.any():
            if not keys:
                keys = ids.cast(pa.binary()).to_pylist()
            self._hold_rows(rows_only, id_at, arrival_s, rest[keep], part[keep],
                            stage_of[keep], slot, origin, keys)

    def expire(self, now_s: float, out: Completed, budget_bytes: float = np.inf) -> None:
        """Release requests older than the timeout (counted incomplete by missing stage),
        and drop the oldest while over ``budget_bytes`` (counted evicted)."""
        tables: list[pa.Table] = []
        names: list[bytes] = []
        id_at = 0
        for queued, over in self._expired(now_s, budget_bytes):
            batch = cast(_ChainBatch, queued)
            batch.held = False
            slots = batch.opened[self._opener[batch.opened] == batch.seq]
            if not len(slots):
                continue
            owner, events = self._events_of(slots)
            if over:
                out.evicted += len(slots)
            else:
                missing = (self._have[slots][:, None] & self._bit) == 0
                first = np.where(missing.any(axis=0), missing.argmax(axis=0), len(slots))
                for k in np.lexsort((np.arange(len(self.chain)), first)).tolist():
                    if first[k] < len(slots):
                        out.incomplete[self.chain[k]] += int(missing[:, k].sum())
                sources, position = self._sources(None, events)
                if not tables:
                    id_at = batch.id_at
                tables.append(_take(sources, position))
                names.extend(self._ids[slots[owner]].tolist())
            self._release(slots, events)
        if tables:
            codes: dict[bytes, int] = {}
            request = np.fromiter((codes.setdefault(name, len(codes)) for name in names),
                                  dtype=np.int64, count=len(names))
            ids = pa.array(list(codes), pa.binary()).cast(pa.string())
            released = (pa.concat_tables(tables, promote_options="default")
                        if len(tables) > 1 else tables[0])
            out.events.append(_with_ids(released, id_at, request, ids))

    def _completion(self, part: np.ndarray, stage: np.ndarray, have: np.ndarray
                    ) -> np.ndarray:
        """Per request part: the position (among the rows ``part``) of the row that gives
        it its last missing stage; ``len(part)`` when it stays incomplete."""
        n, n_stages = len(part), len(self.chain)
        first = np.full(len(have) * n_stages, n, dtype=np.int64)
        np.minimum.at(first, part * n_stages + stage, np.arange(n, dtype=np.int64))
        missing = (have[:, None] & self._bit) == 0
        at: np.ndarray = np.where(missing, first.reshape(len(have), n_stages), -1).max(axis=1)
        return at

    def _split(self, part: np.ndarray, stage: np.ndarray, have: np.ndarray, slot: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Requests with rows after their completion (a stage repeated) split into parts
        that each end where they complete; a part after the first is a new request.
        Returns the rows' parts, each part's request, stages and slot (-1: new)."""
        part = part.copy()
        origin = list(range(len(have)))
        done_at = self._completion(part, stage, have)
        for request in np.unique(part[done_at[part] < np.arange(len(part))]).tolist():
            now = request
            bits = int(have[request])
            for at, k in zip(np.flatnonzero(part == request).tolist(),
                             stage[part == request].tolist(), strict=True):
                part[at] = now
                bits |= 1 << k
                if bits == self._full:  # complete: the next row starts a new part
                    bits, now = 0, len(origin)
                    origin.append(request)
        extra = len(origin) - len(have)
        return (part, np.asarray(origin, dtype=np.int64),
                np.concatenate([have, np.zeros(extra, dtype=np.int64)]),
                np.concatenate([slot, np.full(extra, -1, dtype=np.int64)]))

    def _events_of(self, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The pending events of ``slots``: ``(index into slots, event number)``, slot by
        slot, each slot's in arrival order."""
        index = np.arange(len(slots), dtype=np.int64)
        event = self._head[slots]
        indices, events = [index], [event]
        while len(event):
            following = self._next[event - self._first]
            more = following >= 0
            index, event = index[more], following[more]
            indices.append(index)
            events.append(event)
        at, ev = np.concatenate(indices), np.concatenate(events)
        order = np.argsort(at, kind="stable")
        return at[order], ev[order]

    def _sources(self, table: pa.Table | None, events: np.ndarray
                 ) -> tuple[list[pa.Table], np.ndarray]:
        """The tables holding ``events`` (after ``table``, when given) and each event's
        row in their concatenation."""
        sources = [] if table is None else [table]
        at = 0 if table is None else table.num_rows
        position = np.empty(len(events), dtype=np.int64)
        holder = self._holder[events - self._first]
        if len(events) and holder.min() == holder.max():
            batch = self._held[int(holder[0])]
            return [*sources, batch.table], events - batch.first_event + at
        for seq in np.unique(holder).tolist():
            batch = self._held[seq]
            m = holder == seq
            position[m] = events[m] - batch.first_event + at
            sources.append(batch.table)
            at += batch.table.num_rows
        return sources, position

    def _hold_rows(self, table: pa.Table, id_at: int, arrival_s: float, rows: np.ndarray,
                   part: np.ndarray, stage: np.ndarray, slot: np.ndarray,
                   origin: np.ndarray, names: list[bytes]) -> None:
        """Keep ``rows`` of ``table`` (the batch without its ``request_id``, which was at
        ``id_at``) pending: appended to their part's slot, or to a new slot that this batch
        opens (``origin``: each part's request, ``names``: each request's id)."""
        self._seq += 1
        batch = _ChainBatch(self._seq, arrival_s, table, id_at=id_at)
        if 2 * len(rows) < table.num_rows:  # keep only these rows
            batch.table = table.take(pa.array(rows))
            local = np.arange(len(rows), dtype=np.int64)
        else:
            local = rows
        numbers = batch.table.num_rows
        at = self._reserve(numbers)
        batch.first_event = self._end
        self._end += numbers
        self._holder[at:at + numbers] = batch.seq
        event = batch.first_event + local
        # link each part's rows in order; its first row links from its slot's last event
        order = np.argsort(part, kind="stable")
        p, e = part[order], event[order]
        same = p[1:] == p[:-1]
        self._next[e[:-1][same] - self._first] = e[1:][same]
        start = np.flatnonzero(np.concatenate([[True], ~same]))
        end = np.append(start[1:], len(p)) - 1
        self._next[e[end] - self._first] = -1
        parts, first_ev, last_ev = p[start], e[start], e[end]
        got = np.bitwise_or.reduceat(self._bit[stage[order]], start)
        known = slot[parts]
        old = known >= 0
        s = known[old]
        self._next[self._tail[s] - self._first] = first_ev[old]
        self._tail[s] = last_ev[old]
        self._have[s] = self._have[s] | got[old]
        new = np.flatnonzero(~old)
        new = new[np.argsort(first_ev[new])]  # opened in the order of their first row
        s = self._alloc(len(new))
        self._head[s], self._tail[s], self._have[s] = first_ev[new], last_ev[new], got[new]
        self._opener[s] = batch.seq
        opened = [names[i] for i in origin[parts[new]].tolist()]
        self._ids[s] = opened
        self._slot_of.update(zip(opened, s.tolist(), strict=True))
        batch.opened = s
        batch.events = len(rows)
        batch.table_bytes = batch.table.get_total_buffer_size() + EVENT_BYTES * numbers
        batch.nbytes = batch.table_bytes + REQUEST_BYTES * len(s)
        self.pending_bytes += batch.nbytes
        self._batches.append(batch)
        self._held[batch.seq] = batch

    def _release(self, slots: np.ndarray, events: np.ndarray) -> None:
        """Forget ``slots`` and their pending ``events`` (a batch left without pending
        events drops its rows)."""
        owners, n = np.unique(self._opener[slots], return_counts=True)
        for seq, count in zip(owners.tolist(), n.tolist(), strict=True):
            self._charge(self._held[seq], -REQUEST_BYTES * count)
        collections.deque(map(self._slot_of.__delitem__, self._ids[slots].tolist()), maxlen=0)
        self._ids[slots] = None
        self._opener[slots] = -1
        self._have[slots] = 0
        free = self._n_free + len(slots)
        if free > len(self._free):
            self._free = np.concatenate([self._free[:self._n_free],
                                         np.empty(max(free, 2 * len(self._free)), np.int64)])
        self._free[self._n_free:free] = slots
        self._n_free = free
        holders, n = np.unique(self._holder[events - self._first], return_counts=True)
        for seq, count in zip(holders.tolist(), n.tolist(), strict=True):
            batch = self._held[seq]
            batch.events -= count
            if not batch.events:
                self._charge(batch, -batch.table_bytes)
                batch.table = _NO_ROWS
                del self._held[seq]

    def _charge(self, batch: _ChainBatch, delta_bytes: int) -> None:
        if batch.held:
            batch.nbytes += delta_bytes
            self.pending_bytes += delta_bytes

    def _alloc(self, n: int) -> np.ndarray:
        """``n`` free slots (reused ones first)."""
        reuse = min(n, self._n_free)
        out = self._free[self._n_free - reuse:self._n_free].copy()
        self._n_free -= reuse
        more = n - reuse
        if more:
            if self._n_slots + more > len(self._have):
                size = max(2 * len(self._have), self._n_slots + more, 1024)
                grow = size - len(self._have)
                self._ids = np.concatenate([self._ids, np.full(grow, None, dtype=object)])
                self._have = np.concatenate([self._have, np.zeros(grow, self._have.dtype)])
                self._opener = np.concatenate([self._opener, np.full(grow, -1, np.int64)])
                self._head = np.concatenate([self._head, np.full(grow, -1, np.int64)])
                self._tail = np.concatenate([self._tail, np.full(grow, -1, np.int64)])
            out = np.concatenate([out, np.arange(self._n_slots, self._n_slots + more)])
            self._n_slots += more
        return out

    def _reserve(self, n: int) -> int:
        """Room for ``n`` more events; returns the index of the first in ``_next``."""
        live = self._end - self._first
        if live + n > len(self._next):
            oldest = next(iter(self._held.values())).first_event if self._held else self._end
            keep = self._end - oldest
            size = max(len(self._next), 2 * (keep + n), 4096)
            nxt = np.empty(size, np.int64)
            holder = np.empty(size, np.int64)
            nxt[:keep] = self._next[oldest - self._first:live]
            holder[:keep] = self._holder[oldest - self._first:live]
            self._next, self._holder, self._first = nxt, holder, oldest
        return self._end - self._first


def _with_ids(table: pa.Table, at: int, request: np.ndarray, ids: pa.Array) -> pa.Table:
    """``table`` with a ``request_id`` column at position ``at``: each row's ``request``
    (a code into the strings ``ids``), dictionary-encoded with the ids it uses in the order
    they first appear."""
    n_ids = len(ids)
    first = np.full(n_ids, len(request), dtype=np.int64)
    np.minimum.at(first, request, np.arange(len(request), dtype=np.int64))
    order = np.argsort(first, kind="stable")
    rank = np.empty(n_ids, dtype=np.int32)
    rank[order] = np.arange(n_ids, dtype=np.int32)
    used = order[:np.count_nonzero(first < len(request))]
    column = pa.DictionaryArray.from_arrays(pa.array(rank[request], pa.int32()),
                                            ids.take(pa.array(used)))
    return table.add_column(at, "request_id", column)


def _take(sources: list[pa.Table], rows: np.ndarray) -> pa.Table:
    """Rows of the concatenation of ``sources`` (one ``take``)."""
    whole = sources[0] if len(sources) == 1 else pa.concat_tables(
        sources, promote_options="default")
    return whole.take(pa.array(rows))
