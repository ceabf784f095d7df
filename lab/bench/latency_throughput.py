"""End-to-end throughput of the latency pipeline on one core: Parquet events -> per-request
hops with bounds (causal tightening on) -> percentiles (whole input + 10 s windows) -> alerts.

    python -m lab.bench.latency_throughput [--requests N] [--repeat K] [--nodes N]
        [--baseline REV]

Pins itself to one CPU, one Arrow thread and one BLAS/OpenMP thread. Prints, best of
``--repeat``:

1. end to end (read Parquet + ``analyze``) of this tree and of the implementation at git
   revision ``--baseline`` (default: the last commit before the vectorized kernels),
   measured in the same run by the same harness in alternating subprocesses, as a ratio;
2. the time of each stage of this tree, requests/s and events/s, cost per event;
3. where the end-to-end time goes, per pipeline step (CPU time, from a profile of
   ``analyze``).

Times are wall and CPU (``process_time``: the CPU this process used, which other jobs on
a shared machine inflate less than the wall clock). Target: >= 1M requests = 4M events
per second.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy loads: one core means one thread

import argparse  # noqa: E402
import cProfile  # noqa: E402
import json  # noqa: E402
import pstats  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

from clocksync import Corrector, SimClock, fit_table, open_store  # noqa: E402
from clocksync.latency import (  # noqa: E402
    AdaptiveSampler,
    AlertConfig,
    SamplingConfig,
    analyze,
    hop_table,
    read_events_file,
    simulate_requests,
    summary_and_windows,
    write_events,
)
from clocksync.testing import LinkModel, simulate_samples  # noqa: E402
from lab.bench._baseline import REPO, checkout  # noqa: E402

T0 = 1_764_129_600_000_000_000
#: the last commit before the vectorized causal hull filter, selection and int32 keys
BASELINE_REV = "8a9da4d"

#: run in a subprocess against one ``clocksync`` tree (PYTHONPATH): best-of (3 runs) wall and CPU of
#: read Parquet + analyze, as JSON. argv: events.parquet tables_dir runs
_HARNESS = """
import json, os, sys, time
os.sched_setaffinity(0, {int(os.environ["BENCH_CPU"])})
import pyarrow as pa
pa.set_cpu_count(1)
pa.set_io_thread_count(1)
from clocksync import Corrector
from clocksync.latency import analyze, read_events_file
corrector = Corrector.from_store(sys.argv[2])
best_wall = best_cpu = float("inf")
for _ in range(int(sys.argv[3])):
    w, c = time.perf_counter(), time.process_time()
    analyze(read_events_file(sys.argv[1]), corrector, window_s=10.0)
    best_wall = min(best_wall, time.perf_counter() - w)
    best_cpu = min(best_cpu, time.process_time() - c)
