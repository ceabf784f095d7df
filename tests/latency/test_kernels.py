"""The vectorized kernels against simple reference implementations on
random input: order-statistic selection, the all-groups hull filter of the causal LP, and
the same-node latency of the corrector on unsorted input."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clocksync.latency import (
    _causal,  # tests the private modules latency._causal, _select
    tighten,
)
from clocksync.latency._causal import hull_candidates
from clocksync.latency._select import SAMPLE_MIN_SIZE, median, select_ranks

F64 = npt.NDArray[np.float64]


# -- selection -------------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=64), min_size=1,
                max_size=300), st.data())
def test_select_small_matches_sort(values: list[float], data: st.DataObject) -> None:
    v = np.array(values, dtype=np.float64)
    ranks = data.draw(st.lists(st.integers(0, len(v) - 1), min_size=1, max_size=6))
    got = select_ranks(v.copy(), ranks)
    want = np.sort(v)[ranks]
    np.testing.assert_array_equal(got, want)


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from(["normal", "lognormal", "ties", "nan",
                                                   "sorted", "adversarial"]))
def test_select_large_matches_sort(seed: int, kind: str) -> None:
    """Above the sampling threshold, every rank (quantiles, edges, random) is exact, whatever
    the sample says (ties, NaN, sorted input, a sample that misses the bulk)."""
    rng = np.random.default_rng(seed)
    n = SAMPLE_MIN_SIZE + int(rng.integers(0, 50_000))
    if kind == "normal":
        v = rng.normal(size=n)
    elif kind == "lognormal":
        v = rng.lognormal(11, 1.0, n)
    elif kind == "ties":
        v = rng.integers(0, 5, n).astype(np.float64)
    elif kind == "nan":
        v = rng.normal(size=n)
        v[rng.integers(0, n, 1000)] = np.nan
    elif kind == "sorted":
        v = np.sort(rng.normal(size=n))
    else:  # the strided sample sees only zeros; the bulk is elsewhere
        v = rng.normal(1e6, 1.0, n)
        v[:: max(n // 4096, 1)] = 0.0
    ranks = sorted({min(max(math.ceil(q * n) - 1, 0), n - 1) for q in (0.5, 0.9, 0.99, 1.0)}
                   | {0, int(rng.integers(0, n))})
    got = select_ranks(v.copy(), ranks)
    np.testing.assert_array_equal(got, np.sort(v)[ranks])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False, width=64, min_value=-1e12,
                          max_value=1e12), max_size=200))
def test_median_matches_numpy(values: list[float]) -> None:
    v = np.array(values, dtype=np.float64)
    want = float(np.median(v)) if len(v) else math.nan
    got = median(v.copy())
    assert (math.isnan(got) and math.isnan(want)) or got == want


def test_select_rejects_bad_rank() -> None:
    with pytest.raises(IndexError):
        select_ranks(np.arange(3.0), [3])


# -- hull filter -----------------------------------------------------------------------------
def _upper_hull_vertices(x: F64, y: F64) -> set[int]:
    """Brute force: points not on or below the chord of any two others around them."""
    out = set()
    for i in range(len(x)):
        inside = False
        for a in range(len(x)):
            for b in range(len(x)):
                if x[a] < x[i] < x[b]:
                    chord = y[a] + (y[b] - y[a]) * (x[i] - x[a]) / (x[b] - x[a])
                    if y[i] < chord - 1e-6 * (1 + abs(chord)):
                        inside = True
                        break
            if inside:
                break
        if not inside:
            out.add(i)
    return out


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 4), st.integers(2, 60))
def test_hull_filter_keeps_every_vertex(seed: int, n_groups: int, per_group: int) -> None:
    rng = np.random.default_rng(seed)
    span = 1_000_000
    group = np.repeat(np.arange(n_groups), per_group)
    pos = rng.integers(0, span, len(group))
    x = (pos - span / 2) / 1e6  # ordered like pos
    y = rng.choice([rng.normal(0, 1e5, len(group)), -1e3 * (x * 10) ** 2,
                    np.round(rng.normal(0, 3, len(group)))])  # noise, concave, ties
    keep = hull_candidates(group.astype(np.int64), pos, span, n_groups, x, y)
    for g in range(n_groups):
        idx = np.flatnonzero(group == g)
        vertices = {int(idx[i]) for i in _upper_hull_vertices(x[idx], y[idx])}
        assert vertices <= set(np.flatnonzero(keep).tolist())


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_hull_filter_keeps_the_feasible_set(seed: int) -> None:
    """Dropped constraints are implied by kept ones: each dropped point lies on or below the
    upper hull of the kept points of its group."""
    rng = np.random.default_rng(seed)
    n_groups, span = 3, 1_000_000_000
    group = rng.integers(0, n_groups, 5000).astype(np.int64)
    pos = rng.integers(0, span, len(group))
    x = (pos - span / 2) / 1e9
    y = 5e4 - rng.exponential(3e4, len(group)) + 2e4 * x
    keep = hull_candidates(group, pos, span, n_groups, x, y)
    assert keep.sum() < len(keep) / 5  # it does filter
    for g in range(n_groups):
        kept = np.flatnonzero((group == g) & keep)
        order = kept[np.argsort(x[kept])]
        dropped = np.flatnonzero((group == g) & ~keep)
        roof = np.interp(x[dropped], x[order], y[order])
        assert np.all(y[dropped] <= roof + 1e-6)


@pytest.mark.parametrize("seed", range(4))
def test_tighten_same_with_and_without_filter(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The causal result with the vectorized hull filter equals the one that hands every
    constraint to the per-window solver (through qhull, the previous path)."""
    rng = np.random.default_rng(seed)
    n = 20_000
    t = np.sort(rng.uniform(0, 4e9, n)).astype(np.int64) + 1_764_129_600_000_000_000
    src = rng.integers(0, 3, n).astype(np.int32)
    dst = ((src + rng.integers(1, 3, n)) % 3).astype(np.int32)
    raw = (rng.exponential(50_000, n) + 10_000 + np.where(src < dst, -3e5, 3e5)).astype(np.int64)
    centre = raw + np.where(src < dst, 3e5, -3e5)
    tlo, thi = centre - 2e5, centre + 2e5
    beta = np.full(n, 1e5)
    args = (src, dst, ("a", "b", "c"), t, beta, raw, tlo, thi)
    fast = tighten(*args)
    monkeypatch.setattr(_causal, "hull_candidates",
                        lambda group, *a: np.ones(len(group), dtype=bool))
    slow = tighten(*args)
    np.testing.assert_allclose(fast.low_ns, slow.low_ns, rtol=0, atol=1e-6)
    np.testing.assert_allclose(fast.high_ns, slow.high_ns, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(fast.inconsistent, slow.inconsistent)
    assert len(fast.windows) == len(slow.windows) > 0
    for a, b in zip(fast.windows, slow.windows, strict=True):
        assert a.status == b.status
        for f in ("offset_low_ns", "offset_high_ns", "drift_low_ppm", "drift_high_ppm"):
            assert getattr(a, f) == pytest.approx(getattr(b, f), rel=1e-9, abs=1e-6, nan_ok=True)
    assert (fast.high_ns - fast.low_ns).mean() < (thi - tlo).mean()  # it did tighten


# -- corrector, same node, unsorted ----------------------------------------------------------
def test_same_node_latency_independent_of_order() -> None:
    """The same-node path locates each timestamp once and reuses the cells: shuffled input
    gives the sorted input's answers bit for bit, and so does each scalar call."""
    from tests.latency.conftest import T0, make_world

    world = make_world(7)
    rng = np.random.default_rng(7)
    src = np.sort(rng.integers(T0 + 10**9, T0 + 250 * 10**9, 5000))
    dst = src + rng.integers(0, 2_000_000, len(src))
    lat, bnd = world.corrector.latency("n1", src, "n1", dst)
    perm = rng.permutation(len(src))
    lat_p, bnd_p = world.corrector.latency("n1", src[perm], "n1", dst[perm])
    assert lat_p.tolist() == lat[perm].tolist() and bnd_p.tolist() == bnd[perm].tolist()
    for i in rng.integers(0, len(src), 20):
        one = world.corrector.latency("n1", int(src[i]), "n1", int(dst[i]))
        assert one == (lat[i], bnd[i])
    assert np.all(bnd < 1_000.0)  # a same-node bound is the rate error only


# -- the pipeline's fast paths for node-grouped input ----------------------------------------
def test_hop_table_same_for_grouped_and_shuffled_rows() -> None:
    """Rows grouped by node (e.g. a small file from write_events) take the slice path of the
    corrections; shuffled rows the sorted-by-node path: the same per-request table."""
    from clocksync.latency import hop_table, simulate_requests
    from tests.latency.conftest import T0, make_world

    world = make_world(3)
    rng = np.random.default_rng(3)
    routes = [("n1", "n2"), ("n2", "n1"), ("n1", "n1")]
    events, _ = simulate_requests(world.clocks, routes, 3000, T0 + 20 * 10**9, 100.0, rng)
    grouped = events.sort_by([("node", "ascending"), ("ts_ns", "ascending")])
    shuffled = events.take(pa.array(rng.permutation(events.num_rows)))
    keys = [("request_id", "ascending"), ("hop", "ascending")]

    def table(ev: pa.Table) -> pa.Table:
        t = hop_table(ev, world.corrector).table
        t = t.cast(pa.schema([pa.field(f.name, f.type.value_type)
                              if pa.types.is_dictionary(f.type) else f for f in t.schema]))
        return t.sort_by(keys)

    a, b = table(grouped), table(shuffled)
    assert a.num_rows == 4 * 3000
    for name in a.column_names:
        np.testing.assert_array_equal(a.column(name).to_numpy(zero_copy_only=False),
                                      b.column(name).to_numpy(zero_copy_only=False))


# -- the causal LP of many windows at once -------------------------------------------------
@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 40))
def test_solve_windows_matches_per_window_solver(seed: int, n_groups: int) -> None:
    """Batched vertex enumeration = the per-window reference (``_solve``, itself tested
    against HiGHS), window by window: feasible, one-way (unbounded) and contradictory
    windows, windows of very different sizes (several padded batches)."""
    from clocksync.latency._causal import solve_windows
    from tests.latency._reference_lp import _solve

    rng = np.random.default_rng(seed)
    parts: list[tuple[F64, F64, npt.NDArray[np.bool_], npt.NDArray[np.int64]]] = []
    for k in range(n_groups):
        n_lo, n_up = (int(v) for v in rng.integers(0, rng.choice([4, 30, 90]), 2))
        if rng.random() < 0.15:
            n_up = 0  # one-way
        d0, r = rng.normal(0, 1e5), rng.normal(0, 1e4)
        lx, ux = rng.uniform(-0.5, 0.5, n_lo), rng.uniform(-0.5, 0.5, n_up)
        lc = d0 + r * lx - rng.exponential(3e4, n_lo)
        uc = d0 + r * ux + rng.exponential(3e4, n_up) - (1e6 if rng.random() < 0.15 else 0.0)
        parts.append((np.concatenate([lx, ux]), np.concatenate([lc, uc]),
                      np.arange(n_lo + n_up) < n_lo, np.full(n_lo + n_up, k, np.int64)))
    x, c, low, group = (np.concatenate([p[i] for p in parts]) for i in range(4))
    perm = rng.permutation(len(x))  # any order of the constraints
    xs = (-0.5, 0.5)
    ends, rho, feasible = solve_windows(x[perm], c[perm], low[perm].astype(bool),
                                        group[perm].astype(np.int64), n_groups, xs, 1e6)
    for k in range(n_groups):
        m = group == k
        ref = _solve(x[m & low], c[m & low], x[m & ~low], c[m & ~low], xs, 1e6)
        assert feasible[k] == (ref is not None)
        if ref is None:
            assert np.all(np.isnan(ends[k]))
            continue
        want = [ref[0][0], ref[0][1], ref[1][0], ref[1][1]]
        for got_v, want_v in zip(ends[k], want, strict=True):
            assert (np.isinf(got_v) and got_v == want_v) or abs(got_v - want_v) <= 1e-6 * max(
                1.0, abs(want_v))
        assert rho[k] == pytest.approx(ref[2], rel=1e-9, abs=1e-6)


