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

For many events of many nodes (the latency pipeline), :meth:`Corrector.cell_stack` gives a
:class:`CellStack`: one locate per timestamp serves its correction, its flags and its cell
(indices of several nodes' cells in one space), and same-node latencies then come from the
cells and the corrections already made, without locating or correcting again.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from ._errors import InvalidTimestampError, OutOfRangeError, UnknownNodeError
from ._fit._envelope import AMBIGUOUS, HOLDOVER, VOID
from ._table import CorrectionTable
from ._tablekey import TableKey

__all__ = ["AMBIGUOUS", "HOLDOVER", "OUT_OF_RANGE", "VOID", "CellStack", "Corrector"]

I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]
F64 = npt.NDArray[np.float64]
U8 = npt.NDArray[np.uint8]
Idx = npt.NDArray[np.intp]
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
    slopes: _Slopes
    flags: npt.NDArray[np.uint8]
    cell_start: I64  # m+2, start of each padded cell (for δ)
    has_void: bool
    disagree_ns: float  # how far two roundings of one correction can differ (see build)
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
        # The gathered and the per-run evaluation (see _evaluate_gather, _evaluate_runs) round
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
            slopes=_Slopes.build(pad(c.slo, 0.0), pad(c.shi, 0.0),
                                 pad(c.segment.astype(np.int32), -1).astype(np.int32)),
            flags=flags,
            cell_start=cell_start, has_void=bool(void.any()), disagree_ns=disagree_ns,
            grid=_Grid.build(starts),
            py_starts=starts.tolist(), py_rows=rows,
        )

    def sorted_runs(self, flat: I64) -> list[tuple[int, int]] | None:
        """The sorted runs ``[a, b)`` that ``flat`` consists of (one when it is sorted), or
        ``None`` when it is short or has more runs than one per :data:`_MIN_RUN` timestamps
        (then the grid locates faster). One pass over the input."""
        n = flat.size
        if n < 64:
            return None
        down = flat[1:] < flat[:-1]
        n_down = int(np.count_nonzero(down))
        if n_down * _MIN_RUN > n:
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
class _Slopes:
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
    def build(cls, slo: F64, shi: F64, seg: I32) -> _Slopes:
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


