"""The latency pipeline: events + corrector -> per-request hops with bounds -> percentiles
and alerts. Wires the stages; holds no math of its own beyond adding intervals.

Per request, the consecutive hops of the chain get their interval from the tables (same
node: the clock's rate error only; across nodes: both correction bounds) and, for
cross-node hops, the causal tightening of :mod:`._causal` (all cross-node consecutive hops
of the data together, so messages both ways constrain each node pair). A longer hop (the
end-to-end one) is the sum of its consecutive hops, so its interval is the sum of theirs,
intersected with its own table-only interval.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from .._model._errors import InconsistentError
from ._alerts import (
    Alert,
    AlertConfig,
    clock_alerts,
    inconsistency_alerts,
    latency_alerts,
)
from ._arrow import dictionary_codes, first_seen_order, group_order, shared_codes
from ._causal import CausalAssumptions, PairWindow, tighten
from ._hops import (
    CorrectorLike,
    EventCorrections,
    HopArrays,
    Pivot,
    StageStamps,
    correct_stamps,
    pivot_events,
    table_hops,
)
from ._pairs import PairPivot, is_paired, pair_pivot
from ._percentiles import summary_and_windows
from ._schema import DEFAULT_STAGES, BadRecord, Events
from ._select import median

__all__ = [
    "HopCount",
    "HopResult",
    "LatencyReport",
    "analyze",
    "compute_latencies",
    "hop_counts",
    "hop_table",
    "pairs_hop_table",
]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
BoolA = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class HopCount:
    """Counts for one hop over the whole input.

    ``negative_raw``: requests whose raw (uncorrected) latency is negative; never clamped.
    ``order_unknown``: requests whose interval straddles zero (which event came first is
    not known). ``inconsistent``: causal constraints contradicted the tables (kept
    table-only). Widths are medians of ``high - low`` (ns).
    """

    hop: str
    requests: int
    cross_node: int
    negative_raw: int
    order_unknown: int
    inconsistent: int
    median_width_ns: float
    median_table_width_ns: float


@dataclass(frozen=True, slots=True)
class HopResult:
    """Per-request hops plus what the pipeline counted on the way."""

    table: pa.Table
    hops: tuple[HopCount, ...]
    pair_windows: tuple[PairWindow, ...]
    requests: int
    incomplete: int
    duplicates: int
    duplicate_examples: tuple[str, ...]
    unknown_stage: int
    uncorrectable: int
    uncorrectable_nodes: dict[str, int]
    pivot: Pivot = field(repr=False)

    @property
    def missing_stages(self) -> dict[str, int]:
        """Stage -> requests lacking it."""
        return self.pivot.missing_stages()

    @property
    def unknown_stages(self) -> dict[str, int]:
        """Stage name outside the chain -> events of it (ignored)."""
        return dict(self.pivot.unknown_stages)
    stamps: StageStamps = field(repr=False)


#: event columns that are not context: the key columns and what pairing and widening read
_NOT_CONTEXT = frozenset({"request_id", "stage", "node", "ts_ns", "resolution_ns", "span_id",
                          "parent_span_id"})


def _context(pivot: Pivot, order: tuple[int, ...], req: I64 | None = None
             ) -> dict[str, pa.Array]:
    """Per request (``req``: those requests, in that order; ``None``: every request), each
    context column's first non-null value over the stages in ``order``: one take of the
    event rows that hold it."""
    out: dict[str, pa.Array] = {}
    names = [n for n in pivot.events.column_names if n not in _NOT_CONTEXT]
    if not names:
        return out

    def rows(k: int) -> I64:
        return pivot.row[:, k] if req is None else pivot.row[req, k]

    first = rows(order[0])
    every_first = bool(np.all(first >= 0))
    lo = int(first.min()) if len(first) else 0
    hi = int(first.max()) + 1 if len(first) else 0
    for name in names:
        # (a take from one array is several times faster than from chunks)
        column = pivot.events.column(name)
        if column.null_count == 0 and every_first:
            # no nulls, every request has its first stage: that stage's value is the first
            # (only the rows from the first to the last one taken are joined)
            out[name] = column.slice(lo, hi - lo).combine_chunks().take(pa.array(first - lo))
            continue
        col = column.combine_chunks()
        valid = np.asarray(pc.is_valid(col).to_numpy(zero_copy_only=False), dtype=bool)
        pick = rows(order[-1])
        for k in order[-2::-1]:  # an earlier stage's row wherever it holds a value
            at = first if k == order[0] else rows(k)
            pick = np.where((at >= 0) & valid[np.maximum(at, 0)], at, pick)
        out[name] = col.take(pa.array(pick, mask=pick < 0))
    return out


@dataclass(frozen=True, slots=True)
class _Resolution:
    """Stamp resolutions of one hop's requests (ns; 0 = exact) and the clocks' rate bound.

    The true source time lies in ``[t_s, t_s + src)`` and the true destination time in
    ``[t_d, t_d + dst)``. Tightening is done on the pair ``(t_s, t_d + dst)``: its latency
    is at least the true one (so every causal lower limit holds for it), and the true
    latency is then at most ``(src + dst)·(1 + rate)`` below it."""

    src: F64
    dst: F64
    rate: float

    def shift(self, h: HopArrays) -> HopArrays:
        """``h`` with the destination stamp moved to the end of its resolution."""
        return dataclasses.replace(
            h, raw_ns=h.raw_ns + self.dst.astype(np.int64),
            table_low_ns=h.table_low_ns + self.dst * (1 - self.rate),
            table_high_ns=h.table_high_ns + self.dst * (1 + self.rate))

    def widen(self, low: F64, high: F64) -> tuple[F64, F64]:
        """The true latency's interval from the shifted pair's ``[low, high]``."""
        return low - (self.src + self.dst) * (1 + self.rate), high


def _resolutions(pivot: Pivot, hops: list[HopArrays], causal: CausalAssumptions | None
                 ) -> list[_Resolution | None]:
    """Each hop's stamp resolutions (``None`` where its stamps are exact)."""
    res = pivot.resolution_ns
    if res is None:
        return [None] * len(hops)
    rate = (causal or CausalAssumptions()).max_skew_ppm * 1e-6
    out: list[_Resolution | None] = []
    for h in hops:
        src = res[h.req, h.src_stage].astype(np.float64)
        dst = res[h.req, h.dst_stage].astype(np.float64)
        out.append(_Resolution(src, dst, rate) if src.any() or dst.any() else None)
    return out


