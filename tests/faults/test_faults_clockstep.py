"""Fault: the local clock steps while the agent runs.

The agent reads a :class:`~clocksync.SimClock` that jumps 50 ms forward (offset step
-50 ms; a VM resumed, a daemon stepping the clock) a few seconds into the run, while it
measures a real NTP server over loopback. The step must be detected (a new segment started
by ``step``), the status must go ``disrupted`` and then ``synchronised`` again, and
corrections of timestamps taken before the step must still come from the old segment —
tight, and within their bound of the truth the SimClock knows.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from clocksync import Corrector, SimClock, open_store
from clocksync.agent import YOUNG_SEGMENT_SAMPLES, Agent
from clocksync.ntp import NtpServer

from ._agentrig import RecordingStore, agent_config, running, wait_for

STEP_NS = -50e6  # offset step: reference - local drops by 50 ms, the local clock jumps ahead
STEP_AFTER_S = 3.0


@pytest.mark.slow
def test_clock_step_detected_new_segment_old_corrections_kept(tmp_path: Path,
                                                              ntp_server: NtpServer) -> None:
    t_step_ref = time.time_ns() + int(STEP_AFTER_S * 1e9)
    clock = SimClock(t0_ns=time.time_ns(), steps=((t_step_ref, STEP_NS),))
    store = RecordingStore(open_store(str(tmp_path / "tables")))
    agent = Agent(agent_config(tmp_path, ntp_servers=[f"127.0.0.1:{ntp_server.port}"]),
                  clock=clock, stores=[store])
    before_step = None
    with running(agent):
        wait_for(lambda: agent.status == "synchronised" and agent.samples.appended >= 8)
        before_step = agent.table
        assert before_step is not None and len(before_step.segments) == 1

        def settled() -> bool:
            table = agent.table
            return (table is not None and agent.status == "synchronised"
                    and table.segments[-1].started_by == "step"
                    and table.segments[-1].sample_count >= YOUNG_SEGMENT_SAMPLES)

        wait_for(settled, 30, "the step confirmed and the new segment grown up")
    assert time.time_ns() > t_step_ref
    step_local_ns = int(clock.read_ns(t_step_ref))  # first local reading after the step

    # the status went synchronised -> disrupted -> synchronised (every change is published)
    statuses = [a.status for a in store.attempts if a.ok]
    first_disrupted = statuses.index("disrupted")
    assert "synchronised" in statuses[:first_disrupted]
    assert "synchronised" in statuses[first_disrupted:]

    final = Corrector.from_store(str(tmp_path / "tables")).table("n1")
    assert final.segments[-1].started_by == "step"
    assert final.segments[-1].first_sample_local_ns >= step_local_ns
    old = [s for s in final.segments if s.last_sample_local_ns < step_local_ns]
    assert old, "the segment before the step is gone from the table"

    # corrections before the step: from the old segment, tight, and true
    first_local = before_step.segments[0].first_sample_local_ns
    old_last = old[-1].last_sample_local_ns
    before = _spread(first_local, old_last, 20)
    corrector = Corrector([final])
    ref, bound = corrector.correct("n1", before)
    truth = before.astype(np.float64)  # before the step the SimClock reads reference time
    assert np.all(np.abs(ref - truth) <= bound)
    assert np.all(bound < 1e6)  # a loopback segment: well under 1 ms, not the 50 ms hull
    cells = final.cells
    index = np.searchsorted(cells.start_ns, before, side="right") - 1
    # only pre-step segments serve them (a statistical level shift may have split the
    # pre-step history in two, with an ambiguous hull between: still never the new segment)
    used = set(cells.segment[index].tolist()) - {-1}
    assert used and used <= {seg.index for seg in old}, (used, final.segments)
    # ... and they agree with what the table said before the step happened
    ref0, bound0 = Corrector([before_step]).correct(
        "n1", before[before <= before_step.segments[0].last_sample_local_ns])
    n = len(ref0)
    assert np.all(np.abs(ref[:n] - ref0) <= bound[:n] + bound0)

    # after the step: the new segment, true to the stepped clock
    new = final.segments[-1]
    after = _spread(new.first_sample_local_ns, new.last_sample_local_ns, 10)
    ref_a, bound_a = corrector.correct("n1", after)
    truth_a = after.astype(np.float64) + STEP_NS  # reference = local + offset
    assert np.all(np.abs(ref_a - truth_a) <= bound_a)
    assert np.all(bound_a < 1e6)


def _spread(first_ns: int, last_ns: int, n: int) -> npt.NDArray[np.int64]:
    """``n`` local times from ``first_ns`` to ``last_ns`` inclusive, in exact int64 (a
    float64 linspace rounds epoch nanoseconds by up to 128 ns, past the ends)."""
    return np.int64(first_ns) + (np.arange(n, dtype=np.int64) * np.int64(last_ns - first_ns)
                                 ) // np.int64(n - 1)
