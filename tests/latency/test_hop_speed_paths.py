"""Corrections are bit-identical whichever way a timestamp comes (scalar, gathered, per
sorted run, through the pipeline's :class:`clocksync.CellStack`), and equal to the
formula evaluated in Python from the table's cells; the pipeline with ``cell_stack`` against a
corrector that offers none (so the pipeline asks ``correct``, ``flags`` and, per node,
``latency``). On tables with a clock step (ambiguous cells, two segments), a void stretch,
holdover and different ``max_skew_ppm``; with timestamps before the first sample, in the void
and past the holdover horizon; sorted and shuffled input."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from clocksync import (
    HOLDOVER,
    OUT_OF_RANGE,
    VOID,
    CellStack,
    CorrectionTable,
    Corrector,
    InputError,
    SimClock,
    fit_table,
    open_store,
)
from clocksync.latency import DEFAULT_STAGES, CausalAssumptions, hop_table
from clocksync.latency._hops import (  # tests the private module clocksync.latency._hops
    EventCorrections,
    HopArrays,
    StageStamps,
    correct_stamps,
    pivot_events,
    table_hops,
)
from clocksync.latency._pipeline import chain_hop_table  # (private too)
from clocksync.testing import LinkModel, simulate_samples

T0 = 1_767_225_600 * 10**9
STEP_S = 300  # local seconds after T0 of the clock steps
NODES = ("a", "b", "c")


def _with_void(table: CorrectionTable, k: int) -> CorrectionTable:
    """``table`` with cell ``k`` made void (as ``compose`` makes holes between segments)."""
    c = table.cells
    flags, seg = c.flags.copy(), c.segment.copy()
    flags[k], seg[k] = VOID, -1
    zero = {f: getattr(c, f).copy() for f in ("hi0", "hi1", "lo0", "lo1", "slo", "shi")}
    for arr in zero.values():
        arr[k] = 0.0
    cells = dataclasses.replace(c, flags=flags, segment=seg, **zero)
    return dataclasses.replace(table, cells=cells)


def _table(name: str, seed: int, step_ns: float, **assumptions: float) -> CorrectionTable:
    clock = SimClock(t0_ns=T0, offset0_ns=3e6 * (seed - 1), skew_ppm=40.0 * seed,
                     wander_ppb_per_s=10.0, span_s=2000,
                     steps=((T0 + STEP_S * 10**9, step_ns),) if step_ns else (), seed=seed)
    samples = simulate_samples(clock, name, T0, 900, 4, LinkModel(), np.random.default_rng(seed),
                               gaps_s=((500, 560),))
    return fit_table(samples, **assumptions)


@pytest.fixture(scope="module")
def corrector() -> Corrector:
    a = _table("a", 1, 5e5, holdover_horizon_s=60)
    a = _with_void(a, 3 * len(a.cells) // 4)  # after the gap, away from the step
    b = _table("b", 2, -4e5, max_skew_ppm=300)
    c = _table("c", 3, 0.0)
    cor = Corrector([a, b, c])
    for t in (a, b, c):  # what the tests below rely on
        assert len(np.unique(t.cells.segment[t.cells.segment >= 0])) >= (1 if t is c else 2)
        assert (t.cells.flags & HOLDOVER).any()
    assert (a.cells.flags & VOID).any()
    return cor


class PlainCorrector:
    """The same tables behind only the calls of ``CorrectorLike`` (no ``cell_stack``)."""

    def __init__(self, inner: Corrector) -> None:
        self.inner = inner

    @property
    def nodes(self) -> tuple[str, ...]:
        return self.inner.nodes

    def correct(self, node: str, ts_ns: Any, *, on_invalid: Any = "raise") -> Any:
        return self.inner.correct(node, ts_ns, on_invalid=on_invalid)

    def flags(self, node: str, ts_ns: Any) -> Any:
        return self.inner.flags(node, ts_ns)

    def table(self, node: str) -> Any:
        return self.inner.table(node)

    def latency(self, src_node: str, src_ts_ns: Any, dst_node: str, dst_ts_ns: Any
                ) -> tuple[Any, Any]:
        return self.inner.latency(src_node, src_ts_ns, dst_node, dst_ts_ns)


def _same_bits(x: npt.NDArray[Any], y: npt.NDArray[Any]) -> bool:
    """Equal arrays, floats bit for bit (NaN == NaN, -0.0 != 0.0)."""
    x, y = np.asarray(x), np.asarray(y)
    if x.dtype != y.dtype or x.shape != y.shape:
        return False
    if x.dtype.kind == "f":
        return bool(np.array_equal(x.view(np.int64), y.view(np.int64)))
    return bool(np.array_equal(x, y))


def _span(cor: Corrector, node: str) -> tuple[int, int]:
    t = cor.table(node)
    last = t.last_sample_local_ns
    assert last is not None
    return int(t.cells.start_ns[0]), int(last)


def _times(cor: Corrector, node: str, rng: np.random.Generator, n: int, dense: bool
           ) -> npt.NDArray[np.int64]:
    """``dense``: around the step (few cells: sorted input takes the per-run path); else
    from 5 s before the first sample to 120 s past the last (out of range, void, holdover)."""
    first, last = _span(cor, node)
    if dense:
        mid = T0 + STEP_S * 10**9
        return rng.integers(mid - 20 * 10**9, mid + 20 * 10**9, n).astype(np.int64)
    return rng.integers(max(first - 5 * 10**9, 0), last + 120 * 10**9, n).astype(np.int64)


def _formula(table: CorrectionTable, ts: npt.NDArray[np.int64]) -> tuple[list[int], list[float]]:
    """``correct(on_invalid="inf")`` of ``ts`` from the table's cells, in Python numbers:
    ``d = t - start``, ``ref = t + round(d·mid1·1e-9 + mid0)``, ``bound = d·half1·1e-9 +
    half0 + 0.5`` (``inf`` before the first cell, in a void one, past the last)."""
    c = table.cells
    refs: list[int] = []
    bounds: list[float] = []
    for t in ts.tolist():
        k = int(np.searchsorted(c.start_ns, t, side="right")) - 1
        if k < 0 or t >= int(c.end_ns[-1]) or c.flags[k] & VOID:
            refs.append(t)
            bounds.append(np.inf)
            continue
        hi0, lo0, hi1, lo1 = (float(getattr(c, f)[k]) for f in ("hi0", "lo0", "hi1", "lo1"))
        d = t - int(c.start_ns[k])
        refs.append(t + round(d * (((hi1 + lo1) / 2) * 1e-9) + (hi0 + lo0) / 2))
        bounds.append(d * (((hi1 - lo1) / 2) * 1e-9) + ((hi0 - lo0) / 2 + 0.5))
    return refs, bounds


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("dense", [True, False])
def test_every_path_gives_the_same_bits(corrector: Corrector, seed: int, dense: bool) -> None:
    """Sorted input dense in cells (per-run), shuffled (gathered, across in-cache chunks),
    a few sorted runs, scalars and the stack: the same bits, the formula's."""
    rng = np.random.default_rng(seed)
    stack = corrector.cell_stack(NODES)
    assert stack is not None
    for code, node in enumerate(NODES):
        ts = np.sort(_times(corrector, node, rng, 150_000, dense))
        perm = rng.permutation(len(ts))
        ref, bound = corrector.correct(node, ts, on_invalid="inf")
        shuffled = corrector.correct(node, ts[perm], on_invalid="inf")
        runs = np.concatenate([np.sort(p) for p in np.array_split(ts[perm], 3)])
        back = np.argsort(runs, kind="stable")
        in_runs = corrector.correct(node, runs, on_invalid="inf")
        assert _same_bits(shuffled[0], ref[perm]) and _same_bits(shuffled[1], bound[perm])
        assert _same_bits(in_runs[0][back], ref) and _same_bits(in_runs[1][back], bound)
        s_ref, s_bound, flags, _ = stack.correct(code, ts[perm])
        assert _same_bits(s_ref, ref[perm]) and _same_bits(s_bound, bound[perm])
        assert _same_bits(flags, corrector.flags(node, ts[perm]))
        assert ((flags & OUT_OF_RANGE) != 0).tolist() == np.isinf(bound[perm]).tolist()
        pick = rng.choice(len(ts), 300, replace=False)
        want_ref, want_bound = _formula(corrector.table(node), ts[pick])
        assert ref[pick].tolist() == want_ref
        assert _same_bits(bound[pick], np.array(want_bound))
        scalars = [corrector.correct(node, int(t), on_invalid="inf") for t in ts[pick]]
        assert [r for r, _ in scalars] == want_ref and [b for _, b in scalars] == want_bound
        if not dense:  # the awkward times are there
            assert np.isinf(bound).any() and (flags & HOLDOVER).any()