def _intervals(
    hops: list[HopArrays], n_consecutive: int, n_req: int, names: tuple[str, ...],
    causal: CausalAssumptions | None, resolution: list[_Resolution | None],
) -> tuple[list[tuple[F64, F64, BoolA]], tuple[PairWindow, ...]]:
    """``(low, high, inconsistent)`` per hop, and the causal windows. (Arrays may be shared
    with ``hops`` and with each other: read-only from here on.) Hops with coarse stamps
    are tightened as the shifted pair of :class:`_Resolution`, then widened."""
    hops = [h if r is None else r.shift(h) for h, r in zip(hops, resolution, strict=True)]
    out = [(h.table_low_ns, h.table_high_ns, np.zeros(len(h.req), dtype=bool)) for h in hops]
    windows: tuple[PairWindow, ...] = ()
    cons = hops[:n_consecutive]
    crosses = [np.flatnonzero(h.cross_node) for h in cons]
    if causal is not None and any(len(c) for c in crosses):
        fields = ("src_node", "dst_node", "src_ref_ns", "src_bound_ns", "raw_ns",
                  "table_low_ns", "table_high_ns")
        used = [(h, c) for h, c in zip(cons, crosses, strict=True) if len(c)]
        if len(used) == 1 and len(used[0][1]) == len(used[0][0].req):  # one all-cross hop
            cat = [getattr(used[0][0], f) for f in fields]
        else:
            cat = [np.concatenate([getattr(h, f)[c] for h, c in used]) for f in fields]
        res = tighten(cat[0], cat[1], names, cat[2], cat[3], cat[4], cat[5], cat[6], causal)
        windows = res.windows
        at = 0
        for k, (h, c) in enumerate(zip(cons, crosses, strict=True)):
            if not len(c):
                continue
            sl = slice(at, at + len(c))
            at += len(c)
            if len(c) == len(h.req):  # every message of the hop is cross-node
                out[k] = (res.low_ns[sl], res.high_ns[sl], res.inconsistent[sl])
                continue
            low, high, bad = h.table_low_ns.copy(), h.table_high_ns.copy(), out[k][2]
            low[c], high[c], bad[c] = res.low_ns[sl], res.high_ns[sl], res.inconsistent[sl]
            out[k] = (low, high, bad)
    for k, r in enumerate(resolution):
        if r is None:
            continue
        low, high = r.widen(out[k][0], out[k][1])
        if causal is not None and k < n_consecutive and len(crosses[k]):
            # a message's true latency is at least the least wire delay: that holds for the
            # widened interval too
            low = low.copy()
            low[crosses[k]] = np.maximum(low[crosses[k]], causal.min_wire_delay_ns)
        out[k] = (low, high, out[k][2])
    if len(hops) == n_consecutive:  # no longer hop
        return out, windows
    # longer hops: sum of the consecutive intervals, intersected with the table's
    full_low = np.full((n_consecutive, n_req), np.nan)
    full_high = np.full((n_consecutive, n_req), np.nan)
    for k, h in enumerate(cons):
        at_req = slice(None) if len(h.req) == n_req else h.req
        full_low[k, at_req], full_high[k, at_req] = out[k][0], out[k][1]
    for k in range(n_consecutive, len(hops)):
        h = hops[k]
        own_low, own_high = out[k][0], out[k][1]  # the tables' (widened) interval
        span = slice(h.src_stage, h.dst_stage)
        every = len(h.req) == n_req  # every request: no gather
        comp_low = (full_low[span] if every else full_low[span][:, h.req]).sum(axis=0)
        comp_high = (full_high[span] if every else full_high[span][:, h.req]).sum(axis=0)
        low = np.where(np.isnan(comp_low), own_low, np.maximum(own_low, comp_low))
        high = np.where(np.isnan(comp_high), own_high, np.minimum(own_high, comp_high))
        bad = low > high
        out[k] = (np.where(bad, own_low, low), np.where(bad, own_high, high), bad)
    return out, windows


