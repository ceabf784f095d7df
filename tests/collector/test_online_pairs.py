"""Online pairing by parent span gives, batch after batch, what the one-event-at-a-time rules
give (the module docstring of ``clocksync.collector._online``): the same pairs in the same
order, the same duplicates, incomplete children, evictions and pending entries, whatever the
batches and their order."""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pytest

from clocksync.collector import _online
from clocksync.collector._online import Completed, PairCompleter

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


def _events(rng: np.random.Generator, n: int, one_stage: bool) -> list[Row]:
    """Random events over few traces and span ids: repeats, several stages a span (unless
    ``one_stage``), missing parents, null and empty ids, a span its own parent."""
    spans = [f"s{k}" for k in range(max(4, n // 3 if not one_stage else n))]
    stages = ["ingress", "start", "end"]
    rows: list[Row] = []
    for eid in range(n):
        trace = None if rng.random() < 0.03 else f"t{rng.integers(3)}"
        span = None if rng.random() < 0.02 else str(rng.choice(spans))
        r = rng.random()
        parent = (None if r < 0.15 else "" if r < 0.2 else span if r < 0.22
                  else str(rng.choice(spans)))
        stage = (stages[int(span[1:]) % 3] if one_stage and span
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


@pytest.mark.parametrize("seed", range(6))
def test_large_batches_go_in_slices_and_batch_numbers_wrap(
        seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_online, "_PAIR_ROW_BITS", 2)  # 4 rows a batch
    monkeypatch.setattr(_online, "_PAIR_ROW_MASK", 3)
    monkeypatch.setattr(_online, "_PAIR_SEQ_MASK", 63)  # fewer batches live at once
    assert _compare(seed, timeout_s=0.5, n=600) > 64


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
             mixed: bool = False) -> int:
    """Feed random events to both in random batches (``mixed``: some batches with a
    column the others lack); returns the batches (with slices)."""
    rng = np.random.default_rng(seed)
    rows = _events(rng, n or int(rng.integers(20, 400)), one_stage=seed % 2 == 0)
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
            made += -(-len(batch) // (_online._PAIR_ROW_MASK + 1))
            ref.add(batch, now)
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
