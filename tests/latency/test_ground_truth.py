"""Ground truth: simulated PP and Bifrost nodes with skewed clocks, tables fitted from
simulated samples, true latencies known. Every true hop latency lies in [low, high]; the
causal bound beats the table-only bound when traffic flows both ways; negative raw latencies
are present and fixed."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from clocksync import InconsistentError, InputError
from clocksync.latency import CausalAssumptions, hop_table, simulate_requests

from .conftest import T0, World, make_world

BOTH_WAYS = [("n1", "n2"), ("n2", "n1")]
CAUSAL = CausalAssumptions(min_wire_delay_ns=10_000.0)


def _by_hop(table: pa.Table, hop: str) -> tuple[np.ndarray, ...]:
    sub = table.filter(pc.equal(table.column("hop"), hop))
    idx = np.array([int(r[4:]) for r in sub.column("request_id").to_pylist()])
    cols = ("low_ns", "high_ns", "raw_latency_ns", "table_low_ns", "table_high_ns",
            "order_unknown")
    return (idx, *(sub.column(c).to_numpy() for c in cols))


@pytest.mark.parametrize("causal", [CAUSAL, None], ids=["causal", "table-only"])
def test_every_true_latency_inside_bounds(world: World, causal: CausalAssumptions | None
                                          ) -> None:
    events, truth = simulate_requests(world.clocks, BOTH_WAYS, 6000, T0 + 20 * 10**9, 260.0,
                                      np.random.default_rng(1))
    result = hop_table(events, world.corrector, causal=causal)
    assert result.requests == 6000 and result.incomplete == 0
    assert result.table.num_rows == 4 * 6000
    for hop in ("pp_enqueue->pp_exit", "pp_exit->bifrost_arrive",
                "bifrost_arrive->bifrost_done", "pp_enqueue->bifrost_done"):
        idx, low, high, _raw, tlo, thi, _ = _by_hop(result.table, hop)
        true = truth[hop][idx]
        assert np.all(low <= true) and np.all(true <= high), hop
        assert np.all(tlo <= true) and np.all(true <= thi), hop
        assert np.all(low >= tlo) and np.all(high <= thi), hop
    assert not pc.any(result.table.column("inconsistent")).as_py()


def test_causal_tightens_cross_node_when_both_ways(world: World) -> None:
    events, truth = simulate_requests(world.clocks, BOTH_WAYS, 6000, T0 + 20 * 10**9, 260.0,
                                      np.random.default_rng(2))
    result = hop_table(events, world.corrector, causal=CAUSAL)
    idx, low, high, raw, tlo, thi, unknown = _by_hop(result.table, "pp_exit->bifrost_arrive")
    width, table_width = high - low, thi - tlo
    assert np.median(width) < 0.6 * np.median(table_width)
    # negative raw latencies are in the data (n1 is 430 µs ahead of n2) ...
    assert (raw < 0).sum() > 1000
    count = {h.hop: h for h in result.hops}["pp_exit->bifrost_arrive"]
    assert count.negative_raw == int((raw < 0).sum())
    # ... and fixed: true latency positive, inside the bound, order known
    neg = raw < 0
    assert np.all(low[neg] > 0) and not unknown.any()
    assert np.all((low <= truth["pp_exit->bifrost_arrive"][idx])
                  & (truth["pp_exit->bifrost_arrive"][idx] <= high))
    # end to end gets the benefit too (sum of its tightened parts)
    _, elo, ehi, _, etlo, ethi, _ = _by_hop(result.table, "pp_enqueue->bifrost_done")
    assert np.median(ehi - elo) < 0.7 * np.median(ethi - etlo)
    assert {w.status for w in result.pair_windows} == {"ok"}


def test_one_way_traffic_does_not_tighten_much(world: World) -> None:
    events, truth = simulate_requests(world.clocks, [("n1", "n2")], 3000, T0 + 20 * 10**9,
                                      260.0, np.random.default_rng(3))
    result = hop_table(events, world.corrector, causal=CAUSAL)
    idx, low, high, _raw, _tlo, thi, unknown = _by_hop(result.table, "pp_exit->bifrost_arrive")
    true = truth["pp_exit->bifrost_arrive"][idx]
    assert np.all((low <= true) & (true <= high))
    np.testing.assert_array_equal(high, thi)  # no B->A message: no upper constraint
    assert unknown.sum() == 0 or np.all(low[unknown] < 0)
    assert {w.status for w in result.pair_windows} == {"one-way"}


def test_same_node_hops_have_rate_error_bounds_only(world: World) -> None:
    events, _truth = simulate_requests(world.clocks, BOTH_WAYS, 1000, T0 + 20 * 10**9, 260.0,
                                      np.random.default_rng(4))
    result = hop_table(events, world.corrector)
    _, low, high, *_ = _by_hop(result.table, "pp_enqueue->pp_exit")
    _, _clow, _chigh, _, tlo, thi, _ = _by_hop(result.table, "pp_exit->bifrost_arrive")
    assert np.median(high - low) < 0.05 * np.median(thi - tlo)


def test_wrong_table_is_reported_loudly() -> None:
    bad_world = make_world(11, offset_shift_ns=1_000_000.0)
    events, _ = simulate_requests(bad_world.clocks, BOTH_WAYS, 2000, T0 + 20 * 10**9, 200.0,
                                  np.random.default_rng(5))
    result = hop_table(events, bad_world.corrector, causal=CAUSAL)
    assert any(w.status == "inconsistent" for w in result.pair_windows)
    assert sum(h.inconsistent for h in result.hops) > 0
    with pytest.raises(InconsistentError, match=r"causality contradicts .* (n1<->n2|n2<->n1)"):
        hop_table(events, bad_world.corrector, causal=CAUSAL, strict=True)


def test_events_before_table_fatal_or_counted(world: World) -> None:
    events, _ = simulate_requests(world.clocks, BOTH_WAYS, 500, T0 - 5 * 10**9, 30.0,
                                  np.random.default_rng(6))
    with pytest.raises(InputError, match=r"node n[12]: \d+ event\(s\) have no guaranteed"):
        hop_table(events, world.corrector)
    result = hop_table(events, world.corrector, skip_bad=True)
    assert result.uncorrectable > 0
    assert result.requests - result.uncorrectable == (
        result.table.num_rows // 4)


def test_acks_give_the_other_direction(world: World) -> None:
    """One-way PP traffic n1 -> n2, but Bifrost acks back (pp_ack on n1): the acks bound
    the offset from the other side, so the cross-node hops tighten."""
    from clocksync.latency import RequestModel

    chain = ("pp_enqueue", "pp_exit", "bifrost_arrive", "bifrost_done", "pp_ack")
    events, truth = simulate_requests(world.clocks, [("n1", "n2")], 4000, T0 + 20 * 10**9,
                                      260.0, np.random.default_rng(8),
                                      RequestModel(ack_wire_mean_ns=30_000.0))
    result = hop_table(events, world.corrector, stages=chain, causal=CAUSAL)
    names = {h.hop for h in result.hops}
    assert names == {"pp_enqueue->pp_exit", "pp_exit->bifrost_arrive",
                     "bifrost_arrive->bifrost_done", "bifrost_done->pp_ack",
                     "pp_enqueue->pp_ack"}
    for hop in ("pp_exit->bifrost_arrive", "bifrost_done->pp_ack", "pp_enqueue->pp_ack"):
        idx, low, high, _raw, tlo, thi, _ = _by_hop(result.table, hop)
        true = truth[hop][idx]
        assert np.all((low <= true) & (true <= high)), hop
        if hop != "pp_enqueue->pp_ack":  # that one starts and ends on n1: already tight
            assert np.median(high - low) < 0.6 * np.median(thi - tlo), hop
    assert {w.status for w in result.pair_windows} == {"ok"}


def test_counts_incomplete_duplicate_unknown(world: World) -> None:
    events, _ = simulate_requests(world.clocks, BOTH_WAYS, 50, T0 + 20 * 10**9, 10.0,
                                  np.random.default_rng(9))
    # drop req-0's bifrost_done, duplicate req-1's pp_exit, add an unknown stage
    mask = ~(pc.and_(pc.equal(events.column("request_id"), "req-0"),
                     pc.equal(events.column("stage"), "bifrost_done"))).to_numpy(
        zero_copy_only=False)
    dup = events.filter(pc.and_(pc.equal(events.column("request_id"), "req-1"),
                                pc.equal(events.column("stage"), "pp_exit")))
    extra = dup.set_column(1, "stage", pa.array(["gc_pause"]))
    table = pa.concat_tables([events.filter(pa.array(mask)), dup, extra])
    result = hop_table(table, world.corrector)
    assert result.requests == 50 and result.incomplete == 1
    assert result.duplicates == 1 and result.duplicate_examples == ("req-1",)
    assert result.unknown_stage == 1
    per_hop = {h.hop: h.requests for h in result.hops}
    assert per_hop["pp_enqueue->pp_exit"] == 50
    assert per_hop["bifrost_arrive->bifrost_done"] == 49
    assert per_hop["pp_enqueue->bifrost_done"] == 49


def test_empty_input(world: World) -> None:
    events, _ = simulate_requests(world.clocks, BOTH_WAYS, 5, T0 + 20 * 10**9, 1.0,
                                  np.random.default_rng(1))
    result = hop_table(events.slice(0, 0), world.corrector)
    assert result.requests == 0 and result.table.num_rows == 0
