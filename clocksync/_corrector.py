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

Scalar, array, sorted and unsorted inputs are corrected by one formula in one operation
order (see :mod:`._cells`): the same timestamp gets the same bits whichever way it comes.

For many events of many nodes (the latency pipeline), :meth:`Corrector.cell_stack` gives a
:class:`CellStack`: one locate per timestamp serves its correction, its flags and its cell
(indices of several nodes' cells in one space), and same-node latencies then come from the
cells and the corrections already made, without locating or correcting again.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from ._correct._cells import (
    OUT_OF_RANGE,
    Compiled,
    check_nonnegative,
    correct_scalar,
    evaluate,
    invalid_as_inf,
    same_node_interval,
)
from ._correct._cellstack import CellStack
from ._model._errors import InvalidTimestampError, OutOfRangeError, UnknownNodeError
from ._model._flags import AMBIGUOUS, HOLDOVER, VOID
from ._model._table import CorrectionTable
from ._model._tablekey import TableKey

__all__ = ["AMBIGUOUS", "HOLDOVER", "OUT_OF_RANGE", "VOID", "Corrector"]

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
U8 = npt.NDArray[np.uint8]
Idx = npt.NDArray[np.intp]
OnInvalid = Literal["raise", "inf"]


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
        check_nonnegative(out, node)
    return out



class Corrector:
    """Correct node-local timestamps into reference time with guaranteed bounds.

    ``tables``: a mapping node -> :class:`CorrectionTable`, or an iterable of tables.
    """

    def __init__(self, tables: Mapping[str, CorrectionTable] | Iterable[CorrectionTable]):
        items = tables.values() if isinstance(tables, Mapping) else tables
        self._tables: dict[str, CorrectionTable] = {}
        self._compiled: dict[str, Compiled] = {}
        self._stacks: dict[tuple[str, ...], CellStack] = {}  # see cell_stack
        self._store: Any = None
        self._store_version: Any = None
        self._strict = True
        self._load_errors: dict[str, str] = {}
        for table in items:
            self._tables[table.node] = table
            self._compiled[table.node] = Compiled.build(table)

    # -- construction from stores -------------------------------------------------------------
    @classmethod
    def from_store(cls, url: str, *, table_key: TableKey | None = None,
                   strict: bool = False) -> Corrector:
        """Load every table of a store: a directory path, ``file://DIR``,
        ``redis://host:port/db`` or agent URLs. :meth:`refresh` reloads when the store changed.
        With ``table_key`` every table must be signed by that key.

        A table that cannot be read (malformed, unsigned, badly signed) is left out and named
        in :attr:`load_errors`; the good ones are loaded. With ``strict=True`` the first such
        table raises its error (:class:`~clocksync.SchemaError`,
        :class:`~clocksync.SignatureError`, :class:`~clocksync.StoreError`). A store that
        cannot be reached at all always raises :class:`~clocksync.StoreError`."""
        from ._io._store import open_store

        store = open_store(url, table_key=table_key)
        version = store.version()
        errors: dict[str, str] | None = None if strict else {}
        corrector = cls(store.read_all(errors).values())
        corrector._store, corrector._store_version = store, version
        corrector._strict, corrector._load_errors = strict, errors or {}
        return corrector

    @property
    def load_errors(self) -> dict[str, str]:
        """Tables the last load from a store left out: node (or the file or agent URL when
        the node is unknown) -> reason. Empty when every table loaded, and for a Corrector
        built from tables."""
        return dict(self._load_errors)

    def refresh(self) -> bool:
        """Reload from the store if it changed since the last load; True if reloaded."""
        if self._store is None:
            return False
        version = self._store.version()
        if version == self._store_version:
            return False
        errors: dict[str, str] | None = None if self._strict else {}
        fresh = Corrector(self._store.read_all(errors).values())
        self._tables, self._compiled = fresh._tables, fresh._compiled
        self._load_errors = errors or {}
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

    def _get(self, node: str) -> Compiled:
        self.table(node)
        return self._compiled[node]

    def _raise_out_of_range(self, node: str, c: Compiled, ts: I64, bad: Any) -> None:
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

    def _correct_array(self, node: str, c: Compiled, ts: I64, on_invalid: OnInvalid,
                       want_cells: bool) -> tuple[I64, F64, Idx | None]:
        """:meth:`correct` of an array, with each timestamp's padded cell if ``want_cells``
        (found by the same locate that served the correction)."""
        ref, bound, invalid, cells = evaluate(c, ts, node, want_cells)
        if invalid is not None and on_invalid == "raise":
            self._raise_out_of_range(node, c, ts, invalid)
        ref, bound = invalid_as_inf(ts, ref, bound, invalid)
        return ref, bound, cells

    def _correct_scalar(self, node: str, c: Compiled, t: int, on_invalid: OnInvalid
                        ) -> tuple[int, float]:
        if t < 0:
            raise InvalidTimestampError(f"node {node}: timestamp {t} is negative")
        ref, bound, invalid = correct_scalar(c, t)
        if invalid:
            if on_invalid == "raise":
                self._raise_out_of_range(node, c, np.array([t]), np.array([True]))
            return t, math.inf
        return ref, bound

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
            r1, b1, i1 = self._correct_array(src_node, c, flat1, on_invalid, want_cells=True)
            r2, b2, i2 = self._correct_array(src_node, c, flat2, on_invalid, want_cells=True)
            assert i1 is not None and i2 is not None
            lat, bound = same_node_interval(
                c.slopes, i1, i2, self._max_slope(src_node), flat2 - flat1,
                np.asarray(r2 - r1, dtype=np.float64), np.asarray(b1 + b2, dtype=np.float64))
            lat, bound = lat.reshape(src.shape), bound.reshape(src.shape)
        else:
            r1, b1 = self.correct(src_node, src, on_invalid=on_invalid)
            r2, b2 = self.correct(dst_node, dst, on_invalid=on_invalid)
            lat = np.asarray(r2 - r1, dtype=np.float64)
            bound = np.asarray(b1 + b2, dtype=np.float64)
        if src.ndim == 0:
            return float(lat), float(bound)
        return lat, bound

    # -- many nodes at once ---------------------------------------------------------------------
    def cell_stack(self, nodes: Sequence[str]) -> CellStack | None:
        """The cells of ``nodes``' tables in one index space (cached until :meth:`refresh`
        reloads); ``None`` when a node has no table, a table no ``max_skew_ppm`` or the
        tables more than 700 million cells: then use :meth:`correct`, :meth:`flags` and
        :meth:`latency`. The stack answers as those do from the tables, so a subclass that
        changes what they answer overrides this method too (returning ``None``)."""
        key = tuple(nodes)
        if key not in self._stacks:
            if any(n not in self._tables
                   or "max_skew_ppm" not in self._tables[n].assumptions for n in key):
                return None
            if 3 * sum(len(self._compiled[n].slopes.slo) for n in key) + 3 >= 2**31:
                return None  # cell pairs must fit int32 (see slope_interval)
            self._stacks[key] = CellStack.build(
                key, [self._compiled[n] for n in key], [self._max_slope(n) for n in key])
        return self._stacks[key]