_MIN_RUN = 4_096  #: a few sorted runs: this many timestamps per run on average (see locate)
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
        self._stacks: dict[tuple[str, ...], CellStack] = {}  # see cell_stack
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
        self._stacks = {}
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
        ref, bound, _ = self._correct_array(node, c, ts, on_invalid, want_cells=False)
        if ts.ndim == 0:
            return int(ref), float(bound)
        return ref, bound

    def _correct_array(self, node: str, c: _Compiled, ts: I64, on_invalid: OnInvalid,
                       want_cells: bool) -> tuple[I64, F64, Idx | None]:
        """:meth:`correct` of an array, with each timestamp's padded cell if ``want_cells``
        (found by the same locate that served the correction)."""
        ref, bound, invalid, cells = _evaluate(c, ts, node, want_cells)
        ref, bound = self._apply_invalid(node, c, ts, ref, bound, invalid, on_invalid)
        return ref, bound, cells

    def _correct_located(self, node: str, c: _Compiled, ts: I64, idx: Idx,
                         on_invalid: OnInvalid) -> tuple[I64, F64]:
        """:meth:`correct` of non-negative timestamps whose cells ``idx`` are known."""
        ref, bound, invalid = _evaluate_gather(c, ts, idx)
        return self._apply_invalid(node, c, ts, ref, bound, invalid, on_invalid)

    def _apply_invalid(self, node: str, c: _Compiled, ts: I64, ref: I64, bound: F64,
                       invalid: npt.NDArray[np.bool_] | None, on_invalid: OnInvalid
                       ) -> tuple[I64, F64]:
        """Refuse (``"raise"``) or mark (``ref = t, bound = inf``) the uncorrectable ones."""
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

    def flags(self, node: str, ts_ns: Any) -> U8:
        """Per timestamp: HOLDOVER, AMBIGUOUS, VOID, OUT_OF_RANGE bits (0 = interpolated)."""
        c = self._get(node)
        ts = _as_timestamps(ts_ns, node)
        return np.asarray(c.flags[c.locate(ts)], dtype=np.uint8)

    def _max_slope(self, node: str) -> float:
        """The table's bound on the clock's rate error, ns per s."""
        return float(self._tables[node].assumptions["max_skew_ppm"] * 1e3)

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
            flat1, flat2 = src.reshape(-1), dst.reshape(-1)
            lat, bound = self._latency_located(src_node, c, flat1, flat2, c.locate(flat1),
                                               c.locate(flat2), on_invalid)
            lat, bound = lat.reshape(src.shape), bound.reshape(src.shape)
        else:
            r1, b1 = self.correct(src_node, src, on_invalid=on_invalid)
            r2, b2 = self.correct(dst_node, dst, on_invalid=on_invalid)
            lat = np.asarray(r2 - r1, dtype=np.float64)
            bound = np.asarray(b1 + b2, dtype=np.float64)
        if src.ndim == 0:
            return float(lat), float(bound)
        return lat, bound

    def _latency_located(self, node: str, c: _Compiled, src: I64, dst: I64, i1: Idx, i2: Idx,
                         on_invalid: OnInvalid) -> tuple[F64, F64]:
        """Same-node :meth:`latency` of 1-D timestamps whose padded cells are known."""
        r1, b1 = self._correct_located(node, c, src, i1, on_invalid)
        r2, b2 = self._correct_located(node, c, dst, i2, on_invalid)
        lat = np.asarray(r2 - r1, dtype=np.float64)
        bound = np.asarray(b1 + b2, dtype=np.float64)
        lo_d, hi_d, same = _slope_interval(c.slopes, i1, i2, self._max_slope(node), dst - src)
        return _tighten(lo_d, hi_d, same, lat - bound, lat + bound, lat, bound)

    # -- many nodes at once ---------------------------------------------------------------------
    def cell_stack(self, nodes: Sequence[str]) -> CellStack | None:
        """The cells of ``nodes``' tables in one index space (cached until :meth:`refresh`
        reloads); ``None`` when a node has no table, a table no ``max_skew_ppm`` or the
        tables more than 700 million cells, or when a subclass changes :meth:`correct`,
        :meth:`flags` or :meth:`latency` (the stack would bypass it): then use those."""
        key = tuple(nodes)
        if any(getattr(type(self), f) is not getattr(Corrector, f)
               for f in ("correct", "flags", "latency")):
            return None
        if key not in self._stacks:
            if any(n not in self._tables
                   or "max_skew_ppm" not in self._tables[n].assumptions for n in key):
                return None
            if 3 * sum(len(self._compiled[n].slopes.slo) for n in key) + 3 >= 2**31:
                return None  # cell pairs must fit int32 (see _slope_interval)
            self._stacks[key] = CellStack.build(self, key)
        return self._stacks[key]

    def _correct_cells(self, node: str, ts: I64) -> tuple[I64, F64, U8, Idx]:
        """``correct(node, ts, on_invalid="inf")``, ``flags(node, ts)`` and the padded cells,
        from one locate."""
        c = self._get(node)
        ref, bound, cells = self._correct_array(node, c, ts, "inf", want_cells=True)
        assert cells is not None
        return ref, bound, np.asarray(c.flags[cells], dtype=np.uint8), cells


