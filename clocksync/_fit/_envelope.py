"""Piecewise-linear guaranteed envelopes ``lo(t) <= θ(t) <= hi(t)`` — pure math, no I/O.

A :class:`Cells` array holds contiguous cells in local time; in cell ``i``, with
``δ = (t - start_i)/1e9`` seconds, ``hi(t) = hi0_i + hi1_i·δ`` and ``lo(t) = lo0_i + lo1_i·δ``.
Everything a cell needs to be evaluated is linear, so correction is a few vector operations.

How cells are built (``W`` = max wander in ns/s²):

* **Between two knots** ``t_k < t_{k+1}`` (sample times) with guaranteed intervals
  ``[lo_k, hi_k]``: for any ``θ`` with ``|θ''| <= W`` and ``λ = (t-t_k)/h``,
  ``θ(t) <= (1-λ)θ(t_k) + λθ(t_{k+1}) + W·h²·λ(1-λ)/2``. The margin is kept constant per
  sub-cell at its largest value there (long gaps are split in 8 sub-cells).
* **Past the last knot** (holdover) and **before the first** (into a step gap): from the
  knot's state polygon, ``hi(t) = max_v(a_v + s_v·δ) + W·δ²/2``. The max is piecewise linear
  (cells split where the maximising vertex changes); the quadratic is replaced on each
  geometric sub-cell ``[d, 1.25·d]`` by its chord, which lies above it (a convex function
  is below its chords), so the envelope stays guaranteed.
* **Composition** of segments: where domains overlap (a step gap, a local clock stepped
  back, an unconfirmed step) the hull of all candidates is taken and flagged ambiguous;
  where none applies the cell is void.
"""

from __future__ import annotations

import itertools

import numpy as np
import numpy.typing as npt

from .._model._cells import EMPTY_CELLS, Cells, Row
from .._model._flags import AMBIGUOUS, HOLDOVER, VOID
from . import _polygon as pg

