"""Records and a summary for ``clocksync ptp probe`` (the CLI only renders these)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from clocksync import format_ns

from ._port import PtpResult

__all__ = ["ProbeSummary", "result_line", "result_record", "summarize"]


def result_record(r: PtpResult) -> dict[str, Any]:
    """One exchange as a JSON-ready record (ns; offset = master - local)."""
    m = r.measurement
    return {
        "master": r.master,
        "sequence_id": r.sequence_id,
        "t_local_ns": m.t_local_ns,
        "offset_ns": round(m.offset_ns, 1),
        "delay_ns": round(m.round_trip_ns, 1),
        "bound_ns": round(m.bound_ns, 1),
        "mean_path_delay_ns": round(m.mean_path_delay_ns, 1),
        "raw_offset_ns": round(r.exchange.offset_ns, 1),
        "turnaround_ns": r.exchange.turnaround_ns,
        "accepted": r.accepted,
        "cold": r.cold,
    }


def result_line(r: PtpResult) -> str:
    """One exchange for humans."""
    m = r.measurement
    flag = "" if r.accepted else "  (outlier: delay filter rejected it)"
    return (
        f"seq {r.sequence_id:5d}  master {r.master}  offset {format_ns(m.offset_ns, m.bound_ns, 2)}"
        f"  path delay {format_ns(m.mean_path_delay_ns, None, 2)}"
        f"  round trip {format_ns(m.round_trip_ns, None, 2)}{flag}"
    )


@dataclass(frozen=True, slots=True)
class ProbeSummary:
    """What a probe run found.

    Attributes:
        count: completed exchanges; outliers: of those, rejected by the delay filter.
        master: the last master measured against.
        best_offset_ns, best_bound_ns: the accepted exchange with the smallest bound.
        median_offset_ns: median offset of accepted exchanges (reference - local, ns).
        rms_offset_ns: root mean square of accepted offsets (ns; the error when the true
            offset is 0, as between namespaces sharing one clock).
        median_path_delay_ns: median meanPathDelay (ns).
    """

    count: int
    outliers: int
    master: str
    best_offset_ns: float
    best_bound_ns: float
    median_offset_ns: float
    rms_offset_ns: float
    median_path_delay_ns: float

    def record(self) -> dict[str, Any]:
        return {"summary": {k: getattr(self, k) for k in self.__slots__}}

    def lines(self) -> list[str]:
        return [
            f"{self.count} exchanges with {self.master} ({self.outliers} outliers rejected)",
            f"best     offset {format_ns(self.best_offset_ns, self.best_bound_ns, 2)}",
            f"median   offset {format_ns(self.median_offset_ns, None, 2)}"
            f"  rms {format_ns(self.rms_offset_ns, None, 2)}"
            f"  path delay {format_ns(self.median_path_delay_ns, None, 2)}",
            "offset = master - local: positive means this clock is behind"
            " (ptp4l's 'master offset' is the negative)",
        ]


def summarize(results: Sequence[PtpResult]) -> ProbeSummary | None:
    """The summary of ``results`` (``None`` when no exchange was accepted)."""
    good = [r for r in results if r.accepted]
    if not good:
        return None
    offsets = [r.measurement.offset_ns for r in good]
    best = min(good, key=lambda r: r.measurement.bound_ns)
    return ProbeSummary(
        count=len(results),
        outliers=len(results) - len(good),
        master=good[-1].master,
        best_offset_ns=best.measurement.offset_ns,
        best_bound_ns=best.measurement.bound_ns,
        median_offset_ns=float(statistics.median(offsets)),
        rms_offset_ns=(sum(o * o for o in offsets) / len(offsets)) ** 0.5,
        median_path_delay_ns=float(
            statistics.median(r.measurement.mean_path_delay_ns for r in good)
        ),
    )