@dataclass(frozen=True, eq=False)
class CellStack:
    """The padded cells of several nodes' tables side by side: node ``k``'s cell ``i`` is
    cell ``offsets[k] + i`` of the stack, so per-event cell indices of every node live in one
    int32 array and the same-node slope bounds of many nodes' hops take one pass.

    Made by :meth:`Corrector.cell_stack`; ``corrector`` is the one whose tables it holds.
    """

    corrector: Corrector
    nodes: tuple[str, ...]
    offsets: I64  # first stack cell of each node, then the total
    slopes: _Slopes
    max_slope: F64  # per stack cell: its node's bound on the rate error, ns/s
    uniform_slope: float | None  # the one value of max_slope when every node shares it
    disagree_ns: float  # the largest of the nodes' _Compiled.disagree_ns

    @classmethod
    def build(cls, corrector: Corrector, nodes: tuple[str, ...]) -> CellStack:
        compiled = [corrector._get(n) for n in nodes]
        sizes = [len(c.slopes.slo) for c in compiled]
        slopes = [corrector._max_slope(n) for n in nodes]
        offsets = np.zeros(len(nodes) + 1, dtype=np.int64)
        np.cumsum(sizes, out=offsets[1:])

        def cat(name: str, dtype: Any) -> Any:
            parts = [getattr(c.slopes, name) for c in compiled]
            return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)

        return cls(
            corrector=corrector, nodes=nodes, offsets=offsets,
            slopes=_Slopes.build(cat("slo", np.float64), cat("shi", np.float64),
                                 cat("seg", np.int32)),
            max_slope=np.repeat(np.array(slopes, dtype=np.float64), sizes),
            uniform_slope=slopes[0] if len(set(slopes)) == 1 else None,
            disagree_ns=max((c.disagree_ns for c in compiled), default=1.0),
        )

    def correct(self, code: int, ts_ns: I64) -> tuple[I64, F64, U8, I32]:
        """Node ``nodes[code]``'s ``(ref_ns, bound_ns, flags, cell)`` of non-negative int64
        timestamps, from one locate: ``ref_ns, bound_ns`` as ``correct(on_invalid="inf")``,
        ``flags`` as :meth:`Corrector.flags`, ``cell`` the stack cell of each timestamp."""
        ref, bound, flags, cells = self.corrector._correct_cells(self.nodes[code], ts_ns)
        stack_cells = np.empty(cells.shape, dtype=np.int32)  # the cells fit (cell_stack)
        np.add(cells, int(self.offsets[code]), out=stack_cells, casting="unsafe")
        return ref, bound, flags, stack_cells

    def same_node_latency(self, src_ts_ns: I64, dst_ts_ns: I64, src_cell: I32, dst_cell: I32,
                          lat_ns: F64, bound_ns: F64, raw_ns: I64 | None = None
                          ) -> tuple[F64, F64]:
        """:meth:`Corrector.latency` of same-node hops (1-D arrays; each hop on one node, any
        mix of nodes), given their stack cells (from :meth:`correct`) and ``lat_ns, bound_ns``:
        the difference of the two corrections :meth:`correct` gave and the sum of their
        bounds (``raw_ns``: ``dst_ts_ns - src_ts_ns`` if known). Nothing is located or
        corrected again, save for the rare hops whose result depends on how the corrections
        were rounded (see below); bit-identical results.

        :meth:`correct` evaluates sorted runs in another rounding order than
        :meth:`Corrector.latency` does, so the two-correction interval may differ by
        ``disagree_ns`` per correction (and a few units in the last place). Where the slope
        interval lies strictly inside the two-correction one by more than that, the result
        is the slope interval's, whichever rounding; elsewhere (another segment, steps,
        ties) the hop is corrected again as :meth:`Corrector.latency` does.
        """
        n = len(lat_ns)
        lat, bound = np.empty(n, dtype=np.float64), np.empty(n, dtype=np.float64)
        redo: list[Idx] = []
        for a in range(0, n, _CHUNK):  # in-cache chunks: no full-size temporaries
            part = slice(a, min(a + _CHUNK, n))
            raw = (dst_ts_ns[part] - src_ts_ns[part]) if raw_ns is None else raw_ns[part]
            unsafe = self._chunk(src_cell[part], dst_cell[part], raw, lat_ns[part],
                                 bound_ns[part], lat[part], bound[part])
            if unsafe is not None:
                redo.append(unsafe + a)
        if redo:
            self._redo(np.concatenate(redo), src_ts_ns, dst_ts_ns, src_cell, dst_cell, lat,
                       bound)
        return lat, bound

    def _chunk(self, c1: I32, c2: I32, raw: I64, lat_in: F64, bound_in: F64, lat: F64,
               bound: F64) -> Idx | None:
        """One chunk of :meth:`same_node_latency` into ``lat, bound``: the hops to redo."""
        ms = self.uniform_slope if self.uniform_slope is not None else self.max_slope
        lo_d, hi_d, same = _slope_interval(self.slopes, c1, c2, ms, raw)
        two_lo, two_hi = lat_in - bound_in, lat_in + bound_in
        # each of the four values may be off by disagree_ns; the last term covers rounding
        # of the differences and sums themselves (NaN or inf, so nothing is safe, with inf)
        scale = sum(abs(float(f(x))) for x in (lat_in, bound_in) for f in (np.max, np.min))
        margin = 4 * self.disagree_ns + 1e-14 * scale
        gap_lo, gap_hi = lo_d - two_lo, two_hi - hi_d
        if bool(same.all()) and float(gap_lo.min()) > margin and float(gap_hi.min()) > margin:
            # the slope interval lies inside the other: it is the intersection (_tighten's)
            _midpoint(lo_d, hi_d, lat, bound)
            return None
        lat[:], bound[:] = _tighten(lo_d, hi_d, same, two_lo, two_hi, lat_in, bound_in)
        return np.flatnonzero(~(same & (gap_lo > margin) & (gap_hi > margin)))

    def _redo(self, redo: Idx, src_ts: I64, dst_ts: I64, src_cell: I32, dst_cell: I32,
              lat: F64, bound: F64) -> None:
        """:meth:`Corrector.latency` (corrections included) of hops ``redo``, in place."""
        c1, c2 = src_cell[redo].astype(np.intp), dst_cell[redo].astype(np.intp)
        code = np.searchsorted(self.offsets, c1, side="right") - 1
        for k in np.unique(code).tolist():
            mine = np.flatnonzero(code == k)
            node, off = self.nodes[k], int(self.offsets[k])
            at = redo[mine]
            lat[at], bound[at] = self.corrector._latency_located(
                node, self.corrector._get(node), src_ts[at], dst_ts[at], c1[mine] - off,
                c2[mine] - off, "raise")


