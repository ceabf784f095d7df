"""Split a node's samples into segments at clock steps; drop lone wild samples.

Two detectors, both pure math:

* **Hard (guaranteed) detector** — a set-membership filter (:mod:`._filter`), run forward
  and backward in time, predicts the interval of the next sample from everything before
  it. A sample whose own interval misses the prediction cannot be true together with the
  segment: either its bound
  is false (a wild sample) or the clock stepped. ``step_confirm`` disagreeing samples in a
  row (agreeing with each other) confirm a step; fewer, followed by agreeing samples, are
  outliers. A disagreeing run at the very end is an *unconfirmed* step: the table then
  covers both possibilities (ambiguous) instead of guessing.
* **Statistical detector** — a level shift too small for the intervals to contradict each
  other (a step smaller than the bounds) is found by comparing weighted local lines on both
  sides of every gap between samples; a shift of ``step_sigma`` robust standard deviations
  splits the segment too. Splitting is always safe (the gap becomes ambiguous); missing a
  step is not.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from . import _polygon as pg
from ._filter import Dynamics, propagate

__all__ = ["SegmentSpan", "bidirectional_segments", "level_shifts", "segment_samples"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
_WINDOW = 8


@dataclass(frozen=True, slots=True)
class SegmentSpan:
    """Sample indices (into the time-ordered input) of one segment and how it began:
    ``"start"``, ``"step"`` (confirmed), ``"level_shift"`` (statistical) or
    ``"unconfirmed"`` (trailing run that disagrees with the previous segment)."""

    indices: I64
    started_by: str


def _consistent(poly: pg.Poly, t_poly: float, t: float, lo: float, hi: float,
                dyn: Dynamics) -> tuple[bool, pg.Poly]:
    pred = propagate(poly, t - t_poly, dyn)
    clipped = pg.clip_band(pred, 0.0, lo, hi)
    return len(clipped) > 0, clipped


_WALK_BACK = 64  #: at most this many accepted samples are re-examined after a step


def _ambiguous_tail(cur: list[int], run: list[int], t_s: F64, lo_ns: F64, hi_ns: F64,
                    dyn: Dynamics) -> int:
    """How many of the last accepted samples ``cur`` also fit the run after a step.

    The first sample that contradicted the segment is not where the step happened: the
    step lies somewhere after the last sample that the new run contradicts. The samples in
    between fit both sides and could belong to either, so neither side may use them.
    """
    from ._filter import filter_states

    idx = np.array(run, dtype=np.int64)
    states, _ = filter_states(t_s[idx], lo_ns[idx], hi_ns[idx], dyn, reverse=True)
    poly, t_poly = states[0], float(t_s[idx[0]])
    count = 0
    for i in reversed(cur[-_WALK_BACK:]):
        ok, clipped = _consistent(poly, t_poly, float(t_s[i]), float(lo_ns[i]),
                                  float(hi_ns[i]), dyn)
        if not ok:
            break
        poly, t_poly = clipped, float(t_s[i])
        count += 1
    return count


def segment_samples(
    t_s: F64, lo_ns: F64, hi_ns: F64, dyn: Dynamics, step_confirm: int
) -> tuple[list[SegmentSpan], I64, I64]:
    """Hard segmentation; returns the segments, the dropped outliers and the ambiguous
    samples (those around a step that fit both sides)."""
    n = len(t_s)
    segments: list[SegmentSpan] = []
    outliers: list[int] = []
    ambiguous: list[int] = []
    if n == 0:
        return segments, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    cur: list[int] = [0]
    started = "start"
    poly = dyn.initial(float(lo_ns[0]), float(hi_ns[0]))
    t_poly = float(t_s[0])
    pending: list[int] = []
    p_poly = pg.EMPTY
    p_t = 0.0
    for j in range(1, n):
        t, lo, hi = float(t_s[j]), float(lo_ns[j]), float(hi_ns[j])
        ok, clipped = _consistent(poly, t_poly, t, lo, hi, dyn)
        if ok:
            outliers.extend(pending)
            pending = []
            cur.append(j)
            poly, t_poly = clipped, t
            continue
        if pending:
            ok_p, clipped_p = _consistent(p_poly, p_t, t, lo, hi, dyn)
            if ok_p:
                pending.append(j)
                p_poly, p_t = clipped_p, t
            else:  # disagrees with both: the earlier pending ones were wild
                outliers.extend(pending)
                pending = [j]
                p_poly, p_t = dyn.initial(lo, hi), t
        else:
            pending = [j]
            p_poly, p_t = dyn.initial(lo, hi), t
        if len(pending) >= step_confirm:
            tail = _ambiguous_tail(cur, pending, t_s, lo_ns, hi_ns, dyn)
            if tail:
                ambiguous.extend(cur[-tail:])
                cur = cur[:-tail]
            if cur:
                segments.append(SegmentSpan(np.array(cur, dtype=np.int64), started))
            cur, started = pending, "step"
            poly, t_poly = p_poly, p_t
            pending = []
    segments.append(SegmentSpan(np.array(cur, dtype=np.int64), started))
    if pending:
        segments.append(SegmentSpan(np.array(pending, dtype=np.int64), "unconfirmed"))
    return (segments, np.array(sorted(outliers), dtype=np.int64),
            np.array(sorted(ambiguous), dtype=np.int64))


def _window_fit_at(t: F64, y: F64, w: F64, at: F64) -> tuple[F64, F64]:
    """Weighted least-squares lines over rows of windows, evaluated at ``at``; also returns
    each window's weighted mean time."""
    sw = w.sum(axis=1)
    xm = (w * t).sum(axis=1) / sw
    ym = (w * y).sum(axis=1) / sw
    dx = t - xm[:, None]
    sxx = (w * dx * dx).sum(axis=1)
    sxy = (w * dx * (y - ym[:, None])).sum(axis=1)
    slope = np.divide(sxy, sxx, out=np.zeros_like(sxy), where=sxx > 0)
    return ym + slope * (at - xm), xm