@dataclass(frozen=True, slots=True)
class _Part:
    """The rows of the hop table of one hop: its columns, interval and context."""

    hop: HopArrays
    interval: tuple[F64, F64, BoolA]
    context: dict[str, pa.Array]


def _rows_of(h: HopArrays, interval: tuple[F64, F64, BoolA], at: I64 | slice, name: str
             ) -> tuple[HopArrays, tuple[F64, F64, BoolA]]:
    """Rows ``at`` (an index, or a slice: views) of a hop's columns and interval, named
    ``name``."""
    part = HopArrays(
        name=name, src_stage=h.src_stage, dst_stage=h.dst_stage, req=h.req[at],
        src_node=h.src_node[at], dst_node=h.dst_node[at], src_ts_ns=h.src_ts_ns[at],
        dst_ts_ns=h.dst_ts_ns[at], src_ref_ns=h.src_ref_ns[at],
        src_bound_ns=h.src_bound_ns[at], raw_ns=h.raw_ns[at],
        table_low_ns=h.table_low_ns[at], table_high_ns=h.table_high_ns[at])
    return part, (interval[0][at], interval[1][at], interval[2][at])


def _in_range(h: HopArrays, ref_range_ns: tuple[int, int]) -> I64:
    """The rows of ``h`` whose corrected source time lies in ``[lo, hi)``."""
    lo, hi = ref_range_ns
    return np.flatnonzero((h.src_ref_ns >= lo) & (h.src_ref_ns < hi))


