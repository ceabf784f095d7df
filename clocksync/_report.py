"""Skew report rows: plain records computed from tables; the CLI only renders them.

Status follows AWS ClockBound: ``unknown`` (no table), ``synchronised``, ``free_running``
(no sample for more than 8 poll intervals: the bound keeps growing from the holdover model),
``disrupted`` (the newest samples disagree with the model: an unconfirmed step).

A reader trusts the status the agent published while the table is fresh (a table fitted
offline is judged by the age of its last sample). The agent
refits at a limited rate, so the table's last fitted sample can be older than 8 poll
intervals while fresh samples keep arriving. The agent republishes at least every
:data:`REPUBLISH_S`, so a table not republished for ``8 × poll + 2 × REPUBLISH_S`` comes
from an agent that stopped: the reader shows it as ``free_running``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from ._corrector import Corrector
from ._errors import OutOfRangeError

__all__ = ["FREE_RUNNING_POLLS", "REPUBLISH_S", "SkewRow", "skew_rows"]

#: a table with no sample for this many poll intervals is free-running (ClockBound's rule)
FREE_RUNNING_POLLS = 8
#: an agent republishes its table at least this often (s), also when nothing changed
REPUBLISH_S = 60.0


@dataclass(frozen=True, slots=True)
class SkewRow:
    """One node in a skew report. Offsets: reference - local (ns); skew > 0: runs fast."""

    node: str
    reference: str
    status: str
    offset_now_ns: float
    bound_now_ns: float
    skew_ppm: float
    sigma_skew_ppm: float
    residual_rms_ns: float
    samples: int
    outliers: int
    segments: int
    last_sample_age_s: float
    generated_at_ns: int

    def to_dict(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in asdict(self).items()}


def skew_rows(corrector: Corrector, now_ns: int) -> list[SkewRow]:
    """A row per node, evaluated at ``now_ns`` (taken as each node's local time now)."""
    rows: list[SkewRow] = []
    for node in corrector.nodes:
        table = corrector.table(node)
        current = table.current
        try:
            ref, bound = corrector.correct(node, now_ns)
            offset_now, bound_now = float(ref - now_ns), float(bound)
        except OutOfRangeError:
            offset_now, bound_now = math.nan, math.inf
        last = table.last_sample_local_ns
        age_s = (now_ns - last) / 1e9 if last is not None else math.inf
        agent = table.extra.get("agent")
        status = table.status
        if isinstance(agent, dict):  # published by a running agent: is it still publishing?
            poll_s = float(agent.get("poll_interval_s") or 0.0)
            stale_s = (now_ns - table.generated_at_ns) / 1e9
            limit_s = FREE_RUNNING_POLLS * poll_s + 2 * REPUBLISH_S
        else:  # fitted offline: how old is its last sample?
            poll_s = float(table.extra.get("poll_interval_s") or 0.0)
            stale_s, limit_s = age_s, FREE_RUNNING_POLLS * poll_s
        if status == "synchronised" and poll_s > 0 and stale_s > limit_s:
            status = "free_running"
        rows.append(SkewRow(
            node=node,
            reference=table.reference,
            status=status,
            offset_now_ns=offset_now,
            bound_now_ns=bound_now,
            skew_ppm=current.skew_ppm if current else math.nan,
            sigma_skew_ppm=current.sigma_skew_ppm if current else math.inf,
            residual_rms_ns=current.residual_rms_ns if current else math.nan,
            samples=table.sample_count,
            outliers=table.outlier_count,
            segments=len(table.segments),
            last_sample_age_s=age_s,
            generated_at_ns=table.generated_at_ns,
        ))
    return rows