# -- dictionary codes of chunked columns -----------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.one_of(st.none(), st.sampled_from(["a", "b", "req-1", "é", ""])),
                         max_size=20), min_size=1, max_size=5),
       st.booleans())
def test_chunked_codes_equal_combined(chunks: list[list[str | None]], as_dict: bool) -> None:
    """Chunk by chunk (plain or per-chunk dictionaries, as Parquet row groups give them):
    the same values per row as encoding the combined column."""
    from clocksync.latency._arrow import dictionary_codes

    arrays = [pa.array(c, pa.string()) for c in chunks]
    if as_dict:
        arrays = [a.dictionary_encode() for a in arrays]
    chunked = pa.chunked_array(arrays, type=arrays[0].type)
    codes, dictionary = dictionary_codes(chunked)
    values = [None if k < 0 else dictionary[int(k)].as_py() for k in codes]
    assert values == [v for c in chunks for v in c]
    assert len(set(dictionary.to_pylist())) == len(dictionary)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 300), st.sampled_from(["even", "ragged", "tiny"]))
def test_corrector_grid_locate_matches_search(seed: int, n_cells: int, layout: str) -> None:
    """The corrector's grid lookup of cells for unsorted timestamps gives exactly
    ``searchsorted(starts, t, side="right")``: even cells, ragged ones, cells far narrower
    than a bin (the search fallback), timestamps before, inside and past the table."""
    from clocksync import Grid
    from clocksync._correct._cells import GRID_MIN  # the private module clocksync._correct._cells

    rng = np.random.default_rng(seed)
    if layout == "even":
        widths = np.full(n_cells, 1_000_000_000)
    elif layout == "ragged":
        widths = rng.integers(1, 3_000_000_000, n_cells)
    else:
        widths = np.where(rng.random(n_cells) < 0.3, rng.integers(1, 50, n_cells),
                          rng.integers(10**6, 10**9, n_cells))
    starts = 1_764_129_600_000_000_000 + np.concatenate([[0], np.cumsum(widths)])
    grid = Grid.build(starts)
    span = int(starts[-1] - starts[0])
    ts = int(starts[0]) + rng.integers(-span // 10 - 5, span + span // 10 + 5,
                                       GRID_MIN + 1000)
    ts[:50] = rng.choice(starts, 50)  # exactly on cell starts
    got = grid.locate(starts, ts)
    np.testing.assert_array_equal(got, np.searchsorted(starts, ts, side="right"))
