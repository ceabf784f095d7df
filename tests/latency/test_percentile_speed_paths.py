"""The percentile engine against simple references: :class:`GroupedSelect` against
``np.sort`` order statistics, and the tables of :func:`summary_and_windows` and
:func:`percentile_table` against a per-group ``np.sort`` of the rows (tumbling and sliding
windows, weighted rows, ``*`` rows), on inputs laid out the ways the engine reads them (one
Arrow chunk per hop, hops sharing a time column, mixed chunks, several chunks and
dictionaries per hop, large strings) and with awkward values (NaN, infinities, signed zeros,
ties, outliers far from the bulk)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clocksync.latency import (
    _select,  # tests the private modules latency._select, _percentiles
    percentile_table,
    summary_and_windows,
)
from clocksync.latency._percentiles import P99_ALPHA, lower_confidence_rank, summary_and_window
from clocksync.latency._select import GroupedSelect

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
QS = (0.5, 0.9, 0.99, 1.0)


def _ranks(sizes: I64, rng: np.random.Generator) -> I64:
    """The reported quantiles' ranks plus one random rank (-1 = none) per group."""
    cols = [np.clip(np.ceil(q * sizes).astype(np.int64) - 1, 0, sizes - 1) for q in QS]
    cols.append(rng.integers(-1, sizes))
    return np.stack(cols, axis=1)


def _check(values: F64, key: I64, n_keys: int, seed: int) -> None:
    """Fine groups by ``key``, unions by ``key % 3``, and everything, for the values and
    their negations: every answer is ``np.sort(values of the group)[rank]``; both ways of
    ordering the rows of the wanted cells (sort them all; or answer cells of one value
    without sorting, as for many rows)."""
    saved = _select._SORT_ALL
    try:
        for sort_all in (saved, 0):
            _select._SORT_ALL = sort_all
            _check_once(values, key, n_keys, seed)
    finally:
        _select._SORT_ALL = saved


