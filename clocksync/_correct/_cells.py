"""A correction table's cells compiled to flat arrays: located (per sorted run, or on a
uniform grid) and evaluated, and the same-node interval of a hop between two cells. Used by
:class:`~._corrector.Corrector` and :class:`~._cellstack.CellStack`; see :mod:`._corrector`
for what the numbers mean.

The correction of local time ``t`` in a cell starting at ``start`` has one formula and one
operation order, whichever way the cell's coefficients reach it (one Python float per call,
gathered per timestamp, or one scalar per cell's stretch of a sorted input)::

    d = float(t - start)                  # ns since the cell's start
    ref = t + rint(d * mid1_ns + mid0)    # mid1_ns = mid1·1e-9, offset ns per local ns
    bound = d * half1_ns + half0

so the scalar, gathered and per-run results are bit-identical by construction
(:func:`correct_scalar`, :func:`evaluate_gather`, :func:`evaluate_runs`)."""

from __future__ import annotations

import bisect
import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .._model._errors import InvalidTimestampError
from .._model._flags import OUT_OF_RANGE, VOID
from .._model._table import CorrectionTable

__all__ = ["CHUNK", "GRID_MIN", "MIN_RUN", "OUT_OF_RANGE", "ROUNDING_NS", "RUN_MIN", "Compiled",
           "Grid", "Slopes", "check_nonnegative", "correct_scalar", "evaluate", "evaluate_gather",
           "evaluate_runs", "invalid_as_inf", "same_node_interval"]

I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]
F64 = npt.NDArray[np.float64]
U8 = npt.NDArray[np.uint8]
Idx = npt.NDArray[np.intp]
ROUNDING_NS = 0.5


@dataclass(frozen=True)
class Compiled:
    """A table's cells as flat arrays; index 0 is "before the first cell", index m+1
    "after the last" (both invalid)."""

    starts: I64  # m+1 entries: cell starts, then the end of the last cell
    mid0: F64  # m+2 entries (padded with invalid cells at both ends)
    mid1_ns: F64  # the midpoint's slope, ns of offset per ns of local time (mid1·1e-9)
    half0: F64
    half1_ns: F64  # the half-width's slope, ns per ns (half1·1e-9)
    slopes: Slopes
    flags: npt.NDArray[np.uint8]
    cell_start: I64  # m+2, start of each padded cell (for d)
    has_void: bool
    py_starts: list[int]
    py_rows: list[tuple[int, float, float, float, float, bool]]  # per padded cell: start,
    # mid1_ns, mid0, half1_ns, half0 as Python numbers, invalid
    grid: Grid

    @classmethod
    def build(cls, table: CorrectionTable) -> Compiled:
        c = table.cells
        m = len(c)
        if m == 0:
            starts = np.array([0], dtype=np.int64)
        else:
            starts = np.append(c.start_ns, c.end_ns[-1]).astype(np.int64)

        def pad(values: npt.NDArray[Any], fill: float) -> npt.NDArray[Any]:
            return np.concatenate([[fill], values, [fill]]).astype(values.dtype)

        mid0 = pad((c.hi0 + c.lo0) / 2, 0.0)
        mid1 = pad((c.hi1 + c.lo1) / 2, 0.0)
        half0 = pad((c.hi0 - c.lo0) / 2 + ROUNDING_NS, math.inf)
        half1 = pad((c.hi1 - c.lo1) / 2, 0.0)
        flags = pad(c.flags.astype(np.uint8), OUT_OF_RANGE)
        void = (flags & VOID) != 0
        flags = np.where(void, flags | OUT_OF_RANGE, flags).astype(np.uint8)
        half0 = np.where(void, math.inf, half0)
        mid0 = np.where(void, 0.0, mid0)
        mid1 = np.where(void, 0.0, mid1)
        half1 = np.where(void, 0.0, half1)
        cell_start = np.concatenate([[0], starts]).astype(np.int64)
        mid1_ns = mid1 * 1e-9
        half1_ns = half1 * 1e-9
        rows = [
            (int(cell_start[i]), float(mid1_ns[i]), float(mid0[i]), float(half1_ns[i]),
             float(half0[i]), bool(flags[i] & OUT_OF_RANGE))
            for i in range(m + 2)
        ]
        return cls(
            starts=starts, mid0=mid0, mid1_ns=mid1_ns, half0=half0, half1_ns=half1_ns,
            slopes=Slopes.build(pad(c.slo, 0.0), pad(c.shi, 0.0),
                                 pad(c.segment.astype(np.int32), -1).astype(np.int32)),
            flags=flags,
            cell_start=cell_start, has_void=bool(void.any()),
            grid=Grid.build(starts),
            py_starts=starts.tolist(), py_rows=rows,
        )

    def sorted_runs(self, flat: I64) -> list[tuple[int, int]] | None:
        """The sorted runs ``[a, b)`` that ``flat`` consists of (one when it is sorted), or
        ``None`` when it is short or has more runs than one per :data:`MIN_RUN` timestamps
        (then the grid locates faster). One pass over the input."""
        n = flat.size
        if n < 64:
            return None
        down = flat[1:] < flat[:-1]
        n_down = int(np.count_nonzero(down))
        if n_down * MIN_RUN > n:
            return None
        cuts = [0, *(np.flatnonzero(down) + 1).tolist(), n] if n_down else [0, n]
        return list(itertools.pairwise(cuts))

    def boundaries(self, run: I64) -> Idx:
        """For a sorted run of timestamps: where each padded cell's stretch of it begins and
        ends (found once per cell, not once per timestamp)."""
        pos = np.searchsorted(run, self.starts, side="left")
        return np.concatenate([[0], pos, [run.size]]).astype(np.intp)

    def cells_of_sorted(self, flat: I64, runs: list[tuple[int, int]]) -> Idx:
        """The padded cell of every timestamp of ``flat``, made of the sorted ``runs``."""
        parts = [self.cells_of_runs(self.boundaries(flat[a:b])) for a, b in runs]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def locate(self, ts: I64) -> npt.NDArray[np.intp]:
        """Padded cell index of every timestamp (0 = before, m+1 = after the table): per
        sorted run (a sorted input, or a node's rows of a file's row groups) each cell's
        stretch found once; else on the grid."""
        flat = ts.reshape(-1)
        runs = self.sorted_runs(flat)
        idx = (self.grid.locate(self.starts, flat) if runs is None
               else self.cells_of_sorted(flat, runs))
        return idx.reshape(ts.shape)

    @staticmethod
    def cells_of_runs(bounds: Idx) -> Idx:
        """The padded cell of every timestamp of a sorted run, from :meth:`boundaries`."""
        return np.repeat(np.arange(len(bounds) - 1, dtype=np.intp), np.diff(bounds))