def _chain_parts(pivot: Pivot, hops: list[HopArrays],
                 intervals: list[tuple[F64, F64, BoolA]], order: tuple[int, ...],
                 ref_range_ns: tuple[int, int] | None = None) -> list[_Part]:
    """One part per hop of the chain, each with its requests' context. ``ref_range_ns``:
    a part holds only the requests whose corrected source time lies in ``[lo, hi)`` (and
    may be empty)."""
    ctx = _context(pivot, order)
    parts = []
    for h, interval in zip(hops, intervals, strict=True):
        if ref_range_ns is not None:
            kept = _in_range(h, ref_range_ns)
            if len(kept) < len(h.req):
                h, interval = _rows_of(h, interval, kept, h.name)
        if len(h.req) == len(pivot.request_ids):  # every request: no take
            parts.append(_Part(h, interval, ctx))
            continue
        req = pa.array(h.req)
        parts.append(_Part(h, interval, {n: arr.take(req) for n, arr in ctx.items()}))
    return parts


def _pair_parts(pivot: Pivot, h: HopArrays, interval: tuple[F64, F64, BoolA],
                pairs: PairPivot, order: tuple[int, ...],
                ref_range_ns: tuple[int, int] | None) -> list[_Part]:
    """The pairs' hop split by hop: one part per hop that has a pair, in the order of
    :attr:`PairPivot.hop_names`, each its pairs in order. ``ref_range_ns``: a part holds
    only the pairs whose corrected source time lies in ``[lo, hi)`` (and may be empty).
    The rows are gathered once, in part order, and each part is a slice of them."""
    n_hops = len(pairs.hop_names)
    code = pairs.hop[h.req]
    present = np.flatnonzero(np.bincount(code, minlength=n_hops))
    if not len(present):
        return []
    kept: I64 | None = None
    if ref_range_ns is not None:
        kept = _in_range(h, ref_range_ns)
        code = code[kept]
    at: I64 | slice
    if kept is None and len(present) == 1:  # one hop, every pair: the columns as they are
        at = slice(None)
        bounds = np.zeros(n_hops + 1, dtype=np.int64)
        bounds[present[0] + 1:] = len(code)
    else:
        by_hop, bounds = group_order(code, n_hops)
        at = by_hop if kept is None else kept[by_hop]
    rows, rows_interval = _rows_of(h, interval, at, h.name)
    ctx = _context(pivot, order, rows.req)
    parts = []
    for k in present.tolist():
        a, b = int(bounds[k]), int(bounds[k + 1])
        part, part_interval = _rows_of(rows, rows_interval, slice(a, b), pairs.hop_names[k])
        parts.append(_Part(part, part_interval, {n: arr.slice(a, b - a)
                                                 for n, arr in ctx.items()}))
    return parts


def _count(hop: str, cross: BoolA, raw_ns: npt.NDArray[np.int64], low: F64, high: F64,
           inconsistent: BoolA, table_width_ns: F64) -> HopCount:
    """One hop's counts from its requests' columns."""
    return HopCount(hop, len(raw_ns), int(np.count_nonzero(cross)), int((raw_ns < 0).sum()),
                    int(((low < 0) & (high > 0)).sum()), int(np.count_nonzero(inconsistent)),
                    median(high - low), median(table_width_ns))


def hop_counts(hops: pa.Table) -> tuple[HopCount, ...]:
    """Per hop (in first-seen order), the counts of a per-request hop table (as
    :func:`hop_table` makes them for its whole input)."""
    code, dictionary = dictionary_codes(hops.column("hop"))
    src, dst = hops.column("src_node"), hops.column("dst_node")
    if src.null_count or dst.null_count:
        src, dst = pc.cast(src, pa.string()), pc.cast(dst, pa.string())
        cross = np.asarray(pc.not_equal(src, dst).to_numpy(zero_copy_only=False), dtype=bool)
    else:  # node codes in one dictionary: compared, not the names
        src_code, dst_code, _ = shared_codes(src, dst)
        cross = src_code != dst_code
    cols = {c: hops.column(c).to_numpy(zero_copy_only=False) for c in (
        "raw_latency_ns", "low_ns", "high_ns", "inconsistent", "table_low_ns",
        "table_high_ns")}
    out = []
    for k in first_seen_order(code, len(dictionary))[0].tolist():  # hops in first-seen order
        m = code == k
        out.append(_count(str(dictionary[k]), cross[m], cols["raw_latency_ns"][m],
                          cols["low_ns"][m], cols["high_ns"][m],
                          np.asarray(cols["inconsistent"][m], dtype=bool),
                          cols["table_high_ns"][m] - cols["table_low_ns"][m]))
    return tuple(out)


