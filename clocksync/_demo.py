"""The embedded demo: simulated skewed nodes -> samples -> fit -> tables -> corrected times.

Everything is local and deterministic (seeded): no root, no network, no real clock touched.
The demo returns plain records; ``clocksync demo`` renders them.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass

import numpy as np

from ._clock import SimClock
from ._corrector import Corrector
from ._fit import fit_table
from ._report import SkewRow, skew_rows
from ._simulate import LinkModel, simulate_samples
from ._store import DirectoryStore

__all__ = ["DemoNode", "DemoResult", "HopCheck", "run_demo"]

T0_NS = 1_767_225_600 * 10**9  # 2026-01-01T00:00:00Z, the demo's reference epoch


@dataclass(frozen=True, slots=True)
class DemoNode:
    """A simulated node: the hidden truth the report is compared with."""

    name: str
    offset0_ns: float
    skew_ppm: float
    wander_ppb_per_s: float
    step_at_s: float | None = None
    step_ns: float = 0.0


DEFAULT_NODES = (
    DemoNode("pp-1", 2_500_000.0, 12.0, 5.0),
    DemoNode("bifrost-1", -1_800_000.0, -18.0, 10.0, step_at_s=1_500.0, step_ns=700_000.0),
    DemoNode("bifrost-2", 400_000.0, 4.0, 2.0),
)


@dataclass(frozen=True, slots=True)
class TruthRow:
    node: str
    offset_ns: float
    skew_ppm: float


@dataclass(frozen=True, slots=True)
class HopCheck:
    """PP exit -> Bifrost arrival latencies, raw vs corrected, scored against the truth."""

    src: str
    dst: str
    requests: int
    raw_negative: int
    raw_median_ns: float
    true_median_ns: float
    corrected_median_ns: float
    median_bound_ns: float
    covered: int
    max_error_ns: float


@dataclass(frozen=True, slots=True)
class DemoResult:
    store: str
    duration_s: float
    poll_s: float
    samples: int
    report: list[SkewRow]
    truth: list[TruthRow]
    hops: list[HopCheck]


def _clock(node: DemoNode, seed: int) -> SimClock:
    steps = () if node.step_at_s is None else ((T0_NS + int(node.step_at_s * 1e9), node.step_ns),)
    return SimClock(t0_ns=T0_NS, offset0_ns=node.offset0_ns, skew_ppm=node.skew_ppm,
                    wander_ppb_per_s=node.wander_ppb_per_s, span_s=7_200.0, steps=steps,
                    seed=seed)


def run_demo(store_dir: str | None = None, duration_s: float = 3_600.0, poll_s: float = 8.0,
             seed: int = 1, nodes: tuple[DemoNode, ...] = DEFAULT_NODES,
             requests: int = 2_000) -> DemoResult:
    """Simulate, fit, publish to a directory store, correct, and score against the truth."""
    rng = np.random.default_rng(seed)
    link = LinkModel(base_delay_ns=40_000.0, jitter_ns=30_000.0, asymmetry_ns=8_000.0)
    store_path = store_dir or tempfile.mkdtemp(prefix="clocksync-demo-")
    store = DirectoryStore(store_path)
    clocks = {n.name: _clock(n, seed + i) for i, n in enumerate(nodes)}
    total = 0
    for n in nodes:
        samples = simulate_samples(clocks[n.name], n.name, T0_NS, duration_s, poll_s, link, rng,
                                   source="sim:reference")
        total += len(samples)
        store.write(fit_table(samples, reference="sim:reference"))
    corrector = Corrector.from_store(store_path)
    end_ref = T0_NS + int(duration_s * 1e9)
    # evaluate "now" at the end of the run, in each node's own clock
    report: list[SkewRow] = []
    truth: list[TruthRow] = []
    for n in nodes:
        local_now = int(clocks[n.name].local_ns(end_ref))
        report.extend(r for r in skew_rows(corrector, local_now) if r.node == n.name)
        truth.append(TruthRow(n.name, float(clocks[n.name].offset_ns(end_ref)),
                              float(clocks[n.name].frequency_ppm(end_ref))))
    hops = []
    src = nodes[0].name
    for dst_node in nodes[1:]:
        dst = dst_node.name
        send_ref = T0_NS + rng.integers(60, int(duration_s) - 60, requests) * 10**9 \
            + rng.integers(0, 10**9, requests)
        true_lat = 150_000 + rng.exponential(250_000, requests)
        arrive_ref = send_ref + true_lat.astype(np.int64)
        send_local = clocks[src].local_ns(send_ref)
        arrive_local = clocks[dst].local_ns(arrive_ref)
        raw = (arrive_local - send_local).astype(np.float64)
        lat, bound = corrector.latency(src, send_local, dst, arrive_local)
        err = lat - (arrive_ref - send_ref)
        hops.append(HopCheck(
            src=src, dst=dst, requests=requests,
            raw_negative=int((raw < 0).sum()),
            raw_median_ns=float(np.median(raw)),
            true_median_ns=float(np.median(arrive_ref - send_ref)),
            corrected_median_ns=float(np.median(lat)),
            median_bound_ns=float(np.median(bound)),
            covered=int((np.abs(err) <= bound).sum()),
            max_error_ns=float(np.max(np.abs(err))),
        ))
    return DemoResult(store_path, duration_s, poll_s, total, report, truth, hops)
