"""Causal tightening of cross-node hops: the convex-hull / LP method of trace
synchronisation (Duda 1987; Trace Compass's fully incremental sync), intersected with the
correction tables.

Pure math: arrays in, arrays out; no I/O, no corrector.

Model. For a node pair ``(A, B)`` (A = the lower node index) let
``δ(t) = offset_B(t) - offset_A(t)`` (ns; offset = reference - local, so ``δ > 0`` means
B's clock is further behind than A's).
A message sent by A at local ``a`` and received by B at local ``b`` has true latency
``ℓ = (b - a) + offset_B(T_recv) - offset_A(T_send)`` and, by causality,
``ℓ >= min_wire_delay_ns``. Hence, writing ``raw = b - a``:

- A->B message: ``δ(T_send) >= d_min - raw - slack``,
- B->A message: ``δ(T_send) <= raw - d_min + slack``,

where ``slack = s·max(ℓ_high, 0) + 2·s·β_send`` covers the receiver's clock moving over the
flight (``|d offset/dt| <= s = max_skew_ppm``, ``ℓ_high`` = the tables' upper bound) and the
send time being known only as the corrected midpoint ± ``β_send``.

Within a window of ``window_s`` seconds, ``δ(t) = δ0 + ρ·(t - t_c) + r(t)`` with
``|r| <= R = wander·(window_s/2)²`` ns (``|δ''| <= 2·wander_ppb_per_s`` ns/s²) and
``|ρ| <= 2·s``. The feasible set of ``(δ0, ρ)`` is a convex polygon; its vertices
(:func:`solve_windows`) give the least and greatest ``δ`` at the window's start and end and
the drift range. The least ``δ`` over the polygon is concave in ``t``, so the chord between
the two ends is a valid lower bound inside the window (and symmetrically for the greatest).
Each message's latency interval then follows from its ``δ`` interval and is intersected with
the tables' interval.

Failure is loud: an infeasible window (constraints contradict each other: a clock stepped,
the wander assumption is broken, or ``min_wire_delay_ns`` is too large) or an empty
intersection with the tables (a table is wrong) is flagged per message and per window; the
flagged messages keep their table-only interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.spatial import ConvexHull, QhullError

from .._model._assumptions import Assumptions

__all__ = ["CausalAssumptions", "CausalResult", "PairWindow", "hull_candidates", "solve_windows",
           "tighten"]

I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]
F64 = npt.NDArray[np.float64]
BoolA = npt.NDArray[np.bool_]

_LP_TOL_NS = 1.0  # widening that covers the solvers' feasibility tolerance
_FEAS_TOL_NS = 1e-3  # a vertex may violate a constraint by this much (rounding)
_BOX_NS = 1e18  # |δ0| box that makes the polygon bounded; reaching it means unbounded
_HULL_MIN_POINTS = 8
_BUCKETS = 32  # x-buckets per group of the vectorized pre-filter (at most; see _buckets)
_CHAIN_ROUNDS = 200  # neighbour-chord passes of the hull filter
_INFEASIBLE = ("causal constraints contradict each other (a clock stepped, or "
               "wander/min_wire_delay assumptions are broken)")
_DISJOINT = ("causal interval and table interval do not overlap (a table is wrong or a clock "
             "stepped)")
_HULL_MAX_POINTS = 64  # more candidates than this after the filter: qhull on the group
_DEFAULTS = Assumptions()


@dataclass(frozen=True, slots=True)
class CausalAssumptions:
    """Assumptions of the causal bound (each one documented and configurable).

    Attributes:
        min_wire_delay_ns: least true one-way delay of any message (ns, >= 0). 0 is always
            safe; a larger value tightens the bound but must be physically true.
        max_skew_ppm: bound on any clock's frequency error (ppm); default: the fit's
            default assumption (``clocksync.Assumptions``), so tables and causality agree.
        wander_ppb_per_s: bound on each clock's frequency change rate (ppb/s); default:
            the fit's default assumption.
        window_s: length of the windows over which δ is modelled as a line (s).
    """

    min_wire_delay_ns: float = 0.0
    max_skew_ppm: float = _DEFAULTS.max_skew_ppm
    wander_ppb_per_s: float = _DEFAULTS.max_wander_ppb_per_s
    window_s: float = 1.0

    def __post_init__(self) -> None:
        for name in ("min_wire_delay_ns", "max_skew_ppm", "wander_ppb_per_s"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value >= 0):
                raise ValueError(f"CausalAssumptions.{name}: must be finite and >= 0")
        if not (np.isfinite(self.window_s) and self.window_s > 0):
            raise ValueError("CausalAssumptions.window_s: must be finite and > 0")

    @property
    def residual_ns(self) -> float:
        """``R``: how far δ can bend away from a line inside one window (ns)."""
        return self.wander_ppb_per_s * (self.window_s / 2) ** 2


@dataclass(frozen=True, slots=True)
class PairWindow:
    """What the messages of one node pair in one window say about their clocks.

    ``offset_*`` bound ``δ = offset_B - offset_A`` (ns) at the window centre from the causal
    constraints alone (``±inf`` when one direction has no messages); ``table_offset_*`` is
    the tables' interval for δ at the message nearest the centre; ``drift_*_ppm`` bound
    ``dδ/dt``. ``status`` is ``"ok"``, ``"one-way"`` (traffic one way only: half-bounded), or
    ``"inconsistent"`` (empty: see :attr:`reason`).
    """

    node_a: str
    node_b: str
    start_ns: int
    end_ns: int
    n_ab: int
    n_ba: int
    offset_low_ns: float
    offset_high_ns: float
    table_offset_low_ns: float
    table_offset_high_ns: float
    drift_low_ppm: float
    drift_high_ppm: float
    status: str
    n_inconsistent: int = 0
    reason: str = ""


@dataclass(frozen=True, slots=True)
class CausalResult:
    """Per-message intervals (input order) and per-window summaries.

    Attributes:
        low_ns, high_ns: tightened latency interval (table-only where flagged).
        inconsistent: messages whose causal interval contradicts the tables, or whose window
            is infeasible.
        windows: one :class:`PairWindow` per node pair and window with messages.
    """

    low_ns: F64
    high_ns: F64
    inconsistent: BoolA
    windows: tuple[PairWindow, ...]


def _reduce(x: F64, y: F64, upper: bool) -> npt.NDArray[np.intp]:
    """Indices of the points whose constraints can bind: the upper (``upper``) or lower
    chain of the convex hull of ``(x, y)`` (a superset when the hull is degenerate)."""
    if len(x) <= _HULL_MIN_POINTS:
        return np.arange(len(x))
    scale = max(float(np.ptp(y)), 1.0)
    pts = np.column_stack([x, y / scale])
    try:
        verts = np.asarray(ConvexHull(pts).vertices)
    except (QhullError, ValueError):
        return np.arange(len(x))
    vx, vy = x[verts], y[verts]
    left, right = int(np.argmin(vx)), int(np.argmax(vx))
    span = vx[right] - vx[left]
    if span <= 0:
        return verts
    chord = vy[left] + (vy[right] - vy[left]) * (vx - vx[left]) / span
    tol = 1e-9 * scale
    keep = vy >= chord - tol if upper else vy <= chord + tol
    return np.asarray(verts[keep])


def hull_candidates(group: I64, pos: I64, span: int, n_groups: int, x: F64, y: F64) -> BoolA:
    """Mask of the points that may be vertices of their group's upper convex hull of
    ``(x, y)``: an exact superset, for every group at once (no loop over groups).

    ``group`` in ``[0, n_groups)``; ``pos`` in ``[0, span)`` an integer position whose order
    is the order of ``x`` inside a group (e.g. ns into the window). Why dropping is exact: a
    point strictly below the chord between two other points of its group, with ``x``
    between theirs, is not a vertex of the upper hull, and its constraint
    ``δ0 + ρ·x >= y`` is implied by the two others' (a convex combination); every vertex
    is kept, so the feasible set is unchanged. Two passes: the chord of the highest points
    of the neighbouring x-buckets (up to ``_BUCKETS`` per group, no sort), then, on the few
    survivors sorted by ``(group, pos)``, repeatedly the chord of each point's neighbours
    until nothing moves (or ``_CHAIN_ROUNDS``: the rest is still a superset). Anything
    within rounding of a chord, or not finite, is kept.
    """
    keep = _bucket_filter(group, pos, span, n_groups, x, y, _buckets(len(group), n_groups))
    idx = np.flatnonzero(keep)
    if len(idx) < 3:
        return keep
    idx = idx[np.argsort(group[idx] * (span + 1) + pos[idx], kind="stable")]
    for _ in range(_CHAIN_ROUNDS):
        gi, xi, yi = group[idx], x[idx], y[idx]
        inner = np.flatnonzero((gi[1:-1] == gi[:-2]) & (gi[1:-1] == gi[2:])) + 1
        drop = inner[_below_chord(xi[inner - 1], yi[inner - 1], xi[inner], yi[inner],
                                  xi[inner + 1], yi[inner + 1])]
        if not len(drop):
            break
        keep[idx[drop]] = False
        idx = np.delete(idx, drop)
        if len(idx) < 3:
            break
    return keep


def _below_chord(xl: F64, yl: F64, x: F64, y: F64, xr: F64, yr: F64) -> BoolA:
    """``(x, y)`` strictly between ``xl`` and ``xr`` and below their chord by more than
    rounding (False wherever anything is not finite)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        chord = (x - xl) / (xr - xl)
        chord *= yr - yl
        chord += yl
        tol = np.abs(yl) + np.abs(yr)
        tol *= 1e-9
        tol += 1e-6
        chord -= tol
        return np.asarray((xl < x) & (x < xr) & (y < chord))


