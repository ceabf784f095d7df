"""Benchmark: Corrector.correct vs a pandas merge_asof implementation of the same correction.

Both compute, for N local timestamps over a table of M cells, ``ref = t + rint(mid)`` and
``bound = half`` from the cell each timestamp falls in. Run side by side in one process,
best of R repetitions each, and print the ratios (ours is faster when ratio > 1).

    python lab/bench/corrector_vs_merge_asof.py [--n 10000000] [--cells 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time
import timeit

import numpy as np
import pandas as pd

from clocksync import CorrectionTable, Corrector
from clocksync._fit._envelope import Cells


def make_table(n_cells: int, t0_ns: int, span_ns: int, rng: np.random.Generator
               ) -> CorrectionTable:
    edges = np.unique(rng.integers(1, span_ns // 1000, n_cells - 1)) * 1000
    n_cells = len(edges) + 1
    start = np.concatenate([[t0_ns], t0_ns + edges]).astype(np.int64)
    end = np.append(start[1:], t0_ns + span_ns).astype(np.int64)
    mid = rng.normal(0, 1e6, n_cells)
    slope = rng.normal(0, 50_000, n_cells)
    half = rng.uniform(1e3, 1e5, n_cells)
    cells = Cells(start, end, mid + half, slope, mid - half, slope,
                  np.zeros(n_cells, np.uint8), np.zeros(n_cells, np.int32),
                  slope - 10, slope + 10)
    from clocksync._table import LineEstimate, SegmentInfo

    seg = SegmentInfo(0, "start", int(start[0]), int(end[-1]), 2,
                      LineEstimate(int(start[0]), 0.0, 0.0, 1.0, 1.0, 0.0, 2, int(start[0])))
    return CorrectionTable("bench", "", 0, "synchronised",
                           {"max_skew_ppm": 500.0}, 2, 0, (seg,), cells)


def merge_asof_correct(table: CorrectionTable, ts: np.ndarray, presorted: bool
                       ) -> tuple[np.ndarray, np.ndarray]:
    c = table.cells
    cells = pd.DataFrame({
        "start": c.start_ns, "mid0": (c.hi0 + c.lo0) / 2, "mid1": (c.hi1 + c.lo1) / 2,
        "half0": (c.hi0 - c.lo0) / 2 + 0.5, "half1": (c.hi1 - c.lo1) / 2,
    })
    frame = pd.DataFrame({"ts": ts})
    if not presorted:
        frame["pos"] = np.arange(len(ts))
        frame = frame.sort_values("ts", kind="stable")
    merged = pd.merge_asof(frame, cells, left_on="ts", right_on="start", direction="backward")
    delta = (merged["ts"] - merged["start"]).to_numpy(np.float64) * 1e-9
    ref = merged["ts"].to_numpy() + np.rint(merged["mid0"].to_numpy()
                                             + merged["mid1"].to_numpy() * delta).astype(np.int64)
    bound = merged["half0"].to_numpy() + merged["half1"].to_numpy() * delta
    if not presorted:
        out_ref = np.empty_like(ref)
        out_bound = np.empty_like(bound)
        pos = merged["pos"].to_numpy()
        out_ref[pos] = ref
        out_bound[pos] = bound
        return out_ref, out_bound
    return ref, bound


def best(fn, repeat: int) -> float:
    return min(timeit.repeat(fn, number=1, repeat=repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000_000)
    parser.add_argument("--cells", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    t0 = 1_700_000_000 * 10**9
    span = 86_400 * 10**9
    table = make_table(args.cells, t0, span, rng)
    cor = Corrector([table])
    ts_sorted = np.sort(rng.integers(t0, t0 + span, args.n, dtype=np.int64))
    ts_random = rng.permutation(ts_sorted)

    # same answers first
    for ts, pre in ((ts_sorted, True), (ts_random, False)):
        r1, b1 = cor.correct("bench", ts)
        r2, b2 = merge_asof_correct(table, ts, pre)
        assert np.array_equal(r1, r2) and np.allclose(b1, b2), "implementations disagree"

    rows = []
    for label, ts, pre in (("sorted", ts_sorted, True), ("unsorted", ts_random, False)):
        ours = best(lambda ts=ts: cor.correct("bench", ts), args.repeat)
        base = best(lambda ts=ts, pre=pre: merge_asof_correct(table, ts, pre), args.repeat)
        rows.append((label, ours, base))
    scalar_t = int(ts_sorted[len(ts_sorted) // 2])
    loops = 200_000
    scalar_s = min(timeit.repeat(lambda: cor.correct("bench", scalar_t), number=loops,
                                 repeat=3)) / loops
    print(f"clocksync Corrector vs pandas merge_asof: {args.n:,} timestamps, "
          f"{args.cells:,} cells, best of {args.repeat}")
    print(f"{'input':<10} {'clocksync':>12} {'merge_asof':>12} {'ratio':>8}")
    for label, ours, base in rows:
        print(f"{label:<10} {ours * 1e3:>10.1f}ms {base * 1e3:>10.1f}ms {base / ours:>7.2f}x")
    print(f"scalar correct(): {scalar_s * 1e6:.2f} µs per call")
    print(f"(run at {time.strftime('%Y-%m-%d %H:%M:%S')}, numpy {np.__version__}, "
          f"pandas {pd.__version__})")


if __name__ == "__main__":
    main()
