"""Per-request hops from stage events, vectorized: pivot the events by request, correct every
timestamp with its node's table, and give each hop its table-only interval.

Sign conventions: a hop's latency is ``true_ref(dst event) - true_ref(src event)`` (ns);
``raw_latency_ns = dst_ts_ns - src_ts_ns`` uses the nodes' local clocks as they are, so it
can be negative across nodes. The table-only interval is :meth:`Corrector.latency`'s: for a
same-node hop only the clock's rate error over the hop (asked of the corrector), for a
cross-node hop the difference of the two corrections with the sum of their bounds (taken
from the corrected stamps, which hold exactly those).

Nothing here loops over requests in Python: request ids are dictionary-encoded by Arrow,
stage events are scattered into ``(request, stage)`` slots with numpy, and the corrector is
called once per node for the timestamps (in input order, so a file sorted by node and time
gives it sorted runs). A :class:`clocksync.Corrector` (one with ``cell_stack``) also hands
back each timestamp's table cell, from the same locate: the same-node hops of every node
then get their bounds in one pass from those cells and the corrections already made. Other
correctors are asked ``correct``, ``flags`` and, per node, ``latency``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from .._correct._cellstack import CellStack
from .._corrector import HOLDOVER
from .._model._errors import ClockSyncError, InputError
from .._model._units import unit_hint
from ._arrow import dictionary_codes, group_order, index_in, unique_dictionary
from ._schema import hop_name, hops_of

__all__ = [
    "CorrectorLike",
    "HopArrays",
    "Pivot",
    "StageStamps",
    "correct_stamps",
    "pivot_events",
    "table_hops",
]

log = logging.getLogger(__name__)

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
I32 = npt.NDArray[np.int32]
BoolA = npt.NDArray[np.bool_]


class CorrectorLike(Protocol):
    """What the pipeline needs from :class:`clocksync.Corrector`.

    Optional: ``cell_stack(nodes) -> CellStack | None`` (as :meth:`Corrector.cell_stack`):
    one locate per timestamp then serves correction, flags and same-node hop bounds; without
    it (or when it returns ``None``) the methods below are called.
    """

    @property
    def nodes(self) -> tuple[str, ...]: ...

    def correct(self, node: str, ts_ns: Any, *, on_invalid: Any = "raise") -> Any: ...

    def flags(self, node: str, ts_ns: Any) -> Any: ...

    def table(self, node: str) -> Any: ...

    def latency(
        self, src_node: str, src_ts_ns: Any, dst_node: str, dst_ts_ns: Any
    ) -> tuple[Any, Any]: ...


@dataclass(frozen=True, slots=True)
class Pivot:
    """Stage events laid out per request.

    Attributes:
        events: the events with a known stage (``row`` indexes into it).
        request_ids: the distinct request ids (R).
        stages: the stage chain (S).
        node_names: distinct node names; ``node`` holds indices into it.
        row: ``(R, S)`` event row index of each stage, -1 when the request lacks it.
        ts_ns: ``(R, S)`` local timestamps (0 where missing).
        node: ``(R, S)`` node index (-1 where missing).
        duplicates: events dropped because their ``(request, stage)`` came earlier.
        duplicate_examples: a few request ids with duplicate stages.
        unknown_stage: events whose stage is not in the chain (ignored, counted).
        incomplete: requests lacking at least one stage of the chain.
        event_node: node index of every row of ``events``.
        event_ts: ``ts_ns`` of every row of ``events``.
        unknown_stages: stage name -> events of that stage outside the chain.
        resolution_ns: ``(R, S)`` stamp resolution (the true time lies in
            ``[t, t + resolution)``; 0 for exact stamps), or ``None`` when every stamp is exact.
        all_rows_used: every row of ``events`` fills a slot (else only the slots' rows are
            corrected).
        missing_extra: incomplete requests by what they lack, beyond missing chain stages
            (pairs by parent: ``"parent of <stage>"``).
    """

    events: pa.Table
    request_ids: pa.Array
    stages: tuple[str, ...]
    node_names: tuple[str, ...]
    row: npt.NDArray[np.int64]
    ts_ns: I64
    node: I32
    duplicates: int
    duplicate_examples: tuple[str, ...]
    unknown_stage: int
    incomplete: int
    event_node: npt.NDArray[np.int64]
    event_ts: I64
    unknown_stages: dict[str, int] = field(default_factory=dict)
    resolution_ns: I64 | None = None
    all_rows_used: bool = True
    missing_extra: dict[str, int] = field(default_factory=dict)

    def missing_stages(self) -> dict[str, int]:
        """Stage -> requests lacking it (stages no request lacks are left out)."""
        if not self.incomplete:
            return {}
        lacking = (self.row < 0).sum(axis=0)
        out = {stage: int(n) for stage, n in zip(self.stages, lacking, strict=True) if n}
        return out | self.missing_extra


def pivot_events(table: pa.Table, stages: Sequence[str]) -> Pivot:
    """Lay the events of ``table`` out per request and stage (first occurrence wins).

    Request ids marked as one dictionary of distinct values (a file that says its row
    groups hold whole requests, see :func:`~._arrow.unique_dictionary`) are not hashed. A
    file whose claim is false splits a request across row groups: its parts then show as
    incomplete requests sharing an id, which is checked (hashing those few ids only), and
    the ids are then grouped by hashing them all."""
    chain = tuple(stages)
    hops_of(chain)  # validates the chain
    sidx = index_in(table.column("stage"), chain)
    known = sidx >= 0
    unknown = int((~known).sum())
    unknown_stages: dict[str, int] = {}
    if unknown:
        other = pc.value_counts(table.column("stage").filter(pa.array(~known)))
        unknown_stages = {str(v["values"]): int(v["counts"]) for v in other.to_pylist()}
        unknown_stages = dict(sorted(unknown_stages.items(), key=lambda kv: (-kv[1], kv[0])))
        table = table.filter(pa.array(known))
        sidx = sidx[known]
    claimed = unique_dictionary(table, "request_id")
    pivot = _pivot(table, chain, sidx, unknown, claimed)
    if claimed and pivot.incomplete:
        parts = pivot.request_ids.take(pa.array(np.flatnonzero((pivot.row < 0).any(axis=1))))
        if len(pc.unique(parts)) < len(parts):  # one request in several row groups
            log.warning("request ids: the file's claim of whole requests per row group is "
                        "false (a request spans row groups); grouping ids by hashing")
            pivot = _pivot(table, chain, sidx, unknown, False)
    return dataclasses.replace(pivot, unknown_stages=unknown_stages) if unknown else pivot


def _pivot(table: pa.Table, chain: tuple[str, ...], sidx: I64, unknown: int,
           unique: bool) -> Pivot:
    n_stages = len(chain)
    rid, request_ids = dictionary_codes(table.column("request_id"), used_only=True,
                                        unique=unique)
    nid, node_names = dictionary_codes(table.column("node"))
    n_req = len(request_ids)
    key = rid * n_stages + sidx
    rows = np.arange(table.num_rows, dtype=np.int64)
    first = np.full(n_req * n_stages, table.num_rows, dtype=np.int64)
    counts = np.bincount(key, minlength=n_req * n_stages)
    dup_slots = np.flatnonzero(counts > 1)
    if len(dup_slots):
        np.minimum.at(first, key, rows)  # the first occurrence of a duplicate wins
    else:
        first[key] = rows  # one event per slot: a plain scatter
    missing = first >= table.num_rows
    ts_all = table.column("ts_ns").to_numpy().astype(np.int64, copy=False)
    if not missing.any():  # every request complete: plain gathers
        row = first.reshape(n_req, n_stages)
        ts = ts_all[row]
        node = nid.astype(np.int32)[row]
    else:
        row = np.where(missing, -1, first).reshape(n_req, n_stages)
        safe = np.maximum(row, 0)
        ts = np.where(row >= 0, ts_all[safe] if len(ts_all) else 0, 0).astype(np.int64)
        node = np.where(row >= 0, nid[safe] if len(nid) else 0, -1).astype(np.int32)
    examples = tuple(request_ids.take(pa.array(dup_slots[:5] // n_stages)).to_pylist())
    return Pivot(
        events=table,
        request_ids=request_ids,
        stages=chain,
        node_names=tuple(node_names.to_pylist()),
        row=row,
        ts_ns=ts,
        node=node,
        duplicates=int((counts[dup_slots] - 1).sum()),
        duplicate_examples=examples,
        unknown_stage=unknown,
        incomplete=int((row < 0).any(axis=1).sum()),
        event_node=nid,
        event_ts=ts_all,
        resolution_ns=slot_resolution(table, row),
    )


def slot_resolution(table: pa.Table, row: npt.NDArray[np.int64]) -> I64 | None:
    """The ``resolution_ns`` column at the slots ``row`` (-1: missing), 0 where a stamp is
    exact (null, or at most 1 ns); ``None`` when every stamp is exact."""
    if "resolution_ns" not in table.column_names:
        return None
    col = table.column("resolution_ns")
    res = np.asarray((col.fill_null(0) if col.null_count else col).to_numpy(), dtype=np.int64)
    if not len(res) or int(res.max()) <= 1:
        return None
    coarse = np.empty(len(res) + 1, dtype=np.int64)
    np.multiply(res, res > 1, out=coarse[:-1])
    coarse[-1] = 0  # (row -1: a missing slot)
    return coarse[row]


@dataclass(frozen=True, slots=True)
class EventCorrections:
    """Each event's correction by :meth:`CellStack.correct`, made once and kept with the
    events (a live collector's events enter several steps), aligned with a table's rows.

    Attributes:
        ref_ns, bound_ns, flags: as :meth:`CellStack.correct` gives them (``bound_ns``
            infinite where there is no guaranteed correction).
        cell: the padded cell of the node's table (not of a stack).
        compiled: node -> the compiled table the rows of that node were corrected with
            (``None``: rows of the node were corrected with several).
    """

    ref_ns: I64
    bound_ns: F64
    flags: npt.NDArray[np.uint8]
    cell: I32
    compiled: dict[str, Any]

    @classmethod
    def of(cls, stack: CellStack, code: npt.NDArray[np.integer[Any]], ts_ns: I64
           ) -> EventCorrections:
        """Every row corrected by ``stack``: ``code``, each row's node (an index into
        ``stack.nodes``; -1: a node it has no table of, not correctable), ``ts_ns`` its
        stamp."""
        n, n_nodes = len(ts_ns), len(stack.nodes)
        out = cls(np.zeros(n, np.int64), np.full(n, np.inf), np.zeros(n, np.uint8),
                  np.zeros(n, np.int32), dict(zip(stack.nodes, stack.compiled, strict=True)))
        code = np.asarray(code, dtype=np.int64)
        order, bounds = group_order(np.where(code >= 0, code, n_nodes), n_nodes + 1)
        for k in range(n_nodes):
            rows = order[bounds[k]:bounds[k + 1]]
            if not len(rows):
                continue
            r, b, flags, cell = stack.correct(k, ts_ns[rows])
            out.ref_ns[rows], out.bound_ns[rows], out.flags[rows] = r, b, flags
            out.cell[rows] = cell - int(stack.offsets[k])
        return out

    @property
    def nbytes(self) -> int:
        return sum(int(a.nbytes) for a in (self.ref_ns, self.bound_ns, self.flags, self.cell))

    def rows(self, at: npt.NDArray[Any]) -> EventCorrections:
        """Rows ``at`` (an index or a mask)."""
        return EventCorrections(self.ref_ns[at], self.bound_ns[at], self.flags[at],
                                self.cell[at], self.compiled)

    @staticmethod
    def concat(parts: Sequence[EventCorrections]) -> EventCorrections:
        compiled: dict[str, Any] = {}
        for p in parts:
            for node, c in p.compiled.items():
                if compiled.setdefault(node, c) is not c:
                    compiled[node] = None
        return EventCorrections(np.concatenate([p.ref_ns for p in parts]),
                                np.concatenate([p.bound_ns for p in parts]),
                                np.concatenate([p.flags for p in parts]),
                                np.concatenate([p.cell for p in parts]), compiled)

    def serves(self, stack: CellStack | None) -> bool:
        """Whether these are the corrections ``stack`` makes (its nodes' tables are those
        the rows were corrected with)."""
        return stack is not None and all(
            c is not None and self.compiled.get(n) is c
            for n, c in zip(stack.nodes, stack.compiled, strict=True))


@dataclass(frozen=True, slots=True)
class StageStamps:
    """Corrected timestamps per ``(request, stage)`` slot.

    Attributes:
        ref_ns: midpoint of the guaranteed reference-time interval (0 where unusable).
        bound_ns: its half-width (NaN where unusable).
        usable: slot present and covered by its node's table.
        holdover: the node's clock was free-running (table in holdover) at that event.
        out_of_range: requests dropped because a timestamp has no guaranteed correction.
        out_of_range_nodes: ``node -> number of uncorrectable events``.
        cell: the cell of ``stack`` that corrected each slot (meaningful where usable), or
            ``None`` when the corrector offers no :class:`clocksync.CellStack`.
        stack: the node tables' cells, in the order of :attr:`Pivot.node_names`.
    """

    ref_ns: I64
    bound_ns: F64
    usable: BoolA
    holdover: BoolA
    out_of_range: int
    out_of_range_nodes: dict[str, int]
    cell: I32 | None = None
    stack: CellStack | None = None


def _cell_stack(corrector: CorrectorLike, nodes: tuple[str, ...]) -> CellStack | None:
    """The corrector's :class:`CellStack` of ``nodes``, if it offers one."""
    make = getattr(corrector, "cell_stack", None)
    return None if make is None else make(nodes)


