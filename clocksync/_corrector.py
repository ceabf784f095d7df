"""``Corrector``: local timestamps -> reference time with a guaranteed bound (numpy).

For node ``n`` and local timestamp ``t`` (int64 ns), the node's table gives a cell with a
linear upper and lower envelope of the true offset; the corrected time is the midpoint
``ref = t + (hi + lo)/2`` and the bound is the half-width ``(hi - lo)/2`` (+0.5 ns for the
rounding of ``ref`` to an integer). The true reference time lies in
``[ref - bound, ref + bound]`` whenever the table's assumptions hold.

What is refused, never guessed (``on_invalid="raise"``, the default, raises; ``"inf"``
returns ``ref = t`` and ``bound = inf`` for those elements instead):

* an unknown node -> :class:`UnknownNodeError`;
* NaN, negative or non-integral timestamps -> :class:`InvalidTimestampError`;
* a timestamp before the node's first sample, in local time that no segment can hold (the
  clock jumped over it), or past the holdover horizon -> :class:`OutOfRangeError`.

Ambiguous times (inside a step gap, or after an unconfirmed step) are answered with the
hull of every possibility: correct, but wide; :meth:`Corrector.flags` says so.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from ._errors import InvalidTimestampError, OutOfRangeError, UnknownNodeError
from ._fit._envelope import AMBIGUOUS, HOLDOVER, VOID
from ._table import CorrectionTable
from ._tablekey import TableKey

__all__ = ["AMBIGUOUS", "HOLDOVER", "OUT_OF_RANGE", "VOID", "Corrector"]

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
OnInvalid = Literal["raise", "inf"]
OUT_OF_RANGE = 8  #: flag: no answer for this timestamp (before the first sample, void, horizon)
_ROUNDING_NS = 0.5


@dataclass(frozen=True)
class _Compiled:
    """A table's cells as flat arrays; index 0 is "before the first cell", index m+1
    "after the last" (both invalid)."""

    starts: I64  # m+1 entries: cell starts, then the end of the last cell
    mid0: F64  # m+2 entries (padded with invalid cells at both ends)
    mid1: F64
    half0: F64
    half1: F64
    slo: F64
    shi: F64
    seg: npt.NDArray[np.int32]
    flags: npt.NDArray[np.uint8]
    cell_start: I64  # m+2, start of each padded cell (for δ)
    has_void: bool
    py_starts: list[int]
    py_rows: list[tuple[int, float, float, float, float, bool]]
    grid: _Grid

    @classmethod
    def build(cls, table: CorrectionTable) -> _Compiled:
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
        half0 = pad((c.hi0 - c.lo0) / 2 + _ROUNDING_NS, math.inf)
        half1 = pad((c.hi1 - c.lo1) / 2, 0.0)
        flags = pad(c.flags.astype(np.uint8), OUT_OF_RANGE)
        void = (flags & VOID) != 0
        flags = np.where(void, flags | OUT_OF_RANGE, flags).astype(np.uint8)
        half0 = np.where(void, math.inf, half0)
        mid0 = np.where(void, 0.0, mid0)
        mid1 = np.where(void, 0.0, mid1)
        half1 = np.where(void, 0.0, half1)
        cell_start = np.concatenate([[0], starts]).astype(np.int64)
        rows = [
            (int(cell_start[i]), float(mid0[i]), float(mid1[i]), float(half0[i]),
             float(half1[i]), bool(flags[i] & OUT_OF_RANGE))
            for i in range(m + 2)
        ]
        return cls(
            starts=starts, mid0=mid0, mid1=mid1, half0=half0, half1=half1,
            slo=pad(c.slo, 0.0), shi=pad(c.shi, 0.0),
            seg=pad(c.segment.astype(np.int32), -1).astype(np.int32), flags=flags,
            cell_start=cell_start, has_void=bool(void.any()), grid=_Grid.build(starts),
            py_starts=starts.tolist(), py_rows=rows,
        )

    def boundaries(self, flat: I64, verify: bool = True) -> npt.NDArray[np.intp] | None:
        """For sorted input: where each padded cell's run of timestamps begins and ends
        (found once per cell, not once per timestamp); ``None`` when not sorted. With
        ``verify=False`` the caller checks sortedness itself (runs must then be checked
        to be sorted and the boundaries non-decreasing)."""
        n = flat.size
        if n < 64 or flat[0] > flat[-1]:
            return None
        if verify and not bool(np.all(flat[1:] >= flat[:-1])):
            return None
        pos = np.searchsorted(flat, self.starts, side="left")
        bounds = np.concatenate([[0], pos, [n]]).astype(np.intp)
        if not verify and bool(np.any(np.diff(bounds) < 0)):
            return None
        return bounds

    def locate(self, ts: I64) -> npt.NDArray[np.intp]:
        """Padded cell index of every timestamp (0 = before, m+1 = after the table)."""
        flat = ts.reshape(-1)
        bounds = self.boundaries(flat)
        if bounds is not None:
            idx = np.repeat(np.arange(len(bounds) - 1, dtype=np.intp), np.diff(bounds))
        else:
            idx = self.grid.locate(self.starts, flat)
        return idx.reshape(ts.shape)


_GRID_MIN = 4_096  #: unsorted inputs at least this long use the grid, shorter ones a search


@dataclass(frozen=True)
class _Grid:
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
    def build(cls, starts: I64) -> _Grid:
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
        if flat.size < _GRID_MIN or not len(self.lo):
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


def _as_timestamps(ts_ns: Any, node: str, check_negative: bool = True) -> I64:
    arr = np.asarray(ts_ns)
    if arr.dtype.kind in "iu":
        out = arr.astype(np.int64, copy=False)
    elif arr.dtype.kind == "f":
        bad = ~np.isfinite(arr)
        if bad.any():
            i = int(np.flatnonzero(bad.reshape(-1))[0])
            raise InvalidTimestampError(f"node {node}: timestamp [{i}] is {arr.reshape(-1)[i]}")
        if not np.all(arr == np.floor(arr)):
            i = int(np.flatnonzero((arr != np.floor(arr)).reshape(-1))[0])
            raise InvalidTimestampError(
                f"node {node}: timestamp [{i}] = {arr.reshape(-1)[i]!r} is not whole ns")
        out = arr.astype(np.int64)
    else:
        raise InvalidTimestampError(
            f"node {node}: timestamps must be integer ns, got dtype {arr.dtype}")
    if check_negative:
        _check_nonnegative(out, node)
    return out


def _check_nonnegative(out: I64, node: str) -> None:
    if out.size and int(out.min()) < 0:
        i = int(np.argmin(out.reshape(-1)))
        raise InvalidTimestampError(
            f"node {node}: timestamp [{i}] = {out.reshape(-1)[i]} is negative")


class Corrector:
    """Correct node-local timestamps into reference time with guaranteed bounds.

    ``tables``: a mapping node -> :class:`CorrectionTable`, or an iterable of tables.
    """

    def __init__(self, tables: Mapping[str, CorrectionTable] | Iterable[CorrectionTable]):
        items = tables.values() if isinstance(tables, Mapping) else tables
        self._tables: dict[str, CorrectionTable] = {}
        self._compiled: dict[str, _Compiled] = {}
        self._store: Any = None
        self._store_version: Any = None
        for table in items:
            self._tables[table.node] = table
            self._compiled[table.node] = _Compiled.build(table)

    # -- construction from stores -------------------------------------------------------------
    @classmethod
    def from_store(cls, url: str, *, table_key: TableKey | None = None) -> Corrector:
        """Load every table of a store: a directory path, ``file://DIR``,
        ``redis://host:port/db`` or agent URLs. :meth:`refresh` reloads when the store changed.
        With ``table_key`` every table must be signed by that key (else
        :class:`~clocksync.SignatureError`)."""
        from ._store import open_store

        store = open_store(url, table_key=table_key)
        version = store.version()
        corrector = cls(store.read_all().values())
        corrector._store, corrector._store_version = store, version
        return corrector

    def refresh(self) -> bool:
        """Reload from the store if it changed since the last load; True if reloaded."""
        if self._store is None:
            return False
        version = self._store.version()
        if version == self._store_version:
            return False
        fresh = Corrector(self._store.read_all().values())
        self._tables, self._compiled = fresh._tables, fresh._compiled
        self._store_version = version
        return True

    # -- lookups --------------------------------------------------------------------------------
    @property
    def nodes(self) -> tuple[str, ...]:
        return tuple(sorted(self._tables))

    def table(self, node: str) -> CorrectionTable:
        try:
            return self._tables[node]
        except KeyError:
            known = ", ".join(self.nodes) or "none"
            raise UnknownNodeError(f"no correction table for node {node!r} (known: {known})") \
                from None

    def _get(self, node: str) -> _Compiled:
        self.table(node)
        return self._compiled[node]

    def _raise_out_of_range(self, node: str, c: _Compiled, ts: I64, bad: Any) -> None:
        flat_bad = np.flatnonzero(np.asarray(bad).reshape(-1))
        first = int(ts.reshape(-1)[flat_bad[0]])
        table = self._tables[node]
        lo = table.cells.start_ns[0] if len(table.cells) else 0
        raise OutOfRangeError(
            f"node {node}: {len(flat_bad)} timestamp(s) have no guaranteed correction "
            f"(first: {first} ns); the table covers local time from {lo} ns "
            f"(first sample) to {int(c.starts[-1])} ns, minus void stretches")

    # -- the calls ------------------------------------------------------------------------------
    def correct(self, node: str, ts_ns: Any, *, on_invalid: OnInvalid = "raise") -> Any:
        """``(ref_ns, bound_ns)``: scalar in -> ``(int, float)``; array in -> int64 and
        float64 arrays of the same shape."""
        c = self._get(node)
        if isinstance(ts_ns, int | np.integer) and not isinstance(ts_ns, bool):
            return self._correct_scalar(node, c, int(ts_ns), on_invalid)
        ts = _as_timestamps(ts_ns, node, check_negative=False)
        ref, bound, invalid = self._evaluate(c, ts, node)
        if invalid is not None:
            if on_invalid == "raise":
                self._raise_out_of_range(node, c, ts, invalid)
            ref = np.where(invalid, ts, ref)
            bound = np.where(invalid, math.inf, bound)
        if ts.ndim == 0:
            return int(ref), float(bound)
        return ref, bound

    def _correct_located(self, node: str, c: _Compiled, ts: I64, idx: npt.NDArray[np.intp],
                         on_invalid: OnInvalid) -> tuple[I64, F64]:
        """:meth:`correct` of non-negative timestamps whose cells ``idx`` are known."""
        ref, bound, invalid = _evaluate_gather(c, ts, idx)
        if invalid is not None:
            if on_invalid == "raise":
                self._raise_out_of_range(node, c, ts, invalid)
            ref = np.where(invalid, ts, ref)
            bound = np.where(invalid, math.inf, bound)
        return ref, bound

    def _correct_scalar(self, node: str, c: _Compiled, t: int, on_invalid: OnInvalid
                        ) -> tuple[int, float]:
        if t < 0:
            raise InvalidTimestampError(f"node {node}: timestamp {t} is negative")
        i = bisect.bisect_right(c.py_starts, t)
        start, m0, m1, h0, h1, invalid = c.py_rows[i]
        if invalid:
            if on_invalid == "raise":
                self._raise_out_of_range(node, c, np.array([t]), np.array([True]))
            return t, math.inf
        d = (t - start) / 1e9
        return t + round(m0 + m1 * d), h0 + h1 * d

    @staticmethod
    def _evaluate(c: _Compiled, ts: I64, node: str
                  ) -> tuple[I64, F64, npt.NDArray[np.bool_] | None]:
        flat = ts.reshape(-1)
        if flat.size and flat[0] < 0:
            _check_nonnegative(flat, node)
        bounds = c.boundaries(flat, verify=False)
        if bounds is not None:
            counts = np.diff(bounds)
            busy = np.flatnonzero(counts)
            if flat.size >= _RUN_MIN * len(busy):
                # a sorted-looking array whose runs turn out unsorted falls through
                done = _evaluate_runs(c, flat, bounds, busy, ts.shape)
                if done is not None:
                    return done  # sorted, and flat[0] >= 0 was checked: all non-negative
        _check_nonnegative(flat, node)
        return _evaluate_gather(c, ts, c.locate(ts))

    def interval(self, node: str, ts_ns: Any, *, on_invalid: OnInvalid = "raise") -> Any:
        """``(earliest_ns, latest_ns)``: the guaranteed interval of reference time."""
        ref, bound = self.correct(node, ts_ns, on_invalid=on_invalid)
        if isinstance(ref, int):
            if math.isinf(bound):
                return ref, ref  # only reachable with on_invalid="inf"; see flags()
            b = math.ceil(bound)
            return ref - b, ref + b
        b = np.ceil(np.where(np.isinf(bound), 0.0, bound)).astype(np.int64)
        return ref - b, ref + b

    def flags(self, node: str, ts_ns: Any) -> npt.NDArray[np.uint8]:
        """Per timestamp: HOLDOVER, AMBIGUOUS, VOID, OUT_OF_RANGE bits (0 = interpolated)."""
        c = self._get(node)
        ts = _as_timestamps(ts_ns, node)
        return np.asarray(c.flags[c.locate(ts)], dtype=np.uint8)

    def latency(self, src_node: str, src_ts_ns: Any, dst_node: str, dst_ts_ns: Any,
                *, on_invalid: OnInvalid = "raise") -> tuple[Any, Any]:
        """``(latency_ns, bound_ns)`` of ``dst - src`` in reference time.

        Across nodes the bound is the sum of both correction bounds. On one node the clock's
        offset changes only by its rate error over the interval: within one segment the
        offset difference lies in ``[slope_lo·Δ, slope_hi·Δ]`` (slopes from the table cells,
        or ±max skew when the two times are far apart); that interval is intersected with
        the two-correction one, so it is never looser.
        """
        src = _as_timestamps(src_ts_ns, src_node)
        dst = _as_timestamps(dst_ts_ns, dst_node)
        src, dst = np.broadcast_arrays(src, dst)
        if src_node == dst_node and src.size:
            c = self._get(src_node)
            # locate each timestamp once: the cells serve the corrections and the slopes
            i1, i2 = c.locate(src), c.locate(dst)
            r1, b1 = self._correct_located(src_node, c, src, i1, on_invalid)
            r2, b2 = self._correct_located(dst_node, c, dst, i2, on_invalid)
        else:
            r1, b1 = self.correct(src_node, src, on_invalid=on_invalid)
            r2, b2 = self.correct(dst_node, dst, on_invalid=on_invalid)
        lat = np.asarray(r2 - r1, dtype=np.float64)
        bound = np.asarray(b1 + b2, dtype=np.float64)
        if src_node == dst_node and src.size:
            seg1 = c.seg[i1]
            same = seg1 == c.seg[i2]
            same &= seg1 >= 0
            near = np.abs(i1 - i2) <= 1
            max_slope = self._tables[src_node].assumptions["max_skew_ppm"] * 1e3
            slo = np.where(near, np.minimum(c.slo[i1], c.slo[i2]), -max_slope)
            shi = np.where(near, np.maximum(c.shi[i1], c.shi[i2]), max_slope)
            raw = (dst - src).astype(np.float64)
            d_s = raw / 1e9
            slo *= d_s  # the offset change over the hop at either slope
            shi *= d_s
            lo_d, hi_d = np.minimum(slo, shi), np.maximum(slo, shi)
            two_lo, two_hi = lat - bound, lat + bound  # the two corrections' interval
            lo_d += raw
            lo_d -= 1.0
            hi_d += raw
            hi_d += 1.0
            lo = np.where(same, np.maximum(lo_d, two_lo), two_lo)
            hi = np.where(same, np.minimum(hi_d, two_hi), two_hi)
            finite = np.isfinite(bound)
            with np.errstate(invalid="ignore"):  # inf - inf where on_invalid="inf"; unused
                mid = lo + hi
                mid /= 2
                half = hi - lo
                half /= 2
            lat = np.where(finite, mid, lat)
            bound = np.where(finite, half, bound)
        if src.ndim == 0:
            return float(lat), float(bound)
        return lat, bound


_RUN_MIN = 256  #: sorted input uses per-cell runs when cells hold this many timestamps on average
_CHUNK = 65_536  #: elements per in-cache chunk of a run


def _evaluate_gather(c: _Compiled, ts: I64, idx: npt.NDArray[np.intp]
                 ) -> tuple[I64, F64, npt.NDArray[np.bool_] | None]:
    """One gather of the cell coefficients per timestamp."""
    delta = (ts - c.cell_start[idx]).astype(np.float64)
    delta *= 1e-9
    off = c.mid1[idx] * delta
    off += c.mid0[idx]
    ref = ts + np.rint(off).astype(np.int64)
    bound = c.half1[idx] * delta
    bound += c.half0[idx]
    n_cells = len(c.starts)
    invalid: npt.NDArray[np.bool_] | None = None
    if ts.size:
        lo_i, hi_i = int(idx.min()), int(idx.max())
        if lo_i == 0 or hi_i == n_cells or c.has_void:
            mask = (c.flags[idx] & OUT_OF_RANGE) != 0
            if mask.any():
                invalid = mask
    return ref, bound, invalid


def _evaluate_runs(c: _Compiled, flat: I64, bounds: npt.NDArray[np.intp],
                   busy: npt.NDArray[np.intp], shape: tuple[int, ...]
                   ) -> tuple[I64, F64, npt.NDArray[np.bool_] | None] | None:
    """Sorted input: each cell's run is corrected with scalar coefficients, in cache-sized
    chunks (no per-timestamp gather, no binary search). Sortedness is verified chunk by
    chunk as it goes (and across runs by the boundaries); ``None`` if the input is not
    sorted after all."""
    n = flat.size
    ref = np.empty(n, dtype=np.int64)
    bound = np.empty(n, dtype=np.float64)
    buf_i = np.empty(min(n, _CHUNK), dtype=np.int64)
    buf_o = np.empty(min(n, _CHUNK), dtype=np.float64)
    invalid: npt.NDArray[np.bool_] | None = None
    for k in busy.tolist():
        a, b = int(bounds[k]), int(bounds[k + 1])
        if c.flags[k] & OUT_OF_RANGE:
            if invalid is None:
                invalid = np.zeros(n, dtype=np.bool_)
            invalid[a:b] = True
        start, m0, m1 = int(c.cell_start[k]), float(c.mid0[k]), float(c.mid1[k]) * 1e-9
        h0, h1 = float(c.half0[k]), float(c.half1[k]) * 1e-9
        for x in range(a, b, _CHUNK):
            y = min(x + _CHUNK, b)
            m = y - x
            seg = flat[x:y]
            if (x > 0 and flat[x - 1] > seg[0]) or (m > 1 and not np.all(seg[1:] >= seg[:-1])):
                return None  # not sorted after all: the caller takes the general path
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
