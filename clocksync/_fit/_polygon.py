"""Convex polygons in the (offset, slope) plane — pure math, no I/O.

A polygon is a ``(V, 2)`` float64 array of vertices ``(a_ns, s_ns_per_s)`` in counter-clockwise
order: ``a`` is the clock offset at some time ``c`` (ns), ``s`` its rate of change (ns/s = ppb).
The line ``a + s·δ`` is the offset ``δ`` seconds after ``c``. All operations are conservative:
rounding never shrinks a polygon (half-planes are loosened by a relative epsilon), so a set
that holds the truth keeps holding it.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = [
    "EMPTY",
    "a_range",
    "box",
    "clip_band",
    "expand",
    "intersect",
    "shear",
    "support",
]

Poly = npt.NDArray[np.float64]
EMPTY: Poly = np.zeros((0, 2), dtype=np.float64)
_REL_EPS = 1e-12


def box(a_lo: float, a_hi: float, s_lo: float, s_hi: float) -> Poly:
    """The rectangle ``a_lo <= a <= a_hi``, ``s_lo <= s <= s_hi``."""
    return np.array([[a_lo, s_lo], [a_hi, s_lo], [a_hi, s_hi], [a_lo, s_hi]], dtype=np.float64)


def _clip_halfplane(poly: Poly, na: float, ns: float, c: float) -> Poly:
    """Keep the part of ``poly`` where ``na·a + ns·s <= c`` (Sutherland–Hodgman, one plane)."""
    if len(poly) == 0:
        return poly
    vals = poly[:, 0] * na + poly[:, 1] * ns
    scale = float(np.max(np.abs(poly[:, 0]) * abs(na) + np.abs(poly[:, 1]) * abs(ns))) + abs(c)
    c = c + _REL_EPS * scale + 1e-9
    inside = vals <= c
    if inside.all():
        return poly
    if not inside.any():
        return EMPTY
    out: list[npt.NDArray[np.float64]] = []
    n = len(poly)
    for i in range(n):
        j = (i + 1) % n
        pi, pj = poly[i], poly[j]
        vi, vj = vals[i], vals[j]
        if inside[i]:
            out.append(pi)
        if inside[i] != inside[j]:
            frac = (c - vi) / (vj - vi)
            out.append(pi + (pj - pi) * frac)
    return np.array(out, dtype=np.float64) if len(out) >= 1 else EMPTY


def clip_band(poly: Poly, delta_s: float, lo_ns: float, hi_ns: float) -> Poly:
    """Keep the part of ``poly`` where ``lo_ns <= a + s·delta_s <= hi_ns``."""
    poly = _clip_halfplane(poly, 1.0, delta_s, hi_ns)
    return _clip_halfplane(poly, -1.0, -delta_s, -lo_ns)


def clip_slope(poly: Poly, s_lo: float, s_hi: float) -> Poly:
    """Keep the part of ``poly`` where ``s_lo <= s <= s_hi``."""
    poly = _clip_halfplane(poly, 0.0, 1.0, s_hi)
    return _clip_halfplane(poly, 0.0, -1.0, -s_lo)


def shear(poly: Poly, delta_s: float) -> Poly:
    """Move the reference time by ``delta_s`` seconds: ``(a, s) -> (a + s·delta_s, s)``."""
    out = poly.copy()
    out[:, 0] += poly[:, 1] * delta_s
    return out


def _hull(points: Poly) -> Poly:
    """Convex hull (counter-clockwise, no collinear points) by Andrew's monotone chain."""
    pts = np.unique(points, axis=0)
    if len(pts) <= 2:
        return pts

    def cross(o: npt.NDArray[np.float64], p: npt.NDArray[np.float64],
              q: npt.NDArray[np.float64]) -> float:
        return float((p[0] - o[0]) * (q[1] - o[1]) - (p[1] - o[1]) * (q[0] - o[0]))

    lower: list[npt.NDArray[np.float64]] = []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    upper: list[npt.NDArray[np.float64]] = []
    for p in pts[::-1]:
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return np.array(lower[:-1] + upper[:-1], dtype=np.float64)


def expand(poly: Poly, ea_ns: float, es_ns_per_s: float) -> Poly:
    """Minkowski sum with the box ``[-ea, ea] × [-es, es]`` (widening by clock wander)."""
    if len(poly) == 0 or (ea_ns == 0 and es_ns_per_s == 0):
        return poly
    corners = np.array(
        [[-ea_ns, -es_ns_per_s], [ea_ns, -es_ns_per_s], [ea_ns, es_ns_per_s], [-ea_ns, es_ns_per_s]]
    )
    pts = (poly[:, None, :] + corners[None, :, :]).reshape(-1, 2)
    return _hull(pts)


def intersect(p: Poly, q: Poly) -> Poly:
    """Intersection of two convex polygons (``q`` given counter-clockwise)."""
    if len(p) == 0 or len(q) == 0:
        return EMPTY
    if len(q) < 3:
        # degenerate q (a point or segment): keep p's points inside q's bounding box only
        lo, hi = q.min(axis=0), q.max(axis=0)
        p = _clip_halfplane(p, 1.0, 0.0, float(hi[0]))
        p = _clip_halfplane(p, -1.0, 0.0, -float(lo[0]))
        p = _clip_halfplane(p, 0.0, 1.0, float(hi[1]))
        return _clip_halfplane(p, 0.0, -1.0, -float(lo[1]))
    out = p
    n = len(q)
    for i in range(n):
        e0, e1 = q[i], q[(i + 1) % n]
        # inside of a CCW edge is to the left: cross(e1-e0, x-e0) >= 0
        #   <=> (e1s-e0s)·a - (e1a-e0a)·s <= (e1s-e0s)·e0a - (e1a-e0a)·e0s
        na = float(e1[1] - e0[1])
        ns = float(-(e1[0] - e0[0]))
        c = na * float(e0[0]) + ns * float(e0[1])
        out = _clip_halfplane(out, na, ns, c)
        if len(out) == 0:
            return EMPTY
    return out


def support(poly: Poly, delta_s: float) -> tuple[float, float]:
    """``(min, max)`` of ``a + s·delta_s`` over the polygon (the offset ``delta_s`` later)."""
    vals = poly[:, 0] + poly[:, 1] * delta_s
    return float(vals.min()), float(vals.max())


def a_range(poly: Poly) -> tuple[float, float]:
    """``(min, max)`` of the offset coordinate."""
    return float(poly[:, 0].min()), float(poly[:, 0].max())
