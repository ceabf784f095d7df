"""Convex polygons in the (offset, slope) plane — pure math, no I/O.

A polygon is a ``(V, 2)`` float64 array of vertices ``(a_ns, s_ns_per_s)`` in counter-clockwise
order: ``a`` is the clock offset at some time ``c`` (ns), ``s`` its rate of change (ns/s = ppb).
The line ``a + s·δ`` is the offset ``δ`` seconds after ``c``.

All operations are conservative: rounding never shrinks a polygon (half-planes are loosened by
a relative epsilon, vertex reduction is an outer approximation), so a set that holds the truth
keeps holding it. Polygons are small (a dozen vertices), so the work is done on plain Python
floats, which is several times faster than numpy at this size.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = [
    "EMPTY",
    "a_range",
    "advance",
    "box",
    "clip_band",
    "clip_slope",
    "expand",
    "hull",
    "intersect",
    "reduce",
    "shear",
    "support",
]

Poly = npt.NDArray[np.float64]
Pts = list[tuple[float, float]]
EMPTY: Poly = np.zeros((0, 2), dtype=np.float64)
_REL_EPS = 1e-12


def _arr(pts: Pts) -> Poly:
    return np.array(pts, dtype=np.float64).reshape(-1, 2) if pts else EMPTY


def _pts(poly: Poly) -> Pts:
    return [(float(a), float(s)) for a, s in poly.tolist()]


def box(a_lo: float, a_hi: float, s_lo: float, s_hi: float) -> Poly:
    """The rectangle ``a_lo <= a <= a_hi``, ``s_lo <= s <= s_hi``."""
    return np.array([[a_lo, s_lo], [a_hi, s_lo], [a_hi, s_hi], [a_lo, s_hi]], dtype=np.float64)


def _clip(pts: Pts, na: float, ns: float, c: float) -> Pts:
    """Keep the part where ``na·a + ns·s <= c`` (one Sutherland–Hodgman pass), loosened by a
    relative epsilon so rounding never cuts into the set."""
    if not pts:
        return pts
    vals = [a * na + s * ns for a, s in pts]
    top, bottom = max(vals), min(vals)
    # rounding of a·na + s·ns is relative to its terms, bounded via the extreme terms
    terms = (abs(na) * max(abs(a) for a, _ in pts) if na else 0.0) \
        + (abs(ns) * max(abs(s) for _, s in pts) if ns else 0.0)
    c = c + _REL_EPS * (terms + abs(c)) * 8 + 1e-9
    if top <= c:
        return pts
    if bottom > c:
        return []
    out: Pts = []
    n = len(pts)
    for i in range(n):
        j = i + 1 if i + 1 < n else 0
        vi, vj = vals[i], vals[j]
        in_i, in_j = vi <= c, vj <= c
        if in_i:
            out.append(pts[i])
        if in_i != in_j:
            f = (c - vi) / (vj - vi)
            ai, si = pts[i]
            aj, sj = pts[j]
            out.append((ai + (aj - ai) * f, si + (sj - si) * f))
    return out


def clip_band(poly: Poly, delta_s: float, lo_ns: float, hi_ns: float) -> Poly:
    """Keep the part of ``poly`` where ``lo_ns <= a + s·delta_s <= hi_ns``."""
    pts = _clip(_pts(poly), 1.0, delta_s, hi_ns)
    return _arr(_clip(pts, -1.0, -delta_s, -lo_ns))


def clip_slope(poly: Poly, s_lo: float, s_hi: float) -> Poly:
    """Keep the part of ``poly`` where ``s_lo <= s <= s_hi``."""
    pts = _clip(_pts(poly), 0.0, 1.0, s_hi)
    return _arr(_clip(pts, 0.0, -1.0, -s_lo))


def shear(poly: Poly, delta_s: float) -> Poly:
    """Move the reference time by ``delta_s`` seconds: ``(a, s) -> (a + s·delta_s, s)``."""
    out = poly.copy()
    out[:, 0] += poly[:, 1] * delta_s
    return out


def _quadrant(na: float, ns: float) -> int:
    """Quadrant of a normal direction, counter-clockwise from +a: 0 (+,+) 1 (-,+) 2 (-,-) 3."""
    if ns >= 0:
        return 0 if na > 0 else 1
    return 2 if na <= 0 else 3


_SIGNS = ((1.0, 1.0), (-1.0, 1.0), (-1.0, -1.0), (1.0, -1.0))


def _expand(pts: Pts, ea: float, es: float) -> Pts:
    n = len(pts)
    quads = []
    for i in range(n):
        a0, s0 = pts[i]
        a1, s1 = pts[i + 1 if i + 1 < n else 0]
        quads.append(_quadrant(s1 - s0, a0 - a1))  # outward normal of a CCW edge
    # Normals of a convex polygon turn one way only; nearly collinear edges along an axis
    # can make rounding flip a quadrant back by one. Such an edge is taken as parallel to
    # its predecessor (the difference in support is at rounding level).
    for _ in range(2):
        for i in range(n):
            if (quads[i] - quads[i - 1]) % 4 == 3:
                quads[i] = quads[i - 1]
    out: Pts = []
    for i in range(n):
        q_in, q_out = quads[i - 1], quads[i]
        a, s = pts[i]
        q = q_in
        while True:
            sa, ss = _SIGNS[q]
            point = (a + sa * ea, s + ss * es)
            if not out or out[-1] != point:
                out.append(point)
            if q == q_out:
                break
            q = (q + 1) % 4
    if len(out) > 1 and out[0] == out[-1]:
        out.pop()
    return out


def expand(poly: Poly, ea_ns: float, es_ns_per_s: float) -> Poly:
    """Minkowski sum with the box ``[-ea, ea] × [-es, es]`` (widening by clock wander).

    Exact: every vertex is replaced by the box corners whose normal cone it spans.
    """
    if len(poly) == 0 or (ea_ns == 0 and es_ns_per_s == 0):
        return poly
    if len(poly) < 3:
        return box(float(poly[:, 0].min()) - ea_ns, float(poly[:, 0].max()) + ea_ns,
                   float(poly[:, 1].min()) - es_ns_per_s, float(poly[:, 1].max()) + es_ns_per_s)
    return _arr(_expand(_pts(poly), ea_ns, es_ns_per_s))


def _reduce(pts: Pts, max_vertices: int) -> Pts:
    """Drop the cheapest edges (least added area, in coordinates scaled to the polygon's
    extent) until ``max_vertices`` remain. Edges dropped in one pass are never adjacent, so
    each one's neighbours are kept and the new vertices stay on their lines."""
    limit = max(max_vertices, 4)
    while len(pts) > limit:
        n = len(pts)
        amin = min(p[0] for p in pts)
        smin = min(p[1] for p in pts)
        sa = max(max(p[0] for p in pts) - amin, 1e-12)
        ss = max(max(p[1] for p in pts) - smin, 1e-12)
        q = [((a - amin) / sa, (s - smin) / ss) for a, s in pts]
        cands: list[tuple[float, int, tuple[float, float]]] = []
        for i in range(n):
            pm = q[i - 1]
            p0 = q[i]
            p1 = q[(i + 1) % n]
            p2 = q[(i + 2) % n]
            e0a, e0s = p0[0] - pm[0], p0[1] - pm[1]
            e2a, e2s = p2[0] - p1[0], p2[1] - p1[1]
            denom = e0a * e2s - e0s * e2a
            if denom <= 1e-15:
                continue  # the neighbours do not meet beyond this edge
            da, ds = p1[0] - p0[0], p1[1] - p0[1]
            t = (da * e2s - ds * e2a) / denom
            if t < 0:
                continue
            x = (p0[0] + t * e0a, p0[1] + t * e0s)
            cands.append((abs((x[0] - p0[0]) * ds - (x[1] - p0[1]) * da), i, x))
        if not cands:
            break
        cands.sort()
        excess = n - limit
        taken: dict[int, tuple[float, float]] = {}
        blocked: set[int] = set()
        for _, i, x in cands:
            if len(taken) >= excess:
                break
            if i in blocked:
                continue
            taken[i] = x
            blocked.update({(i - 1) % n, i, (i + 1) % n})
        drop: set[int] = set()
        for i in taken:
            drop.update({i, (i + 1) % n})
        out: Pts = []
        for k in range(n):
            if k in taken:
                x = taken[k]
                out.append((amin + x[0] * sa, smin + x[1] * ss))
            elif k not in drop:
                out.append(pts[k])
        # an edge (n-1 -> 0) that was dropped put its new vertex at the end: rotate not needed
        pts = out
    return pts