print(json.dumps({"wall": best_wall, "cpu": best_cpu}))
"""


def _timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def _harness(tree: Path, events: Path, tables: Path, runs: int, cpu: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(tree), "BENCH_CPU": str(cpu)}
    out = subprocess.run([sys.executable, "-c", _HARNESS, str(events), str(tables), str(runs)],
                         env=env, cwd=tree, capture_output=True, text=True, check=True)
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


#: the pipeline steps the profile times: (file the call is made from, function called,
#: label); indentation of the label = nesting (a step's time includes the indented ones
#: below it). Found by name in a profile of the public entry points: a step renamed or
#: moved drops out of the table instead of breaking the run.
_STEPS = (
    ("_pipeline", "hop_table", "  hop_table"),
    ("_pipeline", "pivot_events", "    pivot by request and stage"),
    ("_hops", "dictionary_codes", "      group request ids (dictionaries)"),
    ("_pipeline", "correct_stamps", "    correct timestamps, per node"),
    ("_pipeline", "table_hops", "    table-only hop intervals"),
    ("_pipeline", "_intervals", "    hop intervals (causal + sums)"),
    ("_pipeline", "tighten", "      causal tightening"),
    ("_causal", "hull_candidates", "        hull filter, all windows"),
    ("_causal", "solve_windows", "        vertex LP, all windows"),
    ("_pipeline", "summary_and_windows", "  percentiles, whole + windows"),
    ("_pipeline", "latency_alerts", "  alerts: latency"),
    ("_pipeline", "clock_alerts", "  alerts: clock health"),
)


def _step_times(profile: cProfile.Profile) -> dict[str, float]:
    """CPU seconds of the whole profiled call (``analyze``) and of each of :data:`_STEPS` in
    it: the cumulative time of the calls to the function made from the named file."""
    whole = pstats.Stats(profile)
    stats: dict[Any, Any] = whole.stats  # type: ignore[attr-defined]
    times: dict[str, float] = {"analyze": whole.total_tt}  # type: ignore[attr-defined]
    for (_, _, function), (_, _, _, _, callers) in stats.items():
        for caller_file, function_name, label in _STEPS:
            if function != function_name:
                continue
            for (path, _, _), (_, _, _, cumulative) in callers.items():
                if Path(path).stem == caller_file:
                    times[label] = times.get(label, 0.0) + cumulative
    return times


def _stage_profile(events_path: Path, corrector: Corrector, repeat: int) -> dict[str, float]:
    """Best-of CPU seconds of reading Parquet, and of ``analyze`` and each pipeline step in
    it from a ``cProfile`` on the CPU clock (Python calls only: the profiler's cost per call
    inflates call-heavy steps such as the latency alerts a little), in :data:`_STEPS` order."""
    best: dict[str, float] = {}
    for _ in range(repeat):
        _, _, c_read = _timed(lambda: read_events_file(events_path))
        ev = read_events_file(events_path)
        profile = cProfile.Profile(time.process_time, builtins=False)
        profile.runcall(analyze, ev, corrector, window_s=10.0)
        for k, v in {"read Parquet": c_read, **_step_times(profile)}.items():
            best[k] = min(best.get(k, np.inf), v)
    labels = ["read Parquet", "analyze", *(label for _, _, label in _STEPS)]
    return {k: best[k] for k in labels if k in best}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--nodes", type=int, default=4,
                        help="nodes; every ordered pair of them is a route (many pairs: "
                             "many small causal windows and percentile groups)")
    parser.add_argument("--baseline", default=BASELINE_REV,
                        help="git revision of the implementation to compare with ('' = none)")
    args = parser.parse_args()
    cpu = min(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 0
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    rng = np.random.default_rng(1)
    nodes = [f"n{i}" for i in range(args.nodes)]
    clocks = {n: SimClock(t0_ns=T0, offset0_ns=float(rng.uniform(-5e5, 5e5)),
                          skew_ppm=float(rng.uniform(-80, 80)), wander_ppb_per_s=5.0, seed=i)
              for i, n in enumerate(nodes)}
    tables = [fit_table(simulate_samples(c, n, T0, 140.0, 1.0, LinkModel(), rng))
              for n, c in clocks.items()]
    corrector = Corrector(tables)
    routes = [(a, b) for a in nodes for b in nodes if a != b]
    events, _ = simulate_requests(clocks, routes, args.requests, T0 + 20 * 10**9, 100.0, rng)
    n_events = events.num_rows
    n_req = args.requests
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        path = tmp / "events.parquet"
        write_events(events, path)
        store_dir = tmp / "tables"
        store = open_store(str(store_dir))
        for table in tables:
            store.write(table)
        print(f"{n_req:,} requests, {n_events:,} events, {len(nodes)} nodes,"
              f" {len(routes)} node pairs, 100 s;"
              f" Parquet {path.stat().st_size / 1e6:.1f} MB; 1 core (cpu {cpu}),"
              f" 1 Arrow thread, best of {args.repeat}")
        # 1. this tree against the baseline, same harness, alternating subprocesses
        base_tree = checkout(args.baseline, tmp) if args.baseline else None
        trees = {"this tree": REPO}
        if base_tree is not None:
            trees[f"baseline {args.baseline}"] = base_tree
        e2e: dict[str, dict[str, float]] = {}
        for _ in range(args.repeat):
            for label, tree in trees.items():
                r = _harness(tree, path, store_dir, 3, cpu)
                prev = e2e.setdefault(label, {"wall": np.inf, "cpu": np.inf})
                for k in ("wall", "cpu"):
                    prev[k] = min(prev[k], r[k])
        print("\nend to end (read Parquet + analyze: hops, causal, percentiles whole + 10 s"
              " windows, alerts)")
        print(f"{'implementation':<22} {'wall s':>7} {'cpu s':>7} {'requests/s (cpu)':>17}"
              f" {'events/s (cpu)':>15} {'ns/event':>9}")
        for label, r in e2e.items():
            print(f"{label:<22} {r['wall']:>7.3f} {r['cpu']:>7.3f} {n_req / r['cpu']:>17,.0f}"
                  f" {n_events / r['cpu']:>15,.0f} {r['cpu'] / n_events * 1e9:>9.1f}")
        if len(e2e) == 2:
            new, old = e2e["this tree"], e2e[f"baseline {args.baseline}"]
            print(f"speed-up vs baseline: {old['cpu'] / new['cpu']:.2f}x cpu,"
                  f" {old['wall'] / new['wall']:.2f}x wall")
        # 2. stages of this tree
        best: dict[str, tuple[float, float]] = {}
        for _ in range(args.repeat):
            ev, w_read, c_read = _timed(lambda: read_events_file(path))
            res, w_hops, c_hops = _timed(lambda ev=ev: hop_table(ev, corrector))
            _, w_pct, c_pct = _timed(lambda res=res: summary_and_windows(res.table, 10.0))
            _, w_all, c_all = _timed(lambda ev=ev: analyze(ev, corrector, window_s=10.0,
                                                           alert_config=AlertConfig()))
            _, w_nc, c_nc = _timed(lambda ev=ev: hop_table(ev, corrector, causal=None))
            sampler = AdaptiveSampler(SamplingConfig(budget_events_per_s=n_events / 100.0 / 10))
            batch, w_samp, c_samp = _timed(lambda ev=ev, s=sampler: s.sample(ev.table))
            _, w_sd, c_sd = _timed(lambda b=batch: analyze(b.events, corrector, window_s=10.0))
            for k, v in (("read Parquet", (w_read, c_read)), ("hops + causal", (w_hops, c_hops)),
                         ("hops, tables only", (w_nc, c_nc)), ("percentiles", (w_pct, c_pct)),
                         ("analyze (hops+pct+alerts)", (w_all, c_all)),
                         ("end to end", (w_read + w_all, c_read + c_all)),
                         ("sampler (10% budget)", (w_samp, c_samp)),
                         ("end to end, sampled", (w_read + w_samp + w_sd,
                                                  c_read + c_samp + c_sd))):
                old_v = best.get(k, (np.inf, np.inf))
                best[k] = (min(old_v[0], v[0]), min(old_v[1], v[1]))
        print(f"\n{'stage (this tree)':<28} {'wall s':>7} {'cpu s':>7} {'requests/s':>12}"
              f" {'events/s':>12} {'ns/event':>9}")
        for k, (w, c) in best.items():
            print(f"{k:<28} {w:>7.3f} {c:>7.3f} {n_req / c:>12,.0f} {n_events / c:>12,.0f}"
                  f" {c / n_events * 1e9:>9.1f}")
        # 3. where the time goes
        prof = _stage_profile(path, corrector, args.repeat)
    total = prof["read Parquet"] + prof["analyze"]
    print(f"\n{'where the end-to-end cpu time goes':<38} {'cpu s':>7} {'share':>6}"
          f" {'ns/event':>9}")
    for k, v in prof.items():
        print(f"{k:<38} {v:>7.3f} {v / total:>6.1%} {v / n_events * 1e9:>9.1f}")
    e2e_cpu = e2e["this tree"]["cpu"]
    print(f"\nend to end: {n_req / e2e_cpu / 1e6:.2f} M requests/s"
          f" ({n_events / e2e_cpu / 1e6:.2f} M events/s) on one core (cpu time);"
          f" target 1 M requests/s")
    samp = best["sampler (10% budget)"][1]
    print(f"sampler alone: {samp / n_events * 1e9:.0f} ns per event seen; with a 10% budget"
          f" end to end: {n_req / best['end to end, sampled'][1] / 1e6:.2f} M requests/s seen")


if __name__ == "__main__":
    main()