@dataclass(frozen=True, slots=True)
class _Rows:
    """One node's event rows in input order: a few slices, or (scattered rows) an index."""

    slices: tuple[tuple[int, int], ...]
    index: npt.NDArray[np.int64] | None = None

    def take(self, a: npt.NDArray[Any]) -> npt.NDArray[Any]:
        if self.index is not None:
            return a[self.index]
        if len(self.slices) == 1:
            return a[self.slices[0][0]:self.slices[0][1]]  # a view: no copy
        return np.concatenate([a[x:y] for x, y in self.slices] or [a[:0]])

    def put(self, dst: npt.NDArray[Any], values: npt.NDArray[Any]) -> None:
        if self.index is not None:
            dst[self.index] = values
            return
        at = 0
        for x, y in self.slices:
            dst[x:y] = values[at:at + y - x]
            at += y - x


_MAX_RUNS_FRACTION = 1 / 4096  #: more node runs than this per event: group by an index


def _node_rows(ev_node: npt.NDArray[np.int64], n_groups: int) -> list[_Rows]:
    """Each node's rows (codes ``0..n_groups-1``) in input order. A file sorted by node within
    row groups (as written by ``write_events``) has few runs of one node: slices, no sort."""
    n = len(ev_node)
    if not n:
        return [_Rows(()) for _ in range(n_groups)]
    change = np.flatnonzero(ev_node[1:] != ev_node[:-1]) + 1
    if len(change) <= max(64, n * _MAX_RUNS_FRACTION):
        starts = np.concatenate([[0], change]).astype(np.int64)
        ends = np.append(change, n).astype(np.int64)
        codes = ev_node[starts]
        if int(codes.min()) >= 0 and int(codes.max()) < n_groups:
            runs: list[list[tuple[int, int]]] = [[] for _ in range(n_groups)]
            for k, a, b in zip(codes.tolist(), starts.tolist(), ends.tolist(), strict=True):
                runs[k].append((a, b))
            return [_Rows(tuple(r)) for r in runs]
    order, bounds = group_order(ev_node, n_groups)
    return [_Rows((), order[bounds[k]:bounds[k + 1]]) for k in range(n_groups)]


