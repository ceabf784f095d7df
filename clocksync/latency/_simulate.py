"""Simulated PP -> Bifrost requests with known true latencies (tests, lab, demo).

True reference times: ``pp_enqueue = t``, ``pp_exit = t + process``, ``bifrost_arrive =
pp_exit + wire``, ``bifrost_done = bifrost_arrive + append``; each stage is stamped in the
local clock of the node that takes it (:meth:`SimClock.local_ns`). The truth is returned
beside the events so tests can check every hop's interval against it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from .._model._clock import SimClock
from ._schema import DEFAULT_STAGES

__all__ = ["RequestModel", "simulate_requests"]


@dataclass(frozen=True, slots=True)
class RequestModel:
    """Durations of the simulated stages (ns). ``wire = min_wire + exponential(mean)``;
    process and append are uniform. ``slow_*``: from ``slow_after_s`` on, a fraction of
    requests gets ``slow_extra_ns`` more append time (an injected P99 step).
    ``ack_wire_mean_ns``: when set, Bifrost acknowledges back to the PP node: a fifth stage
    ``pp_ack`` at ``bifrost_done + min_wire + exponential(mean)`` on the PP node."""

    process_ns: tuple[float, float] = (50_000.0, 400_000.0)
    min_wire_ns: float = 20_000.0
    wire_mean_ns: float = 30_000.0
    append_ns: tuple[float, float] = (100_000.0, 600_000.0)
    slow_after_s: float | None = None
    slow_fraction: float = 0.05
    slow_extra_ns: float = 3_000_000.0
    ack_wire_mean_ns: float | None = None


def simulate_requests(
    clocks: Mapping[str, SimClock],
    routes: list[tuple[str, str]],
    n: int,
    start_ref_ns: int,
    duration_s: float,
    rng: np.random.Generator,
    model: RequestModel | None = None,
) -> tuple[pa.Table, dict[str, npt.NDArray[np.float64]]]:
    """``(events, truth)``: ``n`` requests spread over ``duration_s``, each on a random
    ``(pp_node, bifrost_node)`` route. ``truth`` maps hop name -> true latency per request
    (request ``i`` is ``f"req-{i}"``), plus ``"slow"`` (1.0 for injected slow requests)."""
    m = model or RequestModel()
    t = start_ref_ns + np.sort(rng.uniform(0, duration_s * 1e9, n)).astype(np.int64)
    route = rng.integers(0, len(routes), n)
    proc = rng.uniform(*m.process_ns, n)
    wire = m.min_wire_ns + rng.exponential(m.wire_mean_ns, n)
    append = rng.uniform(*m.append_ns, n)
    slow = np.zeros(n, dtype=bool)
    if m.slow_after_s is not None:
        slow = (t >= start_ref_ns + m.slow_after_s * 1e9) & (rng.random(n) < m.slow_fraction)
        append = append + np.where(slow, m.slow_extra_ns, 0.0)
    ref = [t, t + np.rint(proc).astype(np.int64)]
    ref.append(ref[1] + np.rint(wire).astype(np.int64))
    ref.append(ref[2] + np.rint(append).astype(np.int64))
    stages = DEFAULT_STAGES
    if m.ack_wire_mean_ns is not None:
        ack = m.min_wire_ns + rng.exponential(m.ack_wire_mean_ns, n)
        ref.append(ref[3] + np.rint(ack).astype(np.int64))
        stages = (*DEFAULT_STAGES, "pp_ack")
    ids = np.array([f"req-{i}" for i in range(n)], dtype=object)
    pp = np.array([routes[r][0] for r in route], dtype=object)
    bf = np.array([routes[r][1] for r in route], dtype=object)
    node_of = [pp, pp, bf, bf, pp]
    cols: dict[str, list[npt.NDArray[np.generic]]] = {k: [] for k in (
        "request_id", "stage", "node", "ts_ns", "cpu_pct")}
    cpu = rng.uniform(10, 90, n).round(1)
    for k, stage in enumerate(stages):
        local = np.empty(n, dtype=np.int64)
        for name, clock in clocks.items():
            sel = node_of[k] == name
            local[sel] = clock.local_ns(ref[k][sel])
        cols["request_id"].append(ids)
        cols["stage"].append(np.full(n, stage, dtype=object))
        cols["node"].append(node_of[k])
        cols["ts_ns"].append(local)
        cols["cpu_pct"].append(cpu)
    order = rng.permutation(len(stages) * n)  # events arrive in no particular order
    table = pa.table({k: pa.array(np.concatenate(v)[order]) for k, v in cols.items()})
    truth = {
        "pp_enqueue->pp_exit": (ref[1] - ref[0]).astype(np.float64),
        "pp_exit->bifrost_arrive": (ref[2] - ref[1]).astype(np.float64),
        "bifrost_arrive->bifrost_done": (ref[3] - ref[2]).astype(np.float64),
        "pp_enqueue->bifrost_done": (ref[3] - ref[0]).astype(np.float64),
        "slow": slow.astype(np.float64),
    }
    if len(stages) == 5:
        truth["bifrost_done->pp_ack"] = (ref[4] - ref[3]).astype(np.float64)
        truth["pp_enqueue->pp_ack"] = (ref[4] - ref[0]).astype(np.float64)
    return table, truth
