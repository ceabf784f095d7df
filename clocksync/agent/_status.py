"""The agent's status and health: pure functions of the table and the source state.

Status (:class:`clocksync.Status`; meanings in :data:`clocksync.STATUS_MEANINGS`):

``serving``       a reference agent: no sources, it serves its own clock;
``unknown``       no table yet (no sample fitted);
``free_running``  no fresh sample for :data:`FREE_RUNNING_POLLS` × the poll interval, or
                  every source unreachable for :data:`UNREACHABLE_POLLS` polls in a row —
                  the table's holdover cells keep widening the bound at the assumed wander;
``disrupted``     the newest samples disagree with the model (an unconfirmed step), or a
                  step was confirmed and the new segment is still young;
``synchronised``  otherwise;
``stopped``       set by the agent itself when it shuts down (not computed here).

Health (``/healthz``): not healthy while the loop stalled, while there is no usable sample
(no table), while the table does not cover the local time now (past its holdover
horizon), or once the agent stopped.
"""

from __future__ import annotations

from .._model._status import FREE_RUNNING_POLLS, Status
from .._model._table import CorrectionTable

__all__ = ["FREE_RUNNING_POLLS", "UNREACHABLE_POLLS", "YOUNG_SEGMENT_SAMPLES", "agent_health",
           "agent_status"]

#: polls in a row that must fail before a source counts as unreachable
UNREACHABLE_POLLS = 3
#: a segment started by a step is "disrupted" until it holds this many samples
YOUNG_SEGMENT_SAMPLES = 8


def agent_status(table: CorrectionTable | None, *, now_local_ns: int, poll_s: float,
                 all_unreachable: bool, last_sample_local_ns: int | None = None,
                 has_sources: bool = True) -> Status:
    """Status of a node's clock model now (see the module docstring).

    ``last_sample_local_ns``: the newest sample received (local ns), which may be newer than
    the table's last fitted one (refits are rate-limited); default: the table's.
    ``has_sources``: False for a reference agent (status ``serving``).
    """
    if not has_sources:
        return Status.SERVING
    if table is None:
        return Status.UNKNOWN
    last = table.last_sample_local_ns
    if last_sample_local_ns is not None and (last is None or last_sample_local_ns > last):
        last = last_sample_local_ns
    age_s = (now_local_ns - last) / 1e9 if last is not None else float("inf")
    if all_unreachable or age_s > FREE_RUNNING_POLLS * poll_s:
        return Status.FREE_RUNNING
    if table.status == Status.DISRUPTED:
        return Status.DISRUPTED
    segment = table.segments[-1] if table.segments else None
    if (segment is not None and segment.started_by == "step"
            and segment.sample_count < YOUNG_SEGMENT_SAMPLES):
        return Status.DISRUPTED
    return Status.SYNCHRONISED


def agent_health(status: Status, *, has_table: bool, covers_now: bool, loop_age_s: float,
                 stall_s: float) -> tuple[bool, str]:
    """``(healthy, reason)`` for ``/healthz``; the reason is empty when healthy.

    ``covers_now``: the table gives a bound at the local time now (not past its holdover
    horizon); ``stall_s``: the loop counts as stalled after this long without a pass.
    """
    if status == Status.STOPPED:
        return False, "the agent stopped"
    if loop_age_s > stall_s:
        return False, f"the agent loop has not run for {loop_age_s:.0f} s"
    if status == Status.SERVING:
        return True, ""
    if not has_table:
        return False, "no usable sample yet"
    if not covers_now:
        return False, "the table does not cover the local time now (past its holdover horizon)"
    return True, ""
