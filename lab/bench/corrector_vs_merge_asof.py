"""Benchmark: Corrector.correct vs a pandas merge_asof implementation of the same correction,
and against the Corrector of another git revision.

Both compute, for N local timestamps over a table of M cells, ``ref = t + rint(mid)`` and
``bound = half`` from the cell each timestamp falls in. Run side by side in one process,
best of R repetitions each, and print the ratios (ours is faster when ratio > 1). With
``--baseline REV`` the ``clocksync`` package at git revision REV (extracted by
``git archive``) is timed on the same inputs by the same harness, in alternating
subprocesses pinned to the same CPU, and the ratios to it printed too.

    python -m lab.bench.corrector_vs_merge_asof [--n 10000000] [--cells 1000] [--repeat 3]
        [--baseline REV]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy loads: one core means one thread

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import timeit  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from clocksync import CorrectionTable, Corrector  # noqa: E402
from lab.bench._baseline import REPO, checkout  # noqa: E402

T0_NS = 1_700_000_000 * 10**9
SPAN_NS = 86_400 * 10**9
SCALAR_LOOPS = 200_000


def make_table(n_cells: int, t0_ns: int, span_ns: int, rng: np.random.Generator
               ) -> CorrectionTable:
    """A synthetic table of ``n_cells`` cells. The baseline harness reads it back from its
    JSON form (``BENCH_TABLE``), which every revision of the table format can load."""
    from clocksync import Cells, LineEstimate, SegmentInfo

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
    seg = SegmentInfo(0, "start", int(start[0]), int(end[-1]), 2,
                      LineEstimate(int(start[0]), 0.0, 0.0, 1.0, 1.0, 0.0, 2, int(start[0])))
    return CorrectionTable("bench", "", 0, "synchronised",
                           {"max_skew_ppm": 500.0}, 2, 0, (seg,), cells)


def inputs(n: int, n_cells: int) -> tuple[CorrectionTable, np.ndarray, np.ndarray]:
    """The table and the sorted and shuffled timestamps (the same for every tree)."""
    if os.environ.get("BENCH_TABLE"):  # a harness run: the parent's table, by its JSON form
        table = CorrectionTable.from_json(Path(os.environ["BENCH_TABLE"]).read_text())
    else:
        table = make_table(n_cells, T0_NS, SPAN_NS, np.random.default_rng(7))
    rng = np.random.default_rng(8)
    ts_sorted = np.sort(rng.integers(T0_NS, T0_NS + SPAN_NS, n, dtype=np.int64))
    return table, ts_sorted, rng.permutation(ts_sorted)


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


def corrector_times(n: int, n_cells: int, repeat: int) -> dict[str, float]:
    """Best-of seconds of ``Corrector.correct``: sorted and shuffled arrays, one scalar."""
    table, ts_sorted, ts_random = inputs(n, n_cells)
    cor = Corrector([table])
    scalar_t = int(ts_sorted[len(ts_sorted) // 2])
    return {
        "sorted": best(lambda: cor.correct("bench", ts_sorted), repeat),
        "unsorted": best(lambda: cor.correct("bench", ts_random), repeat),
        "scalar": min(timeit.repeat(lambda: cor.correct("bench", scalar_t),
                                    number=SCALAR_LOOPS, repeat=repeat)) / SCALAR_LOOPS,
    }


#: run in a subprocess against one ``clocksync`` tree (first on PYTHONPATH); argv: n cells
#: repeat; prints corrector_times as JSON
_HARNESS = """
import json, os, sys
os.sched_setaffinity(0, {int(os.environ["BENCH_CPU"])})
from lab.bench.corrector_vs_merge_asof import corrector_times
print(json.dumps(corrector_times(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))))
"""


def _harness(tree: Path, n: int, n_cells: int, repeat: int, cpu: int,
             table_json: Path) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": f"{tree}{os.pathsep}{REPO}", "BENCH_CPU": str(cpu),
           "BENCH_TABLE": str(table_json)}
    out = subprocess.run([sys.executable, "-c", _HARNESS, str(n), str(n_cells), str(repeat)],
                         env=env, cwd=tree, capture_output=True, text=True, check=True)
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000_000)
    parser.add_argument("--cells", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--baseline", default="",
                        help="git revision of the Corrector to compare with ('' = none)")
    args = parser.parse_args()
    cpu = min(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 0
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})
    table, ts_sorted, ts_random = inputs(args.n, args.cells)
    cor = Corrector([table])

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
    scalar_s = min(timeit.repeat(lambda: cor.correct("bench", scalar_t), number=SCALAR_LOOPS,
                                 repeat=3)) / SCALAR_LOOPS
    print(f"clocksync Corrector vs pandas merge_asof: {args.n:,} timestamps, "
          f"{args.cells:,} cells, best of {args.repeat}, cpu {cpu}")
    print(f"{'input':<10} {'clocksync':>12} {'merge_asof':>12} {'ratio':>8}")
    for label, ours, base in rows:
        print(f"{label:<10} {ours * 1e3:>10.1f}ms {base * 1e3:>10.1f}ms {base / ours:>7.2f}x")
    print(f"scalar correct(): {scalar_s * 1e6:.2f} µs per call")

    if args.baseline:
        with tempfile.TemporaryDirectory() as tmp:
            base_tree = checkout(args.baseline, Path(tmp))
            table_json = Path(tmp) / "table.json"
            table_json.write_text(table.to_json())
            if base_tree is not None:
                trees = {"this tree": REPO, f"baseline {args.baseline}": base_tree}
                got: dict[str, dict[str, float]] = {}
                for _ in range(args.repeat):  # alternating: drift in the load hits both
                    for label, tree in trees.items():
                        r = _harness(tree, args.n, args.cells, args.repeat, cpu, table_json)
                        prev = got.setdefault(label, dict.fromkeys(r, np.inf))
                        for k, v in r.items():
                            prev[k] = min(prev[k], v)
                new, old = got["this tree"], got[f"baseline {args.baseline}"]
                print(f"\nCorrector.correct, this tree vs baseline {args.baseline} "
                      f"(subprocesses, best of {args.repeat}x{args.repeat})")
                print(f"{'input':<10} {'this tree':>12} {'baseline':>12} {'speed-up':>9}")
                for k in ("sorted", "unsorted", "scalar"):
                    unit, scale = ("µs", 1e6) if k == "scalar" else ("ms", 1e3)
                    print(f"{k:<10} {new[k] * scale:>10.2f}{unit} {old[k] * scale:>10.2f}{unit}"
                          f" {old[k] / new[k]:>8.2f}x")
    print(f"(run at {time.strftime('%Y-%m-%d %H:%M:%S')}, numpy {np.__version__}, "
          f"pandas {pd.__version__})")


if __name__ == "__main__":
    main()
