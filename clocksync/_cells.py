"""A correction table's cells compiled to flat arrays: located (per sorted run, or on a
uniform grid) and evaluated (per cell's stretch of a sorted input, or gathered), and the
same-node slope bound of a hop between two cells. Used by :class:`~._corrector.Corrector`
and :class:`~._cellstack.CellStack`; see :mod:`._corrector` for what the numbers mean."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ._errors import InvalidTimestampError
from ._fit._envelope import VOID
from ._table import CorrectionTable

__all__ = ["CHUNK", "GRID_MIN", "MIN_RUN", "OUT_OF_RANGE", "ROUNDING_NS", "RUN_MIN", "Compiled",
           "Grid", "Slopes", "check_nonnegative", "evaluate", "evaluate_gather", "evaluate_runs",
           "midpoint", "slope_interval", "tighten_interval"]

I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]
F64 = npt.NDArray[np.float64]
U8 = npt.NDArray[np.uint8]
Idx = npt.NDArray[np.intp]
OUT_OF_RANGE = 8  #: flag: no answer for this timestamp (before the first sample, void, horizon)
ROUNDING_NS = 0.5


@dataclass(frozen=True)
class Compiled:
    """A table's cells as flat arrays; index 0 is "before the first cell", index m+1
    "after the last" (both invalid)."""

    starts: I64  # m+1 entries: cell starts, then the end of the last cell
    mid0: F64  # m+2 entries (padded with invalid cells at both ends)
    mid1: F64
    half0: F64
    half1: F64
    slopes: Slopes
    flags: npt.NDArray[np.uint8]
    cell_start: I64  # m+2, start of each padded cell (for δ)
    has_void: bool
    disagree_ns: float  # how far two roundings of one correction can differ (see build)
    py_starts: list[int]
    py_rows: list[tuple[int, float, float, float, float, bool]]
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
        # The gathered and the per-run evaluation (see evaluate_gather, evaluate_runs) round
        # the same products in a different order: each is within 3 units of the 53-bit
        # mantissa (u = 2^-53) of |mid0| + |mid1|·(cell length) (resp. half), so they differ
        # by < 8u of it; 2e-15 > 16u. The refs, rounded to integers, may differ by 1 ns more.
        length_s = np.diff(starts).astype(np.float64) * 1e-9
        real = slice(1, m + 1)
        spread = (np.abs(mid0[real]) + np.abs(mid1[real]) * length_s
                  + np.abs(half0[real]) + np.abs(half1[real]) * length_s)
        spread = spread[~void[real]]
        disagree_ns = 1.0 + 2e-15 * float(spread.max()) if len(spread) else 1.0
        rows = [
            (int(cell_start[i]), float(mid0[i]), float(mid1[i]), float(half0[i]),
             float(half1[i]), bool(flags[i] & OUT_OF_RANGE))
            for i in range(m + 2)
        ]
        return cls(
            starts=starts, mid0=mid0, mid1=mid1, half0=half0, half1=half1,
            slopes=Slopes.build(pad(c.slo, 0.0), pad(c.shi, 0.0),
                                 pad(c.segment.astype(np.int32), -1).astype(np.int32)),
            flags=flags,
            cell_start=cell_start, has_void=bool(void.any()), disagree_ns=disagree_ns,
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


def tighten_interval(lo_d: F64, hi_d: F64, same: npt.NDArray[np.bool_], two_lo: F64, two_hi: F64,
             lat: F64, bound: F64) -> tuple[F64, F64]:
    """``(latency, bound)`` of the intersection of the slope interval ``[lo_d, hi_d]`` (where
    ``same``) with the two corrections' ``[two_lo, two_hi] = lat ∓ bound``; unchanged where
    ``bound`` is not finite (an uncorrectable timestamp with ``on_invalid="inf"``).
    ``lo_d`` and ``hi_d`` are overwritten."""
    if same.all():
        lo = np.maximum(lo_d, two_lo, out=lo_d)
        hi = np.minimum(hi_d, two_hi, out=hi_d)
    else:
        lo = np.where(same, np.maximum(lo_d, two_lo, out=lo_d), two_lo)
        hi = np.where(same, np.minimum(hi_d, two_hi, out=hi_d), two_hi)
    finite = np.isfinite(bound)
    with np.errstate(invalid="ignore"):  # inf - inf where on_invalid="inf"; unused
        mid, half = midpoint(lo, hi, half=hi)
    if finite.all():
        return mid, half
    return np.where(finite, mid, lat), np.where(finite, half, bound)


def midpoint(lo: F64, hi: F64, mid: F64 | None = None, half: F64 | None = None
              ) -> tuple[F64, F64]:
    """``[lo, hi]`` as ``(latency, bound)``: ``(lo + hi)/2, (hi - lo)/2`` (into ``mid``,
    ``half`` if given; ``half`` may be ``hi``)."""
    mid = np.add(lo, hi, out=mid)
    mid /= 2
    half = np.subtract(hi, lo, out=half)
    half /= 2
    return mid, half


RUN_MIN = 256  #: sorted input uses per-cell runs when cells hold this many timestamps on average
CHUNK = 65_536  #: elements per in-cache chunk of a run


def evaluate(c: Compiled, ts: I64, node: str, want_cells: bool
              ) -> tuple[I64, F64, npt.NDArray[np.bool_] | None, Idx | None]:
    """``(ref, bound, invalid or None, padded cells if want_cells)`` of ``ts`` (negative
    timestamps refused): a sorted input dense in cells per cell's stretch (:func:`evaluate_runs`
    rounding), any other gathered (:func:`evaluate_gather` rounding), its cells found per
    sorted run when it has few, else on the grid."""
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


def evaluate_gather(c: Compiled, ts: I64, idx: npt.NDArray[np.intp]
                 ) -> tuple[I64, F64, npt.NDArray[np.bool_] | None]:
    """One gather of the cell coefficients per timestamp, in cache-sized chunks:
    ``δ = (t - start)·1e-9`` s, ``ref = t + rint(mid1·δ + mid0)``,
    ``bound = half1·δ + half0``."""
    flat_t, flat_i = ts.reshape(-1), idx.reshape(-1)
    n = flat_t.size
    ref: I64 = np.empty(n, dtype=np.int64)
    bound: F64 = np.empty(n, dtype=np.float64)
    size = min(n, CHUNK)
    buf_i = np.empty(size, dtype=np.int64)
    buf_d, buf_o, buf_c = (np.empty(size, dtype=np.float64) for _ in range(3))
    for x in range(0, n, CHUNK):
        y = min(x + CHUNK, n)
        m, t, i = y - x, flat_t[x:y], flat_i[x:y]
        d = np.take(c.cell_start, i, out=buf_i[:m])
        np.subtract(t, d, out=d)
        delta = buf_d[:m]
        np.copyto(delta, d)
        delta *= 1e-9
        off = np.take(c.mid1, i, out=buf_o[:m])
        off *= delta
        off += np.take(c.mid0, i, out=buf_c[:m])
        np.rint(off, out=off)
        out = ref[x:y]
        np.copyto(out, off, casting="unsafe")
        out += t
        bo = np.take(c.half1, i, out=bound[x:y])
        bo *= delta
        bo += np.take(c.half0, i, out=buf_c[:m])
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
    """Sorted input: each cell's stretch is corrected with scalar coefficients, in
    cache-sized chunks (no per-timestamp gather, no binary search):
    ``ref = t + rint(mid0 + (t - start)·(mid1·1e-9))``, ``bound`` alike."""
    n = flat.size
    ref = np.empty(n, dtype=np.int64)
    bound = np.empty(n, dtype=np.float64)
    buf_i = np.empty(min(n, CHUNK), dtype=np.int64)
    buf_o = np.empty(min(n, CHUNK), dtype=np.float64)
    invalid: npt.NDArray[np.bool_] | None = None
    for k in busy.tolist():
        a, b = int(bounds[k]), int(bounds[k + 1])
        if c.flags[k] & OUT_OF_RANGE:
            if invalid is None:
                invalid = np.zeros(n, dtype=np.bool_)
            invalid[a:b] = True
        start, m0, m1 = int(c.cell_start[k]), float(c.mid0[k]), float(c.mid1[k]) * 1e-9
        h0, h1 = float(c.half0[k]), float(c.half1[k]) * 1e-9
        for x in range(a, b, CHUNK):
            y = min(x + CHUNK, b)
            m = y - x
            seg = flat[x:y]
            d = np.subtract(seg, start, out=buf_i[:m])
            off = np.multiply(d, m1, out=buf_o[:m])
            off += m0
            np.rint(off, out=off)
            out = ref[x:y]
            np.copyto(out, off, casting="unsafe")
            out += seg
            bo = np.multiply(d, h1, out=bound[x:y])
            bo += h0
    if invalid is not None:
        return ref.reshape(shape), bound.reshape(shape), invalid.reshape(shape)
    return ref.reshape(shape), bound.reshape(shape), None

