"""Set-membership filtering of a clock's (offset, slope) state — pure math, no I/O.

The truth ``θ(t)`` (reference minus local, ns) is assumed to satisfy, inside one segment
(no step): ``|θ'| <= S`` (max skew) and ``|θ''| <= W`` (frequency wander). Each sample says
``θ(t_i) ∈ [lo_i, hi_i]``. The state ``(θ(t), θ'(t))`` consistent with the samples up to ``t``
is a convex polygon; between samples it is propagated exactly for the linear part (a shear)
and conservatively for wander (Minkowski sum with ``[±Wδ²/2] × [±Wδ]``). Running the filter
forward and backward and intersecting gives, at every sample, every state consistent with
*all* samples of the segment (past and future are independent given the state).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from . import _polygon as pg

__all__ = ["Dynamics", "filter_states", "propagate", "smooth"]

F64 = npt.NDArray[np.float64]
#: polygons are kept to this many vertices by outer approximation (never shrinking them)
_MAX_VERTICES = 12


@dataclass(frozen=True, slots=True)
class Dynamics:
    """The clock model the filter assumes: ``S`` max slope (ns/s), ``W`` max wander (ns/s²)."""

    max_slope_ns_per_s: float
    wander_ns_per_s2: float

    def widening_ns(self, delta_s: float) -> float:
        """How far wander alone can bend the offset away from a line over ``delta_s``."""
        return self.wander_ns_per_s2 * delta_s * delta_s / 2.0

    def initial(self, lo_ns: float, hi_ns: float) -> pg.Poly:
        """The state set given one sample and nothing else."""
        s = self.max_slope_ns_per_s
        return pg.box(lo_ns, hi_ns, -s, s)


def propagate(poly: pg.Poly, delta_s: float, dyn: Dynamics) -> pg.Poly:
    """The state set ``delta_s`` seconds later (or earlier when negative)."""
    d = abs(delta_s)
    return pg.advance(poly, delta_s, dyn.widening_ns(d), dyn.wander_ns_per_s2 * d,
                      dyn.max_slope_ns_per_s, _MAX_VERTICES)


def filter_states(
    t_s: F64, lo_ns: F64, hi_ns: F64, dyn: Dynamics, reverse: bool = False
) -> tuple[list[pg.Poly], int]:
    """Filter state after each sample (in time order, or reversed when ``reverse``).

    Returns the polygons (indexed like the input) and the number of samples whose interval
    did not meet the prediction (those constraints are skipped, never allowed to empty the
    set; the segmentation upstream keeps this at zero for consistent data).
    """
    n = len(t_s)
    order = range(n - 1, -1, -1) if reverse else range(n)
    states: list[pg.Poly] = [pg.EMPTY] * n
    poly: pg.Poly | None = None
    prev_t = 0.0
    conflicts = 0
    for i in order:
        if poly is None:
            poly = dyn.initial(float(lo_ns[i]), float(hi_ns[i]))
        else:
            pred = propagate(poly, float(t_s[i]) - prev_t, dyn)
            clipped = pg.clip_band(pred, 0.0, float(lo_ns[i]), float(hi_ns[i]))
            if len(clipped) == 0:
                conflicts += 1
                clipped = pred
            poly = clipped
        prev_t = float(t_s[i])
        states[i] = poly
    return states, conflicts


def smooth(fwd: list[pg.Poly], bwd: list[pg.Poly]) -> tuple[list[pg.Poly], int]:
    """Intersect forward and backward states; where rounding or the conservative wander
    relaxation leaves them disjoint, keep the smaller one's hull with the other (counted)."""
    out: list[pg.Poly] = []
    disjoint = 0
    for f, b in zip(fwd, bwd, strict=True):
        both = pg.intersect(f, b)
        if len(both) == 0:
            disjoint += 1
            both = pg.hull(np.concatenate([f, b]))
        out.append(both)
    return out, disjoint