def correct_stamps(pivot: Pivot, corrector: CorrectorLike, skip_bad: bool = False,
                   corrections: EventCorrections | None = None) -> StageStamps:
    """Correct every present slot with its node's table (one call per node).

    A timestamp the node's table cannot correct (before its first sample, in a void stretch,
    past the holdover horizon) makes the whole request unusable: fatal (:class:`InputError`
    naming the node and the count) unless ``skip_bad``, when it is counted.

    ``corrections``: each row of ``pivot.events`` corrected before, used (the same bits)
    while the corrector's tables are those they were made with.
    """
    shape = pivot.ts_ns.shape
    n_nodes = len(pivot.node_names)
    slot_row = pivot.row.reshape(-1)
    every_slot = pivot.incomplete == 0  # no request lacks a stage: every slot has its row
    present = None if every_slot else np.flatnonzero(slot_row >= 0)
    rows = slot_row if present is None else slot_row[present]
    # correct by event row, grouped by node in input order: a file sorted by (node, ts_ns)
    # within time-ordered row groups (as written by write_events) hands the corrector sorted
    # runs (its fast path). Rows of dropped duplicates get node n_nodes: not corrected.
    n_ev = pivot.events.num_rows
    some_rows = bool(pivot.duplicates) or not pivot.all_rows_used
    if some_rows:
        ev_node = np.full(n_ev, n_nodes, dtype=np.int64)
        ev_node[rows] = pivot.event_node[rows]
    else:  # every event fills its slot
        ev_node = pivot.event_node
    stack = _cell_stack(corrector, pivot.node_names)
    kept = corrections
    cached = None
    if kept is not None and kept.serves(stack) and (n_ev == 0 or int(ev_node.min()) >= 0):
        assert stack is not None
        cached = _cached_rows(kept, stack, ev_node, skip_bad)
    cell: I32 | None
    if cached is not None:
        ev_ref, ev_bound, ev_hold, ev_cell, ev_ok, oor_nodes = cached
    else:
        ev_ref, ev_bound, ev_hold, ev_cell, ev_ok, oor_nodes = _corrected_rows(
            pivot, corrector, stack, ev_node, skip_bad)
    any_hold = bool(ev_hold[rows].any()) if some_rows else bool(ev_hold.any())
    if present is None:  # every slot present: plain gathers
        ref, bound = ev_ref[pivot.row], ev_bound[pivot.row]
        holdover = ev_hold[pivot.row] if any_hold else np.zeros(shape, dtype=bool)
        usable = ev_ok[pivot.row] if oor_nodes else np.ones(shape, dtype=bool)
        cell = ev_cell[pivot.row] if stack is not None else None
    else:
        ref = np.zeros(shape, dtype=np.int64)
        bound = np.full(shape, np.nan)
        holdover = np.zeros(shape, dtype=bool)
        usable = np.zeros(shape, dtype=bool)
        ref.reshape(-1)[present] = ev_ref[rows]
        bound.reshape(-1)[present] = ev_bound[rows]
        holdover.reshape(-1)[present] = ev_hold[rows]
        usable.reshape(-1)[present] = ev_ok[rows]
        cell = None
        if stack is not None:
            cell = np.zeros(shape, dtype=np.int32)
            cell.reshape(-1)[present] = ev_cell[rows]
    if not oor_nodes:  # every present slot corrected: no request to drop
        return StageStamps(ref, bound, usable, holdover, 0, oor_nodes, cell, stack)
    bad_req: BoolA = np.asarray(((pivot.row >= 0) & ~usable).any(axis=1))
    usable &= ~bad_req[:, None]
    return StageStamps(ref, bound, usable & (pivot.row >= 0), holdover,
                       int(bad_req.sum()), oor_nodes, cell, stack)