def level_shifts(
    t_s: F64, off_ns: F64, dist_ns: F64, dyn: Dynamics, step_sigma: float, step_min_ns: float,
    windows: tuple[int, ...] = (_WINDOW, 4 * _WINDOW),
) -> list[int]:
    """Positions ``j`` where a statistical level shift starts (a new segment at sample j),
    looked for with short and long windows (a long one sees small shifts in noisy data)."""
    found: set[int] = set()
    for k in windows:
        found.update(_level_shifts(t_s, off_ns, dist_ns, dyn, step_sigma, step_min_ns, k))
    out: list[int] = []
    for j in sorted(found):
        if not out or j - out[-1] >= _WINDOW:
            out.append(j)
    return out


def _level_shifts(
    t_s: F64, off_ns: F64, dist_ns: F64, dyn: Dynamics, step_sigma: float, step_min_ns: float,
    k: int,
) -> list[int]:
    n = len(t_s)
    if n < 2 * k + 1:
        return []
    w = 1.0 / np.maximum(dist_ns, 1e-3) ** 2
    tw = sliding_window_view(t_s, k)
    yw = sliding_window_view(off_ns, k)
    ww = sliding_window_view(w, k)
    # boundary j (between j-1 and j) for j in [k, n-k]: left window starts j-k, right at j
    js = np.arange(k, n - k + 1)
    mid = (t_s[js - 1] + t_s[js]) / 2.0
    left, xl = _window_fit_at(tw[js - k], yw[js - k], ww[js - k], mid)
    right, xr = _window_fit_at(tw[js], yw[js], ww[js], mid)
    shift = right - left
    mad = float(np.median(np.abs(shift - np.median(shift))))
    sigma = max(1.4826 * mad, 0.01 * float(np.median(dist_ns)))
    allowance = dyn.wander_ns_per_s2 * ((mid - xl) ** 2 + (xr - mid) ** 2) / 2.0
    threshold = max(step_min_ns, step_sigma * sigma) + allowance
    excess = np.abs(shift) - threshold
    out: list[int] = []
    for idx in np.flatnonzero(excess > 0):
        lo, hi = max(0, idx - k + 1), min(len(js), idx + k)
        if excess[idx] >= excess[lo:hi].max():
            j = int(js[idx])
            if not out or j - out[-1] >= k:
                out.append(j)
    return out


def bidirectional_segments(
    t_s: F64, lo_ns: F64, hi_ns: F64, dyn: Dynamics, step_confirm: int
) -> tuple[list[SegmentSpan], I64, I64]:
    """Hard segmentation run forward and backward in time; a step found from either side
    splits, a sample either pass drops is an outlier, a sample that fits both sides of a
    step is left out (ambiguous). Returns spans, outliers, ambiguous samples.

    The forward pass finds a step where post-step samples contradict the past; the backward
    pass where pre-step samples contradict the future. Steps that only one side reveals are
    common when the bounds differ on the two sides.
    """
    n = len(t_s)
    fwd, fwd_out, fwd_amb = segment_samples(t_s, lo_ns, hi_ns, dyn, step_confirm)
    rev = np.arange(n - 1, -1, -1)
    bwd, bwd_out, bwd_amb = segment_samples(t_s[rev], lo_ns[rev], hi_ns[rev], dyn,
                                            step_confirm)
    cuts = {int(span.indices.min()) for span in fwd if span.indices.min() > 0}
    cuts |= {int(rev[span.indices].min()) for span in bwd if rev[span.indices].min() > 0}
    # an ambiguous run is cut out on both sides: a segment of its own never forms
    ambiguous = np.union1d(fwd_amb, rev[bwd_amb]).astype(np.int64)
    for i in ambiguous.tolist():
        cuts.update({i, i + 1})
    outliers = np.union1d(fwd_out, rev[bwd_out]).astype(np.int64)
    unconfirmed_from = (int(fwd[-1].indices.min()) if fwd and fwd[-1].started_by ==
                        "unconfirmed" else None)
    keep = np.ones(n, dtype=bool)
    keep[outliers] = False
    keep[ambiguous] = False
    edges = [0, *sorted(cuts), n]
    spans: list[SegmentSpan] = []
    for a, b in itertools.pairwise(edges):
        idx = np.arange(a, b)[keep[a:b]]
        if len(idx) == 0:
            continue
        started = "start" if not spans else "step"
        if unconfirmed_from is not None and a == unconfirmed_from:
            started = "unconfirmed"
        spans.append(SegmentSpan(idx.astype(np.int64), started))
    return spans, outliers, ambiguous