def test_stack_same_node_latency_is_latency(corrector: Corrector) -> None:
    """The pipeline's same-node hops from the stack's cells and corrections (sorted
    timestamps: per-run) = :meth:`Corrector.latency` of the shuffled hops (gathered), bit
    for bit, nodes interleaved, hops across the step and backwards."""
    rng = np.random.default_rng(11)
    stack = corrector.cell_stack(NODES)
    assert stack is not None
    parts: dict[str, list[npt.NDArray[Any]]] = {k: [] for k in
                                                  ("src", "dst", "c1", "c2", "lat", "bnd", "k")}
    for code, node in enumerate(NODES):
        n = 20_000
        ts = np.sort(_times(corrector, node, rng, n, dense=True))
        src = rng.integers(0, n, n)
        step = rng.integers(0, 40, n)
        dst = np.where(rng.random(n) < 0.8, src + step, rng.integers(0, n, n))
        dst = np.clip(np.where(rng.random(n) < 0.05, src - step, dst), 0, n - 1)
        ref, bound, _, cell = stack.correct(code, ts)
        parts["src"].append(ts[src])
        parts["dst"].append(ts[dst])
        parts["c1"].append(cell[src])
        parts["c2"].append(cell[dst])
        parts["lat"].append((ref[dst] - ref[src]).astype(np.float64))  # as table_hops does
        parts["bnd"].append(bound[src] + bound[dst])
        parts["k"].append(np.full(n, code))
    order = rng.permutation(sum(len(p) for p in parts["src"]))
    cat = {k: np.concatenate(v)[order] for k, v in parts.items()}
    lat, bnd = stack.same_node_latency(cat["src"], cat["dst"], cat["c1"], cat["c2"],
                                       cat["lat"], cat["bnd"])
    seg = stack.slopes.seg
    assert (seg[cat["c1"]] != seg[cat["c2"]]).any()  # hops across the step
    for code, node in enumerate(NODES):
        m = cat["k"] == code
        want_lat, want_bnd = corrector.latency(node, cat["src"][m], node, cat["dst"][m])
        assert _same_bits(lat[m], want_lat) and _same_bits(bnd[m], want_bnd)
        assert (want_bnd < cat["bnd"][m]).mean() > 0.5  # the slopes did tighten
    empty = np.zeros(0, np.int64)
    e_lat, e_bnd = stack.same_node_latency(empty, empty, empty.astype(np.int32),
                                           empty.astype(np.int32), empty.astype(float),
                                           empty.astype(float))
    assert e_lat.shape == e_bnd.shape == (0,)


