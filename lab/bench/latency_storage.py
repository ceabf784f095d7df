"""Storage size of latency events and per-request results: Parquet (zstd, delta-encoded
timestamps, sorted) against JSONL and CSV of the same rows.

    python -m lab.bench.latency_storage [--requests N]

Prints one table; the reference claim is a >= 70% reduction, the aim >= 90%.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from clocksync import Corrector, SimClock, fit_table
from clocksync.latency import compute_latencies, write_events, write_latencies
from clocksync.testing import LinkModel, simulate_requests, simulate_samples

T0 = 1_764_129_600_000_000_000


def _write_text(table: pa.Table, path: Path) -> None:
    """``table`` as plain CSV (pyarrow's writer) or JSONL (one compact object a row)."""
    if path.suffix == ".csv":
        pacsv.write_csv(table, path)
        return
    with path.open("w", encoding="utf-8") as handle:
        for row in table.to_pylist():
            handle.write(json.dumps(row, separators=(",", ":")) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=250_000)
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    clocks = {
        "pp-1": SimClock(t0_ns=T0, offset0_ns=-180_000.0, skew_ppm=35.0,
                         wander_ppb_per_s=5.0, seed=1),
        "bifrost-1": SimClock(t0_ns=T0, offset0_ns=250_000.0, skew_ppm=-60.0,
                              wander_ppb_per_s=5.0, seed=2),
    }
    tables = [fit_table(simulate_samples(c, n, T0, 130.0, 1.0, LinkModel(), rng))
              for n, c in clocks.items()]
    duration_s = 100.0
    events, _ = simulate_requests(clocks, [("pp-1", "bifrost-1"), ("bifrost-1", "pp-1")],
                                  args.requests, T0 + 20 * 10**9, duration_s, rng)
    hops = compute_latencies(events, Corrector(tables))
    print(f"{args.requests} requests over {duration_s:.0f} s, {events.num_rows} events,"
          f" {hops.num_rows} hop rows (context column cpu_pct included)")
    print(f"{'data':<8} {'format':<28} {'bytes':>12} {'B/row':>8} {'vs JSONL':>9} {'vs CSV':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for label, table, writer in (("events", events, write_events),
                                     ("results", hops, write_latencies)):
            sizes: dict[str, int] = {}
            for fmt in ("jsonl", "csv"):
                path = Path(tmp) / f"{label}.{fmt}"
                _write_text(table, path)
                sizes[fmt] = path.stat().st_size
            path = Path(tmp) / f"{label}.default.parquet"
            pq.write_table(table, path)
            sizes["parquet (pyarrow defaults)"] = path.stat().st_size
            path = Path(tmp) / f"{label}.parquet"
            writer(table, path)
            sizes["parquet (zstd, delta ts)"] = path.stat().st_size
            for fmt, size in sizes.items():
                print(f"{label:<8} {fmt:<28} {size:>12,} {size / table.num_rows:>8.1f}"
                      f" {1 - size / sizes['jsonl']:>8.1%} {1 - size / sizes['csv']:>8.1%}")


if __name__ == "__main__":
    main()
