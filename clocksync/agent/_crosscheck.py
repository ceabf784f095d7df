"""Do the sources agree? Their latest samples as intervals at one instant, Marzullo's
intersection (:func:`clocksync._fit._agreement.agree`), falsetickers named only by a majority.

Pure: samples in, a :class:`CrossCheck` out; the agent decides what to do with it.

* Only *fresh* samples take part: younger than :data:`FRESH_POLLS` × their source's poll
  interval (ClockBound's free-running rule), so a source that stopped answering drops out.
* Samples are taken at different local times, and the offset moves between them by up to
  ``max_skew`` × the time apart. Each sample is moved to one common instant — the newest
  fresh sample's time — keeping its offset and widening its bound by ``max_skew_ppm`` × its
  age there: an honest interval at that instant (the truth cannot have moved further). The
  newest sample is the tightest common instant; "now" would widen every interval alike by
  the time since, which can only hide disagreements.
* A falseticker is named only when a *strict majority* of the fresh sources share a common
  point (NTP's rule). Two sources that disagree, or no majority, mean "disagree" with nobody
  named: there is no telling which one is wrong.

Offsets: reference - local (ns); positive = the local clock is behind.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .._fit._agreement import Agreement, SourceInterval, agree
from .._model._sample import Sample

__all__ = ["FRESH_POLLS", "CrossCheck", "cross_check", "project"]

#: a sample takes part while younger than this many poll intervals of its source
FRESH_POLLS = 8.0


@dataclass(frozen=True, slots=True)
class CrossCheck:
    """The sources' agreement at one instant.

    Attributes:
        at_local_ns: the common instant (local clock, ns) the intervals were moved to.
        intervals: the fresh sources' intervals at that instant (offset ± bound, ns).
        agreement: Marzullo's result over ``intervals``; ``None`` with fewer than two.
        falsetickers: sources outside the interval a strict majority agrees on (named only
            when such a majority exists).
    """

    at_local_ns: int
    intervals: tuple[SourceInterval, ...]
    agreement: Agreement | None
    falsetickers: tuple[str, ...]

    @property
    def agree(self) -> bool | None:
        """Whether every fresh source agrees (``None``: fewer than two to compare)."""
        return None if self.agreement is None else self.agreement.consistent

    @property
    def majority(self) -> bool:
        """Whether a strict majority of the fresh sources shares a common point."""
        if self.agreement is None:
            return bool(self.intervals)
        return 2 * len(self.agreement.truechimers) > len(self.intervals)


def project(source: str, sample: Sample, at_local_ns: int, max_skew_ppm: float
            ) -> SourceInterval:
    """``sample`` as an interval at local time ``at_local_ns``: same offset, bound widened
    by ``max_skew_ppm`` × the time between (the truth moves no faster)."""
    age_ns = abs(at_local_ns - sample.t_local_ns)
    return SourceInterval(source, sample.offset_ns, sample.bound + max_skew_ppm * 1e-6 * age_ns)


def cross_check(latest: Sequence[tuple[str, Sample, float]], *, now_local_ns: int,
                max_skew_ppm: float, fresh_polls: float = FRESH_POLLS) -> CrossCheck:
    """Cross-check the sources' latest samples.

    Args:
        latest: ``(source name, its latest sample, its poll interval in s)`` per source.
        now_local_ns: the local clock now (ns), for freshness.
        max_skew_ppm: the fit's assumed bound on the clock's frequency error (ppm).
        fresh_polls: a sample is fresh while younger than this many poll intervals.
    """
    fresh = [(name, s) for name, s, poll_s in latest
             if now_local_ns - s.t_local_ns < fresh_polls * poll_s * 1e9]
    if not fresh:
        return CrossCheck(now_local_ns, (), None, ())
    at_ns = max(s.t_local_ns for _, s in fresh)
    intervals = tuple(project(name, s, at_ns, max_skew_ppm) for name, s in fresh)
    if len(intervals) < 2:
        return CrossCheck(at_ns, intervals, None, ())
    result = agree(list(intervals))
    majority = 2 * len(result.truechimers) > len(intervals)
    return CrossCheck(at_ns, intervals, result, result.falsetickers if majority else ())