def hop_table(
    events: Events | pa.Table,
    corrector: CorrectorLike,
    stages: tuple[str, ...] = DEFAULT_STAGES,
    causal: CausalAssumptions | None = CausalAssumptions(),  # noqa: B008 - frozen
    skip_bad: bool = False,
    strict: bool = False,
    ref_range_ns: tuple[int, int] | None = None,
) -> HopResult:
    """Per-request hops with bounds, and the counts a report needs.

    Events that carry ``span_id`` and ``parent_span_id`` (a trace map with
    ``pair_by = "parent"``) pair each span's event with its parent's: each pair is a hop
    ``"<parent stage>-><child stage>"`` and ``stages`` is not used. Otherwise a request's
    events form the stage chain ``stages``.

    A stamp with a ``resolution_ns`` (the true time lies in ``[t, t + resolution)``)
    widens its hops' intervals to cover every true time it allows.

    ``strict``: raise :class:`InconsistentError` (naming the node pairs, windows and
    request count) when causal constraints contradict the tables, instead of flagging.

    Output columns: ``request_id, hop, src_node, dst_node, latency_ns, low_ns, high_ns``
    (the four names dictionary-encoded: categoricals in pandas)
    (``latency_ns`` is the interval midpoint), then ``raw_latency_ns`` (local clocks as they
    are, may be negative), ``src_ts_ns, dst_ts_ns`` (the local stamps the hop was computed
    from), ``table_low_ns, table_high_ns`` (tables only, before causal tightening and
    resolution), ``src_ref_ns`` (corrected source time), ``order_unknown``,
    ``inconsistent``, and every context column. ``causal=None`` turns tightening off.

    ``ref_range_ns``: ``(lo, hi)``: the table holds only the hops whose corrected source
    time (``src_ref_ns``) lies in ``[lo, hi)``, in the order and under the dictionaries of
    the whole table, and the counts are those of its rows; causal tightening still sees
    every hop (as :func:`pairs_hop_table`).
    """
    table = events.table if isinstance(events, Events) else events
    if is_paired(table):
        return pairs_hop_table(pair_pivot(table), corrector, causal, skip_bad, strict,
                               ref_range_ns)
    return chain_hop_table(table, corrector, stages, causal, skip_bad, strict, ref_range_ns)


def chain_hop_table(
    table: pa.Table, corrector: CorrectorLike, stages: tuple[str, ...],
    causal: CausalAssumptions | None, skip_bad: bool = False, strict: bool = False,
    ref_range_ns: tuple[int, int] | None = None, corrections: EventCorrections | None = None,
) -> HopResult:
    """:func:`hop_table` of a stage chain's events; ``corrections``: each row of ``table``
    corrected before (a live collector's, kept with its requests), used while the
    corrector's tables are those they were made with and every stage is in the chain."""
    pivot = pivot_events(table, stages)
    if pivot.unknown_stage:  # (rows were left out: the corrections are not the pivot's)
        corrections = None
    return _hop_result(pivot, None, corrector, causal, skip_bad, strict, ref_range_ns,
                       corrections)


def pairs_hop_table(
    pairs: PairPivot,
    corrector: CorrectorLike,
    causal: CausalAssumptions | None = CausalAssumptions(),  # noqa: B008 - frozen
    skip_bad: bool = False,
    strict: bool = False,
    ref_range_ns: tuple[int, int] | None = None,
) -> HopResult:
    """:func:`hop_table` of events already paired by parent span.

    ``ref_range_ns``: ``(lo, hi)``: the table holds only the hops whose corrected source
    time (``src_ref_ns``) lies in ``[lo, hi)``, in the order and under the dictionaries of
    the whole table, and the counts (:attr:`HopResult.hops`: one per hop that has a pair)
    are those of its rows; causal tightening still sees every pair."""
    return _hop_result(pairs.pivot, pairs, corrector, causal, skip_bad, strict,
                       ref_range_ns)


