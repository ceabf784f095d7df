"""Hops paired by parent span (the restate preset) and stamp resolution in the bounds, against
the truth of simulated Restate spans on three clocks seconds and tens of ppm apart."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner

from clocksync.cli import main
from clocksync.latency import (
    RESTATE_START_RESOLUTION_NS,
    LatencyReport,
    analyze,
    coarse_tick_ns,
    preset,
    read_inputs,
    resolution_warning,
)
from tests._restate_world import RestateWorld, restate_world

HOPS = {"ingress->invocation-start", "invocation-start->invocation-attempt",
        "invocation-start->invocation-end", "invocation-attempt->invocation-start"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> RestateWorld:
    return restate_world(tmp_path_factory.mktemp("restate"), 11, 1500, 200.0, 300.0)


def _coverage(report: LatencyReport, truth: dict[tuple[str, str], float]) -> dict[str, float]:
    t = report.result.table
    hops = t.column("hop").to_pylist()
    true = np.array([truth[(r, h)] for r, h in zip(t.column("request_id").to_pylist(), hops,
                                                    strict=True)])
    ok = (t.column("low_ns").to_numpy() <= true) & (true <= t.column("high_ns").to_numpy())
    by_hop = np.array(hops)
    return {h: float(ok[by_hop == h].mean()) for h in sorted(set(hops))}


def test_restate_preset_pairs_by_parent_and_covers_the_truth(cluster: RestateWorld) -> None:
    events = read_inputs([cluster.spans], "otlp", preset("restate"))
    report = analyze(events, cluster.corrector, window_s=10.0)
    assert _coverage(report, cluster.truth) == dict.fromkeys(sorted(HOPS), 1.0)
    r = report.result
    assert r.requests == len(cluster.truth)  # one pair per true hop
    assert r.incomplete == 0 and r.duplicates == 0
    counts = {h.hop: h for h in r.hops}
    # the clocks are seconds apart: raw cross-node latencies lie, negative about half the time
    assert counts["ingress->invocation-start"].negative_raw > 100
    assert counts["ingress->invocation-start"].cross_node > 0
    # each hop's stamps are the spans' local stamps
    t = r.table
    raw = t.column("dst_ts_ns").to_numpy() - t.column("src_ts_ns").to_numpy()
    assert np.array_equal(raw, t.column("raw_latency_ns").to_numpy())


@pytest.mark.slow
def test_coarse_stamps_need_their_resolution(cluster: RestateWorld) -> None:
    """Without the invocation-start resolution the intervals miss the truth: the widening
    is what makes them cover it."""
    exact = preset("restate")
    rules = tuple(dataclasses.replace(r, resolution_ns=None) for r in exact.rules)
    events = read_inputs([cluster.spans], "otlp", dataclasses.replace(exact, rules=rules))
    cov = _coverage(analyze(events, cluster.corrector, window_s=10.0), cluster.truth)
    assert cov["invocation-start->invocation-attempt"] < 0.9
    assert cov["ingress->invocation-start"] < 1.0


def test_widening_is_the_resolution_and_no_more(cluster: RestateWorld) -> None:
    events = read_inputs([cluster.spans], "otlp", preset("restate"))
    t = analyze(events, cluster.corrector, window_s=10.0).result.table
    same = t.filter(pa.compute.equal(t.column("hop"), "invocation-start->invocation-attempt"))
    width = same.column("high_ns").to_numpy() - same.column("low_ns").to_numpy()
    table_width = (same.column("table_high_ns").to_numpy()
                   - same.column("table_low_ns").to_numpy())
    extra = width - table_width
    assert np.all(extra >= RESTATE_START_RESOLUTION_NS)
    assert np.all(extra <= RESTATE_START_RESOLUTION_NS * 1.0011)


def test_a_missing_parent_is_named_and_a_repeated_export_is_a_duplicate(
        cluster: RestateWorld, tmp_path: Path) -> None:
    docs = json.loads(json.dumps(cluster.docs))
    dropped = 0
    for doc in docs:
        for scope in doc["resourceSpans"][0]["scopeSpans"]:
            keep = [s for s in scope["spans"] if not s["name"].startswith("ingress")]
            dropped += len(scope["spans"]) - len(keep)
            scope["spans"] = keep
    path = tmp_path / "spans.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in docs + docs[:1]))
    report = analyze(read_inputs([path], "otlp", preset("restate")), cluster.corrector)
    assert dropped == 1500
    assert report.result.incomplete == dropped
    assert report.result.missing_stages == {"parent of invocation-start": dropped}
    assert report.result.duplicates == sum(
        len(s["spans"]) for s in docs[0]["resourceSpans"][0]["scopeSpans"])
    assert "ingress->invocation-start" not in {h.hop for h in report.result.hops}


def test_cli_latency_with_the_preset(cluster: RestateWorld, tmp_path: Path) -> None:
    out = tmp_path / "hops.jsonl"
    res = CliRunner().invoke(main, ["latency", str(cluster.spans), "--format", "otlp",
                                    "--preset", "restate", "--tables", str(cluster.tables),
                                    "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert {h["hop"] for h in doc["hops"]} == HOPS
    first = json.loads(out.read_text().splitlines()[0])
    assert {"src_ts_ns", "dst_ts_ns", "low_ns", "high_ns", "request_id"} <= set(first)
    both = CliRunner().invoke(main, ["latency", str(cluster.spans), "--preset", "restate",
                                     "--trace-map", str(cluster.spans),
                                     "--tables", str(cluster.tables)])
    assert both.exit_code == 2 and "not both" in both.output


def test_the_coarse_clock_ticks_as_clock_getres_says_and_the_preset_knows_it() -> None:
    """The kernel's coarse clock advances in steps of its resolution, and the restate
    preset warns exactly when that tick plus 1 ms exceeds its invocation-start resolution."""
    import ctypes

    tick = coarse_tick_ns()
    assert tick is not None and tick > 0

    class Timespec(ctypes.Structure):
        _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]

    libc = ctypes.CDLL(None)
    now = Timespec()
    seen = []
    for _ in range(200_000):
        libc.clock_gettime(5, ctypes.byref(now))
        seen.append(now.tv_sec * 1_000_000_000 + now.tv_nsec)
        if len(set(seen)) > 4:
            break
    steps = np.diff(np.unique(seen))
    # each step is a whole number of ticks (to the ns rounding of jiffies)
    assert len(steps) and np.all(np.abs(steps - np.round(steps / tick) * tick) <= 1000)
    assert np.all(steps >= tick - 1000)
    assert (resolution_warning("restate") is None) == (
        tick + 1_000_000 <= RESTATE_START_RESOLUTION_NS)