_EventRows = tuple[I64, F64, BoolA, I32, BoolA, dict[str, int]]


def _cached_rows(kept: EventCorrections, stack: CellStack, ev_node: npt.NDArray[np.int64],
                 skip_bad: bool) -> _EventRows | None:
    """:func:`_corrected_rows` from corrections made before by the same tables (``None``
    when a row cannot be corrected and ``skip_bad`` is off: the slow path names it)."""
    n_nodes = len(stack.nodes)
    corrected = ev_node < n_nodes  # (rows of dropped duplicates are not)
    finite = np.isfinite(kept.bound_ns)
    bad = ~finite & corrected
    oor_nodes: dict[str, int] = {}
    if bad.any():
        if not skip_bad:
            return None
        counts = np.bincount(ev_node[bad], minlength=n_nodes)
        oor_nodes = {n: int(counts[k]) for k, n in enumerate(stack.nodes) if counts[k]}
    offsets = stack.offsets[np.minimum(ev_node, n_nodes - 1)] if n_nodes else 0
    ev_cell = np.empty(len(ev_node), dtype=np.int32)
    np.add(kept.cell, offsets, out=ev_cell, casting="unsafe")
    return (kept.ref_ns, np.where(finite, kept.bound_ns, np.nan),
            (kept.flags & HOLDOVER) != 0, ev_cell, ~bad, oor_nodes)


