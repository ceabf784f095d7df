"""ClockBound-style status from the table and source state (pure function), on fitted
tables of simulated clocks with known steps."""

from __future__ import annotations

import dataclasses

import numpy as np

from clocksync import SimClock, fit_table
from clocksync.agent import FREE_RUNNING_POLLS, agent_status
from clocksync.testing import LinkModel, simulate_samples

T0 = 1_767_225_600 * 10**9


def _table(step_after_s: float | None, duration_s: float = 120.0):  # type: ignore[no-untyped-def]
    steps = () if step_after_s is None else ((T0 + int(step_after_s * 1e9), 5e6),)
    clock = SimClock(t0_ns=T0, offset0_ns=1e5, skew_ppm=20.0, span_s=600, steps=steps)
    rng = np.random.default_rng(3)
    samples = simulate_samples(clock, "n1", T0, duration_s, 1.0, LinkModel(), rng)
    return fit_table(samples)


def test_statuses() -> None:
    table = _table(None)
    last = table.last_sample_local_ns
    assert agent_status(None, now_local_ns=last, poll_s=1.0, all_unreachable=False) == "unknown"
    assert agent_status(table, now_local_ns=last + 10**9, poll_s=1.0,
                        all_unreachable=False) == "synchronised"
    late = last + int((FREE_RUNNING_POLLS + 1) * 1e9)
    assert agent_status(table, now_local_ns=late, poll_s=1.0,
                        all_unreachable=False) == "free_running"
    assert agent_status(table, now_local_ns=last, poll_s=1.0,
                        all_unreachable=True) == "free_running"


def test_step_makes_the_status_disrupted_until_the_new_segment_matures() -> None:
    unconfirmed = _table(step_after_s=118.5)  # 1-2 samples after the step: not confirmed
    assert unconfirmed.status == "disrupted"
    last = unconfirmed.last_sample_local_ns
    assert agent_status(unconfirmed, now_local_ns=last, poll_s=1.0,
                        all_unreachable=False) == "disrupted"
    young = _table(step_after_s=114.5)  # confirmed, new segment has ~5 samples
    assert young.segments[-1].started_by == "step"
    assert agent_status(young, now_local_ns=young.last_sample_local_ns, poll_s=1.0,
                        all_unreachable=False) == "disrupted"
    mature = _table(step_after_s=60.5)
    assert mature.segments[-1].started_by == "step"
    assert agent_status(mature, now_local_ns=mature.last_sample_local_ns, poll_s=1.0,
                        all_unreachable=False) == "synchronised"
    # free-running wins over disrupted: no fresh samples at all
    stale = dataclasses.replace(unconfirmed)
    assert agent_status(stale, now_local_ns=last + 100 * 10**9, poll_s=1.0,
                        all_unreachable=False) == "free_running"