@dataclass(frozen=True)
class Slopes:
    """Per padded cell its rate bounds ``slo, shi`` (ns/s) and segment (-1: none); and per
    pair of a cell ``i`` and its neighbour ``i + d`` (``d`` in -1, 0, 1), at ``3i + 1 + d``:
    the pair's rate bounds ``min(slo[i], slo[i+d])``, ``max(shi[i], shi[i+d])`` and whether
    one segment holds both."""

    slo: F64
    shi: F64
    seg: I32
    pair_lo: F64
    pair_hi: F64
    pair_same: npt.NDArray[np.bool_]

    @classmethod
    def build(cls, slo: F64, shi: F64, seg: I32) -> Slopes:
        n = len(slo)
        i = np.arange(n)
        pair_lo, pair_hi = np.zeros(3 * n), np.zeros(3 * n)
        pair_same = np.zeros(3 * n, dtype=bool)
        for d in (-1, 0, 1):
            j = np.clip(i + d, 0, max(n - 1, 0))  # the pairs that cannot occur: any value
            pair_lo[3 * i + 1 + d] = np.minimum(slo[i], slo[j])  # argument order matters (±0)
            pair_hi[3 * i + 1 + d] = np.maximum(shi[i], shi[j])
            pair_same[3 * i + 1 + d] = (seg[i] == seg[j]) & (seg[i] >= 0)
        return cls(slo, shi, seg, pair_lo, pair_hi, pair_same)


MIN_RUN = 4_096  #: a few sorted runs: this many timestamps per run on average (see locate)
GRID_MIN = 4_096  #: unsorted inputs at least this long use the grid, shorter ones a search


