"""Simulated NTP-style exchanges against a :class:`SimClock` — ground truth for tests,
the lab and the demo.

One exchange: the client sends at reference time ``T1``; the forward delay ``d_f`` and the
backward delay ``d_b`` are drawn independently (base + exponential jitter + a heavy tail,
plus a mean asymmetry on the forward path). With the server stamping reference time, the
measured offset is ``θ(mid) + (d_f - d_b)/2`` and the delay is ``d_f + d_b``, so the sample's
bound ``delay/2 + timestamping error`` is truthful by construction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .._model._clock import SimClock
from .._model._samples import SampleArrays

__all__ = ["LinkModel", "simulate_samples"]


@dataclass(frozen=True, slots=True)
class LinkModel:
    """Network path between a node and its reference (all ns, one way)."""

    base_delay_ns: float = 50_000.0
    jitter_ns: float = 20_000.0
    tail_probability: float = 0.05
    tail_scale_ns: float = 2_000_000.0
    asymmetry_ns: float = 10_000.0
    timestamp_error_ns: float = 1_000.0


def simulate_samples(
    clock: SimClock,
    node: str,
    start_ref_ns: int,
    duration_s: float,
    poll_s: float,
    link: LinkModel,
    rng: np.random.Generator,
    gaps_s: tuple[tuple[float, float], ...] = (),
    source: str = "sim",
) -> SampleArrays:
    """Samples every ``poll_s`` (± 10% jitter) over ``duration_s``, skipping ``gaps_s``
    (start, end seconds after ``start_ref_ns``)."""
    n = max(1, int(duration_s / poll_s))
    offsets_s = np.arange(n) * poll_s + rng.uniform(0, 0.1 * poll_s, n)
    keep = np.ones(n, dtype=bool)
    for g0, g1 in gaps_s:
        keep &= ~((offsets_s >= g0) & (offsets_s < g1))
    offsets_s = offsets_s[keep]
    m = len(offsets_s)
    t1 = start_ref_ns + (offsets_s * 1e9).astype(np.int64)

    def one_way(extra: float) -> npt.NDArray[np.float64]:
        d = link.base_delay_ns + extra + rng.exponential(link.jitter_ns, m)
        tail = rng.random(m) < link.tail_probability
        d[tail] += rng.pareto(1.5, int(tail.sum())) * link.tail_scale_ns / 3
        return d

    d_f = one_way(link.asymmetry_ns)
    d_b = one_way(0.0)
    mid_ref = t1 + ((d_f + d_b) / 2).astype(np.int64)
    t_local = clock.local_ns(mid_ref)
    stamp_err = rng.uniform(-link.timestamp_error_ns, link.timestamp_error_ns, m) * 0.5
    offset = clock.offset_ns(mid_ref) + (d_f - d_b) / 2 + stamp_err
    delay = d_f + d_b
    bound = delay / 2 + link.timestamp_error_ns
    return SampleArrays(
        np.full(m, node, dtype=object), t_local.astype(np.int64), offset, delay, bound,
        np.full(m, source, dtype=object),
    )
