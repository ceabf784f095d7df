"""The agent's ClockBound-style status: a pure function of the table and the source state.

``unknown``       no table yet (no sample fitted);
``free_running``  no fresh sample for :data:`FREE_RUNNING_POLLS` × the poll interval, or
                  every source unreachable for :data:`UNREACHABLE_POLLS` polls in a row —
                  the table's holdover cells keep widening the bound at the assumed wander;
``disrupted``     the newest samples disagree with the model (an unconfirmed step), or a
                  step was confirmed and the new segment is still young;
``synchronised``  otherwise.
"""

from __future__ import annotations

from .._report import FREE_RUNNING_POLLS
from .._table import CorrectionTable

__all__ = ["FREE_RUNNING_POLLS", "UNREACHABLE_POLLS", "YOUNG_SEGMENT_SAMPLES", "agent_status"]

#: polls in a row that must fail before a source counts as unreachable
UNREACHABLE_POLLS = 3
#: a segment started by a step is "disrupted" until it holds this many samples
YOUNG_SEGMENT_SAMPLES = 8


def agent_status(table: CorrectionTable | None, *, now_local_ns: int, poll_s: float,
                 all_unreachable: bool, last_sample_local_ns: int | None = None) -> str:
    """Status of a node's clock model now (see the module docstring).

    ``last_sample_local_ns``: the newest sample received (local ns), which may be newer than
    the table's last fitted one (refits are rate-limited); default: the table's.
    """
    if table is None:
        return "unknown"
    last = table.last_sample_local_ns
    if last_sample_local_ns is not None and (last is None or last_sample_local_ns > last):
        last = last_sample_local_ns
    age_s = (now_local_ns - last) / 1e9 if last is not None else float("inf")
    if all_unreachable or age_s > FREE_RUNNING_POLLS * poll_s:
        return "free_running"
    if table.status == "disrupted":
        return "disrupted"
    segment = table.segments[-1] if table.segments else None
    if (segment is not None and segment.started_by == "step"
            and segment.sample_count < YOUNG_SEGMENT_SAMPLES):
        return "disrupted"
    return "synchronised"