def _buckets(n_points: int, n_groups: int) -> int:
    """Buckets per group: :data:`_BUCKETS`, fewer (down to 4) when the groups hold few points
    on average, so that the per-bucket tables stay no larger than the points (many node
    pairs with little traffic each: 400 k groups of ~2.5 points would need 13 M buckets).
    Any count keeps the filter exact; fewer only drop fewer points in this pass."""
    per = n_points / max(n_groups, 1)
    return int(min(_BUCKETS, max(4, 2 ** math.floor(math.log2(max(per, 1.0))))))


def _bucket_filter(group: I64, pos: I64, span: int, n_groups: int, x: F64, y: F64,
                   buckets: int = _BUCKETS) -> BoolA:
    """First pass of :func:`hull_candidates`: the chord between the highest points of the
    two neighbouring buckets (``buckets`` per group), as ``y = a + s·x`` per bucket (so
    each point costs two lookups in small tables). ``pos`` orders ``x``, so a point lies
    between the two ends."""
    n_b = n_groups * buckets
    local = pos * buckets
    local //= max(span, 1)
    np.minimum(local, buckets - 1, out=local)
    b = group * buckets
    b += local
    top = np.full(n_b, -np.inf)
    np.maximum.at(top, b, y)
    at_top = np.flatnonzero(y == top[b])
    top_x = np.full(n_b, np.nan)
    np.fmax.at(top_x, b[at_top], x[at_top])  # the x of one highest point per bucket
    # per bucket: the chord of its neighbours' highest points (-inf: no chord)
    xl, yl = np.roll(top_x, 1), np.roll(top, 1)
    xr, yr = np.roll(top_x, -1), np.roll(top, -1)
    edge = np.arange(n_b) % buckets
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = (yr - yl) / (xr - xl)
        icpt = yl - slope * xl
        tol = 1e-9 * (np.abs(yl) + np.abs(yr) + np.abs(slope)) + 1e-6
        icpt -= tol
        ok = np.isfinite(icpt) & np.isfinite(slope) & (edge > 0) & (edge < buckets - 1)
    icpt = np.where(ok, icpt, -np.inf)
    slope = np.where(ok, slope, 0.0)
    chord = slope[b]
    chord *= x
    chord += icpt[b]
    return np.asarray(~(y < chord))


