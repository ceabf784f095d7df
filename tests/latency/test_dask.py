"""Dask: partitions in, per-request results and mergeable sketches out, on a
distributed.LocalCluster; the sketch's quantile intervals hold the exact ones."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from clocksync.latency import QuantileSketch, hop_table, percentile_table, simulate_requests

from .conftest import T0, World

dd = pytest.importorskip("dask.dataframe", reason="needs dask: pip install 'clocksync[dask]'")
distributed = pytest.importorskip("distributed", reason="needs dask.distributed")

ROUTES = [("n1", "n2"), ("n2", "n1")]


@pytest.fixture(scope="module")
def client() -> Iterator[object]:
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                       dashboard_address=None)
    c = distributed.Client(cluster)
    try:
        yield c
    finally:
        c.close()
        cluster.close()


def test_dask_matches_local_and_sketch_brackets(world: World, client: object) -> None:
    from clocksync.latency.dask import dask_latencies, dask_sketch

    events, truth = simulate_requests(world.clocks, ROUTES, 4000, T0 + 20 * 10**9, 200.0,
                                      np.random.default_rng(12))
    ddf = dd.from_pandas(events.to_pandas(), npartitions=4)  # requests split across parts
    result = dask_latencies(ddf, world.tables.values())
    df = result.compute()
    assert len(df) == 4 * 4000 and set(df["hop"]) == set(truth) - {"slow"}
    local = hop_table(events, world.corrector).table
    # table-only intervals identical; tightened ones valid (each partition sees fewer msgs)
    df = df.sort_values(["hop", "request_id"])
    loc = local.to_pandas().astype({"hop": str, "request_id": str}).sort_values(
        ["hop", "request_id"])
    np.testing.assert_allclose(df["table_low_ns"].to_numpy(), loc["table_low_ns"].to_numpy())
    for hop, sub in df.groupby("hop"):
        idx = sub["request_id"].str[4:].astype(int).to_numpy()
        true = truth[hop][idx]
        assert np.all(sub["low_ns"].to_numpy() <= true) and np.all(true <= sub["high_ns"])
    sketch = dask_sketch(result, accuracy=0.01)
    got = {(r["hop"], r["src_node"], r["dst_node"]): r for r in sketch.percentiles().to_pylist()}
    # looser per-partition causal bounds only widen: the sketch contains the local exact one
    for row in percentile_table(local, all_pairs=False).to_pylist():
        s = got[(row["hop"], row["src_node"], row["dst_node"])]
        for q in ("p50", "p90", "p99", "max"):
            assert s[f"{q}_low_ns"] <= row[f"{q}_low_ns"] + 1e-6
            assert s[f"{q}_high_ns"] >= row[f"{q}_high_ns"] - 1e-6
    exact = percentile_table(pa.Table.from_pandas(df, preserve_index=False),
                             all_pairs=False).to_pylist()
    for row in exact:
        s = got[(row["hop"], row["src_node"], row["dst_node"])]
        assert s["count"] == row["count"]
        for q in ("p50", "p90", "p99", "max"):
            # contains the exact interval; each end at most one bucket (γ-1 ≈ 2α) wider
            assert s[f"{q}_low_ns"] <= row[f"{q}_low_ns"] + 1e-6
            assert s[f"{q}_high_ns"] >= row[f"{q}_high_ns"] - 1e-6
            assert s[f"{q}_high_ns"] - s[f"{q}_low_ns"] <= (
                row[f"{q}_high_ns"] - row[f"{q}_low_ns"] + 0.041 * abs(row[f"{q}_high_ns"]) + 2)


def test_sketch_merge_equals_whole(world: World) -> None:
    events, _ = simulate_requests(world.clocks, ROUTES, 2000, T0 + 20 * 10**9, 100.0,
                                  np.random.default_rng(13))
    hops = hop_table(events, world.corrector).table
    half = pc.less(hops.column("src_ref_ns"), int(np.median(hops.column("src_ref_ns"))))
    a = QuantileSketch.from_hops(hops.filter(half))
    b = QuantileSketch.from_hops(hops.filter(pc.invert(half)))
    whole = QuantileSketch.from_hops(hops)
    assert a.merge(b).percentiles().equals(whole.percentiles())
    neg = pa.table({"hop": ["x"] * 3, "src_node": ["a"] * 3, "dst_node": ["b"] * 3,
                    "latency_ns": [-5e3, 0.2, 7e3], "low_ns": [-6e3, -0.5, 6e3],
                    "high_ns": [-4e3, 0.9, 8e3]})
    row = QuantileSketch.from_hops(neg).percentiles().to_pylist()[0]
    assert row["max_low_ns"] <= 6e3 <= row["max_high_ns"] and row["max_high_ns"] >= 8e3
    assert row["p50_low_ns"] <= -0.5 and row["p50_high_ns"] >= 0.9
    with pytest.raises(ValueError, match="accuracy"):
        a.merge(QuantileSketch(0.05))
