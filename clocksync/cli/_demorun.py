"""The embedded demo: live agents on loopback measuring simulated skewed clocks.

A reference agent serves the system clock over NTP on 127.0.0.1 (peer mode, an
:class:`~clocksync.ntp.NtpServer`); one agent per simulated node reads its own
:class:`~clocksync.SimClock` (offset, skew, wander, and one node steps mid-run), measures the
reference with real UDP exchanges (kernel timestamps), logs samples, refits and publishes
its table to a temporary directory store. At the end the skew report is evaluated next to
the hidden truth, and PP exit -> Bifrost arrival latencies are corrected and scored.

No root, no network beyond loopback, nothing touches the system clock; about 15 s by default.
The demo returns plain records; ``clocksync demo`` renders them.
"""

from __future__ import annotations

import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._corrector import Corrector
from .._io._store import DirectoryStore
from .._model._clock import SimClock
from .._report import SkewRow, skew_rows

__all__ = ["DEFAULT_NODES", "DemoNode", "DemoResult", "HopCheck", "TruthRow", "run_demo"]


@dataclass(frozen=True, slots=True)
class DemoNode:
    """A simulated node: the hidden truth the report is compared with.

    ``step_at_s`` is seconds after the start of the run; the offset jumps by ``step_ns``.
    """

    name: str
    offset0_ns: float
    skew_ppm: float
    wander_ppb_per_s: float
    step_at_s: float | None = None
    step_ns: float = 0.0


DEFAULT_NODES = (
    DemoNode("pp-1", -1_500_000.0, 25.0, 10.0),
    DemoNode("bifrost-1", 1_200_000.0, -30.0, 10.0, step_at_s=8.0, step_ns=400_000.0),
    DemoNode("bifrost-2", 300_000.0, 8.0, 5.0),
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
    reference: str = ""
    exchanges: int = 0


def _clock(node: DemoNode, t0_ns: int, seed: int, span_s: float) -> SimClock:
    steps = () if node.step_at_s is None else ((t0_ns + int(node.step_at_s * 1e9),
                                                node.step_ns),)
    return SimClock(t0_ns=t0_ns, offset0_ns=node.offset0_ns, skew_ppm=node.skew_ppm,
                    wander_ppb_per_s=node.wander_ppb_per_s, wander_knot_s=2.0,
                    span_s=span_s, steps=steps, seed=seed)


def _hops(corrector: Corrector, clocks: dict[str, SimClock], nodes: tuple[DemoNode, ...],
          start_ref_ns: int, end_ref_ns: int, requests: int,
          rng: np.random.Generator) -> list[HopCheck]:
    """Requests sent from the first node to each other node at random reference times
    inside the measured span, with a known true latency; corrected with the tables."""
    hops = []
    src = nodes[0].name
    for dst_node in nodes[1:]:
        dst = dst_node.name
        send_ref = rng.integers(start_ref_ns, end_ref_ns, requests, dtype=np.int64)
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
    return hops


def run_demo(store_dir: str | None = None, duration_s: float = 15.0, poll_s: float = 0.25,
             seed: int = 1, nodes: tuple[DemoNode, ...] = DEFAULT_NODES,
             requests: int = 2_000) -> DemoResult:
    """Run the reference agent and one agent per node for ``duration_s`` of real time, then
    score the published tables against the simulated truth (see the module docstring)."""
    from ..agent import Agent, AgentConfig

    rng = np.random.default_rng(seed)
    work = Path(tempfile.mkdtemp(prefix="clocksync-demo-"))
    store_path = store_dir or str(work / "tables")
    store = DirectoryStore(store_path)
    reference = Agent(AgentConfig.defaults(node="reference", data_dir=str(work / "reference"),
                                           http_listen="", serve_port=0, stores=[store_path]),
                      stores=[store])
    server = reference.start_server(port=0)
    assert server is not None
    t0_ns = time.time_ns()
    clocks = {n.name: _clock(n, t0_ns, seed + i, duration_s + 120.0)
              for i, n in enumerate(nodes)}
    target = f"127.0.0.1:{server.port}"
    agents = [Agent(AgentConfig.defaults(
        node=n.name, peers=[target], data_dir=str(work / n.name), http_listen="",
        min_poll_s=poll_s, max_poll_s=2 * poll_s, refit_min_s=1.0, timeout_s=0.2, burst=3,
        burst_interval_s=0.01, stores=[store_path]), clock=clocks[n.name], stores=[store])
        for n in nodes]
    threads = [threading.Thread(target=a.run, name=f"demo-{a.node}", daemon=True)
               for a in agents]
    try:
        for thread in threads:
            thread.start()
        time.sleep(duration_s)
    finally:
        for a in agents:
            a.request_stop()
        for thread in threads:
            thread.join(30)
        exchanges = server.stats().answered
        reference.shutdown()
    end_ref = time.time_ns()
    corrector = Corrector.from_store(store_path)
    report: list[SkewRow] = []
    truth: list[TruthRow] = []
    for n in nodes:
        local_now = int(clocks[n.name].local_ns(end_ref))
        report.extend(r for r in skew_rows(corrector, local_now) if r.node == n.name)
        truth.append(TruthRow(n.name, float(clocks[n.name].offset_ns(end_ref)),
                              float(clocks[n.name].frequency_ppm(end_ref))))
    # requests inside the span every node measured: from its first sample to the end
    first_ref = max(int(corrector.table(n.name).segments[0].first_sample_local_ns
                        + clocks[n.name].offset_ns(t0_ns)) for n in nodes)
    hops = _hops(corrector, clocks, nodes, first_ref + 10**8, end_ref, requests, rng)
    total = sum(a.samples.appended for a in agents)
    return DemoResult(store_path, duration_s, poll_s, total, report, truth, hops,
                      reference=f"ntp:{target}", exchanges=exchanges)