def _corrected_rows(pivot: Pivot, corrector: CorrectorLike, stack: CellStack | None,
                    ev_node: npt.NDArray[np.int64], skip_bad: bool) -> _EventRows:
    """Per event row: corrected midpoint, bound (NaN where not correctable), holdover,
    stack cell, correctable; and node -> uncorrectable events (rows of node
    ``len(node_names)`` are not corrected: their values are never read)."""
    n_ev, n_nodes = len(ev_node), len(pivot.node_names)
    # every row read below is written first (unused rows are never gathered)
    ev_ref = np.empty(n_ev, dtype=np.int64)
    ev_bound = np.empty(n_ev, dtype=np.float64)
    ev_hold = np.empty(n_ev, dtype=bool)
    ev_cell = np.empty(n_ev if stack is not None else 0, dtype=np.int32)
    ev_ok = np.ones(n_ev, dtype=bool)
    oor_nodes: dict[str, int] = {}
    for (code, name), mine in zip(enumerate(pivot.node_names), _node_rows(ev_node, n_nodes + 1),
                                  strict=False):
        ts = mine.take(pivot.event_ts)
        if stack is not None:
            r, b, flags, cell = stack.correct(code, ts)
            mine.put(ev_cell, cell)
        else:
            r, b = corrector.correct(name, ts, on_invalid="inf")
        b = np.asarray(b, dtype=np.float64)
        if not np.isfinite(b).all():
            bad = ~np.isfinite(b)
            if not skip_bad:
                first_bad = int(ts[bad][0])
                raise InputError(
                    f"node {name}: {int(bad.sum())} event(s) have no guaranteed correction"
                    f" (first at {first_bad} ns local; before the table's first sample,"
                    " in a void stretch or past holdover); use skip_bad/--skip-bad to skip"
                    " those requests" + _unit_hint(corrector, name, first_bad))
            oor_nodes[name] = int(bad.sum())
            mine.put(ev_ok, ~bad)
            b = np.where(bad, np.nan, b)
        mine.put(ev_ref, np.asarray(r, dtype=np.int64))
        mine.put(ev_bound, b)
        if stack is None:
            flags = corrector.flags(name, ts)
        mine.put(ev_hold, (np.asarray(flags) & HOLDOVER) != 0)
    return ev_ref, ev_bound, ev_hold, ev_cell, ev_ok, oor_nodes