def _slope_interval(slopes: _Slopes, i1: npt.NDArray[np.integer[Any]],
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


def _tighten(lo_d: F64, hi_d: F64, same: npt.NDArray[np.bool_], two_lo: F64, two_hi: F64,
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
        mid, half = _midpoint(lo, hi, half=hi)
    if finite.all():
        return mid, half
    return np.where(finite, mid, lat), np.where(finite, half, bound)


def _midpoint(lo: F64, hi: F64, mid: F64 | None = None, half: F64 | None = None
              ) -> tuple[F64, F64]:
    """``[lo, hi]`` as ``(latency, bound)``: ``(lo + hi)/2, (hi - lo)/2`` (into ``mid``,
    ``half`` if given; ``half`` may be ``hi``)."""
    mid = np.add(lo, hi, out=mid)
    mid /= 2
    half = np.subtract(hi, lo, out=half)
    half /= 2
    return mid, half


_RUN_MIN = 256  #: sorted input uses per-cell runs when cells hold this many timestamps on average
_CHUNK = 65_536  #: elements per in-cache chunk of a run


def _evaluate(c: _Compiled, ts: I64, node: str, want_cells: bool
              ) -> tuple[I64, F64, npt.NDArray[np.bool_] | None, Idx | None]:
    """``(ref, bound, invalid or None, padded cells if want_cells)`` of ``ts`` (negative
    timestamps refused): a sorted input dense in cells per cell's stretch (:func:`_evaluate_runs`
    rounding), any other gathered (:func:`_evaluate_gather` rounding), its cells found per
    sorted run when it has few, else on the grid."""
    flat = ts.reshape(-1)
    runs = c.sorted_runs(flat)
    if runs is None:
        _check_nonnegative(flat, node)
        idx = c.grid.locate(c.starts, flat)
    else:
        if min(int(flat[a]) for a, _ in runs) < 0:  # each run's first is its least
            _check_nonnegative(flat, node)
        if len(runs) == 1:  # sorted
            bounds = c.boundaries(flat)
            busy = np.flatnonzero(np.diff(bounds))
            if flat.size >= _RUN_MIN * len(busy):
                cells = c.cells_of_runs(bounds).reshape(ts.shape) if want_cells else None
                return (*_evaluate_runs(c, flat, bounds, busy, ts.shape), cells)
            idx = c.cells_of_runs(bounds)
        else:
            idx = c.cells_of_sorted(flat, runs)
    idx = idx.reshape(ts.shape)
    return (*_evaluate_gather(c, ts, idx), idx)


def _evaluate_gather(c: _Compiled, ts: I64, idx: npt.NDArray[np.intp]
                 ) -> tuple[I64, F64, npt.NDArray[np.bool_] | None]:
    """One gather of the cell coefficients per timestamp, in cache-sized chunks:
    ``δ = (t - start)·1e-9`` s, ``ref = t + rint(mid1·δ + mid0)``,
    ``bound = half1·δ + half0``."""
    flat_t, flat_i = ts.reshape(-1), idx.reshape(-1)
    n = flat_t.size
    ref: I64 = np.empty(n, dtype=np.int64)
    bound: F64 = np.empty(n, dtype=np.float64)
    size = min(n, _CHUNK)
    buf_i = np.empty(size, dtype=np.int64)
    buf_d, buf_o, buf_c = (np.empty(size, dtype=np.float64) for _ in range(3))
    for x in range(0, n, _CHUNK):
        y = min(x + _CHUNK, n)
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


def _evaluate_runs(c: _Compiled, flat: I64, bounds: npt.NDArray[np.intp],
                   busy: npt.NDArray[np.intp], shape: tuple[int, ...]
                   ) -> tuple[I64, F64, npt.NDArray[np.bool_] | None]:
    """Sorted input: each cell's stretch is corrected with scalar coefficients, in
    cache-sized chunks (no per-timestamp gather, no binary search):
    ``ref = t + rint(mid0 + (t - start)·(mid1·1e-9))``, ``bound`` alike."""
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
