"""Skew report rows: plain records computed from tables; the CLI only renders them.

The status values and their meanings are :class:`clocksync.Status`'s. A reader trusts the
status an agent published while the agent is alive, judged by the table's ``publisher``
block (:class:`clocksync.PublisherBlock`):

* a table not republished for ``8 × poll_interval_s + 2 × republish_s`` comes from an agent
  that stopped without saying so (killed, host gone): it reads ``free_running``;
* a table published ``stopped`` (the agent shut down) reads ``stopped`` at once, and
  ``free_running`` once its last sample is older than 8 poll intervals (ClockBound's rule);
* a table without a publisher block was fitted offline: it reads ``free_running`` once its
  last sample is older than 8 × its ``extra.poll_interval_s`` (the median sample spacing).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from ._corrector import Corrector
from ._model._errors import OutOfRangeError
from ._model._status import FREE_RUNNING_POLLS, REPUBLISH_S, Status
from ._model._table import CorrectionTable

__all__ = ["FREE_RUNNING_POLLS", "REPUBLISH_S", "SkewRow", "reader_status", "skew_rows"]


def reader_status(table: CorrectionTable, now_ns: int) -> Status:
    """The status a reader shows for ``table`` at ``now_ns`` (see the module docstring)."""
    status = Status(table.status)
    last = table.last_sample_local_ns
    age_s = (now_ns - last) / 1e9 if last is not None else math.inf
    publisher = table.publisher
    if publisher is None:  # fitted offline: how old is its last sample?
        poll_s = float(table.extra.get("poll_interval_s") or 0.0)
        if status == Status.SYNCHRONISED and poll_s > 0 and age_s > FREE_RUNNING_POLLS * poll_s:
            return Status.FREE_RUNNING
        return status
    if status == Status.STOPPED:
        return (Status.FREE_RUNNING if age_s > FREE_RUNNING_POLLS * publisher.poll_interval_s
                else status)
    silent_s = (now_ns - table.generated_at_ns) / 1e9
    if status == Status.SYNCHRONISED and silent_s > publisher.stale_after_s():
        return Status.FREE_RUNNING
    return status


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
        status = reader_status(table, now_ns)
        rows.append(SkewRow(
            node=node,
            reference=table.reference,
            status=str(status),
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
