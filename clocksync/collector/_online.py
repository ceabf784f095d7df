"""Online completion: stage events arrive in batches, late, out of order and from several
nodes; this turns them into completed units (pairs of parent and child span events, or
whole requests of a stage chain) as soon as they are complete, and names what is missing
when they time out.

Pairs follow :func:`clocksync.latency.hop_table`'s batch rules exactly: an event repeated
with the same trace, span and stage is a duplicate (the first wins); a child pairs with the
first event its parent span gave; a child whose parent never comes lacks
``"parent of <stage>"``. A request of a chain is complete when every stage of the chain has
an event; at its timeout it is released with what it has (as batch analysis would see it)
and counted incomplete, naming the stages it lacks.

Time here is arrival time (a monotonic clock, s): an entry waits ``timeout_s`` after its
arrival. Nothing here corrects a timestamp.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..latency._arrow import dictionary_codes, index_in

__all__ = ["ChainCompleter", "Completed", "PairCompleter"]

#: bytes one pending entry costs beyond its row's data (dict slots, keys, tuples)
ENTRY_BYTES = 240


@dataclass
class Completed:
    """What one call made complete.

    Attributes:
        parents, children: pairs mode: the parent and child event of each pair (aligned).
        events: chain mode: the events of whole (or timed-out) requests.
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
    keys: list[str] = field(default_factory=list)  # span keys / request ids it added
    waits: list[str] = field(default_factory=list)  # parent keys its children wait on
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

    def _hold(self, batch: _Batch, entries: int) -> None:
        """Keep ``batch`` (its table and ``entries`` pending entries) until it expires."""
        batch.nbytes = batch.table.nbytes + ENTRY_BYTES * entries
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


