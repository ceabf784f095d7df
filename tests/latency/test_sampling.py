"""Dynamic sampling: deterministic per request, adapts to the budget, keeps slow outliers,
and its weights keep percentiles and counts unbiased."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from clocksync.latency import (
    AdaptiveSampler,
    RequestModel,
    SamplingConfig,
    hop_table,
    percentile_table,
    request_uniform,
    simulate_requests,
)

from .conftest import T0, World

ROUTES = [("n1", "n2"), ("n2", "n1")]


def test_request_uniform_deterministic_and_uniform() -> None:
    ids = pa.array([f"req-{i}" for i in range(20_000)] + ["", "é"])
    u = request_uniform(ids)
    assert np.all((u >= 0) & (u < 1))
    np.testing.assert_array_equal(u, request_uniform(ids.slice(0)))
    np.testing.assert_array_equal(u[5:10], request_uniform(ids.slice(5, 5)))
    counts, _ = np.histogram(u[:20_000], bins=10, range=(0, 1))
    assert counts.min() > 1700 and counts.max() < 2300  # ±15% of 2000


def test_budget_outliers_and_unbiased_percentiles(world: World) -> None:
    model = RequestModel(slow_after_s=0.0, slow_fraction=0.003, slow_extra_ns=5_000_000.0)
    events, truth = simulate_requests(world.clocks, ROUTES, 40_000, T0 + 20 * 10**9, 200.0,
                                      np.random.default_rng(2), model)
    rate = events.num_rows / 200.0  # 800 events/s
    sampler = AdaptiveSampler(SamplingConfig(budget_events_per_s=rate / 10, slow_ns=3e6))
    batch = sampler.sample(events)
    assert batch.probability == pytest.approx(0.1, rel=0.02)
    kept_ids = set(batch.events.column("request_id").to_pylist())
    slow_ids = {f"req-{i}" for i in np.flatnonzero(truth["slow"])}
    assert slow_ids and slow_ids <= kept_ids  # every slow request kept
    assert batch.outliers_kept == len(slow_ids)
    assert 0.08 < batch.requests_kept / 40_000 < 0.12
    # requests kept whole: 4 events each
    counts = pc.value_counts(batch.events.column("request_id")).field("counts")
    assert set(counts.to_pylist()) == {4}
    full = percentile_table(hop_table(events, world.corrector).table, all_pairs=False)
    sampled = percentile_table(hop_table(batch.events, world.corrector).table, all_pairs=False)
    for f, s in zip(full.to_pylist(), sampled.to_pylist(), strict=True):
        assert f["hop"] == s["hop"]
        assert s["weight_sum"] == pytest.approx(f["count"], rel=0.1)
        if f["hop"] in ("pp_enqueue->pp_exit", "bifrost_arrive->bifrost_done"):
            # same-node hops are exact: the weighted estimate must be close
            assert s["p50_ns"] == pytest.approx(f["p50_ns"], rel=0.05)
            assert s["p90_ns"] == pytest.approx(f["p90_ns"], rel=0.05)
        else:  # cross-node: fewer messages, looser causal bound; intervals still agree
            assert s["p50_low_ns"] <= f["p50_high_ns"] and f["p50_low_ns"] <= s["p50_high_ns"]
        if f["hop"] == "bifrost_arrive->bifrost_done":  # where the outliers are: kept, exact
            assert s["max_ns"] == f["max_ns"]
        if f["hop"] == "pp_enqueue->bifrost_done":  # same requests, causal bound differs a bit
            assert s["max_ns"] == pytest.approx(f["max_ns"], rel=0.01)


def test_adaptive_threshold_and_rate_tracking(world: World) -> None:
    events, _ = simulate_requests(world.clocks, ROUTES, 8000, T0 + 20 * 10**9, 100.0,
                                  np.random.default_rng(3))
    sampler = AdaptiveSampler(SamplingConfig(budget_events_per_s=1e9))
    batch = sampler.sample(events)
    assert batch.probability == 1.0 and batch.requests_kept == 8000
    assert np.all(batch.events.column("weight").to_numpy() == 1.0)
    assert 0 < batch.threshold_ns < 1e6
    with pytest.raises(ValueError, match="budget"):
        SamplingConfig(budget_events_per_s=0)


def test_longest_node_span_same_by_table_and_by_sort() -> None:
    """The per-request longest same-node span is the same from the (request, node) table
    (few nodes) and from the sorted events (many nodes), and equals a plain loop's."""
    from clocksync.latency._sampling import (  # tests the private module latency._sampling
        _longest_node_span,
    )

    rng = np.random.default_rng(4)
    n_req, n_nodes, n = 300, 7, 2000
    codes = np.concatenate([np.arange(n_req), rng.integers(0, n_req, n - n_req)])
    node = rng.integers(0, n_nodes, n)
    ts = rng.integers(0, 10**9, n)
    want = np.zeros(n_req)
    for r in range(n_req):
        for k in range(n_nodes):
            t = ts[(codes == r) & (node == k)]
            if len(t):
                want[r] = max(want[r], t.max() - t.min())
    by_table = _longest_node_span(codes, node, ts, n_req, n_nodes)
    by_sort = _longest_node_span(codes, node, ts, n_req, 10**6)  # table too large: sorted
    np.testing.assert_array_equal(by_table, want)
    np.testing.assert_array_equal(by_sort, want)
