"""lab/restate_cluster.py, short: a real 3-node Restate cluster whose nodes' spans carry
different clocks (seconds apart, tens of ppm), analysed in batch with ``--preset restate``
and live by the clocksync collector, which our own Prometheus scrapes with the rules loaded.

Asserts: every request's corrected interval contains its truth (coverage 100 % on every hop
and node pair), both cross-node hops present, bounds of milliseconds and corrected medians
within them of the truth's although raw medians are seconds off; every live P50/P90/P99
interval of every cross-node hop and pair contains the true quantile of the requests in the
collector's window (the same requests live and in batch); Prometheus' target is up and every rule of
contrib/prometheus/clocksync-collector.rules.yml loaded and healthy.

Skips, with the reason, when not root, when Prometheus is not installed, or when the npm
registry (Restate server) or PyPI (restate-sdk, hypercorn) cannot be reached on first use
(both are cached afterwards)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.root]


def test_restate_cluster_batch_and_live() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: the lab creates a network namespace")
    from lab.restate.cluster import LabUnavailableError
    from lab.restate_cluster import EXPECTED_HOPS, requirements

    try:
        requirements()  # fetch and cache the server and the service's venv, outside the timing
    except LabUnavailableError as exc:
        pytest.skip(str(exc))
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "lab.restate_cluster", "--invocations", "40",
                           "--seconds", "6", "--json"], cwd=ROOT, capture_output=True,
                          text=True, timeout=170, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    elapsed = time.monotonic() - started
    assert done.stdout.strip(), done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["invocations_ok"] == 40, result["invocation_errors"]
    assert result["requests_without_truth"] == 0
    assert result["cross_requests"] >= 20
    # batch: coverage 100 % on every hop and node pair (cross-node and same-node)
    rows = result["rows"]
    assert [(r["hop"], r["src_node"], r["dst_node"]) for r in rows
            if r["covered"] != r["with_truth"] or r["with_truth"] != r["n"]] == []
    assert result["all_covered"] == result["all_requests"] > 0
    assert set(EXPECTED_HOPS) <= set(result["cross_hops"])
    # the clocks really differ: some cross-node hop is seconds off before correction
    assert any(abs(r["raw_median_ns"]) > 1e9 for r in rows if r["src_node"] != r["dst_node"])
    # ...and correction removes that: each row's bound is milliseconds (the stamp resolution),
    # the clocks' part of it under a millisecond, and its median sits within it of the truth's
    # (a hop's own latency may be seconds: a retried invocation's start->end is)
    assert [(r["hop"], r["src_node"], r["dst_node"], r["bound_median_ns"])
            for r in rows if r["bound_median_ns"] > 10e6 or r["clock_bound_median_ns"] > 1e6] == []
    assert [(r["hop"], r["src_node"], r["dst_node"], r["corrected_median_ns"],
             r["truth_median_ns"]) for r in rows
            if abs(r["corrected_median_ns"] - r["truth_median_ns"]) > 10e6] == []
    # live: each quantile interval contains the true quantile of the window's requests
    live = result["live"]
    assert live["late"] == 0
    assert set(EXPECTED_HOPS) <= set(live["cross_hops"])
    bad = [(e["hop"], e["src_node"], e["dst_node"], e["n"], e["n_live"], e["quantiles"])
           for e in live["quantiles"] if not e["contained"]]
    assert bad == []
    assert sum(e["n"] for e in live["quantiles"]) >= 20
    # Prometheus scrapes the collector with the rules loaded
    prom = live["prometheus"]
    assert prom["target_up"], prom
    assert prom["rules_healthy"] and prom["rules_loaded"] == prom["rules_expected"] > 0, prom
    assert prom["hop_latency_series"] > 0, prom
    assert done.returncode == 0, done.stderr[-3000:]
    assert elapsed < 90, f"the short lab took {elapsed:.0f} s"
