"""The chain completer against a small pure-Python statement of its rules: shuffled batches,
repeated stages, unknown stages, a request id used again after its request was released,
timeouts and evictions give the same events, in the same order, and the same counts."""

from __future__ import annotations

import collections
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from clocksync.collector._online import ChainCompleter, Completed

CHAIN = ("a", "b", "c", "d")
Row = tuple[str | None, str | None, str, int]  # request_id, stage, node, ts_ns


class Reference:
    """The module docstring of ``_online`` as plain Python (one request at a time).

    A batch first releases the requests it holds whole (every stage) that nothing opened
    before, all their events in row order; its other rows then go one by one: a row joins its
    request (opened by this batch when none is waiting), and the row that gives a request its
    last missing stage releases the request's events in arrival order. A request waits
    ``timeout_s`` from the arrival of the batch that opened it."""

    def __init__(self, chain: tuple[str, ...], timeout_s: float) -> None:
        self.chain = chain
        self.timeout_s = timeout_s
        self.waiting: dict[str, tuple[set[str], list[Row], int]] = {}  # id -> stages, rows, seq
        self.batches: list[tuple[int, float, list[str]]] = []  # seq, arrival, ids it opened
        self.unknown: collections.Counter[str] = collections.Counter()
        self.seq = 0

    def add(self, rows: list[Row], arrival_s: float) -> list[Row]:
        known = []
        for row in rows:
            if row[1] not in self.chain:
                self.unknown[str(row[1])] += 1
            elif row[0] is not None:
                known.append(row)
        stages: dict[str, set[str]] = collections.defaultdict(set)
        for rid, stage, _, _ in known:
            stages[rid].add(stage)
        whole = {rid for rid, got in stages.items()
                 if len(got) == len(self.chain) and rid not in self.waiting}
        out = [row for row in known if row[0] in whole]
        self.seq += 1
        seq = self.seq
        opened: list[str] = []
        for row in known:
            rid = row[0]
            if rid in whole:
                continue
            if rid not in self.waiting:
                self.waiting[rid] = (set(), [], seq)
                opened.append(rid)
            got, held, _ = self.waiting[rid]
            got.add(row[1])
            held.append(row)
            if len(got) == len(self.chain):
                out += held
                del self.waiting[rid]
        self.batches.append((seq, arrival_s, opened))
        return out

    def expire(self, now_s: float, evict: bool
               ) -> tuple[list[Row], collections.Counter[str], int]:
        """Time out (or with ``evict``, drop every request, oldest batch first)."""
        out: list[Row] = []
        incomplete: collections.Counter[str] = collections.Counter()
        evicted = 0
        while self.batches and (evict or now_s - self.batches[0][1] >= self.timeout_s):
            seq, _, opened = self.batches.pop(0)
            for rid in opened:
                if rid not in self.waiting or self.waiting[rid][2] != seq:
                    continue
                got, held, _ = self.waiting.pop(rid)
                if evict:
                    evicted += 1
                    continue
                for stage in self.chain:
                    if stage not in got:
                        incomplete[stage] += 1
                out += held
        return out, incomplete, evicted


def _rows(out: Completed) -> list[Row]:
    rows: list[Row] = []
    for table in out.events:
        cols = [pc.cast(table.column(c), pa.string()).to_pylist() if c != "ts_ns"
                else table.column(c).to_pylist() for c in ("request_id", "stage", "node", "ts_ns")]
        rows += list(zip(*cols, strict=True))
    return rows


def _table(rows: list[Row], coded: bool) -> pa.Table:
    rid, stage, node, ts = (list(c) for c in zip(*rows, strict=True))
    table = pa.table({"request_id": pa.array(rid, pa.string()),
                      "stage": pa.array(stage, pa.string()),
                      "node": pa.array(node, pa.string()),
                      "ts_ns": pa.array(ts, pa.int64()),
                      "cpu_pct": pa.array(np.arange(len(rows), dtype=np.float64))})
    if coded:  # as the engine hands it over
        for name in ("stage", "node"):
            at = table.schema.get_field_index(name)
            table = table.set_column(at, name, pc.dictionary_encode(table.column(at)))
    return table


def _events(rng: np.random.Generator, n_requests: int) -> list[Row]:
    """Requests of a few stages each (most whole), some stages repeated, some unknown, a
    few ids used by two requests, a few rows without an id; shuffled within a window."""
    rows: list[Row] = []
    ids = [f"r{i}" for i in range(n_requests)]
    ids += [ids[int(i)] for i in rng.integers(0, n_requests, n_requests // 20)]  # used again
    for k, rid in enumerate(ids):
        stages = [s for s in CHAIN if rng.random() < 0.93]
        stages += [str(s) for s in rng.choice(CHAIN, int(rng.integers(0, 2)))]  # repeats
        if rng.random() < 0.05:
            stages.append("zz" if rng.random() < 0.5 else "bogus")
        for j, stage in enumerate(stages):
            rows.append((rid, stage, f"n{rng.integers(0, 3)}", 1_000 * k + j))
    rows += [(None, "a", "n0", 7)] * 3
    order = np.argsort(np.arange(len(rows)) + rng.normal(0, 25, len(rows)))
    return [rows[i] for i in order]


@pytest.mark.parametrize("coded", [False, True])
@pytest.mark.parametrize("seed", range(8))
def test_chain_completer_follows_the_reference(seed: int, coded: bool) -> None:
    rng = np.random.default_rng(seed)
    rows = _events(rng, 300)
    timeout_s = 3.0
    live, ref = ChainCompleter(CHAIN, timeout_s), Reference(CHAIN, timeout_s)
    now, at = 0.0, 0
    while at < len(rows):
        batch = rows[at:at + int(rng.integers(1, 90))]
        at += len(batch)
        now += float(rng.uniform(0.0, 1.0))
        out = Completed()
        live.add(_table(batch, coded), now, out)
        assert _rows(out) == ref.add(batch, now)
        if rng.random() < 0.3:
            evict = rng.random() < 0.1
            out = Completed()
            live.expire(now, out, 0.0 if evict else np.inf)
            got, incomplete, evicted = ref.expire(now, evict)
            assert _rows(out) == got
            assert list(out.incomplete.items()) == list(incomplete.items())
            assert out.evicted == evicted
        assert live.pending == len(ref.waiting)
        assert (live.pending_bytes == 0) == (live.pending == 0)
    out = Completed()
    live.flush(out)
    got, incomplete, _ = ref.expire(np.inf, False)
    assert _rows(out) == got
    assert list(out.incomplete.items()) == list(incomplete.items())
    assert live.pending == 0 and live.pending_bytes == 0
    assert live.unknown_stage == ref.unknown


def test_released_requests_share_one_code_per_id_in_each_table() -> None:
    live = ChainCompleter(CHAIN, 10.0)
    out = Completed()
    rows: list[Row] = [("x", "a", "n1", 1), ("y", "a", "n1", 2), ("x", "b", "n2", 3)]
    live.add(_table(rows, False), 0.0, out)
    rows = [("y", s, "n1", 10 + k) for k, s in enumerate(CHAIN[1:])]
    rows += [("x", s, "n2", 20 + k) for k, s in enumerate(CHAIN[2:])]
    live.add(_table(rows, False), 1.0, out)
    (table,) = out.events
    column: Any = table.column("request_id").chunk(0)
    assert column.dictionary.to_pylist() == ["y", "x"]  # in the order they first appear
    assert column.indices.to_pylist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert table.column("cpu_pct").to_pylist() == [1.0, 0.0, 1.0, 2.0, 0.0, 2.0, 3.0, 4.0]
