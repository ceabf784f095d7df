"""Percentiles with bounds: exact order statistics, weights, windows, and the guarantee that
the quantile of the lows and of the highs brackets the true quantile."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clocksync.latency import grouped_quantiles, percentile_table

QS = [0.5, 0.9, 0.99, 1.0]


@given(st.lists(st.tuples(st.integers(0, 3), st.floats(-1e6, 1e6)), min_size=1, max_size=200))
@settings(max_examples=60, deadline=None)
def test_matches_numpy_inverted_cdf(items: list[tuple[int, float]]) -> None:
    g = np.array([i for i, _ in items], dtype=np.int64)
    v = np.array([x for _, x in items])
    got = grouped_quantiles(g, v, QS, 4)
    for k in range(4):
        if (g == k).any():
            want = np.quantile(v[g == k], QS, method="inverted_cdf")
            np.testing.assert_array_equal(got[k], want)
        else:
            assert np.isnan(got[k]).all()


def test_integer_weights_equal_replication() -> None:
    rng = np.random.default_rng(3)
    v = rng.normal(size=300)
    w = rng.integers(1, 5, 300)
    g = rng.integers(0, 2, 300).astype(np.int64)
    got = grouped_quantiles(g, v, QS, 2, w.astype(np.float64))
    want = grouped_quantiles(np.repeat(g, w), np.repeat(v, w), QS, 2)
    np.testing.assert_array_equal(got, want)


@given(st.integers(0, 10_000))
@settings(max_examples=30, deadline=None)
def test_quantile_of_bounds_brackets_true_quantile(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 500))
    true = rng.lognormal(11, 1, n)
    low = true - rng.uniform(0, 5e4, n)
    high = true + rng.uniform(0, 5e4, n)
    g = np.zeros(n, np.int64)
    q_true = grouped_quantiles(g, true, QS, 1)
    assert np.all(grouped_quantiles(g, low, QS, 1) <= q_true)
    assert np.all(q_true <= grouped_quantiles(g, high, QS, 1))


def _hops(n: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    lat = rng.uniform(1e5, 2e5, n)
    return pa.table({
        "request_id": [f"r{i}" for i in range(n)],
        "hop": ["a->b"] * n,
        "src_node": rng.choice(["n1", "n2"], n),
        "dst_node": ["n3"] * n,
        "src_ref_ns": (np.arange(n) * 100_000_000).astype(np.int64),  # 10 per second
        "latency_ns": lat, "low_ns": lat - 1e4, "high_ns": lat + 1e4,
    })


def test_percentile_table_whole_and_star_rows() -> None:
    t = _hops(200)
    out = percentile_table(t)
    assert out.column("src_node").to_pylist() == ["*", "n1", "n2"]
    assert out.column("count").to_pylist()[0] == 200
    assert sum(out.column("count").to_pylist()[1:]) == 200
    lat = t.column("latency_ns").to_numpy()
    assert out.column("max_ns")[0].as_py() == lat.max()
    assert out.column("p50_low_ns")[0].as_py() <= out.column("p50_ns")[0].as_py()
    assert out.column("p50_ns")[0].as_py() <= out.column("p50_high_ns")[0].as_py()


def test_windows_tumbling_and_sliding() -> None:
    t = _hops(200)  # 20 s of traffic, 10 requests/s
    tumbling = percentile_table(t, window_s=5.0, all_pairs=False)
    starts = sorted(set(tumbling.column("window_start_ns").to_pylist()))
    assert len(starts) == 4
    assert sum(tumbling.column("count").to_pylist()) == 200
    sliding = percentile_table(t, window_s=10.0, step_s=5.0, all_pairs=False)
    assert sum(sliding.column("count").to_pylist()) == 400  # every request in two windows
    ends = np.array(sliding.column("window_end_ns").to_pylist())
    begins = np.array(sliding.column("window_start_ns").to_pylist())
    assert np.all(ends - begins == 10_000_000_000)
    with pytest.raises(ValueError, match="multiple"):
        percentile_table(t, window_s=10.0, step_s=3.0)


def test_weighted_table() -> None:
    t = _hops(100).append_column("weight", pa.array(np.full(100, 4.0)))
    out = percentile_table(t, all_pairs=False)
    assert sum(out.column("weight_sum").to_pylist()) == 400.0


def test_lower_confidence_rank_coverage() -> None:
    from clocksync.latency._percentiles import (  # tests the private module latency._percentiles
        lower_confidence_rank,
    )

    assert lower_confidence_rank(5, 0.99, 0.05) == 4  # 0.99**5 >= 0.95: even the max
    rng = np.random.default_rng(5)
    true_p99 = -np.log(0.01)  # exponential(1)
    for n in (10, 120, 400):
        k = lower_confidence_rank(n, 0.99, 0.05)
        assert 0 <= k < n - 1
        samples = np.sort(rng.exponential(1.0, (4000, n)), axis=1)
        covered = np.mean(samples[:, k] <= true_p99)
        assert covered >= 0.94  # nominal 95%
        if n >= 120:
            assert covered < 0.995  # and not a needlessly low rank


def test_lcb_column_below_p99_low() -> None:
    out = percentile_table(_hops(1000), all_pairs=False).to_pylist()
    for row in out:
        assert row["p99_low_lcb_ns"] <= row["p99_low_ns"]
