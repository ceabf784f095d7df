"""Adaptive poll interval: a small pure policy (no clocks, no sockets).

Poll fast while the model is young or its bound is wide, slow down while it is tight, and
back off on a Kiss-o'-Death RATE. Intervals are in seconds and stay within
``[min_poll_s, max_poll_s]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .._model._errors import InputError

__all__ = ["PollPolicy"]


@dataclass(frozen=True, slots=True)
class PollPolicy:
    """When to poll next.

    Attributes:
        min_poll_s: shortest interval (s), used while the model is young.
        max_poll_s: longest interval (s).
        target_bound_ns: the interval shrinks while the model's bound is above this (ns) and
            grows while it is at most half of it; in between it holds.
        young_samples: below this many samples in the model, poll at ``min_poll_s``.
        factor: multiplier per step (> 1).
    """

    min_poll_s: float = 1.0
    max_poll_s: float = 64.0
    target_bound_ns: float = 100_000.0
    young_samples: int = 8
    factor: float = 2.0

    def __post_init__(self) -> None:
        checks = (
            ("min_poll_s", self.min_poll_s > 0),
            ("max_poll_s", self.max_poll_s >= self.min_poll_s),
            ("target_bound_ns", self.target_bound_ns > 0),
            ("young_samples", self.young_samples >= 0),
            ("factor", self.factor > 1),
        )
        for name, ok in checks:
            value = getattr(self, name)
            if not ok or (isinstance(value, float) and not math.isfinite(value)):
                raise InputError(f"PollPolicy.{name}: invalid value {value!r}")

    def _clamp(self, poll_s: float) -> float:
        return min(self.max_poll_s, max(self.min_poll_s, poll_s))

    def next_poll_s(self, current_poll_s: float, *, bound_ns: float, samples: int) -> float:
        """The next interval (s) given the current one, the model's bound (ns) and its size."""
        if samples < self.young_samples or not math.isfinite(bound_ns):
            return self.min_poll_s
        if bound_ns > self.target_bound_ns:
            return self._clamp(current_poll_s / self.factor)
        if bound_ns <= self.target_bound_ns / 2:
            return self._clamp(current_poll_s * self.factor)
        return self._clamp(current_poll_s)

    def after_rate_limit(self, current_poll_s: float) -> float:
        """The interval (s) after a Kiss-o'-Death RATE: at least one step longer."""
        return self._clamp(max(current_poll_s, self.min_poll_s) * self.factor)