def _hop_result(pivot: Pivot, pairs: PairPivot | None, corrector: CorrectorLike,
                causal: CausalAssumptions | None, skip_bad: bool, strict: bool,
                ref_range_ns: tuple[int, int] | None = None,
                corrections: EventCorrections | None = None) -> HopResult:
    n_cons = 1 if pairs is not None else len(pivot.stages) - 1
    # context: a pair's child first, else the chain's order
    order = (1, 0) if pairs is not None else tuple(range(len(pivot.stages)))
    stamps = correct_stamps(pivot, corrector, skip_bad=skip_bad, corrections=corrections)
    hops = table_hops(pivot, stamps, corrector)
    intervals, windows = _intervals(hops, n_cons, len(pivot.request_ids), pivot.node_names,
                                    causal, _resolutions(pivot, hops, causal))
    if pairs is not None:
        parts_in = _pair_parts(pivot, hops[0], intervals[0], pairs, order, ref_range_ns)
    else:
        parts_in = _chain_parts(pivot, hops, intervals, order, ref_range_ns)
    names = pa.array(pivot.node_names, pa.string())
    hop_names = pa.array([p.hop.name for p in parts_in], pa.string())
    ids = pivot.request_ids.cast(pa.string())
    parts = []
    counts = []

    def dict_col(codes: npt.NDArray[Any], dictionary: pa.Array) -> pa.DictionaryArray:
        return pa.DictionaryArray.from_arrays(
            pa.array(np.asarray(codes).astype(np.int32, copy=False)), dictionary)

    for k, part in enumerate(parts_in):
        h, (low, high, bad) = part.hop, part.interval
        unknown_order = (low < 0) & (high > 0)
        cols: dict[str, Any] = {
            "request_id": dict_col(h.req, ids),
            "hop": dict_col(np.full(len(h.req), k, dtype=np.int32), hop_names),
            "src_node": dict_col(h.src_node, names),
            "dst_node": dict_col(h.dst_node, names),
            "latency_ns": pa.array((low + high) / 2),
            "low_ns": pa.array(low),
            "high_ns": pa.array(high),
            "raw_latency_ns": pa.array(h.raw_ns, pa.int64()),
            "src_ts_ns": pa.array(h.src_ts_ns, pa.int64()),
            "dst_ts_ns": pa.array(h.dst_ts_ns, pa.int64()),
            "table_low_ns": pa.array(h.table_low_ns),
            "table_high_ns": pa.array(h.table_high_ns),
            "src_ref_ns": pa.array(h.src_ref_ns, pa.int64()),
            "order_unknown": pa.array(unknown_order),
            "inconsistent": pa.array(bad),
        }
        cols.update(part.context)
        parts.append(pa.table(cols))
        counts.append(_count(h.name, h.cross_node, h.raw_ns, low, high, bad,
                             h.table_high_ns - h.table_low_ns))
    out = pa.concat_tables(parts) if parts else pa.table({})
    if strict and any(c.inconsistent for c in counts):
        bad_windows = [w for w in windows if w.status == "inconsistent"]
        where = "; ".join(f"{w.node_a}<->{w.node_b} window starting {w.start_ns} ns: "
                          f"{w.reason}" for w in bad_windows[:3])
        raise InconsistentError(
            f"{sum(c.inconsistent for c in counts)} hop(s) where causality contradicts the "
            f"correction tables ({len(bad_windows)} window(s)); {where}")
    return HopResult(
        table=out, hops=tuple(counts), pair_windows=windows,
        requests=len(pivot.request_ids), incomplete=pivot.incomplete,
        duplicates=pivot.duplicates, duplicate_examples=pivot.duplicate_examples,
        unknown_stage=pivot.unknown_stage, uncorrectable=stamps.out_of_range,
        uncorrectable_nodes=stamps.out_of_range_nodes, pivot=pivot, stamps=stamps)


def compute_latencies(
    events: Events | pa.Table,
    corrector: CorrectorLike,
    stages: tuple[str, ...] = DEFAULT_STAGES,
    causal: CausalAssumptions | None = CausalAssumptions(),  # noqa: B008 - frozen
    skip_bad: bool = False,
) -> pa.Table:
    """The per-request hop table (see :func:`hop_table` for its columns)."""
    return hop_table(events, corrector, stages, causal, skip_bad).table


