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
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..latency._arrow import dictionary_codes, index_in

__all__ = ["ChainCompleter", "Completed", "PairCompleter"]

#: bytes one pending entry costs beyond its row's data (dict slots, keys, tuples)
ENTRY_BYTES = 240
#: bytes one pending entry of :class:`PairCompleter` costs beyond its batch's table: a span's
#: key text with its dict slot and reference (or an orphan's parent key, slot and
#: reference). tracemalloc measured 173 B an entry over 331k Restate spans (49-character
#: keys: 32 hex digits of trace, 16 of span), whether spans or orphans
PAIR_ENTRY_BYTES = 176


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

    def _hold(self, batch: _Batch, entries: int, entry_bytes: int = ENTRY_BYTES,
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


def _pair_dkeys(keys: pa.Array, table: pa.Table) -> list[str]:
    """``"<trace>/<span>/<stage>"`` of each row."""
    out: list[str] = pc.binary_join_element_wise(keys, _pair_stages(table), "/").to_pylist()
    return out


class PairCompleter(_Completer):
    """Pairs by parent span, online (see the module docstring).

    An event is referred to by one int, its batch's sequence number shifted left by
    :data:`_PAIR_ROW_BITS` plus its row. A span's first event is kept under
    ``"<trace>/<span>"``; a later event of the same span with another stage is kept (to tell
    its repeats) under ``"<trace>/<span>/<stage>"``. Pairs made by :meth:`add` are gathered
    into tables at the next :meth:`expire` (one ``take`` a round, not one a batch)."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__(timeout_s)
        self._spans: dict[str, int] = {}  # trace/span -> its first event
        self._seen: dict[str, int] = {}  # trace/span/stage -> batch seq (not the first event)
        self._waiting: dict[str, int | list[int]] = {}  # trace/parent -> kid(s), arrival order
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
        trace = _pair_text(table, "trace_id")
        key_arr = pc.binary_join_element_wise(trace, _pair_text(table, "span_id"), "/",
                                              null_handling="replace")
        keys: list[str] = key_arr.to_pylist()
        spans, seen = self._spans, self._seen
        dkeys: list[str] = []  # trace/span/stage of each row, made when needed
        distinct = len(set(keys)) == n  # no span twice in the batch (the usual case)
        if distinct and not seen:  # one probe a row: a known span keeps its first event
            got = np.fromiter(map(spans.setdefault, keys, range(base, base + n)), np.int64, n)
            known = np.where(got - base == np.arange(n), -1, got)
            first_of_span = known < 0
            new = self._pair_known(table, known, first_of_span)
        else:
            known = np.fromiter(map(spans.get, keys, itertools.repeat(-1)), np.int64, n)
            new = self._pair_known(table, known, np.ones(n, dtype=bool))
            dkeys = _pair_dkeys(key_arr, table)
            if seen:
                new &= ~np.fromiter(map(seen.__contains__, dkeys), np.bool_, n)
            if not distinct:  # of repeats within the batch, the first counts
                codes = pc.dictionary_encode(key_arr).indices.to_numpy().astype(np.int64)
                stage = pc.dictionary_encode(_pair_stages(table)).indices.to_numpy()
                _, first = np.unique(codes * n + stage, return_index=True)
                new &= np.isin(np.arange(n), first)
            # a span's first event: the first new row of a span unknown before the batch
            first_of_span = np.zeros(n, dtype=bool)
            rows = np.flatnonzero(new & (known < 0))
            if not distinct:
                rows = rows[np.unique(codes[rows], return_index=True)[1]]
            first_of_span[rows] = True
            spans.update(zip(map(keys.__getitem__, rows.tolist()), (rows + base).tolist(),
                             strict=True))
        other = np.flatnonzero(new & ~first_of_span)  # another stage of a known span
        if len(other):
            dkeys = dkeys or _pair_dkeys(key_arr, table)
            batch.seen = list(map(dkeys.__getitem__, other.tolist()))
            seen.update(zip(batch.seen, itertools.repeat(seq)))
        out.duplicates += n - int(np.count_nonzero(new))
        reg = np.flatnonzero(first_of_span)
        batch.keys = keys if len(reg) == n else list(map(keys.__getitem__, reg.tolist()))
        # pairs, each placed where the one-by-one rules make it: a child whose parent came
        # first pairs at its own row; children waiting for a span pair at the row that gave
        # the span (those of earlier batches first, in arrival order, then this batch's)
        made_p: list[np.ndarray] = []
        made_c: list[np.ndarray] = []
        place: list[np.ndarray | None] = []  # (row, rank, then) of each pair; None: own rows
        if self._waiting and batch.keys:
            self._pair_woken(batch.keys, made_p, made_c, place)
        parent_id = _pair_text(table, "parent_span_id")
        kids = np.flatnonzero(new & _pair_filled(parent_id))
        if len(kids):
            pkeys: list[str] = pc.binary_join_element_wise(
                trace, parent_id, "/", null_handling="replace").to_pylist()
            if len(kids) < n:
                pkeys = list(map(pkeys.__getitem__, kids.tolist()))
            parent = np.fromiter(map(spans.get, pkeys, itertools.repeat(-1)), np.int64,
                                 len(kids))
            paired = parent >= 0
            if paired.any():
                p, c = parent[paired], kids[paired]
                made_p.append(p)
                made_c.append(c + base)
                later = (p >> _PAIR_ROW_BITS == seq) & ((p & _PAIR_ROW_MASK) > c)
                place.append(np.stack([np.where(later, p & _PAIR_ROW_MASK, c),
                                       np.where(later, 1, 2), np.where(later, c, 0)])
                             if later.any() else None)
            if not paired.all():
                lost = np.flatnonzero(~paired)
                self._pair_wait(list(map(pkeys.__getitem__, lost.tolist())),
                                (kids[lost] + base).tolist(), batch)
        if made_p:
            parents, children = np.concatenate(made_p), np.concatenate(made_c)
            if len(place) > 1 or place[0] is not None:  # else: in row order already
                where = np.concatenate([
                    w if w is not None else np.stack([c - base, np.full(len(c), 2),
                                                      np.zeros(len(c), dtype=np.int64)])
                    for w, c in zip(place, made_c, strict=True)], axis=1)
                order = np.lexsort((where[2], where[1], where[0]))
                parents, children = parents[order], children[order]
            self._made.append((parents, children))
        # the buffers the table keeps alive (its nbytes takes ~30 us to sum)
        self._hold(batch, len(batch.keys) + len(batch.seen) + len(batch.waits),
                   PAIR_ENTRY_BYTES, table.get_total_buffer_size())

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

    def _pair_woken(self, reg_keys: list[str], made_p: list[np.ndarray],
                    made_c: list[np.ndarray], place: list[np.ndarray | None]) -> None:
        """Pair the children of earlier batches that waited for the spans ``reg_keys``
        (just registered)."""
        spans, waiting = self._spans, self._waiting
        woken = waiting.keys() & reg_keys
        if not woken:
            return
        p: list[int] = []
        c: list[int] = []
        sub: list[int] = []
        for key in woken:
            got = waiting.pop(key)
            ref = spans[key]
            if isinstance(got, int):
                p.append(ref)
                c.append(got)
                sub.append(0)
            else:
                p.extend([ref] * len(got))
                c.extend(got)
                sub.extend(range(len(got)))
        self._orphans -= len(c)
        parents = np.array(p, dtype=np.int64)
        made_p.append(parents)
        made_c.append(np.array(c, dtype=np.int64))
        place.append(np.stack([parents & _PAIR_ROW_MASK, np.zeros(len(p), dtype=np.int64),
                               np.array(sub, dtype=np.int64)]))

    def _pair_wait(self, pkeys: list[str], refs: list[int], batch: _PairBatch) -> None:
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

    def _pair_rows(self, refs: np.ndarray) -> pa.Table:
        """The events ``refs`` as one table, in the order given (one ``take``)."""
        seqs, rows = refs >> _PAIR_ROW_BITS, refs & _PAIR_ROW_MASK
        low = int(seqs.min())
        if int(seqs.max()) - low < 1 << 20:  # (unless the numbers wrapped) without a sort
            used = np.flatnonzero(np.bincount(seqs - low)) + low
            at = np.zeros(int(used[-1]) - low + 1, dtype=np.int64)
            at[used - low] = np.arange(len(used))
            which = at[seqs - low]
        else:
            used, which = np.unique(seqs, return_inverse=True)
        tables = [self._by_seq[s].table for s in used.tolist()]
        if len(tables) == 1:
            return tables[0].take(pa.array(rows))
        offset = np.cumsum([0] + [t.num_rows for t in tables[:-1]])
        # one take from one chunk: faster than from the chunks of many batches
        whole = pa.concat_tables(tables, promote_options="default").combine_chunks()
        return whole.take(pa.array(offset[which.reshape(-1)] + rows))

    def _emit(self, out: Completed) -> None:
        """The pairs made since the last call, as aligned tables."""
        if not self._made:
            return
        parents = np.concatenate([p for p, _ in self._made])
        children = np.concatenate([c for _, c in self._made])
        self._made.clear()
        out.parents.append(self._pair_rows(parents))
        out.children.append(self._pair_rows(children))

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
            for key in batch.keys:
                del spans[key]
            for key in batch.seen:
                del seen[key]
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