def reduce(poly: Poly, max_vertices: int) -> Poly:
    """Outer approximation with at most ``max_vertices`` vertices: repeatedly drop the edge
    whose two neighbouring edges, extended until they meet, add the least (scaled) area.
    The result contains ``poly``."""
    if len(poly) <= max(max_vertices, 4):
        return poly
    return _arr(_reduce(_pts(poly), max_vertices))


def advance(poly: Poly, delta_s: float, ea_ns: float, es_ns_per_s: float,
            max_slope_ns_per_s: float, max_vertices: int) -> Poly:
    """``shear``, then ``expand``, then clip the slope to ``±max_slope`` and ``reduce`` — one
    filter time step, fused to avoid conversions."""
    if len(poly) == 0:
        return poly
    pts = [(a + s * delta_s, s) for a, s in _pts(poly)]
    if ea_ns or es_ns_per_s:
        if len(pts) < 3:
            return advance(box(min(p[0] for p in pts), max(p[0] for p in pts),
                               min(p[1] for p in pts), max(p[1] for p in pts)),
                           0.0, ea_ns, es_ns_per_s, max_slope_ns_per_s, max_vertices)
        pts = _expand(pts, ea_ns, es_ns_per_s)
    pts = _clip(pts, 0.0, 1.0, max_slope_ns_per_s)
    pts = _clip(pts, 0.0, -1.0, max_slope_ns_per_s)
    if len(pts) > 2 * max(max_vertices, 4):  # hysteresis: reduce in batches
        pts = _reduce(pts, max_vertices)
    return _arr(pts)


