"""Clocks an agent can read: the system clock, or a simulated clock with known error.

A clock maps the system's ``CLOCK_REALTIME`` reading to its own reading. On the lab machines
the system clock *is* the reference (all namespaces share it), so a :class:`SimClock` gives a
node a known offset, skew, frequency wander and steps on top of it — the ground truth that
tests and the demo score against. Nothing here ever changes the system clock.

Sign convention: ``offset_ns = reference - local``. ``skew_ppm > 0`` means the local clock runs
fast, so its offset decreases over time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

__all__ = ["Clock", "SimClock", "SystemClock"]

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


@runtime_checkable
class Clock(Protocol):
    """A clock: ``read_ns(system_ns)`` is this clock's reading when the system clock reads
    ``system_ns`` (kernel timestamps arrive in system time and are mapped through this)."""

    def read_ns(self, system_ns: int) -> int: ...

    def now_ns(self) -> int: ...


@dataclass(frozen=True, slots=True)
class SystemClock:
    """The system's ``CLOCK_REALTIME`` itself."""

    def read_ns(self, system_ns: int) -> int:
        return system_ns

    def now_ns(self) -> int:
        return time.time_ns()


@dataclass(frozen=True)
class SimClock:
    """A simulated clock over reference (= system) time with known truth.

    The offset at reference time ``t`` (ns) is::

        offset(t) = offset0_ns - ∫ y(u) du + Σ steps before t

    with the fractional frequency error ``y(u) = skew_ppm·1e-6 + w(u)``, where ``w`` is a
    piecewise-linear random wander with ``|dw/dt| <= wander_ppb_per_s·1e-9`` per second
    (seeded), changing slope every ``wander_knot_s``. ``steps`` are ``(t_ref_ns, step_ns)``:
    at ``t_ref_ns`` the offset jumps by ``step_ns`` (the local clock jumps by ``-step_ns``).

    Attributes:
        t0_ns: reference time at which the offset equals ``offset0_ns``.
        offset0_ns: offset at ``t0_ns`` (ns).
        skew_ppm: constant frequency error (ppm); positive = local runs fast.
        wander_ppb_per_s: bound on the rate of change of the frequency (ppb/s).
        wander_knot_s: interval between wander slope changes (s).
        span_s: how long past ``t0_ns`` the wander is defined (s); constant afterwards.
        steps: offset steps ``(t_ref_ns, step_ns)``.
        seed: seed of the wander.
    """

    t0_ns: int
    offset0_ns: float = 0.0
    skew_ppm: float = 0.0
    wander_ppb_per_s: float = 0.0
    wander_knot_s: float = 60.0
    span_s: float = 86_400.0
    steps: tuple[tuple[int, float], ...] = ()
    seed: int = 0
    _knots_s: F64 = field(init=False, repr=False, compare=False)
    _freq: F64 = field(init=False, repr=False, compare=False)
    _phase: F64 = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        n = max(2, int(np.ceil(self.span_s / self.wander_knot_s)) + 1)
        knots = np.arange(n, dtype=np.float64) * self.wander_knot_s
        rng = np.random.default_rng(self.seed)
        rate = self.wander_ppb_per_s * 1e-9
        slopes = rng.uniform(-rate, rate, n - 1)
        freq = np.concatenate([[0.0], np.cumsum(slopes * np.diff(knots))])
        freq += self.skew_ppm * 1e-6
        # phase(k) = ∫_0^knot_k y(u) du, piecewise-linear y integrates to trapezoids
        phase = np.concatenate([[0.0], np.cumsum((freq[1:] + freq[:-1]) / 2 * np.diff(knots))])
        object.__setattr__(self, "_knots_s", knots)
        object.__setattr__(self, "_freq", freq)
        object.__setattr__(self, "_phase", phase)

    def _integral_s(self, dt_s: F64) -> F64:
        """∫_0^dt y(u) du in seconds (y extrapolated flat outside the wander span)."""
        knots, freq, phase = self._knots_s, self._freq, self._phase
        dt = np.asarray(dt_s, dtype=np.float64)
        before = dt < 0
        idx = np.clip(np.searchsorted(knots, dt, side="right") - 1, 0, len(knots) - 2)
        k0 = knots[idx]
        slope = (freq[idx + 1] - freq[idx]) / (knots[idx + 1] - k0)
        h = np.minimum(dt - k0, knots[idx + 1] - k0)
        inside = phase[idx] + freq[idx] * h + slope * h * h / 2
        past = np.maximum(dt - knots[-1], 0.0) * freq[-1]
        out = np.where(before, dt * freq[0], inside + past)
        return np.asarray(out, dtype=np.float64)

    def offset_ns(self, t_ref_ns: int | I64) -> F64:
        """True offset (reference - local, ns) at reference time ``t_ref_ns``."""
        t = np.asarray(t_ref_ns, dtype=np.int64)
        dt_s = (t - np.int64(self.t0_ns)).astype(np.float64) / 1e9
        off = self.offset0_ns - self._integral_s(dt_s) * 1e9
        for t_step, step in self.steps:
            off = off + np.where(t >= t_step, step, 0.0)
        return np.asarray(off, dtype=np.float64)

    def frequency_ppm(self, t_ref_ns: int | I64) -> F64:
        """Fractional frequency error (ppm) at reference time ``t_ref_ns``."""
        t = np.asarray(t_ref_ns, dtype=np.int64)
        dt_s = (t - np.int64(self.t0_ns)).astype(np.float64) / 1e9
        return np.asarray(np.interp(dt_s, self._knots_s, self._freq) * 1e6, dtype=np.float64)

    def local_ns(self, t_ref_ns: int | I64) -> I64:
        """The local clock's reading (ns) at reference time ``t_ref_ns``."""
        t = np.asarray(t_ref_ns, dtype=np.int64)
        return np.asarray(t - np.rint(self.offset_ns(t)).astype(np.int64), dtype=np.int64)

    def read_ns(self, system_ns: int) -> int:
        return int(self.local_ns(system_ns))

    def now_ns(self) -> int:
        return self.read_ns(time.time_ns())