@dataclass(frozen=True, slots=True)
class HopArrays:
    """One hop for every request that has both of its stages (columns as numpy arrays).

    Attributes:
        name: ``"<src>-><dst>"``.
        src_stage, dst_stage: indices into the chain.
        req: request index (into :attr:`Pivot.request_ids`).
        src_node, dst_node: node indices (into :attr:`Pivot.node_names`).
        src_ts_ns, dst_ts_ns: local timestamps.
        src_ref_ns: corrected midpoint of the source event (window assignment).
        src_bound_ns: correction bound of the source event.
        raw_ns: ``dst_ts_ns - src_ts_ns`` (local clocks as they are).
        table_low_ns, table_high_ns: the tables' guaranteed interval of the latency.
    """

    name: str
    src_stage: int
    dst_stage: int
    req: I64
    src_node: I32
    dst_node: I32
    src_ts_ns: I64
    dst_ts_ns: I64
    src_ref_ns: I64
    src_bound_ns: F64
    raw_ns: I64
    table_low_ns: F64
    table_high_ns: F64

    @property
    def cross_node(self) -> BoolA:
        return np.asarray(self.src_node != self.dst_node)


@dataclass(frozen=True, slots=True)
class _StageColumns:
    """One stage's slots at a hop's requests: node, local time, correction and its bound."""

    node: I32
    ts_ns: I64
    ref_ns: I64
    bound_ns: F64

    @classmethod
    def of(cls, pivot: Pivot, stamps: StageStamps, k: int, req: I64 | None) -> _StageColumns:
        """Stage ``k`` at rows ``req``; ``None``: every request (read-only column copies,
        which the hops of the stage share)."""
        if req is not None:
            return cls(pivot.node[req, k], pivot.ts_ns[req, k], stamps.ref_ns[req, k],
                       stamps.bound_ns[req, k])
        out = cls(np.ascontiguousarray(pivot.node[:, k]), np.ascontiguousarray(pivot.ts_ns[:, k]),
                  np.ascontiguousarray(stamps.ref_ns[:, k]),
                  np.ascontiguousarray(stamps.bound_ns[:, k]))
        for col in (out.node, out.ts_ns, out.ref_ns, out.bound_ns):
            col.flags.writeable = False
        return out