@dataclass(frozen=True)
class Grid:
    """``np.searchsorted(starts, t, side="right")`` for unsorted ``t`` without a binary
    search: a uniform grid over ``[starts[0], starts[-1])`` with about four bins per cell
    records, per bin, the answer at its start (``lo``) and how many starts fall inside it
    (``inner``). One start inside: one comparison; more (cells narrower than a bin): the
    search, for those timestamps only."""

    t0: int
    width: int
    lo: npt.NDArray[np.int64]
    inner: npt.NDArray[np.int64]

    @classmethod
    def build(cls, starts: I64) -> Grid:
        if len(starts) < 2 or int(starts[-1]) <= int(starts[0]):
            return cls(0, 0, np.zeros(0, np.int64), np.zeros(0, np.int64))
        t0, span = int(starts[0]), int(starts[-1]) - int(starts[0])
        width = max(1, -(-span // (4 * len(starts))))
        n_bins = -(-span // width)
        edges = t0 + np.arange(n_bins + 1, dtype=np.int64) * width
        at = np.searchsorted(starts, edges, side="right").astype(np.int64)
        # starts inside bin k: those in (edges[k], edges[k+1] - 1]
        inner = np.searchsorted(starts, edges[1:] - 1, side="right") - at[:-1]
        return cls(t0, width, at[:-1], inner.astype(np.int64))

    def locate(self, starts: I64, flat: I64) -> npt.NDArray[np.intp]:
        if flat.size < GRID_MIN or not len(self.lo):
            return np.asarray(np.searchsorted(starts, flat, side="right"))
        t1 = self.t0 + len(self.lo) * self.width
        rel = flat - self.t0
        bins = rel // self.width
        np.clip(bins, 0, len(self.lo) - 1, out=bins)
        idx = self.lo[bins]
        inner = self.inner[bins]
        one = inner == 1
        idx += one & (flat >= starts[np.minimum(idx, len(starts) - 1)])
        many = np.flatnonzero(inner > 1)
        if len(many):
            idx[many] = np.searchsorted(starts, flat[many], side="right")
        out = (flat < self.t0) | (flat >= t1)
        if out.any():
            idx[out] = np.searchsorted(starts, flat[out], side="right")
        return np.asarray(idx, dtype=np.intp)


def check_nonnegative(out: I64, node: str) -> None:
    if out.size and int(out.min()) < 0:
        i = int(np.argmin(out.reshape(-1)))
        raise InvalidTimestampError(
            f"node {node}: timestamp [{i}] = {out.reshape(-1)[i]} is negative")


def slope_interval(slopes: Slopes, i1: npt.NDArray[np.integer[Any]],
                   i2: npt.NDArray[np.integer[Any]], max_slope: float | F64,
                   raw_ns: I64) -> tuple[F64, F64, npt.NDArray[np.bool_]]:
    """Same-node hops (1-D) from padded cell ``i1`` to ``i2`` over ``raw_ns`` of local time:
    ``[lo, hi]`` bounds ``raw_ns`` plus the clock's offset change (at the two cells' slopes
    when they are neighbours, else at ±``max_slope``, a number or one per cell ``i1``; ±1 ns
    for the rounding of the two refs); ``same``: one segment holds both (else the bound does
    not hold). ``lo, hi`` are new arrays the caller may overwrite."""
    d = i2 - i1
    key = i1 * 2  # neighbours: the pair at 3·i1 + 1 + d = 2·i1 + i2 + 1, one gather
    key += i2
    far = None if not len(d) or (int(d.min()) >= -1 and int(d.max()) <= 1) else np.abs(d) > 1
    if far is not None:
        key[far] = 3 * i1[far]
    slo_d = slopes.pair_lo[1:][key]
    shi_d = slopes.pair_hi[1:][key]
    same = slopes.pair_same[1:][key]
    if far is not None:  # far apart: the table's bound on the rate error
        f = np.flatnonzero(far)
        a, b = i1[f], i2[f]
        same[f] = (slopes.seg[a] == slopes.seg[b]) & (slopes.seg[a] >= 0)
        ms = max_slope if isinstance(max_slope, float) else max_slope[a]
        slo_d[f] = -ms
        shi_d[f] = ms
    raw = raw_ns.astype(np.float64)
    d_s = raw / 1e9
    slo_d *= d_s  # the offset change over the hop at either slope
    shi_d *= d_s
    lo_d = np.minimum(slo_d, shi_d, out=d_s)
    hi_d = np.maximum(slo_d, shi_d, out=shi_d)
    lo_d += raw
    lo_d -= 1.0
    hi_d += raw
    hi_d += 1.0
    return lo_d, hi_d, same


def same_node_interval(slopes: Slopes, i1: npt.NDArray[np.integer[Any]],
                       i2: npt.NDArray[np.integer[Any]], max_slope: float | F64, raw_ns: I64,
                       lat: F64, bound: F64) -> tuple[F64, F64]:
    """``(latency, bound)`` of same-node hops (1-D) from padded cell ``i1`` to ``i2``: the
    intersection of the slope interval (:func:`slope_interval`, where one segment holds
    both) with the two corrections' ``lat ∓ bound`` (``lat`` = the refs' difference,
    ``bound`` = the sum of their bounds); unchanged where ``bound`` is not finite (an
    uncorrectable timestamp with ``on_invalid="inf"``)."""
    lo_d, hi_d, same = slope_interval(slopes, i1, i2, max_slope, raw_ns)
    two_lo, two_hi = lat - bound, lat + bound
    if same.all():
        lo = np.maximum(lo_d, two_lo, out=lo_d)
        hi = np.minimum(hi_d, two_hi, out=hi_d)
    else:
        lo = np.where(same, np.maximum(lo_d, two_lo, out=lo_d), two_lo)
        hi = np.where(same, np.minimum(hi_d, two_hi, out=hi_d), two_hi)
    finite = np.isfinite(bound)
    with np.errstate(invalid="ignore"):  # inf - inf where on_invalid="inf"; unused
        mid = np.add(lo, hi, out=two_lo)
        mid /= 2
        half = np.subtract(hi, lo, out=hi)
        half /= 2
    if finite.all():
        return mid, half
    return np.where(finite, mid, lat), np.where(finite, half, bound)


RUN_MIN = 256  #: sorted input uses per-cell runs when cells hold this many timestamps on average
CHUNK = 65_536  #: elements per in-cache chunk of a run


def evaluate(c: Compiled, ts: I64, node: str, want_cells: bool
             ) -> tuple[I64, F64, npt.NDArray[np.bool_] | None, Idx | None]:
    """``(ref, bound, invalid or None, padded cells if want_cells)`` of ``ts`` (negative
    timestamps refused): a sorted input dense in cells per cell's stretch
    (:func:`evaluate_runs`), any other gathered (:func:`evaluate_gather`), its cells found
    per sorted run when it has few, else on the grid. Both give the same bits."""
    flat = ts.reshape(-1)
    runs = c.sorted_runs(flat)
    if runs is None:
        check_nonnegative(flat, node)
        idx = c.grid.locate(c.starts, flat)
    else:
        if min(int(flat[a]) for a, _ in runs) < 0:  # each run's first is its least
            check_nonnegative(flat, node)
        if len(runs) == 1:  # sorted
            bounds = c.boundaries(flat)
            busy = np.flatnonzero(np.diff(bounds))
            if flat.size >= RUN_MIN * len(busy):
                cells = c.cells_of_runs(bounds).reshape(ts.shape) if want_cells else None
                return (*evaluate_runs(c, flat, bounds, busy, ts.shape), cells)
            idx = c.cells_of_runs(bounds)
        else:
            idx = c.cells_of_sorted(flat, runs)
    idx = idx.reshape(ts.shape)
    return (*evaluate_gather(c, ts, idx), idx)


def _correction(t: I64, d: I64, mid1_ns: Any, mid0: Any, half1_ns: Any, half0: Any,
                ref: I64, bound: F64, off: F64) -> None:
    """The correction formula (see the module docstring) into ``ref``, ``bound``: ``d`` =
    ``t - start``; the coefficients one number per cell's stretch or one per timestamp
    (``off`` is scratch and may be ``mid1_ns``; ``bound`` may be ``half1_ns``)."""
    np.multiply(d, mid1_ns, out=off)
    off += mid0
    np.rint(off, out=off)
    np.copyto(ref, off, casting="unsafe")
    ref += t
    np.multiply(d, half1_ns, out=bound)
    bound += half0


def correct_scalar(c: Compiled, t: int) -> tuple[int, float, bool]:
    """``(ref, bound, invalid)`` of one non-negative timestamp: :func:`_correction` in
    Python numbers (the same IEEE operations in the same order; ``round`` and ``rint`` both
    round half to even)."""
    start, mid1_ns, mid0, half1_ns, half0, invalid = c.py_rows[bisect.bisect_right(
        c.py_starts, t)]
    d = t - start
    return t + round(d * mid1_ns + mid0), d * half1_ns + half0, invalid


def evaluate_gather(c: Compiled, ts: I64, idx: npt.NDArray[np.intp]
                    ) -> tuple[I64, F64, npt.NDArray[np.bool_] | None]:
    """:func:`_correction` with the coefficients gathered per timestamp, in cache-sized
    chunks."""
    flat_t, flat_i = ts.reshape(-1), idx.reshape(-1)
    n = flat_t.size
    ref: I64 = np.empty(n, dtype=np.int64)
    bound: F64 = np.empty(n, dtype=np.float64)
    size = min(n, CHUNK)
    buf_d = np.empty(size, dtype=np.int64)
    buf_m1, buf_m0, buf_h0 = (np.empty(size, dtype=np.float64) for _ in range(3))
    for x in range(0, n, CHUNK):
        y = min(x + CHUNK, n)
        m, t, i = y - x, flat_t[x:y], flat_i[x:y]
        d = np.take(c.cell_start, i, out=buf_d[:m])
        np.subtract(t, d, out=d)
        m1 = np.take(c.mid1_ns, i, out=buf_m1[:m])
        h1 = np.take(c.half1_ns, i, out=bound[x:y])
        _correction(t, d, m1, np.take(c.mid0, i, out=buf_m0[:m]), h1,
                    np.take(c.half0, i, out=buf_h0[:m]), ref[x:y], bound[x:y], m1)
    ref, bound = ref.reshape(ts.shape), bound.reshape(ts.shape)
    n_cells = len(c.starts)
    invalid: npt.NDArray[np.bool_] | None = None
    if ts.size:
        lo_i, hi_i = int(idx.min()), int(idx.max())
        if lo_i == 0 or hi_i == n_cells or c.has_void:
            mask = (c.flags[idx] & OUT_OF_RANGE) != 0
            if mask.any():
                invalid = mask
    return ref, bound, invalid


def evaluate_runs(c: Compiled, flat: I64, bounds: npt.NDArray[np.intp],
                  busy: npt.NDArray[np.intp], shape: tuple[int, ...]
                  ) -> tuple[I64, F64, npt.NDArray[np.bool_] | None]:
    """Sorted input: :func:`_correction` of each cell's stretch with the cell's
    coefficients as scalars, in cache-sized chunks (no per-timestamp gather, no binary
    search)."""
    n = flat.size
    ref = np.empty(n, dtype=np.int64)
    bound = np.empty(n, dtype=np.float64)
    buf_d = np.empty(min(n, CHUNK), dtype=np.int64)
    buf_o = np.empty(min(n, CHUNK), dtype=np.float64)
    invalid: npt.NDArray[np.bool_] | None = None
    for k in busy.tolist():
        a, b = int(bounds[k]), int(bounds[k + 1])
        if c.flags[k] & OUT_OF_RANGE:
            if invalid is None:
                invalid = np.zeros(n, dtype=np.bool_)
            invalid[a:b] = True
        start, mid1_ns, mid0, half1_ns, half0, _ = c.py_rows[k]
        for x in range(a, b, CHUNK):
            y = min(x + CHUNK, b)
            m = y - x
            seg = flat[x:y]
            d = np.subtract(seg, start, out=buf_d[:m])
            _correction(seg, d, mid1_ns, mid0, half1_ns, half0, ref[x:y], bound[x:y],
                        buf_o[:m])
    if invalid is not None:
        return ref.reshape(shape), bound.reshape(shape), invalid.reshape(shape)
    return ref.reshape(shape), bound.reshape(shape), None


def invalid_as_inf(ts: I64, ref: I64, bound: F64, invalid: npt.NDArray[np.bool_] | None
                   ) -> tuple[I64, F64]:
    """``ref = t`` and ``bound = inf`` where ``invalid`` (``on_invalid="inf"``)."""
    if invalid is None:
        return ref, bound
    return np.where(invalid, ts, ref), np.where(invalid, math.inf, bound)