def _check_once(values: F64, key: I64, n_keys: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    columns = (values, -values)
    sel = GroupedSelect.of(key, n_keys, columns)
    fine_of_row = np.searchsorted(sel.keys, key)
    assert np.array_equal(sel.keys[fine_of_row], key)
    _, by3 = np.unique(sel.keys % 3, return_inverse=True)
    maps: list[I64 | None] = [None, by3.astype(np.int64), np.zeros(len(sel.keys), np.int64)]
    for c, col in enumerate(columns):
        levels = [(m, _ranks(sel.level_sizes(m), rng)) for m in maps]
        got = sel.select(c, levels)
        assert len(got) == len(levels)
        for (m, ranks), res in zip(levels, got, strict=True):
            group = fine_of_row if m is None else m[fine_of_row]
            assert res.shape == ranks.shape
            for g in range(len(ranks)):
                srt = np.sort(col[group == g])
                assert len(srt) == sel.level_sizes(m)[g]
                want = np.where(ranks[g] >= 0, srt[np.maximum(ranks[g], 0)], np.nan)
                np.testing.assert_array_equal(res[g], want)


_VALUE = st.one_of(st.floats(-1e9, 1e9), st.sampled_from([np.nan, np.inf, -np.inf, 0.0, -0.0,
                                                          1e300, -1e300, 5e-324]))


@given(st.lists(st.tuples(st.integers(0, 7), _VALUE), min_size=1, max_size=300),
       st.integers(0, 2**32 - 1))
@settings(max_examples=80, deadline=None)
def test_grouped_select_equals_sorted_ranks(items: list[tuple[int, float]], seed: int) -> None:
    key = np.array([k for k, _ in items], dtype=np.int64)
    values = np.array([v for _, v in items], dtype=np.float64)
    _check(values, key, 8, seed)


@pytest.mark.parametrize("kind", ["lognormal", "outliers", "ties", "constant", "all_nan",
                                  "sparse_keys"])
def test_grouped_select_large_inputs(kind: str) -> None:
    """Enough rows for the most bins per group, and value layouts that put many rows into one bin
    (the path is exact whatever the bins hold; they only decide its speed)."""
    rng = np.random.default_rng(len(kind))
    n = 60_000
    key = rng.integers(0, 40, n)
    n_keys = 40
    values = rng.lognormal(11, 1, n)
    if kind == "outliers":  # bulk in a narrow range, a few values 12 decades away
        values[rng.integers(0, n, 30)] = rng.choice([1e18, -1e18, np.inf], 30)
    elif kind == "ties":
        values = np.round(rng.normal(0, 2, n)) * 1e3
    elif kind == "constant":
        values = np.full(n, 7.0)
    elif kind == "all_nan":
        values = np.full(n, np.nan)
    elif kind == "sparse_keys":  # too many possible keys for a count per key
        key = rng.choice(np.array([3, 10**9, 5 * 10**11]), n)
        n_keys = 10**12
    _check(values, key, n_keys, 1)


def _hop_tables(rng: np.random.Generator, n: int, nan: bool) -> list[pa.Table]:
    """One table per hop, as :func:`~clocksync.latency.hop_table` writes them: dictionary
    columns with shared dictionaries, and the first and last hop sharing their source time
    column (the same numpy buffer)."""
    nodes = pa.array(["n1", "n2", "n3"])
    t = rng.integers(0, 95 * 10**9, n) + 10**18
    out = []
    for k, hop in enumerate(["a->b", "b->c", "c->d", "a->d"]):
        src = rng.integers(0, 3, n).astype(np.int32)
        if hop == "c->d":  # one node pair: no "*" rows
            src = np.zeros(n, np.int32)
        dst = src if hop == "c->d" else rng.integers(0, 3, n).astype(np.int32)
        low = np.round(rng.lognormal(10 + k, 1, n))
        high = low + rng.exponential(1e3, n)
        if nan:
            low[rng.integers(0, n, 20)] = np.nan
            high[rng.integers(0, n, 5)] = np.inf
            low[rng.integers(0, n, 5)] = -0.0
        times = t if k in (0, 3) else rng.integers(0, 95 * 10**9, n) + 10**18
        out.append(pa.table({
            "hop": pa.DictionaryArray.from_arrays(pa.array(np.full(n, k, np.int32)),
                                                  pa.array(["a->b", "b->c", "c->d", "a->d"])),
            "src_node": pa.DictionaryArray.from_arrays(pa.array(src), nodes),
            "dst_node": pa.DictionaryArray.from_arrays(pa.array(dst), nodes),
            "low_ns": pa.array(low), "high_ns": pa.array(high),
            "src_ref_ns": pa.array(times, pa.int64()),
        }))
    return out


def _layout(tables: list[pa.Table], layout: str, rng: np.random.Generator) -> pa.Table:
    """The same rows in another Arrow layout."""
    one = pa.concat_tables(tables)
    if layout == "per_hop":
        return one
    if layout == "mixed_strings":  # shuffled rows in two chunks, plain string columns
        shuffled = one.take(pa.array(rng.permutation(one.num_rows)))
        cols = {c: (shuffled.column(c).cast(pa.string())
                    if pa.types.is_dictionary(shuffled.column(c).type) else shuffled.column(c))
                for c in shuffled.column_names}
        flat = pa.table(cols).combine_chunks()
        half = flat.num_rows // 2
        return pa.concat_tables([flat.slice(0, half), flat.slice(half)])
    if layout == "large_strings":  # key columns the reader casts
        return pa.table({c: (one.column(c).cast(pa.large_string())
                             if pa.types.is_dictionary(one.column(c).type) else one.column(c))
                         for c in one.column_names})
    # several chunks per hop, each with its own dictionaries in another order
    parts = []
    for t in tables:
        for piece in (t.slice(0, t.num_rows // 3), t.slice(t.num_rows // 3)):
            cols = {c: piece.column(c).combine_chunks() for c in piece.column_names}
            for c in ("src_node", "dst_node"):
                strings = cols[c].cast(pa.string())
                order = list(rng.permutation(["n1", "n2", "n3"]))
                codes = np.array([order.index(s) for s in strings.to_pylist()], np.int32)
                cols[c] = pa.DictionaryArray.from_arrays(pa.array(codes), pa.array(order))
            parts.append(pa.table(cols))
    return pa.concat_tables(parts)


def _reference(hops: pa.Table, window_s: float | None, step_s: float | None,
               all_pairs: bool = True) -> dict[tuple[Any, ...], list[float]]:
    """Per output row key ``(window start, hop, src, dst)``: count, weight sum, the
    quantiles of the lows and highs and the P99 lower confidence bound, from a sort of the
    group's rows (weighted: the smallest value whose cumulative weight reaches q·total)."""
    hop, src, dst = (hops.column(c).cast(pa.string()).to_pylist()
                     for c in ("hop", "src_node", "dst_node"))
    low = hops.column("low_ns").to_numpy().astype(float)
    high = hops.column("high_ns").to_numpy().astype(float)
    weight = (hops.column("weight").to_numpy() if "weight" in hops.column_names
              else np.ones(len(low)))
    t = hops.column("src_ref_ns").to_numpy()
    groups: dict[tuple[Any, ...], list[int]] = {}
    pairs: dict[str, set[tuple[str, str]]] = {}
    for i in range(len(low)):
        pairs.setdefault(hop[i], set()).add((src[i], dst[i]))
    for i in range(len(low)):
        starts: list[Any] = [None]
        if window_s is not None:
            step = round((step_s or window_s) * 1e9)
            last = int(t[i]) // step
            starts = [(last - m) * step for m in range(round(window_s * 1e9) // step)]
        for w in starts:
            groups.setdefault((w, hop[i], src[i], dst[i]), []).append(i)
            if all_pairs and len(pairs[hop[i]]) > 1:
                groups.setdefault((w, hop[i], "*", "*"), []).append(i)
    out = {}
    for key, rows in groups.items():
        r = np.array(rows)
        row = [float(len(r)), float(weight[r].sum())]
        for values in (low[r], high[r]):
            srt = np.argsort(values, kind="stable")
            cw = np.cumsum(weight[r][srt])
            for q in QS:
                k = int(np.searchsorted(cw, q * cw[-1] * (1 - 1e-12)))
                row.append(float(values[srt][min(k, len(r) - 1)]))
        k = lower_confidence_rank(len(r), 0.99, P99_ALPHA)
        row.append(float(np.sort(low[r])[k]) if k >= 0 and "weight" not in hops.column_names
                   else np.nan)
        out[key] = row
    return out


def _rows(table: pa.Table) -> dict[tuple[Any, ...], list[float]]:
    """The table in the shape of :func:`_reference` (and its midpoints checked)."""
    d = table.to_pydict()
    weighted = "weight_sum" in d
    out = {}
    for i in range(table.num_rows):
        w = d["window_start_ns"][i] if "window_start_ns" in d else None
        row = [float(d["count"][i]), d["weight_sum"][i] if weighted else float(d["count"][i])]
        row += [d[f"{n}_low_ns"][i] for n in ("p50", "p90", "p99", "max")]
        row += [d[f"{n}_high_ns"][i] for n in ("p50", "p90", "p99", "max")]
        row.append(d["p99_low_lcb_ns"][i])
        for n in ("p50", "p90", "p99", "max"):
            assert np.array_equal(d[f"{n}_ns"][i], (d[f"{n}_low_ns"][i] + d[f"{n}_high_ns"][i])
                                  / 2, equal_nan=True)
        out[(w, d["hop"][i], d["src_node"][i], d["dst_node"][i])] = row
    return out


def _same(table: pa.Table, want: dict[tuple[Any, ...], list[float]]) -> None:
    got = _rows(table)
    assert sorted(got, key=str) == sorted(want, key=str)
    for key, row in want.items():
        np.testing.assert_array_equal(np.array(got[key]), np.array(row), err_msg=str(key))


@pytest.mark.parametrize("layout", ["per_hop", "mixed_strings", "split_dictionaries",
                                    "large_strings"])
@pytest.mark.parametrize(("n", "window_s", "step_s", "nan"), [
    (3_000, 10.0, None, False), (1_500, 7.0, None, True), (1_500, 10.0, 2.5, True),
    (1, 10.0, None, False)])
def test_tables_equal_sorted_groups(layout: str, n: int, window_s: float,
                                    step_s: float | None, nan: bool) -> None:
    rng = np.random.default_rng(n)
    hops = _layout(_hop_tables(rng, n, nan), layout, rng)
    summary, windows = summary_and_windows(hops, window_s, step_s)
    _same(summary, _reference(hops, None, None))
    _same(windows, _reference(hops, window_s, step_s))
    _same(percentile_table(hops, window_s=window_s, step_s=step_s, all_pairs=False),
          _reference(hops, window_s, step_s, all_pairs=False))
    star = summary.filter(pa.compute.equal(summary.column("src_node"), "*"))
    assert "c->d" not in star.column("hop").to_pylist()  # c->d has one node pair...
    assert star.num_rows == (3 if n > 1 else 0)  # ...the others have several


@pytest.mark.parametrize("step_s", [None, 5.0])
def test_weighted_tables_equal_sorted_groups(step_s: float | None) -> None:
    """Weights 1 and 4 (sums exact in any order): the weighted quantiles and weight sums."""
    rng = np.random.default_rng(9)
    hops = _layout(_hop_tables(rng, 2_000, True), "split_dictionaries", rng)
    hops = hops.append_column("weight", pa.array(rng.choice([1.0, 4.0], hops.num_rows)))
    summary, windows = summary_and_windows(hops, 10.0, step_s)
    _same(summary, _reference(hops, None, None))
    _same(windows, _reference(hops, 10.0, step_s))
    assert "weight_sum" in windows.column_names and np.isnan(
        windows.column("p99_low_lcb_ns").to_numpy()).all()


@pytest.mark.parametrize(("n", "n_nodes"), [(6_000, 100), (3_000, 300)])
def test_tables_with_many_node_pairs(n: int, n_nodes: int) -> None:
    """More possible (pair, window) keys than rows: the fine groups are found through a
    lookup of the present keys (100 nodes) or by hashing them (300 nodes)."""
    rng = np.random.default_rng(n_nodes)
    names = [f"n{i}" for i in range(n_nodes)]
    low = rng.lognormal(11, 1, n)
    hops = pa.table({
        "hop": pa.array(rng.choice(["a->b", "b->c"], n)).dictionary_encode(),
        "src_node": pa.array(rng.choice(names, n)).dictionary_encode(),
        "dst_node": pa.array(rng.choice(names, n)).dictionary_encode(),
        "low_ns": low, "high_ns": low + rng.exponential(1e3, n),
        "src_ref_ns": pa.array(rng.integers(0, 95 * 10**9, n) + 10**18, pa.int64()),
    })
    summary, windows = summary_and_windows(hops, 10.0)
    _same(summary, _reference(hops, None, None))
    _same(windows, _reference(hops, 10.0, None))
    assert windows.num_rows > n // 2  # most (pair, window) groups hold one or two rows


@pytest.mark.parametrize("layout", ["per_hop", "split_dictionaries"])
@pytest.mark.parametrize(("start_s", "step_s"), [(0, 20.0), (20, 20.0), (0, None)])
def test_one_window_is_the_window_tables_rows_of_it(layout: str, start_s: int,
                                                    step_s: float | None) -> None:
    """The rows all lie in [10^18 ns, + 95 s): the window of 100 s from 10^18 ns is the
    summary with the window's bounds; the one from 20 s later holds only some of them.
    Either way it is the window table's rows of that window, and the summary is the
    summary."""
    rng = np.random.default_rng(start_s + 7)
    hops = _layout(_hop_tables(rng, 1_500, True), layout, rng)
    start_ns = 10**18 + start_s * 10**9
    summary, rows = summary_and_window(hops, 100.0, step_s, start_ns)
    want_summary, windows = summary_and_windows(hops, 100.0, step_s)
    want = windows.filter(pa.compute.equal(windows.column("window_start_ns"), start_ns))
    for got, table in ((summary, want_summary), (rows, want)):
        assert got.schema == table.schema
        for name in table.column_names:  # (NaN equal to NaN)
            np.testing.assert_array_equal(got.column(name).to_numpy(),
                                          table.column(name).to_numpy(), err_msg=name)
    assert rows.num_rows > 10
    counted = rows.column("count").to_numpy().sum()
    assert (counted == summary.column("count").to_numpy().sum()) == (start_s == 0)


def test_empty_tables_keep_their_columns() -> None:
    rng = np.random.default_rng(1)
    hops = _layout(_hop_tables(rng, 10, False), "per_hop", rng).slice(0, 0)
    summary, windows = summary_and_windows(hops, 10.0)
    assert summary.num_rows == windows.num_rows == 0
    assert windows.column_names[:2] == ["window_start_ns", "window_end_ns"]
    assert summary.column_names == windows.column_names[2:]