class PairCompleter(_Completer):
    """Pairs by parent span, online (see the module docstring)."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__(timeout_s)
        self._spans: dict[str, tuple[pa.Table, int, int]] = {}  # trace/span -> first event
        self._seen: dict[str, int] = {}  # trace/span/stage -> batch seq
        self._waiting: dict[str, list[tuple[pa.Table, int, int]]] = {}  # trace/parent -> kids
        self._orphans = 0  # children in _waiting

    @property
    def pending(self) -> int:
        """Entries waiting: spans that may still get children, and children without
        their parent."""
        return len(self._spans) + self._orphans

    def add(self, table: pa.Table, arrival_s: float, out: Completed) -> None:
        """Take a batch of events (with ``trace_id, span_id, parent_span_id``)."""
        batch = self._new_batch(table, arrival_s)
        trace = table.column("trace_id").to_pylist()
        span = table.column("span_id").to_pylist()
        parent = table.column("parent_span_id").to_pylist()
        stage = table.column("stage").to_pylist()
        parents: list[tuple[pa.Table, int]] = []
        children: list[tuple[pa.Table, int]] = []
        spans, seen, waiting = self._spans, self._seen, self._waiting
        for i in range(table.num_rows):
            t = trace[i] or ""
            key = f"{t}/{span[i] or ''}"
            dkey = f"{key}/{stage[i]}"
            if dkey in seen:
                out.duplicates += 1
                continue
            seen[dkey] = batch.seq
            batch.keys.append(dkey)
            if key not in spans:
                spans[key] = (table, i, batch.seq)
                batch.keys.append(key)
                kids = waiting.pop(key, None)
                if kids:
                    self._orphans -= len(kids)
                    for kt, ki, _ in kids:
                        parents.append((table, i))
                        children.append((kt, ki))
            if parent[i]:
                pkey = f"{t}/{parent[i]}"
                found = spans.get(pkey)
                if found is not None:
                    parents.append((found[0], found[1]))
                    children.append((table, i))
                else:
                    waiting.setdefault(pkey, []).append((table, i, batch.seq))
                    self._orphans += 1
                    batch.waits.append(pkey)
        self._hold(batch, table.num_rows)
        p, c = _take_rows(parents), _take_rows(children)
        if p is not None and c is not None:
            out.parents.append(p)
            out.children.append(c)

    def expire(self, now_s: float, out: Completed, budget_bytes: float = np.inf) -> None:
        """Drop entries older than the timeout (children still waiting count as
        incomplete), and the oldest ones while over ``budget_bytes`` (counted evicted)."""
        for batch, over in self._expired(now_s, budget_bytes):
            for key in batch.keys:
                if self._seen.get(key) == batch.seq:
                    del self._seen[key]
                elif (entry := self._spans.get(key)) is not None and entry[2] == batch.seq:
                    del self._spans[key]
            stage = batch.table.column("stage")
            for pkey in batch.waits:
                kids = self._waiting.get(pkey)
                if not kids:
                    continue
                keep = [k for k in kids if k[2] != batch.seq]
                self._orphans -= len(kids) - len(keep)
                for _, row, _ in (k for k in kids if k[2] == batch.seq):
                    if over:
                        out.evicted += 1
                    else:
                        out.incomplete[f"parent of {stage[row].as_py()}"] += 1
                if keep:
                    self._waiting[pkey] = keep
                else:
                    del self._waiting[pkey]


class ChainCompleter(_Completer):
    """Whole requests of a stage chain, online (see the module docstring)."""

    def __init__(self, chain: tuple[str, ...], timeout_s: float) -> None:
        super().__init__(timeout_s)
        self.chain = chain
        self._full = (1 << len(chain)) - 1
        self._open: dict[str, tuple[int, list[tuple[pa.Table, int]], int]] = {}
        self.unknown_stage: collections.Counter[str] = collections.Counter()

    @property
    def pending(self) -> int:
        """Requests waiting for a stage."""
        return len(self._open)

    def add(self, table: pa.Table, arrival_s: float, out: Completed) -> None:
        """Take a batch of events (``request_id, stage, node, ts_ns`` + context)."""
        sidx = index_in(table.column("stage"), self.chain)
        if (sidx < 0).any():
            for name in np.asarray(table.column("stage").to_pylist(), dtype=object)[sidx < 0]:
                self.unknown_stage[str(name)] += 1
        rid, ids = dictionary_codes(table.column("request_id"))
        ok = (sidx >= 0) & (rid >= 0)
        bits = np.zeros(len(ids), dtype=np.int64)
        np.bitwise_or.at(bits, rid[ok], np.left_shift(1, sidx[ok]))
        whole = bits == self._full
        if self._open:  # requests of this batch that earlier batches opened: not whole here
            seen = pc.is_in(ids, value_set=pa.array(list(self._open), pa.string()))
            whole &= ~np.asarray(seen.to_numpy(zero_copy_only=False), dtype=bool)
        done_rows = np.flatnonzero(ok & whole[np.maximum(rid, 0)])
        if len(done_rows):  # whole within this batch: no Python work per request
            out.events.append(table.take(pa.array(done_rows)))
        rest = np.flatnonzero(ok & ~whole[np.maximum(rid, 0)])
        if not len(rest):
            return
        batch = self._new_batch(table, arrival_s)
        id_list = ids.to_pylist()
        finished: list[tuple[pa.Table, int]] = []
        for row in rest.tolist():
            key = id_list[rid[row]]
            entry = self._open.get(key)
            have, rows = (entry[0], entry[1]) if entry is not None else (0, [])
            if entry is None:
                batch.keys.append(key)
            rows.append((table, row))
            have |= 1 << int(sidx[row])
            if have == self._full:
                finished.extend(rows)
                self._open.pop(key, None)
            else:
                self._open[key] = (have, rows, entry[2] if entry is not None else batch.seq)
        self._hold(batch, len(rest))
        done = _take_rows(finished)
        if done is not None:
            out.events.append(done)

    def expire(self, now_s: float, out: Completed, budget_bytes: float = np.inf) -> None:
        """Release requests older than the timeout (counted incomplete by missing stage),
        and drop the oldest while over ``budget_bytes`` (counted evicted)."""
        released: list[tuple[pa.Table, int]] = []
        for batch, over in self._expired(now_s, budget_bytes):
            for key in batch.keys:
                entry = self._open.get(key)
                if entry is None or entry[2] != batch.seq:
                    continue
                del self._open[key]
                if over:
                    out.evicted += 1
                    continue
                for k, stage in enumerate(self.chain):
                    if not entry[0] >> k & 1:
                        out.incomplete[stage] += 1
                released.extend(entry[1])
        done = _take_rows(released)
        if done is not None:
            out.events.append(done)