__all__ = ["compose", "extrapolation_cells", "interpolation_cells"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

_GEOMETRIC = 1.25
_FIRST_CHORD_S = 1.0


def interpolation_cells(
    knot_ns: I64, lo_ns: F64, hi_ns: F64, slo: F64, shi: F64, wander_ns_per_s2: float,
    segment: int, tolerance_ns: float,
) -> Cells:
    """Cells between consecutive knots (strictly increasing ``knot_ns``).

    ``slo``/``shi`` are the guaranteed slope ranges (ns/s) at the knots; a cell's slope range
    is ``[max(slo_k, slo_k+1) - W·h, min(shi_k, shi_k+1) + W·h]``.
    """
    if len(knot_ns) < 2:
        return EMPTY_CELLS
    span_ns = np.diff(knot_ns)
    h = span_ns.astype(np.float64) / 1e9
    peak = wander_ns_per_s2 * h * h / 8.0
    parts = np.where(peak > tolerance_ns, 8, 1)
    k = np.repeat(np.arange(len(h)), parts)
    j = np.arange(len(k)) - np.repeat(np.cumsum(parts) - parts, parts)
    m = parts[k]
    lam0 = j / m
    lam1 = (j + 1) / m
    start = knot_ns[k] + np.floor(lam0 * span_ns[k]).astype(np.int64)
    inner_end = knot_ns[k] + np.floor(lam1 * span_ns[k]).astype(np.int64)
    end = np.where(j + 1 == m, knot_ns[k + 1], inner_end)
    lam_start = (start - knot_ns[k]).astype(np.float64) / span_ns[k]
    lam_peak = np.clip(0.5, lam0, lam1)
    margin = wander_ns_per_s2 * h[k] ** 2 * lam_peak * (1 - lam_peak) / 2.0
    dhi = hi_ns[k + 1] - hi_ns[k]
    dlo = lo_ns[k + 1] - lo_ns[k]
    keep = end > start
    wh = wander_ns_per_s2 * h
    cell_slo = (np.maximum(slo[:-1], slo[1:]) - wh)[k]
    cell_shi = (np.minimum(shi[:-1], shi[1:]) + wh)[k]
    return Cells(
        start[keep], end[keep],
        (hi_ns[k] + dhi * lam_start + margin)[keep], (dhi / h[k])[keep],
        (lo_ns[k] + dlo * lam_start - margin)[keep], (dlo / h[k])[keep],
        np.zeros(int(keep.sum()), np.uint8), np.full(int(keep.sum()), segment, np.int32),
        cell_slo[keep], cell_shi[keep],
    )


def _breakpoints(poly: pg.Poly, length_s: float) -> F64:
    """|δ| in (0, length) where the vertex maximising or minimising a + s·δ can change."""
    a, s = poly[:, 0], poly[:, 1]
    da = a[:, None] - a[None, :]
    ds = s[None, :] - s[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        cross = da / ds
    cross = np.abs(cross[np.isfinite(cross)])
    return np.unique(cross[(cross > 0) & (cross < length_s)])


def extrapolation_cells(
    poly: pg.Poly, knot_ns: int, direction: int, length_ns: int, wander_ns_per_s2: float,
    segment: int,
) -> Cells:
    """Cells covering ``[knot, knot+length)`` (direction +1) or ``[knot-length, knot)`` (-1)
    from the state polygon at the knot. Flagged :data:`HOLDOVER`."""
    if length_ns <= 0 or len(poly) == 0:
        return EMPTY_CELLS
    length_s = length_ns / 1e9
    grid = [0.0]
    d = min(_FIRST_CHORD_S, length_s)
    while d < length_s:
        grid.append(d)
        d *= _GEOMETRIC
    grid.append(length_s)
    edges_s = np.unique(np.concatenate([np.array(grid), _breakpoints(poly, length_s)]))
    edges_ns = np.unique(np.round(edges_s * 1e9).astype(np.int64))
    edges_ns[-1] = length_ns
    a, s = poly[:, 0], poly[:, 1]
    s_min, s_max = float(s.min()), float(s.max())
    w = wander_ns_per_s2
    rows: list[Row] = []
    for e0, e1 in itertools.pairwise(edges_ns):
        d0, d1 = e0 / 1e9, e1 / 1e9
        if direction > 0:
            dm = (d0 + d1) / 2
            vals = a + s * dm
            vh, vl = int(np.argmax(vals)), int(np.argmin(vals))
            hi0 = a[vh] + s[vh] * d0 + w * d0 * d0 / 2
            hi1 = s[vh] + w * (d0 + d1) / 2
            lo0 = a[vl] + s[vl] * d0 - w * d0 * d0 / 2
            lo1 = s[vl] - w * (d0 + d1) / 2
            start, end = knot_ns + int(e0), knot_ns + int(e1)
        else:
            dm = -(d0 + d1) / 2
            vals = a + s * dm
            vh, vl = int(np.argmax(vals)), int(np.argmin(vals))
            hi0 = a[vh] - s[vh] * d1 + w * d1 * d1 / 2
            hi1 = s[vh] - w * (d0 + d1) / 2
            lo0 = a[vl] - s[vl] * d1 - w * d1 * d1 / 2
            lo1 = s[vl] + w * (d0 + d1) / 2
            start, end = knot_ns - int(e1), knot_ns - int(e0)
        rows.append((start, end, float(hi0), float(hi1), float(lo0), float(lo1), HOLDOVER,
                     segment, s_min - w * d1, s_max + w * d1))
    if direction < 0:
        rows.reverse()
    return Cells.build(rows)


def _clip(cells: Cells, x0: int, x1: int) -> list[Row]:
    """Rows of ``cells`` restricted to ``[x0, x1)``, re-anchored at their new starts."""
    i0 = max(int(np.searchsorted(cells.end_ns, x0, side="right")), 0)
    i1 = int(np.searchsorted(cells.start_ns, x1, side="left"))
    out = []
    for i in range(i0, i1):
        s, e, h0, h1, l0, l1, f, g, sl, sh = cells.row(i)
        ns = max(s, x0)
        ne = min(e, x1)
        if ne <= ns:
            continue
        shift = (ns - s) / 1e9
        out.append((ns, ne, h0 + h1 * shift, h1, l0 + l1 * shift, l1, f, g, sl, sh))
    return out


def _hull(parts: list[list[Row]], x0: int, x1: int, max_slope: float) -> list[Row]:
    """Hull (max of hi, min of lo) of several segments' rows over ``[x0, x1)``."""
    cuts = {x0, x1}
    for rows in parts:
        cuts.update(r[0] for r in rows)
    edges = sorted(c for c in cuts if x0 <= c <= x1)
    out = []
    for y0, y1 in itertools.pairwise(edges):
        lines = []  # (hi at y0, hi slope, lo at y0, lo slope, flags)
        for rows in parts:
            for s, e, h0, h1, l0, l1, f, *_ in rows:
                if s <= y0 < e:
                    shift = (y0 - s) / 1e9
                    lines.append((h0 + h1 * shift, h1, l0 + l1 * shift, l1, f))
                    break
        span = (y1 - y0) / 1e9
        sub = {0.0, span}
        for i in range(len(lines)):
            for j in range(i + 1, len(lines)):
                for v0, v1 in ((0, 1), (2, 3)):
                    dv = lines[j][v1] - lines[i][v1]
                    if dv != 0:
                        x = (lines[i][v0] - lines[j][v0]) / dv
                        if 0 < x < span:
                            sub.add(x)
        pts = sorted(sub)
        for a0, a1 in itertools.pairwise(pts):
            s_ns = y0 + round(a0 * 1e9)
            e_ns = y0 + round(a1 * 1e9) if a1 < span else y1
            if e_ns <= s_ns:
                continue
            am = (a0 + a1) / 2
            best_hi = max(lines, key=lambda ln: ln[0] + ln[1] * am)
            best_lo = min(lines, key=lambda ln: ln[2] + ln[3] * am)
            flags = AMBIGUOUS | (HOLDOVER if any(ln[4] & HOLDOVER for ln in lines) else 0)
            a_s = (s_ns - y0) / 1e9
            out.append((s_ns, e_ns, best_hi[0] + best_hi[1] * a_s, best_hi[1],
                        best_lo[2] + best_lo[3] * a_s, best_lo[3], flags, -1,
                        -max_slope, max_slope))
    return out


def compose(segments: list[Cells], max_slope_ns_per_s: float) -> Cells:
    """Merge per-segment cells (each contiguous over its own domain) into one sorted,
    non-overlapping cell array: overlaps become ambiguous hulls, holes become void."""
    segs = [c for c in segments if len(c)]
    if not segs:
        return EMPTY_CELLS
    domains = [(int(c.start_ns[0]), int(c.end_ns[-1])) for c in segs]
    edges = sorted({x for d in domains for x in d})
    out: list[Cells] = []
    for x0, x1 in itertools.pairwise(edges):
        cover = [i for i, (d0, d1) in enumerate(domains) if d0 <= x0 and x1 <= d1]
        if not cover:
            out.append(Cells.build([(x0, x1, 0.0, 0.0, 0.0, 0.0, VOID, -1, 0.0, 0.0)]))
        elif len(cover) == 1:
            c = segs[cover[0]]
            i0 = int(np.searchsorted(c.end_ns, x0, side="right"))
            i1 = int(np.searchsorted(c.start_ns, x1, side="left"))
            inner = c.slice(i0, i1)
            if len(inner) and (inner.start_ns[0] < x0 or inner.end_ns[-1] > x1):
                inner = Cells.build(_clip(c, x0, x1))
            out.append(inner)
        else:
            rows = [_clip(segs[i], x0, x1) for i in cover]
            out.append(Cells.build(_hull(rows, x0, x1, max_slope_ns_per_s)))
    return Cells.concat(out)