@dataclass(frozen=True, slots=True)
class LatencyReport:
    """Everything ``clocksync latency`` shows.

    Attributes:
        result: per-request hops and counts.
        summary: percentiles over the whole input (:func:`~._percentiles.percentile_table`).
        windows: percentiles per window.
        alerts: latency and clock-health alerts, in time order.
        bad: malformed input records that were skipped.
        records: input records looked at.
        window_s: the window length (s).
    """

    result: HopResult
    summary: pa.Table
    windows: pa.Table
    alerts: tuple[Alert, ...]
    bad: tuple[BadRecord, ...]
    records: int
    window_s: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready content (same as the readable report)."""
        r = self.result
        return {
            "records": self.records,
            "bad_records": [str(b) for b in self.bad],
            "requests": r.requests,
            "incomplete_requests": r.incomplete,
            "missing_stages": r.missing_stages,
            "duplicate_events": r.duplicates,
            "duplicate_examples": list(r.duplicate_examples),
            "unknown_stage_events": r.unknown_stage,
            "unknown_stages": r.unknown_stages,
            "uncorrectable_requests": r.uncorrectable,
            "uncorrectable_events_by_node": r.uncorrectable_nodes,
            "hops": [{k: getattr(h, k) for k in h.__slots__} for h in r.hops],
            "summary": self.summary.to_pylist(),
            "window_s": self.window_s,
            "windows": self.windows.to_pylist(),
            "causal": [{k: getattr(w, k) for k in w.__slots__} for w in r.pair_windows],
            "alerts": [a.to_dict() for a in self.alerts],
        }


def _holdover_age_s(result: HopResult, corrector: CorrectorLike) -> F64:
    """Per (request, stage) slot: seconds past the node's last sample, when in holdover."""
    p, st = result.pivot, result.stamps
    age = np.zeros(p.ts_ns.shape)
    for code, name in enumerate(p.node_names):
        last = getattr(corrector.table(name), "last_sample_local_ns", None)
        if last is None:
            continue
        m = (p.node == code) & st.holdover
        age[m] = np.maximum(p.ts_ns[m] - last, 0) / 1e9
    return age


def analyze(
    events: Events | pa.Table,
    corrector: CorrectorLike,
    *,
    stages: tuple[str, ...] = DEFAULT_STAGES,
    window_s: float = 10.0,
    step_s: float | None = None,
    causal: CausalAssumptions | None = CausalAssumptions(),  # noqa: B008 - frozen
    alert_config: AlertConfig = AlertConfig(),  # noqa: B008 - frozen
    skip_bad: bool = False,
    strict: bool = False,
) -> LatencyReport:
    """Hops, percentiles (whole input and windows), alerts: the full report."""
    result = hop_table(events, corrector, stages, causal, skip_bad, strict)
    hops = result.table
    summary, windows = summary_and_windows(hops, window_s, step_s)
    alerts = latency_alerts(windows, hops, alert_config)
    p, st = result.pivot, result.stamps
    used: Any = slice(None) if st.usable.all() else st.usable  # every slot: flat views
    statuses = {n: str(getattr(corrector.table(n), "status", "")) for n in p.node_names}

    def flat(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
        return a.reshape(-1)[used] if isinstance(used, slice) else a[used]

    alerts += clock_alerts(p.node_names, flat(p.node), flat(st.ref_ns), flat(st.bound_ns),
                           flat(_holdover_age_s(result, corrector)), statuses, window_s,
                           alert_config)
    first_cross = next((h.hop for h in result.hops if h.cross_node), "")
    alerts += inconsistency_alerts(result.pair_windows, hops, first_cross, alert_config)
    alerts.sort(key=lambda a: (a.window_start_ns, a.kind, a.hop, a.src_node))
    bad = events.bad if isinstance(events, Events) else ()
    records = events.records if isinstance(events, Events) else events.num_rows
    return LatencyReport(result, summary, windows, tuple(alerts), bad, records, window_s)