def intersect(p: Poly, q: Poly) -> Poly:
    """Intersection of two convex polygons (both counter-clockwise)."""
    if len(p) == 0 or len(q) == 0:
        return EMPTY
    out = _pts(p)
    if len(q) < 3:
        # degenerate q (a point or segment): keep p within q's bounding box
        lo, hi = q.min(axis=0), q.max(axis=0)
        for na, ns, c in ((1.0, 0.0, float(hi[0])), (-1.0, 0.0, -float(lo[0])),
                          (0.0, 1.0, float(hi[1])), (0.0, -1.0, -float(lo[1]))):
            out = _clip(out, na, ns, c)
        return _arr(out)
    qp = _pts(q)
    n = len(qp)
    for i in range(n):
        a0, s0 = qp[i]
        a1, s1 = qp[i + 1 if i + 1 < n else 0]
        # inside of a CCW edge is to its left
        na, ns = s1 - s0, -(a1 - a0)
        out = _clip(out, na, ns, na * a0 + ns * s0)
        if not out:
            return EMPTY
    return _arr(out)


def support(poly: Poly, delta_s: float) -> tuple[float, float]:
    """``(min, max)`` of ``a + s·delta_s`` over the polygon (the offset ``delta_s`` later)."""
    vals = poly[:, 0] + poly[:, 1] * delta_s
    return float(vals.min()), float(vals.max())


def a_range(poly: Poly) -> tuple[float, float]:
    """``(min, max)`` of the offset coordinate."""
    return float(poly[:, 0].min()), float(poly[:, 0].max())


def hull(points: Poly) -> Poly:
    """Convex hull (counter-clockwise) by Andrew's monotone chain."""
    pts = sorted(set(_pts(points)))
    if len(pts) <= 2:
        return _arr(pts)

    def cross(o: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: Pts = []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    upper: Pts = []
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return _arr(lower[:-1] + upper[:-1])
