"""Per-request hops from stage events, vectorized: pivot the events by request, correct every
timestamp with its node's table, and give each hop its table-only interval.

Sign conventions: a hop's latency is ``true_ref(dst event) - true_ref(src event)`` (ns);
``raw_latency_ns = dst_ts_ns - src_ts_ns`` uses the nodes' local clocks as they are, so it
can be negative across nodes. The table-only interval comes from
:meth:`Corrector.latency`: for a same-node hop only the clock's rate error over the hop, for
a cross-node hop the sum of the two correction bounds.

Nothing here loops over requests in Python: request ids are dictionary-encoded by Arrow,
stage events are scattered into ``(request, stage)`` slots with numpy, and the corrector is
called once per node (timestamps) and once per node pair (hops).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from .._corrector import HOLDOVER
from .._errors import InputError
from ._arrow import dictionary_codes, group_order, index_in
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

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
I32 = npt.NDArray[np.int32]
BoolA = npt.NDArray[np.bool_]


class CorrectorLike(Protocol):
    """What the pipeline needs from :class:`clocksync.Corrector`."""

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


def pivot_events(table: pa.Table, stages: Sequence[str]) -> Pivot:
    """Lay the events of ``table`` out per request and stage (first occurrence wins)."""
    chain = tuple(stages)
    hops_of(chain)  # validates the chain
    n_stages = len(chain)
    sidx = index_in(table.column("stage"), chain)
    known = sidx >= 0
    unknown = int((~known).sum())
    if unknown:
        table = table.filter(pa.array(known))
        sidx = sidx[known]
    rid, request_ids = dictionary_codes(table.column("request_id"))
    nid, node_names = dictionary_codes(table.column("node"))
    n_req = len(request_ids)
    key = rid * n_stages + sidx
    rows = np.arange(table.num_rows, dtype=np.int64)
    first = np.full(n_req * n_stages, table.num_rows, dtype=np.int64)
    np.minimum.at(first, key, rows)
    counts = np.bincount(key, minlength=n_req * n_stages)
    dup_slots = np.flatnonzero(counts > 1)
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
    )


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
    """

    ref_ns: I64
    bound_ns: F64
    usable: BoolA
    holdover: BoolA
    out_of_range: int
    out_of_range_nodes: dict[str, int]


def correct_stamps(pivot: Pivot, corrector: CorrectorLike, skip_bad: bool = False) -> StageStamps:
    """Correct every present slot with its node's table (one call per node).

    A timestamp the node's table cannot correct (before its first sample, in a void stretch,
    past the holdover horizon) makes the whole request unusable: fatal (:class:`InputError`
    naming the node and the count) unless ``skip_bad``, when it is counted.
    """
    ref = np.zeros(pivot.ts_ns.shape, dtype=np.int64)
    bound = np.full(pivot.ts_ns.shape, np.nan)
    holdover = np.zeros(pivot.ts_ns.shape, dtype=bool)
    usable = pivot.row >= 0
    oor_nodes: dict[str, int] = {}
    flat_node = pivot.node.reshape(-1).astype(np.int64)
    order, bounds = group_order(np.where(flat_node < 0, len(pivot.node_names), flat_node),
                                len(pivot.node_names) + 1)
    flat_ts = pivot.ts_ns.reshape(-1)
    ref_f, bound_f, hold_f = ref.reshape(-1), bound.reshape(-1), holdover.reshape(-1)
    usable_f = usable.reshape(-1)
    for code, name in enumerate(pivot.node_names):
        mask = order[bounds[code]:bounds[code + 1]]  # flat slots of this node
        ts = flat_ts[mask]
        r, b = corrector.correct(name, ts, on_invalid="inf")
        b = np.asarray(b, dtype=np.float64)
        bad = ~np.isfinite(b)
        if bad.any():
            if not skip_bad:
                raise InputError(
                    f"node {name}: {int(bad.sum())} event(s) have no guaranteed correction"
                    f" (first at {int(ts[bad][0])} ns local; before the table's first sample,"
                    " in a void stretch or past holdover); use skip_bad/--skip-bad to skip"
                    " those requests")
            oor_nodes[name] = int(bad.sum())
            usable_f[mask] = usable_f[mask] & ~bad
        ref_f[mask] = np.asarray(r, dtype=np.int64)
        bound_f[mask] = np.where(bad, np.nan, b)
        hold_f[mask] = (np.asarray(corrector.flags(name, ts)) & HOLDOVER) != 0
    bad_req: BoolA = np.asarray(((pivot.row >= 0) & ~usable).any(axis=1))
    usable &= ~bad_req[:, None]
    return StageStamps(ref, bound, usable & (pivot.row >= 0), holdover,
                       int(bad_req.sum()), oor_nodes)


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


def table_hops(pivot: Pivot, stamps: StageStamps, corrector: CorrectorLike) -> list[HopArrays]:
    """Every hop of the chain with its table-only interval (one corrector call per node pair)."""
    index = {s: i for i, s in enumerate(pivot.stages)}
    out: list[HopArrays] = []
    for src_s, dst_s in hops_of(pivot.stages):
        i, j = index[src_s], index[dst_s]
        req = np.flatnonzero(stamps.usable[:, i] & stamps.usable[:, j]).astype(np.int64)
        src_node, dst_node = pivot.node[req, i], pivot.node[req, j]
        src_ts, dst_ts = pivot.ts_ns[req, i], pivot.ts_ns[req, j]
        lat = np.zeros(len(req))
        bnd = np.zeros(len(req))
        n_nodes = max(len(pivot.node_names), 1)
        pair = src_node.astype(np.int64) * n_nodes + dst_node
        order, bounds = group_order(pair, n_nodes * n_nodes)
        for code in np.flatnonzero(np.diff(bounds) > 0):
            m = order[bounds[code]:bounds[code + 1]]
            a, b = divmod(int(code), n_nodes)
            lat_m, bnd_m = corrector.latency(pivot.node_names[a], src_ts[m],
                                             pivot.node_names[b], dst_ts[m])
            lat[m], bnd[m] = lat_m, bnd_m
        out.append(HopArrays(
            name=hop_name(src_s, dst_s), src_stage=i, dst_stage=j, req=req,
            src_node=src_node, dst_node=dst_node, src_ts_ns=src_ts, dst_ts_ns=dst_ts,
            src_ref_ns=stamps.ref_ns[req, i], src_bound_ns=stamps.bound_ns[req, i],
            raw_ns=dst_ts - src_ts, table_low_ns=lat - bnd, table_high_ns=lat + bnd,
        ))
    return out
