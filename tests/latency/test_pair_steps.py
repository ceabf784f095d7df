"""The kernels of the collector's pairs step: a hop table restricted to a range of source
times is the whole table filtered (tightening still sees every pair), and the counted
codes, the slot resolutions and the context columns are what their simple formulas give."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from clocksync.latency import preset, read_inputs
from clocksync.latency._hops import pivot_events, slot_resolution
from clocksync.latency._pairs import _first_seen_codes, pair_pivot
from clocksync.latency._pipeline import _context, hop_counts, pairs_hop_table
from tests._restate_world import RestateWorld, restate_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> RestateWorld:
    return restate_world(tmp_path_factory.mktemp("pair_steps"), 7, 400, 30.0, 80.0)


def _plain(table: pa.Table) -> pa.Table:
    """Dictionary columns as their values (dictionaries may differ, values may not)."""
    return pa.table({c: pc.cast(table.column(c), table.schema.field(c).type.value_type)
                     if pa.types.is_dictionary(table.schema.field(c).type)
                     else table.column(c) for c in table.column_names})


def _events(world: RestateWorld, rng: np.random.Generator) -> pa.Table:
    """The world's events with a context column that is often null and a few stamps no
    table corrects (their pairs are dropped)."""
    table = read_inputs([world.spans], "otlp", preset("restate")).table
    n = table.num_rows
    note = pa.array([f"n{k}" for k in range(n)], mask=rng.random(n) < 0.4)
    table = table.append_column("note", note)
    ts = table.column("ts_ns").to_numpy().copy()
    ts[rng.choice(n, 5, replace=False)] = 1_000  # before every table's first sample
    return table.set_column(table.schema.get_field_index("ts_ns"), "ts_ns", pa.array(ts))


@pytest.mark.parametrize("seed", range(3))
def test_a_ref_range_is_the_whole_table_filtered(world: RestateWorld, seed: int) -> None:
    rng = np.random.default_rng(seed)
    pairs = pair_pivot(_events(world, rng))
    whole = pairs_hop_table(pairs, world.corrector, skip_bad=True)
    ref = whole.table.column("src_ref_ns").to_numpy()
    assert whole.uncorrectable > 0 and whole.table.column("note").null_count > 0
    edges = np.sort(rng.choice(ref, 2, replace=False))
    for lo, hi in [(int(edges[0]), int(edges[1])), (int(ref.min()), int(ref.max()) + 1),
                   (0, 1)]:
        part = pairs_hop_table(pairs, world.corrector, skip_bad=True, ref_range_ns=(lo, hi))
        mine = (ref >= lo) & (ref < hi)
        expected = whole.table.filter(pa.array(mine))
        assert _plain(part.table).equals(_plain(expected))
        assert part.pair_windows == whole.pair_windows  # tightened with every pair
        assert [h.hop for h in part.hops] == [h.hop for h in whole.hops]
        if mine.any():
            assert [h for h in part.hops if h.requests] == list(hop_counts(expected))
        assert (part.requests, part.uncorrectable) == (whole.requests, whole.uncorrectable)


@pytest.mark.parametrize("seed", range(20))
def test_first_seen_codes_are_unique_in_first_seen_order(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 300))
    span = int(rng.choice([1, 5, 40, 5000]))
    code = rng.integers(-1 if seed % 5 == 0 else 0, span, n).astype(np.int64)
    rank, distinct = _first_seen_codes(code, span)
    seen = list(dict.fromkeys(code.tolist()))
    assert distinct.tolist() == seen
    assert rank.tolist() == [seen.index(c) for c in code.tolist()]


@pytest.mark.parametrize("seed", range(20))
def test_slot_resolution_is_the_column_at_the_slots(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 200))
    values = rng.choice([0, 1, 2, 1000, 5_000_000], n) * (rng.random() < 0.8)
    res = pa.array(values, pa.int64(), mask=rng.random(n) < 0.3)
    table = pa.table({"resolution_ns": res}).slice(0)
    if n > 3:  # in several chunks
        table = pa.concat_tables([table.slice(0, n // 3), table.slice(n // 3)])
    row = rng.integers(-1, n, (int(rng.integers(0, 50)), 3))
    got = slot_resolution(table, row)
    plain = np.array([0 if v is None or v <= 1 else v for v in res.to_pylist()], np.int64)
    if not plain.any():
        assert got is None
        return
    assert got is not None and got.dtype == np.int64
    assert np.array_equal(got, np.where(row >= 0, plain[np.maximum(row, 0)], 0))


@pytest.mark.parametrize("seed", range(10))
def test_context_is_the_first_value_over_the_stages(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 120
    stages = ("a", "b", "c")
    table = pa.table({
        "request_id": [f"r{k}" for k in rng.integers(0, 40, n)],
        "stage": rng.choice(stages, n).tolist(),
        "node": ["x"] * n,
        "ts_ns": np.arange(n, dtype=np.int64),
        "note": pa.array([f"v{k}" for k in range(n)], mask=rng.random(n) < 0.5),
        "full": [f"w{k}" for k in range(n)],
    })
    table = pa.concat_tables([table.slice(0, 50), table.slice(50)])  # two chunks
    pivot = pivot_events(table, stages)
    order = (2, 0, 1)
    req = rng.permutation(len(pivot.request_ids))[:25]
    for at in (None, req):
        got = _context(pivot, order, at)
        rows = pivot.row if at is None else pivot.row[at]
        for name in ("note", "full"):
            col = table.column(name)
            takes = [col.take(pa.array(rows[:, k], mask=rows[:, k] < 0)).combine_chunks()
                     for k in order]
            assert got[name].to_pylist() == pc.coalesce(*takes).to_pylist()