_BATCH_ELEMENTS = 262_144  # (windows x vertex candidates x constraints) per pass: in cache


def _padded(m: I64) -> I64:
    """Constraint rows each window is padded to: a multiple of 4 up to 32, then of 16."""
    return np.where(m <= 32, -(-m // 4) * 4, -(-m // 16) * 16)


def solve_windows(
    x: F64, c: F64, lower: BoolA, group: I64, n_groups: int, xs: tuple[float, float],
    rho_max: float,
) -> tuple[F64, F64, BoolA]:
    """Least and greatest linear-part δ at ``xs`` and the ρ range of many windows at once:
    ``(ends, rho, feasible)``.

    Constraint ``i`` belongs to window ``group[i]``: ``δ0 + ρ·x_i >= c_i`` when
    ``lower[i]`` (A->B), else ``δ0 + ρ·x_i <= c_i`` (B->A). ``ends[k]`` = least δ at
    ``xs[0]``, ``xs[1]``, greatest δ at ``xs[0]``, ``xs[1]`` (NaN when infeasible),
    ``rho[k]`` = the ρ range.

    Per window a two-variable LP: ``min/max δ0 + ρ·x`` subject to the constraints and
    ``|ρ| <= rho_max``, solved exactly by enumerating the vertices of the feasible polygon
    (δ0 boxed at ±1e18 ns; hitting the box = unbounded): every pair of constraint lines is
    intersected and the feasible points kept. Every window's constraints are padded to a
    common count (rows ``0·v <= 1``, which meet no other line) so a batch of windows is one
    array expression.
    """
    ends = np.full((n_groups, 4), np.nan)
    rho = np.full((n_groups, 2), np.nan)
    feasible = np.zeros(n_groups, dtype=bool)
    order = np.argsort(group, kind="stable")
    g = group[order]
    counts = np.bincount(g, minlength=n_groups)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    lw = lower[order]
    a0 = np.where(lw, -1.0, 1.0)
    a1 = np.where(lw, -x[order], x[order])
    cv = np.where(lw, -c[order], c[order])
    box_a0 = np.array([0.0, 0.0, 1.0, -1.0])
    box_a1 = np.array([1.0, -1.0, 0.0, 0.0])
    box_c = np.array([rho_max, rho_max, _BOX_NS, _BOX_NS])
    size = _padded(counts + 4)
    for m in np.unique(size).tolist():
        i, j = np.triu_indices(m, k=1)
        windows = np.flatnonzero(size == m)
        per = max(1, _BATCH_ELEMENTS // (len(i) * m))
        for at in range(0, len(windows), per):
            chunk = windows[at:at + per]
            b = len(chunk)
            lens = counts[chunk]
            # the chunk's constraint rows: each window's run of the sorted order
            at_b = np.repeat(np.arange(b), lens)
            at_r = np.arange(int(lens.sum())) - np.repeat(np.cumsum(lens) - lens, lens)
            rows = first[chunk][at_b] + at_r
            A0, A1 = np.zeros((b, m)), np.zeros((b, m))  # noqa: N806 - matrix names
            C = np.ones((b, m))  # noqa: N806
            A0[at_b, at_r], A1[at_b, at_r], C[at_b, at_r] = a0[rows], a1[rows], cv[rows]
            box_r = lens[:, None] + np.arange(4)[None, :]
            box_b = np.repeat(np.arange(b), 4).reshape(b, 4)
            A0[box_b, box_r], A1[box_b, box_r], C[box_b, box_r] = box_a0, box_a1, box_c
            det = A0[:, i] * A1[:, j] - A0[:, j] * A1[:, i]
            ok = np.abs(det) > 1e-12
            with np.errstate(divide="ignore", invalid="ignore"):
                v0 = (C[:, i] * A1[:, j] - C[:, j] * A1[:, i]) / det
                v1 = (A0[:, i] * C[:, j] - A0[:, j] * C[:, i]) / det
                slack = C[:, None, :] - (v0[:, :, None] * A0[:, None, :]
                                         + v1[:, :, None] * A1[:, None, :])
                tol = _FEAS_TOL_NS + 1e-9 * np.abs(C)[:, None, :]
                vert = ok & np.all(slack >= -tol, axis=2)
            has = vert.any(axis=1)
            feasible[chunk] = has
            for col, x_at in enumerate(xs):
                with np.errstate(invalid="ignore"):  # pairs of parallel lines: masked
                    vals = v0 + v1 * x_at
                lo = np.where(vert, vals, np.inf).min(axis=1)
                hi = np.where(vert, vals, -np.inf).max(axis=1)
                lo = np.where(np.abs(lo) < _BOX_NS / 2, lo, np.sign(lo) * np.inf)
                hi = np.where(np.abs(hi) < _BOX_NS / 2, hi, np.sign(hi) * np.inf)
                ends[chunk, col] = np.where(has, lo - _LP_TOL_NS, np.nan)
                ends[chunk, 2 + col] = np.where(has, hi + _LP_TOL_NS, np.nan)
            rho[chunk, 0] = np.where(has, np.where(vert, v1, np.inf).min(axis=1), np.nan)
            rho[chunk, 1] = np.where(has, np.where(vert, v1, -np.inf).max(axis=1), np.nan)
    return ends, rho, feasible


def _chords(v0: F64, v1: F64, gid: npt.NDArray[np.int64], lam: F64) -> F64:
    """Per element, the chord of its group ``gid`` between the ends ``v0`` (window start)
    and ``v1`` (end) at ``lam`` in ``[0, 1]`` (an infinite end gives that infinity; NaN
    stays NaN): two lookups in per-group tables."""
    fin = np.isfinite(v0) & np.isfinite(v1)
    base = np.where(fin, v0, np.where(np.isfinite(v0), v1, v0))
    rise = np.where(fin, np.where(fin, v1, 0.0) - np.where(fin, v0, 0.0), 0.0)
    out = rise[gid]
    out *= lam
    out += base[gid]
    return out


@dataclass(frozen=True, slots=True)
class _Groups:
    """Cross-node messages grouped by node pair and window: group ``k`` is
    ``[start[k], end[k])`` of the group order, its A->B messages first, then its B->A ones,
    each in input order (so every per-group array is a slice, not a gather)."""

    msg: I64  # per position in group order: the message (index into the inputs)
    start: I64  # per group: its first position
    end: I64  # per group: one past its last position
    gid: I64  # per position: its group
    fwd: BoolA  # per position: an A->B message (A = the lower node index)
    n_fwd: I64  # per group: its A->B messages
    window: I64  # per group: its window index (window ``w`` starts at ``w·win_ns``)

    @property
    def n_groups(self) -> int:
        return len(self.start)


def _group_by_pair_and_window(src_node: I32, dst_node: I32, t_ref_ns: I64, cross: I64,
                              n_nodes: int, win_ns: int) -> _Groups:
    """The cross-node messages ``cross`` grouped by node pair and window of ``t_ref_ns``."""
    every = len(cross) == len(src_node)  # (the pipeline passes cross-node messages only)
    src_c = src_node if every else src_node[cross]
    dst_c = dst_node if every else dst_node[cross]
    a_c = np.minimum(src_c, dst_c).astype(np.int64)
    win = np.floor_divide(t_ref_ns if every else t_ref_ns[cross], win_ns)
    w0 = int(win.min())
    key = a_c * n_nodes
    key += np.maximum(src_c, dst_c)
    key *= int(win.max()) - w0 + 1
    key += win
    key -= w0
    back = src_c != a_c  # B->A
    key2 = key * 2
    key2 += back
    order = np.argsort(key2.astype(np.uint16) if int(key2.max()) < 65_536 else key2,
                       kind="stable")  # a radix sort when the codes fit 16 bits
    key_s = key[order]
    cuts = np.flatnonzero(key_s[1:] != key_s[:-1]) + 1
    start = np.concatenate([[0], cuts]).astype(np.int64)
    end = np.concatenate([cuts, [len(order)]]).astype(np.int64)
    fwd = ~back[order]
    return _Groups(
        msg=order if every else cross[order], start=start, end=end,
        gid=np.repeat(np.arange(len(start)), end - start), fwd=fwd,
        n_fwd=np.add.reduceat(fwd.astype(np.int64), start), window=win[order[start]])


@dataclass(frozen=True, slots=True)
class _Constraints:
    """Per message in group order: where it lies in its window and the bound on δ it
    gives (``δ >= c`` for A->B, ``δ <= c`` for B->A, see the module docstring)."""

    pos_ns: I64  # ns into its window
    x_s: F64  # s from the window centre
    raw_ns: F64
    table_low_ns: F64
    table_high_ns: F64
    slack_ns: F64  # the receiver's clock moving over the flight, the send time's bound
    c_ns: F64


def _causal_constraints(g: _Groups, t_ref_ns: I64, src_bound_ns: F64, raw_ns: I64,
                        table_low_ns: F64, table_high_ns: F64, ca: CausalAssumptions,
                        win_ns: int) -> _Constraints:
    """Each message's constraint on δ (module docstring: slack, residual ``R``)."""
    s = ca.max_skew_ppm * 1e-6
    r_ns = ca.residual_ns
    pos = t_ref_ns[g.msg]
    pos -= (g.window * win_ns)[g.gid]
    x: F64 = np.asarray(pos - win_ns / 2, dtype=np.float64)
    x /= 1e9
    raw = raw_ns[g.msg].astype(np.float64)
    t_low, t_high = table_low_ns[g.msg], table_high_ns[g.msg]
    slack = np.maximum(t_high, 0.0)
    slack *= s
    slack += 2 * s * np.nan_to_num(src_bound_ns[g.msg])
    c = np.where(g.fwd, ca.min_wire_delay_ns - raw - slack - r_ns,
                 raw - ca.min_wire_delay_ns + slack + r_ns)
    return _Constraints(pos_ns=pos, x_s=x, raw_ns=raw, table_low_ns=t_low,
                        table_high_ns=t_high, slack_ns=slack, c_ns=c)


def _binding_candidates(g: _Groups, con: _Constraints, win_ns: int) -> I64:
    """Positions of the constraints that can bind (a superset of each window's hull):
    those implied by two others are dropped for all groups at once (the B->A ones bound δ
    from above, so their lower hull matters: negated); a window whose survivors on one
    side are still many goes through qhull."""
    keep = hull_candidates(g.gid * 2 + ~g.fwd, con.pos_ns, win_ns, 2 * g.n_groups, con.x_s,
                           np.where(g.fwd, con.c_ns, -con.c_ns))
    for side, upper in ((g.fwd, True), (~g.fwd, False)):
        many = np.bincount(g.gid[keep & side], minlength=g.n_groups) > _HULL_MAX_POINTS
        for k in np.flatnonzero(many).tolist():
            idx = int(g.start[k]) + np.flatnonzero((keep & side)[g.start[k]:g.end[k]])
            drop = np.ones(len(idx), dtype=bool)
            drop[_reduce(con.x_s[idx], con.c_ns[idx], upper=upper)] = False
            keep[idx[drop]] = False
    return np.flatnonzero(keep)


@dataclass(frozen=True, slots=True)
class _Tightened:
    """Per message in group order: its new interval, and whether it is taken."""

    low_ns: F64
    high_ns: F64
    feasible: BoolA  # its window's constraints are consistent
    disjoint: BoolA  # its causal interval misses its table interval


def _tightened_intervals(g: _Groups, con: _Constraints, ends: F64, feasible: BoolA,
                         ca: CausalAssumptions, win_ns: int) -> _Tightened:
    """Every message's interval from its window's chords (all groups at once), intersected
    with its table interval and with ``ℓ >= min_wire_delay_ns``."""
    r_ns = ca.residual_ns
    ok = feasible[g.gid]
    lam = con.pos_ns / win_ns
    d_lo = _chords(ends[:, 0], ends[:, 1], g.gid, lam)
    d_lo -= r_ns
    d_hi = _chords(ends[:, 2], ends[:, 3], g.gid, lam)
    d_hi += r_ns
    raw, fwd = con.raw_ns, g.fwd
    with np.errstate(invalid="ignore"):  # infeasible groups (NaN) are masked out below
        c_lo = np.where(fwd, raw + d_lo, raw - d_hi) - con.slack_ns
        c_hi = np.where(fwd, raw + d_hi, raw - d_lo) + con.slack_ns
        low = np.maximum(np.maximum(con.table_low_ns, c_lo), ca.min_wire_delay_ns)
        high = np.minimum(con.table_high_ns, c_hi)
        disjoint = ok & (low > high)
    return _Tightened(low_ns=low, high_ns=high, feasible=ok, disjoint=disjoint)


def _window_records(g: _Groups, con: _Constraints, ends: F64, rho: F64, feasible: BoolA,
                    disjoint: BoolA, src_node: I32, dst_node: I32, raw_ns: I64,
                    table_low_ns: F64, table_high_ns: F64, node_names: tuple[str, ...],
                    ca: CausalAssumptions, win_ns: int) -> tuple[PairWindow, ...]:
    """One :class:`PairWindow` per group: its nodes, the tables' δ at the message nearest
    the centre (the first in input order among ties), the causal δ at the centre, the
    drift range and the status (computed for all groups at once, then one record each)."""
    n = len(raw_ns)
    r_ns = ca.residual_ns
    ax = np.abs(con.x_s)
    nearest = ax == np.minimum.reduceat(ax, g.start)[g.gid]
    near = np.minimum.reduceat(np.where(nearest, g.msg, n), g.start)
    first = g.msg[g.start]
    node_a = np.minimum(src_node[first], dst_node[first])
    node_b = np.maximum(src_node[first], dst_node[first])
    raw_near = raw_ns[near].astype(np.float64)
    tl_near, th_near = table_low_ns[near], table_high_ns[near]
    fwd_near = src_node[near] == node_a
    t_lo = np.where(fwd_near, tl_near - raw_near, raw_near - th_near)
    t_hi = np.where(fwd_near, th_near - raw_near, raw_near - tl_near)
    every = np.arange(g.n_groups)
    mid = np.full(g.n_groups, 0.5)
    with np.errstate(invalid="ignore"):  # infeasible windows: NaN, replaced below
        off_lo = _chords(ends[:, 0], ends[:, 1], every, mid) - r_ns
        off_hi = _chords(ends[:, 2], ends[:, 3], every, mid) + r_ns
    n_disjoint = np.add.reduceat(disjoint.astype(np.int64), g.start)
    windows: list[PairWindow] = []
    for a, b, w, n_ab, n_all, tl, th, ol, oh, (dl, dh), ok, n_bad in zip(
            node_a.tolist(), node_b.tolist(), g.window.tolist(), g.n_fwd.tolist(),
            (g.end - g.start).tolist(), t_lo.tolist(), t_hi.tolist(), off_lo.tolist(),
            off_hi.tolist(), (rho / 1e3).tolist(), feasible.tolist(), n_disjoint.tolist(),
            strict=True):
        n_ba = n_all - n_ab
        if ok:
            status = "inconsistent" if n_bad else ("ok" if n_ab and n_ba else "one-way")
            reason = _DISJOINT if n_bad else ""
        else:  # no causal bound: every message keeps its table interval
            ol = oh = dl = dh = math.nan
            status, n_bad, reason = "inconsistent", n_all, _INFEASIBLE
        start = w * win_ns
        windows.append(PairWindow(
            node_a=node_names[a], node_b=node_names[b], start_ns=start,
            end_ns=start + win_ns, n_ab=n_ab, n_ba=n_ba, offset_low_ns=ol,
            offset_high_ns=oh, table_offset_low_ns=tl, table_offset_high_ns=th,
            drift_low_ppm=dl, drift_high_ppm=dh, status=status, n_inconsistent=n_bad,
            reason=reason))
    return tuple(windows)


def tighten(
    src_node: I32,
    dst_node: I32,
    node_names: tuple[str, ...],
    t_ref_ns: I64,
    src_bound_ns: F64,
    raw_ns: I64,
    table_low_ns: F64,
    table_high_ns: F64,
    assumptions: CausalAssumptions | None = None,
) -> CausalResult:
    """Tighten every cross-node message's latency interval (see the module docstring).

    All arrays have one entry per message; ``t_ref_ns`` is the corrected send time (ns),
    ``src_bound_ns`` its correction bound, ``raw_ns`` the receive minus send local stamps.
    Same-node entries are passed through with their table interval.
    """
    ca = assumptions or CausalAssumptions()
    low = np.asarray(table_low_ns, dtype=np.float64).copy()
    high = np.asarray(table_high_ns, dtype=np.float64).copy()
    flagged = np.zeros(len(raw_ns), dtype=bool)
    cross = np.flatnonzero(src_node != dst_node)
    if not len(cross):
        return CausalResult(low, high, flagged, ())
    win_ns = round(ca.window_s * 1e9)
    g = _group_by_pair_and_window(src_node, dst_node, t_ref_ns, cross, len(node_names),
                                  win_ns)
    con = _causal_constraints(g, t_ref_ns, src_bound_ns, raw_ns, table_low_ns,
                              table_high_ns, ca, win_ns)
    kept = _binding_candidates(g, con, win_ns)
    half = ca.window_s / 2
    rho_max = 2 * (ca.max_skew_ppm * 1e-6) * 1e9  # |dδ/dt|, ns per s
    ends, rho, feasible = solve_windows(con.x_s[kept], con.c_ns[kept], g.fwd[kept],
                                        g.gid[kept], g.n_groups, (-half, half), rho_max)
    new = _tightened_intervals(g, con, ends, feasible, ca, win_ns)
    take = new.feasible & ~new.disjoint
    low[g.msg] = np.where(take, new.low_ns, con.table_low_ns)
    high[g.msg] = np.where(take, new.high_ns, con.table_high_ns)
    flagged[g.msg] = new.disjoint | ~new.feasible
    windows = _window_records(g, con, ends, rho, feasible, new.disjoint, src_node, dst_node,
                              raw_ns, table_low_ns, table_high_ns, node_names, ca, win_ns)
    return CausalResult(low, high, flagged, windows)
