"""Which sources agree: Marzullo's intersection of offset intervals, falsetickers named.

Each source says "the offset is in ``[offset − bound, offset + bound]``". If the intervals of
all sources overlap, they agree. If not, the largest group whose intervals share a common
point is the majority ("truechimers", as NTP calls them), its common part is the agreed
interval, and every source outside it is a falseticker: its bound is not true (an asymmetric
path, a wrong server, a PTP master in the wrong time scale). Pure math, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Agreement", "SourceInterval", "agree"]


@dataclass(frozen=True, slots=True)
class SourceInterval:
    """One source's offset measurement (reference − local, ns) and its bound (half-width)."""

    source: str
    offset_ns: float
    bound_ns: float

    @property
    def low_ns(self) -> float:
        return self.offset_ns - self.bound_ns

    @property
    def high_ns(self) -> float:
        return self.offset_ns + self.bound_ns


@dataclass(frozen=True, slots=True)
class Agreement:
    """The result: the agreed interval (``low_ns``..``high_ns``), the sources in it and the
    falsetickers. ``consistent`` is true when every source agrees."""

    low_ns: float
    high_ns: float
    truechimers: tuple[str, ...]
    falsetickers: tuple[str, ...]

    @property
    def consistent(self) -> bool:
        return not self.falsetickers

    @property
    def offset_ns(self) -> float:
        return (self.low_ns + self.high_ns) / 2

    @property
    def bound_ns(self) -> float:
        return (self.high_ns - self.low_ns) / 2


def agree(intervals: list[SourceInterval]) -> Agreement:
    """Marzullo's algorithm: the point covered by the most intervals, and the widest
    stretch around it covered by that many. Ties go to the earliest such stretch."""
    if not intervals:
        raise ValueError("agree: no intervals")
    # endpoints: lows open (+1) before highs close (-1) at the same value: touching counts
    events = sorted([(iv.low_ns, -1, i) for i, iv in enumerate(intervals)]
                    + [(iv.high_ns, 1, i) for i, iv in enumerate(intervals)])
    best, count = 0, 0
    best_low = best_high = 0.0
    for k, (value, kind, _) in enumerate(events):
        count -= kind
        if count > best:
            best = count
            best_low = value
            best_high = events[k + 1][0] if k + 1 < len(events) else value
    members = tuple(iv.source for iv in intervals
                    if iv.low_ns <= best_low and iv.high_ns >= best_high)
    # the agreed interval is the intersection of the members' intervals
    chosen = [iv for iv in intervals if iv.source in members]
    low = max(iv.low_ns for iv in chosen)
    high = min(iv.high_ns for iv in chosen)
    others = tuple(iv.source for iv in intervals if iv.source not in members)
    return Agreement(low, high, members, others)
