"""End-to-end throughput of the latency pipeline on one core: Parquet events -> per-request
hops with bounds (causal tightening on) -> percentiles (whole input + 10 s windows) -> alerts.

    python -m lab.bench.latency_throughput [--requests N] [--repeat K]

Pins itself to one CPU and one Arrow thread. Prints the time of each stage, requests/s and
events/s, and the cost per event (target: >= 1M requests = 4M events per second).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from clocksync import Corrector, SimClock, fit_table
from clocksync._simulate import LinkModel, simulate_samples
from clocksync.latency import (
    AdaptiveSampler,
    AlertConfig,
    SamplingConfig,
    analyze,
    hop_table,
    percentile_table,
    read_events_file,
    simulate_requests,
    write_events,
)

T0 = 1_764_129_600_000_000_000


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    rng = np.random.default_rng(1)
    nodes = [f"n{i}" for i in range(4)]
    clocks = {n: SimClock(t0_ns=T0, offset0_ns=float(rng.uniform(-5e5, 5e5)),
                          skew_ppm=float(rng.uniform(-80, 80)), wander_ppb_per_s=5.0, seed=i)
              for i, n in enumerate(nodes)}
    tables = [fit_table(simulate_samples(c, n, T0, 140.0, 1.0, LinkModel(), rng))
              for n, c in clocks.items()]
    corrector = Corrector(tables)
    routes = [(a, b) for a in nodes for b in nodes if a != b]
    events, _ = simulate_requests(clocks, routes, args.requests, T0 + 20 * 10**9, 100.0, rng)
    n_events = events.num_rows
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.parquet"
        write_events(events, path)
        print(f"{args.requests:,} requests, {n_events:,} events, 4 nodes, 12 node pairs,"
              f" 100 s; Parquet {path.stat().st_size / 1e6:.1f} MB; 1 core, 1 Arrow thread")
        best: dict[str, float] = {}
        for _ in range(args.repeat):
            ev, t_read = _timed(lambda: read_events_file(path))
            res, t_hops = _timed(lambda ev=ev: hop_table(ev, corrector))
            _, t_pct = _timed(lambda res=res: (percentile_table(res.table),
                                               percentile_table(res.table, window_s=10.0)))
            _, t_all = _timed(lambda ev=ev: analyze(ev, corrector, window_s=10.0,
                                                    alert_config=AlertConfig()))
            _, t_nc = _timed(lambda ev=ev: hop_table(ev, corrector, causal=None))
            sampler = AdaptiveSampler(SamplingConfig(budget_events_per_s=n_events / 100.0 / 10))
            batch, t_samp = _timed(lambda ev=ev, sampler=sampler: sampler.sample(ev.table))
            _, t_sampled = _timed(lambda batch=batch: analyze(batch.events, corrector,
                                                              window_s=10.0))
            for k, v in (("read Parquet", t_read), ("hops + causal", t_hops),
                         ("hops, tables only", t_nc), ("percentiles", t_pct),
                         ("analyze (hops+pct+alerts)", t_all),
                         ("end to end", t_read + t_all),
                         ("sampler (10% budget)", t_samp),
                         ("end to end, sampled", t_read + t_samp + t_sampled)):
                best[k] = min(best.get(k, np.inf), v)
    print(f"{'stage':<28} {'best s':>8} {'requests/s':>14} {'events/s':>14} {'ns/event':>9}")
    for k, v in best.items():
        print(f"{k:<28} {v:>8.3f} {args.requests / v:>14,.0f} {n_events / v:>14,.0f}"
              f" {v / n_events * 1e9:>9.1f}")
    e2e = best["end to end"]
    print(f"end to end: {args.requests / e2e / 1e6:.2f} M requests/s "
          f"({n_events / e2e / 1e6:.2f} M events/s) on one core; target 1 M requests/s")
    print(f"sampler alone: {best['sampler (10% budget)'] / n_events * 1e9:.0f} ns per event"
          f" seen; with a 10% budget end to end: "
          f"{args.requests / best['end to end, sampled'] / 1e6:.2f} M requests/s seen")


if __name__ == "__main__":
    main()
