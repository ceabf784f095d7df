"""``clocksync latency --scheduler``: the Dask path from the command line gives the report of
one process within the documented sketch accuracy (each end of a percentile interval at most
one bucket, a factor γ = (1+α)/(1-α), outside the exact one, and never inside it)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import clocksync.cli._scheduler as scheduler_module  # tests its connect timeout's path
from clocksync.cli import main

from .conftest import World, store_world

distributed = pytest.importorskip("distributed", reason="needs Dask: pip install "
                                  "'clocksync[dask]'")

ALPHA = 0.01
GAMMA = (1 + ALPHA) / (1 - ALPHA)
QS = ("p50", "p90", "p99", "max")


@pytest.fixture(scope="module")
def setup(world: World, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return store_world(world, tmp_path_factory.mktemp("dask-cli"), 2000, 21)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """A LocalCluster listening on 127.0.0.1 over TCP (threads, to spare the 2 cores)."""
    c = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                 protocol="tcp", host="127.0.0.1", dashboard_address=None)
    try:
        yield c
    finally:
        c.close()


def run(setup: tuple[Path, Path], *extra: str) -> dict[str, Any]:
    tables, events = setup
    res = CliRunner().invoke(main, ["latency", str(events), "--tables", str(tables),
                                    "--json", *extra])
    assert res.exit_code == 0, res.output
    doc: dict[str, Any] = json.loads(res.output)
    return doc


def rows(doc: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(r["hop"], r["src_node"], r["dst_node"]): r for r in doc["summary"]}


def assert_within_sketch(dask: dict[str, Any], exact: dict[str, Any], same_hops: bool) -> None:
    """Same rows and counts; every sketch interval holds the exact one; with identical
    per-request intervals (``same_hops``), each end is at most one bucket further out; with
    causal tightening per partition, at least 90 % of the ends are."""
    got, want = rows(dask), rows(exact)
    assert got.keys() == want.keys()
    ends = beyond = 0
    for key, w in want.items():
        g = got[key]
        assert g["count"] == w["count"], key
        for q in QS:
            lo, hi = w[f"{q}_low_ns"], w[f"{q}_high_ns"]
            assert g[f"{q}_low_ns"] <= lo + 1e-6 and g[f"{q}_high_ns"] >= hi - 1e-6, (key, q)
            # one bucket: v/γ <= edge <= v·γ (and 2 ns around zero)
            out = [lo - g[f"{q}_low_ns"] > (GAMMA - 1) * abs(lo) + 2.0,
                   g[f"{q}_high_ns"] - hi > (GAMMA - 1) * abs(hi) + 2.0]
            if same_hops:
                assert not any(out), (key, q)
            ends += 2
            beyond += sum(out)
    assert beyond <= 0.1 * ends, f"{beyond} of {ends} percentile ends beyond the sketch"
    dh = {h["hop"]: h for h in dask["hops"]}
    for h in exact["hops"]:
        for k in ("requests", "cross_node", "negative_raw"):
            assert dh[h["hop"]][k] == h[k], (h["hop"], k)
    assert [h["hop"] for h in dask["hops"]] == [h["hop"] for h in exact["hops"]]
    assert dask["requests"] == exact["requests"]


@pytest.mark.slow
def test_local_scheduler_matches_one_process(setup: tuple[Path, Path]) -> None:
    """--scheduler local:2 starts two worker processes; tables only (no causal step), so
    the per-request intervals are the one process's and only the sketch widens them."""
    exact = run(setup, "--no-causal")
    dask = run(setup, "--no-causal", "--scheduler", "local:2")
    assert dask["dask"]["workers"] == 2 and dask["dask"]["sketch_accuracy"] == ALPHA
    assert_within_sketch(dask, exact, same_hops=True)


def test_tcp_scheduler_address(setup: tuple[Path, Path], cluster: Any) -> None:
    address = cluster.scheduler_address
    assert address.startswith("tcp://127.0.0.1:")
    exact = run(setup, "--no-causal")
    dask = run(setup, "--no-causal", "--scheduler", address)
    assert dask["dask"]["scheduler"] == address
    assert_within_sketch(dask, exact, same_hops=True)
    # with causal tightening per partition: still guaranteed, at most as tight as one pass
    exact = run(setup)
    dask = run(setup, "--scheduler", address)
    assert_within_sketch(dask, exact, same_hops=False)
    tables, events = setup
    res = CliRunner().invoke(main, ["latency", str(events), "--tables", str(tables),
                                    "--scheduler", address])
    assert res.exit_code == 0, res.output
    assert f"on Dask {address}" in res.output and "merged sketches" in res.output
    assert "alerts: not computed with --scheduler" in res.output


def test_scheduler_errors(setup: tuple[Path, Path], tmp_path: Path) -> None:
    tables, events = setup
    base = ["latency", str(events), "--tables", str(tables)]
    for bad in ("local:0", "local:x", "localhost:8786", "tcp://host"):
        res = CliRunner().invoke(main, [*base, "--scheduler", bad])
        assert res.exit_code == 2 and "--scheduler" in res.output, (bad, res.output)
    res = CliRunner().invoke(main, [*base, "--scheduler", "local:1", "--out",
                                    str(tmp_path / "x.parquet")])
    assert res.exit_code == 2 and "--out: not available with --scheduler" in res.output


@pytest.mark.slow
def test_unreachable_scheduler(setup: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
                               ) -> None:
    """Nothing listens on the discard port: a clear error after the connect timeout (1 s
    here: distributed retries the refused connection until then)."""
    monkeypatch.setattr(scheduler_module, "CONNECT_TIMEOUT_S", 1.0)
    tables, events = setup
    res = CliRunner().invoke(main, ["latency", str(events), "--tables", str(tables),
                                    "--scheduler", "tcp://127.0.0.1:9"])
    assert res.exit_code != 0 and "cannot reach the Dask scheduler" in res.output


def test_public_dask_module_is_the_implementation() -> None:
    import clocksync.latency._dask as impl  # tests the private module latency._dask's wiring
    from clocksync.latency import dask

    for name in ("dask_latencies", "dask_sketch"):
        assert name in dask.__all__ and getattr(dask, name) is getattr(impl, name)