def _events(corrector: Corrector, rng: np.random.Generator, n_req: int, dense: bool,
            layout: str) -> pa.Table:
    """Four-stage requests: stages 0-1 on one node, 2-3 on another (often the same one);
    short hops, some long (far cells, across the step) and some backwards; 2% of events
    dropped (incomplete requests), 1% duplicated."""
    n_st = len(DEFAULT_STAGES)
    node = np.empty((n_req, n_st), dtype=np.int64)
    node[:, 0] = node[:, 1] = rng.integers(0, len(NODES), n_req)
    other = rng.integers(0, len(NODES), n_req)
    node[:, 2] = node[:, 3] = np.where(rng.random(n_req) < 0.5, node[:, 0], other)
    base = _times(corrector, "c", rng, n_req, dense)
    step = rng.exponential(2e6, (n_req, n_st)).astype(np.int64)
    long = rng.random((n_req, n_st)) < 0.05
    step = np.where(long, rng.integers(10**9, 60 * 10**9, (n_req, n_st)), step)
    step = np.where(rng.random((n_req, n_st)) < 0.02, -step, step)
    step[:, 0] = 0
    ts = np.maximum(base[:, None] + np.cumsum(step, axis=1), 0)
    req = np.repeat(np.arange(n_req), n_st)
    stage = np.tile(np.arange(n_st), n_req)
    keep = rng.random(len(req)) > 0.02
    rows = np.flatnonzero(keep)
    rows = np.concatenate([rows, rng.choice(rows, len(rows) // 100)])
    t_flat, n_flat = ts.reshape(-1)[rows], node.reshape(-1)[rows]
    if layout == "row groups":  # as write_events: time-ordered groups, each by (node, ts)
        by_time = np.argsort(base[req[rows]], kind="stable")
        order = np.concatenate([g[np.lexsort((t_flat[g], n_flat[g]))]
                                for g in np.array_split(by_time, 3)])
    else:
        order = rng.permutation(len(rows))
    rows = rows[order]
    return pa.table({
        "request_id": pa.array([f"r{i}" for i in req[rows]]),
        "stage": pa.array(np.array(DEFAULT_STAGES)[stage[rows]]),
        "node": pa.array(np.array(NODES)[node.reshape(-1)[rows]]),
        "ts_ns": pa.array(ts.reshape(-1)[rows], pa.int64()),
    })


def _assert_same_stamps(x: StageStamps, y: StageStamps) -> None:
    for f in ("ref_ns", "bound_ns", "usable", "holdover"):
        assert _same_bits(getattr(x, f), getattr(y, f)), f
    assert (x.out_of_range, x.out_of_range_nodes) == (y.out_of_range, y.out_of_range_nodes)


def _assert_same_hops(x: list[HopArrays], y: list[HopArrays]) -> None:
    assert len(x) == len(y)
    for hx, hy in zip(x, y, strict=True):
        for f in HopArrays.__slots__:
            vx, vy = getattr(hx, f), getattr(hy, f)
            assert _same_bits(vx, vy) if isinstance(vx, np.ndarray) else vx == vy, (hx.name, f)


@pytest.mark.parametrize("layout", ["row groups", "shuffled"])
@pytest.mark.parametrize("dense", [True, False])
def test_pipeline_matches_per_node_calls(corrector: Corrector, layout: str, dense: bool) -> None:
    rng = np.random.default_rng(hash((layout, dense)) % 2**32)
    events = _events(corrector, rng, 8_000, dense, layout)
    pivot = pivot_events(events, DEFAULT_STAGES)
    assert pivot.duplicates and pivot.incomplete
    plain = PlainCorrector(corrector)
    fast = correct_stamps(pivot, corrector, skip_bad=True)
    slow = correct_stamps(pivot, plain, skip_bad=True)
    assert fast.cell is not None and slow.cell is None
    _assert_same_stamps(fast, slow)
    if not dense:
        assert fast.out_of_range and fast.holdover.any()
    hops = table_hops(pivot, fast, corrector)
    _assert_same_hops(hops, table_hops(pivot, slow, plain))
    assert any((h.src_node == h.dst_node).any() for h in hops)
    assert any((h.src_node != h.dst_node).any() for h in hops)
    # stamps of another corrector (here: a copy of the tables) are not trusted for cells
    other = Corrector(corrector.table(n) for n in corrector.nodes)
    _assert_same_hops(table_hops(pivot, fast, other), hops)
    if not dense:  # the same refusal either way
        with pytest.raises(InputError) as fast_err:
            correct_stamps(pivot, corrector)
        with pytest.raises(InputError) as slow_err:
            correct_stamps(pivot, plain)
        assert str(fast_err.value) == str(slow_err.value)


def test_complete_requests_without_duplicates(corrector: Corrector) -> None:
    """Every slot present, no duplicates: the plain-gather branches."""
    events = _events(corrector, np.random.default_rng(3), 3_000, True, "row groups")
    pivot = pivot_events(events, DEFAULT_STAGES)
    ok = np.flatnonzero((pivot.row >= 0).all(axis=1))
    ids = pa.array(pivot.request_ids.take(pa.array(ok)).to_pylist())
    events = events.filter(pc.is_in(events.column("request_id"), value_set=ids))
    first = np.unique(events.column("request_id").to_numpy(zero_copy_only=False).astype(str)
                      + "/" + events.column("stage").to_numpy(zero_copy_only=False).astype(str),
                      return_index=True)[1]
    events = events.take(pa.array(np.sort(first)))
    pivot = pivot_events(events, DEFAULT_STAGES)
    assert not pivot.duplicates and not pivot.incomplete
    fast = correct_stamps(pivot, corrector)
    slow = correct_stamps(pivot, PlainCorrector(corrector))
    _assert_same_stamps(fast, slow)
    _assert_same_hops(table_hops(pivot, fast, corrector),
                      table_hops(pivot, slow, PlainCorrector(corrector)))


def test_cell_stack_refuses_unknown_nodes_and_follows_refresh(corrector: Corrector,
                                                              tmp_path: Path) -> None:
    assert corrector.cell_stack(("a", "nope")) is None
    stack = corrector.cell_stack(("c", "a"))
    assert stack is not None and stack is corrector.cell_stack(["c", "a"])
    assert stack.uniform_slope == corrector.table("a").assumptions["max_skew_ppm"] * 1e3
    mixed = corrector.cell_stack(NODES)
    assert mixed is not None and mixed.uniform_slope is None  # b's max_skew_ppm differs
    store = open_store(str(tmp_path))
    store.write(corrector.table("c"))
    loaded = Corrector.from_store(str(tmp_path))
    before = loaded.cell_stack(("c",))
    store.write(dataclasses.replace(corrector.table("c"), generation=1))
    assert loaded.refresh()
    after = loaded.cell_stack(("c",))
    assert before is not None and after is not None and after is not before


def test_subclass_with_its_own_correct_and_no_stack(corrector: Corrector) -> None:
    """A subclass that changes ``correct`` and offers no stack is asked ``correct``."""
    class Shifted(Corrector):
        def correct(self, node: str, ts_ns: Any, *, on_invalid: Any = "raise") -> Any:
            ref, bound = super().correct(node, ts_ns, on_invalid=on_invalid)
            return ref + 1000, bound

        def cell_stack(self, nodes: Any) -> None:
            return None

    shifted = Shifted(corrector.table(n) for n in NODES)
    events = _events(corrector, np.random.default_rng(8), 500, True, "row groups")
    pivot = pivot_events(events, DEFAULT_STAGES)
    stamps = correct_stamps(pivot, shifted, skip_bad=True)
    plain = correct_stamps(pivot, corrector, skip_bad=True)
    assert stamps.cell is None and (stamps.ref_ns - plain.ref_ns)[stamps.usable].tolist() == \
        [1000] * int(stamps.usable.sum())


def _kept(corrector: Corrector, events: pa.Table) -> EventCorrections:
    """Every row of ``events`` corrected by the stack of all the corrector's nodes (a node
    it has no table of: -1), in two parts joined again (as a step joins its batches)."""
    stack = corrector.cell_stack(corrector.nodes)
    assert stack is not None
    index = {n: k for k, n in enumerate(stack.nodes)}
    code = np.array([index.get(n, -1) for n in events.column("node").to_pylist()])
    ts = events.column("ts_ns").to_numpy()
    half = len(ts) // 2
    parts = [EventCorrections.of(stack, code[:half], ts[:half]),
             EventCorrections.of(stack, code[half:], ts[half:])]
    return EventCorrections.concat([parts[0], parts[1].rows(np.arange(len(ts) - half))])


@pytest.mark.parametrize("layout", ["row groups", "shuffled"])
@pytest.mark.parametrize("dense", [True, False])
def test_kept_corrections_give_the_same_bits(corrector: Corrector, layout: str,
                                             dense: bool, monkeypatch: pytest.MonkeyPatch
                                             ) -> None:
    """Corrections made before (a live collector's, once per event) and the pipeline's own
    give the same stamps and hops, with unknown stages, nodes without a table, duplicates,
    missing stages and (``not dense``) uncorrectable stamps; they are not used with other
    tables, and a refusal names the same events."""
    rng = np.random.default_rng(hash((layout, dense, "kept")) % 2**32)
    events = _events(corrector, rng, 6_000, dense, layout)
    n = events.num_rows
    odd = rng.random(n)
    events = events.set_column(1, "stage", pa.array(np.where(
        odd < 0.01, "elsewhere", events.column("stage").to_numpy(zero_copy_only=False))))
    pivot = pivot_events(events, DEFAULT_STAGES)
    assert pivot.unknown_stage and pivot.duplicates and pivot.incomplete
    kept = _kept(corrector, pivot.events)  # (the rows of the chain's stages)
    plain = correct_stamps(pivot, corrector, skip_bad=True)
    with monkeypatch.context() as m:  # the kept ones serve: nothing is corrected again
        m.setattr(CellStack, "correct", None)
        cached = correct_stamps(pivot, corrector, skip_bad=True, corrections=kept)
    _assert_same_stamps(plain, cached)
    assert plain.cell is not None and cached.cell is not None
    assert _same_bits(plain.cell[plain.usable], cached.cell[cached.usable])
    assert bool(plain.out_of_range) == (not dense)
    _assert_same_hops(table_hops(pivot, plain, corrector), table_hops(pivot, cached, corrector))
    # other tables (here: copies of them): the kept corrections are not theirs
    other = Corrector(corrector.table(n) for n in corrector.nodes)
    assert not kept.serves(other.cell_stack(pivot.node_names))
    assert kept.serves(corrector.cell_stack(pivot.node_names))
    _assert_same_stamps(correct_stamps(pivot, other, skip_bad=True, corrections=kept),
                        correct_stamps(pivot, other, skip_bad=True))
    if not dense:
        with pytest.raises(InputError) as plain_err:
            correct_stamps(pivot, corrector)
        with pytest.raises(InputError) as cached_err:
            correct_stamps(pivot, corrector, corrections=kept)
        assert str(plain_err.value) == str(cached_err.value)
    # a node the stack has no table of: not correctable
    stack = corrector.cell_stack(corrector.nodes)
    assert stack is not None
    ts = events.column("ts_ns").to_numpy()[:50]
    code = np.where(np.arange(50) % 3 == 0, -1, np.arange(50) % len(stack.nodes))
    some = EventCorrections.of(stack, code, ts)
    assert np.isinf(some.bound_ns[code < 0]).all()
    want_ref, want_bound = corrector.correct(stack.nodes[1], ts[code == 1], on_invalid="inf")
    assert _same_bits(some.ref_ns[code == 1], want_ref)
    assert _same_bits(some.bound_ns[code == 1], want_bound)


@pytest.mark.parametrize("unknown_stage", [False, True])
def test_hop_table_of_a_reference_range(corrector: Corrector, unknown_stage: bool) -> None:
    """``ref_range_ns`` (with kept corrections or without): the rows of the whole table
    whose corrected source time lies in the range, in its order, under its dictionaries.
    (Events of a stage outside the chain: the kept corrections are not used.)"""
    rng = np.random.default_rng(5)
    events = _events(corrector, rng, 4_000, True, "shuffled")
    if unknown_stage:
        stage = events.column("stage").to_numpy(zero_copy_only=False)
        events = events.set_column(1, "stage", pa.array(np.where(
            rng.random(len(stage)) < 0.01, "elsewhere", stage)))
    whole = hop_table(events, corrector, skip_bad=True).table
    ref = whole.column("src_ref_ns").to_numpy()
    lo, hi = np.quantile(ref, [0.3, 0.6]).astype(np.int64).tolist()
    want = whole.filter(pc.and_(pc.greater_equal(whole.column("src_ref_ns"), lo),
                                pc.less(whole.column("src_ref_ns"), hi)))
    assert 0 < want.num_rows < whole.num_rows
    for corrections in (None, _kept(corrector, events)):
        got = chain_hop_table(events, corrector, DEFAULT_STAGES, CausalAssumptions(),
                              skip_bad=True, ref_range_ns=(lo, hi), corrections=corrections)
        assert got.table.equals(want)
        assert sum(h.requests for h in got.hops) == want.num_rows
    empty = hop_table(events, corrector, skip_bad=True, ref_range_ns=(0, 1)).table
    assert empty.num_rows == 0 and empty.schema.equals(whole.schema)
