"""Online pairing by parent span gives, batch after batch, what the one-event-at-a-time rules
give (the module docstring of ``clocksync.collector._online``): the same pairs in the same
order, the same duplicates, incomplete children, evictions and pending entries, whatever the
batches and their order."""

from __future__ import annotations

import collections
import gc
import tracemalloc
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pytest

from clocksync.collector import _online
from clocksync.collector._online import PAIR_ENTRY_BYTES, Completed, PairCompleter

Row = tuple[str | None, str | None, str | None, str | None, int]  # trace, span, parent, stage, id


@dataclass
class _Held:
    seq: int
    arrival_s: float
    spans: list[str] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)
    waits: list[str] = field(default_factory=list)


class Reference:
    """The rules, one event at a time: a dict of spans' first events, a dict of events seen,
    the children waiting per parent span; each batch forgets what it set when it expires."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.spans: dict[str, tuple[int, int]] = {}  # key -> (event id, batch)
        self.seen: dict[str, int] = {}  # key/stage -> batch
        self.waiting: dict[str, list[tuple[int, int, str]]] = {}  # (event id, batch, stage)
        self.batches: collections.deque[_Held] = collections.deque()
        self.seq = 0
        self.pairs: list[tuple[int, int]] = []
        self.duplicates = 0
        self.incomplete: collections.Counter[str] = collections.Counter()
        self.evicted = 0

    @property
    def pending(self) -> int:
        return len(self.spans) + sum(len(k) for k in self.waiting.values())

    def add(self, rows: list[Row], arrival_s: float) -> None:
        self.seq += 1
        held = _Held(self.seq, arrival_s)
        for trace, span, parent, stage, eid in rows:
            key = f"{trace or ''}/{span or ''}"
            dkey = f"{key}/{stage}"
            if dkey in self.seen:
                self.duplicates += 1
                continue
            self.seen[dkey] = held.seq
            held.seen.append(dkey)
            if key not in self.spans:
                self.spans[key] = (eid, held.seq)
                held.spans.append(key)
                for kid, _, _ in self.waiting.pop(key, []):
                    self.pairs.append((eid, kid))
            if parent:
                pkey = f"{trace or ''}/{parent}"
                if pkey in self.spans:
                    self.pairs.append((self.spans[pkey][0], eid))
                else:
                    self.waiting.setdefault(pkey, []).append((eid, held.seq, f"{stage}"))
                    held.waits.append(pkey)
        self.batches.append(held)

    def expire(self, now_s: float, evict: bool = False) -> None:
        while self.batches and (evict or now_s - self.batches[0].arrival_s >= self.timeout_s):
            held = self.batches.popleft()
            for key in held.spans:
                if key in self.spans and self.spans[key][1] == held.seq:
                    del self.spans[key]
            for key in held.seen:
                if self.seen.get(key) == held.seq:
                    del self.seen[key]
            for pkey in held.waits:
                kids = self.waiting.get(pkey, [])
                for _, _, stage in (k for k in kids if k[1] == held.seq):
                    if evict:
                        self.evicted += 1
                    else:
                        self.incomplete[f"parent of {stage}"] += 1
                keep = [k for k in kids if k[1] != held.seq]
                if keep:
                    self.waiting[pkey] = keep
                else:
                    self.waiting.pop(pkey, None)


#: ids of OTLP's widths (32 and 16 characters, keyed by their bytes) and others (keyed by
#: text), among them ids of those widths with a "/" that give the "<trace>/<span>" of others
_TRACES = ["0af7651916cd43dd8448eb211c80319c", "4bf92f3577b34da6a3ce929d0e0e4736",
           "4BF92F3577B34DA6A3CE929D0E0E4736", "t0", "a" * 15 + "/" + "b" * 16, "a" * 15]
_SPANS = ["b7ad6b7169203331", "00f067aa0ba902b7", "00F067AA0BA902B7", "s1", "c" * 16,
          "b" * 16 + "/" + "c" * 16, "c/" + "d" * 14, "0" * 16]


def _events(rng: np.random.Generator, n: int, one_stage: bool, otlp: bool = False
            ) -> list[Row]:
    """Random events over few traces and span ids: repeats, several stages a span (unless
    ``one_stage``), missing parents, null and empty ids, a span its own parent; ``otlp``:
    ids mostly of OTLP's widths."""
    spans = [f"s{k}" for k in range(max(4, n // 3 if not one_stage else n))]
    if otlp:
        spans = [f"{k:016x}" for k in rng.integers(0, 2**62, len(spans))] + _SPANS
    stages = ["ingress", "start", "end"]
    rows: list[Row] = []
    for eid in range(n):
        trace = (None if rng.random() < 0.03 else str(rng.choice(_TRACES)) if otlp
                 else f"t{rng.integers(3)}")
        span = None if rng.random() < 0.02 else str(rng.choice(spans))
        r = rng.random()
        parent = (None if r < 0.15 else "" if r < 0.2 else span if r < 0.22
                  else str(rng.choice(spans)))
        number = sum(map(ord, span)) if otlp and span else int(span[1:]) if span else 0
        stage = (stages[number % 3] if one_stage and span
                 else None if rng.random() < 0.02 else str(rng.choice(stages)))
        rows.append((trace, span, parent, stage, eid))
    return rows


def _table(rows: list[Row], rng: np.random.Generator, coded: bool = False,
           noted: bool = False) -> pa.Table:
    trace, span, parent, stage, eid = (list(c) for c in zip(*rows, strict=True))
    table = pa.table({
        "request_id": pa.array([f"r{e}" for e in eid]),
        "stage": pa.array(stage, pa.string()),
        "node": pa.array(["n1"] * len(rows)),
        "ts_ns": pa.array(eid, pa.int64()),
        "trace_id": pa.array(trace, pa.string()),
        "span_id": pa.array(span, pa.string()),
        "parent_span_id": pa.array(parent, pa.string()),
        "eid": pa.array(eid, pa.int64()),
    })
    if coded:  # dictionary-typed stages
        table = table.set_column(1, "stage", table.column("stage").dictionary_encode())
    if noted:  # a column other batches lack
        table = table.append_column("note", pa.array([f"n{e}" for e in eid]))
    if len(rows) > 1 and rng.random() < 0.3:  # several chunks
        half = len(rows) // 2
        table = pa.concat_tables([table.slice(0, half), table.slice(half)])
    return table


def _pairs(out: Completed) -> list[tuple[int, int]]:
    assert len(out.parents) == len(out.children)
    got: list[tuple[int, int]] = []
    for p, c in zip(out.parents, out.children, strict=True):
        assert p.num_rows == c.num_rows
        got += zip(p.column("eid").to_pylist(), c.column("eid").to_pylist(), strict=True)
    return got


@pytest.mark.parametrize("seed", range(40))
def test_batches_pair_as_one_event_at_a_time(seed: int) -> None:
    _compare(seed)


@pytest.mark.parametrize("seed", range(24))
def test_otlp_ids_keyed_by_bytes_pair_as_one_event_at_a_time(seed: int) -> None:
    _compare(seed, otlp=True)


@pytest.mark.parametrize("seed", range(6))
def test_large_batches_go_in_slices_and_batch_numbers_wrap(
        seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_online, "_PAIR_ROW_BITS", 2)  # 4 rows a batch
    monkeypatch.setattr(_online, "_PAIR_ROW_MASK", 3)
    monkeypatch.setattr(_online, "_PAIR_SEQ_MASK", 63)  # fewer batches live at once
    assert _compare(seed, timeout_s=0.5, n=600, otlp=seed % 2 == 1) > 64


@pytest.mark.parametrize("seed", range(8))
def test_batches_of_other_columns_give_each_table_the_columns_of_its_rows(seed: int) -> None:
    _compare(seed, mixed=True)


def _noted(out: Completed, noted: set[int], plain: set[int]) -> None:
    """Each table has ``note`` when a row of it came from a batch with that column (and
    then the note of those rows): ``noted`` / ``plain``: the events sent in batches with /
    without it (a repeated event may be in both)."""
    for table in [*out.parents, *out.children]:
        eids = table.column("eid").to_pylist()
        if "note" not in table.column_names:
            assert plain.issuperset(eids)
            continue
        for eid, note in zip(eids, table.column("note").to_pylist(), strict=True):
            assert eid in (plain if note is None else noted)
            assert note in (None, f"n{eid}")


def _compare(seed: int, timeout_s: float | None = None, n: int | None = None,
             mixed: bool = False, otlp: bool = False) -> int:
    """Feed random events to both in random batches (``mixed``: some batches with a
    column the others lack; ``otlp``: ids as :func:`_events` makes them); returns the
    batches (with slices)."""
    rng = np.random.default_rng(seed)
    rows = _events(rng, n or int(rng.integers(20, 400)), one_stage=seed % 2 == 0, otlp=otlp)
    rows = [rows[i] for i in rng.permutation(len(rows))]
    rows += [rows[i] for i in rng.integers(0, len(rows), len(rows) // 10)]  # retried exports
    timeout_s = timeout_s or float(rng.choice([0.5, 2.0, 100.0]))
    coded = seed % 4 == 1
    mine, ref = PairCompleter(timeout_s), Reference(timeout_s)
    now, at, made = 0.0, 0, 0
    noted: set[int] = set()
    plain: set[int] = set()
    while at < len(rows):
        out = Completed()
        for _ in range(int(rng.integers(1, 4))):  # a round: a few batches, then expiry
            size = int(rng.integers(1, 40))
            batch = rows[at:at + size]
            at += size
            if not batch:
                break
            note = mixed and rng.random() < 0.5
            (noted if note else plain).update(row[4] for row in batch)
            mine.add(_table(batch, rng, coded, note), now, out)
            rows_max = _online._PAIR_ROW_MASK + 1  # a larger batch is taken in slices
            made += -(-len(batch) // rows_max)
            for start in range(0, len(batch), rows_max):
                ref.add(batch[start:start + rows_max], now)
            now += float(rng.random())
        evict = rng.random() < 0.1  # over any budget: every batch held goes
        mine.expire(now, out, 0.0 if evict else np.inf)
        ref.expire(now, evict)
        assert _pairs(out) == ref.pairs
        _noted(out, noted, plain)
        ref.pairs.clear()
        assert out.duplicates == ref.duplicates
        ref.duplicates = 0
        assert list(out.incomplete.items()) == list(ref.incomplete.items())
        ref.incomplete.clear()
        assert out.evicted == ref.evicted
        ref.evicted = 0
        assert mine.pending == ref.pending
        assert (mine.pending_bytes > 0) == bool(ref.batches)
    out = Completed()
    mine.flush(out)
    ref.expire(np.inf)
    assert _pairs(out) == ref.pairs
    assert dict(out.incomplete) == dict(ref.incomplete)
    assert mine.pending == ref.pending == 0
    assert mine.pending_bytes == 0
    return made


def test_a_child_before_its_parent_waits_and_pairs_with_the_parents_first_event() -> None:
    rng = np.random.default_rng(0)
    pairs = PairCompleter(10.0)
    out = Completed()
    kid: Row = ("t", "c", "p", "start", 1)
    pairs.add(_table([kid], rng), 0.0, out)
    assert pairs.pending == 2  # the child's own span, and the child waiting
    pairs.add(_table([("t", "p", None, "ingress", 2), ("t", "p", None, "end", 3),
                      ("t", "p", None, "ingress", 4)], rng), 1.0, out)
    pairs.expire(1.0, out)
    assert _pairs(out) == [(2, 1)]
    assert out.duplicates == 1
    pairs.expire(10.5, out)  # the child's batch goes; the parent's span stays
    assert pairs.pending == 1
    pairs.add(_table([("t", "c2", "p", "start", 5)], rng), 11.0, out)
    pairs.flush(out)
    assert _pairs(out) == [(2, 1), (2, 5)]
    assert not out.incomplete and pairs.pending == 0


def _spans_of_otlp_ids(rng: np.random.Generator, n: int) -> pa.Table:
    """``n`` spans of OTLP's ids (one stage), each a child of a span not sent."""
    def ids(digits: int) -> list[str]:
        return [f"{k:0{digits}x}"[-digits:] for k in rng.integers(0, 2**63, n)]
    return pa.table({"request_id": [f"r{k}" for k in range(n)], "stage": ["start"] * n,
                     "node": ["n1"] * n, "ts_ns": pa.array(np.arange(n)),
                     "trace_id": [a + b for a, b in zip(ids(16), ids(16), strict=True)],
                     "span_id": ids(16), "parent_span_id": ids(16)})


def test_a_pending_entry_costs_about_what_it_is_charged() -> None:
    # spans that wait for children and children that wait for their parent, 100k entries:
    # the Python memory they hold (Arrow's buffers are charged by their size), an entry
    rng = np.random.default_rng(5)
    tables = [_spans_of_otlp_ids(rng, 500) for _ in range(101)]
    pairs, out = PairCompleter(1e9), Completed()
    pairs.add(tables[0], 0.0, out)  # first use
    pairs.expire(0.0, out)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for table in tables[1:]:
            pairs.add(table, 0.0, out)
        pairs.expire(0.0, out)
        gc.collect()
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    entries = pairs.pending - 1000
    assert entries == 100_000
    assert 0.8 * PAIR_ENTRY_BYTES < used / entries < 1.2 * PAIR_ENTRY_BYTES