def table_hops(pivot: Pivot, stamps: StageStamps, corrector: CorrectorLike) -> list[HopArrays]:
    """Every hop of the chain with its table-only interval (one corrector call per node for the
    same-node hops; cross-node ones come from the stamps)."""
    index = {s: i for i, s in enumerate(pivot.stages)}
    # the cells of the stamps serve when they come from this corrector's current tables
    fast = stamps.cell is not None and stamps.stack is not None \
        and _cell_stack(corrector, pivot.node_names) is stamps.stack
    out: list[HopArrays] = []
    whole: dict[int, _StageColumns] = {}  # stage -> its columns at every request
    all_usable = bool(stamps.usable.all())
    n_req = len(stamps.usable)
    for src_s, dst_s in hops_of(pivot.stages):
        i, j = index[src_s], index[dst_s]
        req = (np.arange(n_req, dtype=np.int64) if all_usable else
               np.flatnonzero(stamps.usable[:, i] & stamps.usable[:, j]).astype(np.int64))
        every = len(req) == n_req
        if every:
            for k in (i, j):
                if k not in whole:
                    whole[k] = _StageColumns.of(pivot, stamps, k, None)
            src, dst = whole[i], whole[j]
        else:
            src = _StageColumns.of(pivot, stamps, i, req)
            dst = _StageColumns.of(pivot, stamps, j, req)
        # across nodes Corrector.latency is the difference of the two corrections with the
        # sum of their bounds: both are in the stamps already, so nothing is corrected twice
        lat = (dst.ref_ns - src.ref_ns).astype(np.float64)
        bnd = src.bound_ns + dst.bound_ns
        raw = dst.ts_ns - src.ts_ns
        if fast:
            cells = stamps.cell
            assert cells is not None
            # the cells are read once: views (or the hop's rows), not column copies
            src_cell, dst_cell = ((cells[:, i], cells[:, j]) if every
                                  else (cells[req, i], cells[req, j]))
            lat, bnd = _same_node_from_cells(stamps, src_cell, dst_cell, src.node, dst.node,
                                             src.ts_ns, dst.ts_ns, raw, lat, bnd)
        else:
            _same_node_per_node(corrector, pivot.node_names, src.node, dst.node, src.ts_ns,
                                dst.ts_ns, lat, bnd)
        out.append(HopArrays(
            name=hop_name(src_s, dst_s), src_stage=i, dst_stage=j, req=req,
            src_node=src.node, dst_node=dst.node, src_ts_ns=src.ts_ns, dst_ts_ns=dst.ts_ns,
            src_ref_ns=src.ref_ns, src_bound_ns=src.bound_ns,
            raw_ns=raw, table_low_ns=lat - bnd, table_high_ns=lat + bnd,
        ))
    return out


def _same_node_per_node(corrector: CorrectorLike, node_names: tuple[str, ...], src_node: I32,
                        dst_node: I32, src_ts: I64, dst_ts: I64, lat: F64, bnd: F64) -> None:
    """``Corrector.latency`` of the same-node hops, one call per node, into ``lat, bnd``."""
    same = np.flatnonzero(src_node == dst_node)
    order, bounds = group_order(src_node[same].astype(np.int64), max(len(node_names), 1))
    for code in np.flatnonzero(np.diff(bounds) > 0):
        m = same[order[bounds[code]:bounds[code + 1]]]
        name = node_names[int(code)]
        lat[m], bnd[m] = corrector.latency(name, src_ts[m], name, dst_ts[m])


def _same_node_from_cells(stamps: StageStamps, src_cell: I32, dst_cell: I32, src_node: I32,
                          dst_node: I32, src_ts: I64, dst_ts: I64, raw: I64, lat: F64,
                          bnd: F64) -> tuple[F64, F64]:
    """The same-node hops' ``Corrector.latency`` from the stamps' cells and corrections
    (``lat, bnd`` hold the two corrections' difference and summed bound of every hop)."""
    assert stamps.stack is not None
    same = src_node == dst_node
    n_same = int(np.count_nonzero(same))
    if n_same == len(same):  # every hop on one node: whole columns, no gather
        return stamps.stack.same_node_latency(src_ts, dst_ts, src_cell, dst_cell, lat, bnd,
                                              raw)
    if n_same:
        m = np.flatnonzero(same)
        lat[m], bnd[m] = stamps.stack.same_node_latency(
            src_ts[m], dst_ts[m], src_cell[m], dst_cell[m], lat[m], bnd[m], raw[m])
    return lat, bnd


def _unit_hint(corrector: CorrectorLike, node: str, ts_ns: int) -> str:
    """A hint naming the likely unit when ``ts_ns`` lies far below the node's table."""
    table_of = getattr(corrector, "table", None)
    try:
        segments = table_of(node).segments if table_of is not None else ()
    except (ClockSyncError, KeyError):
        return ""
    if not segments:
        return ""
    return unit_hint("ts_ns", ts_ns, segments[0].first_sample_local_ns)
