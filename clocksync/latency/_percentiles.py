"""Percentiles of hop latencies with guaranteed intervals, per hop and node pair, over the
whole input and over sliding windows.

Each request's true latency ``ℓ_i`` lies in ``[low_i, high_i]``. The q-quantile used here is
an order statistic (``inverted_cdf``: the smallest value whose cumulative weight reaches q),
and an order statistic is non-decreasing in every one of its arguments. So
``Q_q(low) <= Q_q(ℓ) <= Q_q(high)``: the same quantile of the lows and of the highs is a
guaranteed interval for the true quantile — no independence or distribution assumption.
The point value ``pXX_ns`` is the centre of that interval.

``p99_low_lcb_ns`` answers a different question, the one alerts need: a window's P99 from
~100 requests is a noisy estimate of the traffic's P99. The ``k``-th smallest low, with
``k`` from the binomial distribution (:func:`lower_confidence_rank`), is at or below the
*population* P99 with 95% confidence — whatever the distribution, and still below the true
latencies' P99 by the argument above (statistical, labelled as such). With sampling weights the same
argument holds for the weighted quantile of the *sampled* requests (the sampling itself adds
a statistical error, which is not part of the bound).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from scipy.stats import binom

from ._arrow import dictionary_codes, group_order, shared_codes
from ._select import GroupedSelect, select_ranks

__all__ = ["P99_ALPHA", "QUANTILES", "grouped_quantiles", "lower_confidence_rank",
           "percentile_table", "summary_and_windows"]

#: ``p99_low_lcb_ns`` is a lower bound of the population P99 with confidence ``1 - P99_ALPHA``.
P99_ALPHA = 0.05

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

#: Reported quantiles: column prefix and level.
QUANTILES: tuple[tuple[str, float], ...] = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99),
                                            ("max", 1.0))
_KEYS = ("hop", "src_node", "dst_node")


def lower_confidence_rank(n: int, q: float, alpha: float) -> int:
    """0-based rank ``k`` such that the ``k``-th smallest of ``n`` samples lies at or below
    the population q-quantile with probability >= ``1 - alpha`` (distribution-free:
    ``P(X_(k+1) <= ξ_q) = P(Binomial(n, q) >= k+1)``); -1 when ``n`` is too small."""
    return int(binom.ppf(alpha, n, q)) - 1


def _lower_confidence_ranks(n: I64, q: float, alpha: float) -> I64:
    """:func:`lower_confidence_rank` for many ``n`` at once (one vectorized ppf call)."""
    out = np.full(len(n), -1, dtype=np.int64)
    some = n > 0
    if some.any():
        out[some] = np.asarray(binom.ppf(alpha, n[some], q), dtype=np.float64).astype(np.int64) - 1
    return out


def _order_ranks(n: I64, qs: Sequence[float]) -> I64:
    """``(groups, len(qs))`` 0-based ranks of the order statistics ``ceil(q·n)``-th smallest
    of groups of ``n`` values (clipped to ``[0, n - 1]``)."""
    q = np.asarray(qs, dtype=np.float64)
    kth: I64 = np.ceil(q[None, :] * n[:, None].astype(np.float64)).astype(np.int64) - 1
    np.minimum(np.maximum(kth, 0), n[:, None] - 1, out=kth)
    return kth


def _quantiles_in_groups(
    values: F64, order: I64 | None, bounds: I64 | tuple[I64, I64], qs: Sequence[float],
    weights: F64 | None, extra_ranks: I64 | None = None,
) -> F64:
    """One loop step per group (never per row): order statistics by :func:`select_ranks`,
    weighted ones by a sort of the group's values and a cumulative-weight search.
    ``order=None``: ``values`` (and ``weights``) are already in group order, and ``values``
    is reordered inside each group (the caller passes an array it owns). ``bounds``:
    group ``k`` is ``[bounds[k], bounds[k+1])``, or a pair ``(starts, ends)`` of arrays
    (groups may then overlap). ``extra_ranks`` (unweighted only): one more 0-based rank per
    group (-1 = none: NaN), returned as an extra last column from the same partition."""
    if isinstance(bounds, tuple):
        starts, ends = bounds
    else:
        starts, ends = bounds[:-1], bounds[1:]
    n_groups = len(starts)
    n_cols = len(qs) + (extra_ranks is not None)
    out = np.full((n_groups, n_cols), np.nan)
    q_arr = np.asarray(qs, dtype=np.float64)
    ordered = values if order is None else values[order]
    w_ordered = None if weights is None else (weights if order is None else weights[order])
    extra = None if extra_ranks is None else extra_ranks.tolist()
    ranks = _order_ranks(np.asarray(ends - starts, dtype=np.int64), qs).tolist()
    for k in np.flatnonzero(ends > starts).tolist():
        a, b = int(starts[k]), int(ends[k])
        v = ordered[a:b]
        n = b - a
        if w_ordered is None:
            kth = ranks[k]
            if extra is not None:
                kth.append(extra[k])
            valid = sorted({r for r in kth if 0 <= r < n})
            if valid:  # in place: only reorders inside the group's range
                found = dict(zip(valid, select_ranks(v, valid).tolist(), strict=True))
                out[k] = [found.get(r, np.nan) for r in kth]
            continue
        srt = np.argsort(v, kind="stable")
        cw = np.cumsum(w_ordered[a:b][srt])
        idx = np.searchsorted(cw, q_arr * cw[-1] * (1 - 1e-12), side="left")
        out[k] = v[srt][np.clip(idx, 0, n - 1)]
    return out


def grouped_quantiles(
    group: I64, values: F64, qs: Sequence[float], n_groups: int, weights: F64 | None = None
) -> F64:
    """``(n_groups, len(qs))`` order-statistic quantiles of ``values`` per group (NaN if empty).

    ``group`` holds codes in ``[0, n_groups)``. Unweighted: the ``ceil(q·n)``-th smallest.
    Weighted: the smallest value whose cumulative weight reaches ``q·total``.
    """
    order, bounds = group_order(group, n_groups)
    return _quantiles_in_groups(values, order, bounds, qs, weights)


def _window_starts(t_ns: I64, window_ns: int, step_ns: int) -> tuple[I64, I64]:
    """``(row index, window start)`` for every window of length ``window_ns`` each row is in."""
    per = window_ns // step_ns
    base = np.floor_divide(t_ns, step_ns)
    rows = np.tile(np.arange(len(t_ns), dtype=np.int64), per)
    starts = np.concatenate([(base - m) * step_ns for m in range(per)]).astype(np.int64)
    return rows, starts


def _dense(key: I64) -> tuple[I64, int]:
    """Dense group codes ``0..G-1`` (in key order) for non-negative keys, and ``G``."""
    if len(key) and int(key.max()) < 64 * len(key) + 1_000_000:
        present = np.bincount(key) > 0
        remap = np.cumsum(present) - 1
        return remap[key].astype(np.int64), int(present.sum())
    uniq, inverse = np.unique(key, return_inverse=True)
    return inverse.reshape(-1).astype(np.int64), len(uniq)


@dataclass(frozen=True, slots=True)
class _Columns:
    """What the percentile tables read from a hop table: int32 codes (half the memory
    traffic of int64 on these row-long arrays) and the value columns."""

    hop: npt.NDArray[np.int32]
    hop_names: pa.Array
    pair: npt.NDArray[np.int32]  # src * n_nodes + dst
    node_names: pa.Array  # with "*" last
    n_nodes: int
    low: F64
    high: F64
    weight: F64 | None

    @classmethod
    def of(cls, hops: pa.Table) -> _Columns:
        hop_c, hop_d = dictionary_codes(hops.column("hop"), np.int32)
        src_c, dst_c, node_d = shared_codes(hops.column("src_node"), hops.column("dst_node"),
                                            np.int32)
        n_nodes = len(node_d) + 1  # the last code is "*"
        pair = src_c * np.int32(n_nodes)
        pair += dst_c
        return cls(
            hop=hop_c, hop_names=hop_d, pair=pair,
            node_names=pa.concat_arrays([node_d.cast(pa.string()), pa.array(["*"], pa.string())]),
            n_nodes=n_nodes,
            low=hops.column("low_ns").to_numpy().astype(np.float64, copy=False),
            high=hops.column("high_ns").to_numpy().astype(np.float64, copy=False),
            weight=(hops.column("weight").to_numpy().astype(np.float64, copy=False)
                    if "weight" in hops.column_names else None))


@dataclass(frozen=True, slots=True)
class _Windows:
    """Tumbling or sliding windows: ``widx`` per row (or per ``rows`` entry when windows
    overlap), window ``k`` starts at ``w0 + k·step_ns``."""

    widx: npt.NDArray[np.int64] | npt.NDArray[np.int32]
    rows: I64 | None
    n_win: int
    w0: int
    win_ns: int
    step_ns: int

    @classmethod
    def of(cls, hops: pa.Table, window_s: float, step_s: float | None, n_outer: int,
           n_pair: int) -> _Windows:
        win_ns = round(window_s * 1e9)
        step_ns = round((step_s or window_s) * 1e9)
        if win_ns <= 0 or step_ns <= 0 or win_ns % step_ns:
            raise ValueError("window must be a positive multiple of the step")
        t = hops.column("src_ref_ns").to_numpy().astype(np.int64, copy=False)
        rows: I64 | None = None
        if win_ns == step_ns:
            widx = np.floor_divide(t, step_ns)
        else:
            rows, starts_ns = _window_starts(t, win_ns, step_ns)
            widx = starts_ns // step_ns
        base = int(widx.min()) if len(widx) else 0
        widx -= base
        n_win = int(widx.max()) + 1 if len(widx) else 1
        wide = (n_outer * n_win + 1) * n_pair >= 2**31
        return cls(widx.astype(np.int64 if wide else np.int32, copy=False), rows, n_win,
                   base * step_ns, win_ns, step_ns)


def _group_ranges(
    outer: npt.NDArray[Any], pair: npt.NDArray[Any], n_pair: int
) -> tuple[I64, I64, I64, I64]:
    """Rows sorted by ``(outer, pair)``: ``(order, bounds, g_outer, g_pair)`` with group
    ``k`` at ``order[bounds[k]:bounds[k+1]]`` (non-empty groups only)."""
    key = outer * outer.dtype.type(n_pair)
    key += pair
    n_keys = (int(outer.max()) + 1) * n_pair if len(key) else 0
    if n_keys <= 65_536:  # few possible groups: sort by the key itself, drop the empty ones
        order, key_bounds = group_order(key, n_keys)
        present = np.flatnonzero(np.diff(key_bounds) > 0)
        bounds = np.concatenate([key_bounds[present], [len(key)]]).astype(np.int64)
        n_groups = len(present)
    else:
        inverse, n_groups = _dense(key)
        order, bounds = group_order(inverse, n_groups)
    g_first = order[bounds[:-1]] if n_groups else np.zeros(0, np.int64)
    g_outer = outer[g_first].astype(np.int64) if n_groups else np.zeros(0, np.int64)
    g_pair = pair[g_first].astype(np.int64) if n_groups else np.zeros(0, np.int64)
    return order, bounds, g_outer, g_pair


def _table(
    cols: _Columns, low: F64, high: F64, weight: F64 | None, bounds: I64, g_outer: I64,
    g_pair: I64, win: _Windows | None, all_pairs: bool,
) -> pa.Table:
    """The percentile table of groups that are contiguous ranges ``bounds`` of ``low``,
    ``high`` (and ``weight``), sorted by ``(outer, pair)``; ``low``/``high`` are reordered
    inside each range (the caller owns them)."""
    n_nodes = cols.n_nodes
    n_pair = n_nodes * n_nodes
    star = n_nodes - 1
    n_win = 1 if win is None else win.n_win
    n_groups = len(bounds) - 1
    starts, ends = bounds[:-1], bounds[1:]
    if all_pairs and n_groups:
        # "*" rows for the outer groups of hops that have more than one pair overall
        hop_of = g_outer // n_win
        pairs_per_hop = np.zeros(len(cols.hop_names), dtype=np.int64)
        uniq_hp = np.unique(hop_of * n_pair + g_pair)
        np.add.at(pairs_per_hop, uniq_hp // n_pair, 1)
        cut = np.flatnonzero(np.diff(g_outer) != 0) + 1
        o_start = np.concatenate([[0], cut])
        o_end = np.concatenate([cut, [n_groups]])
        multi = pairs_per_hop[hop_of[o_start]] > 1
        starts = np.concatenate([starts, bounds[o_start[multi]]])
        ends = np.concatenate([ends, bounds[o_end[multi]]])
        g_outer = np.concatenate([g_outer, g_outer[o_start[multi]]])
        g_pair = np.concatenate([g_pair, np.full(int(multi.sum()), star * n_nodes + star)])
    ranges = (starts, ends)
    qs = [q for _, q in QUANTILES]
    if weight is None:  # the P99 lower confidence rank rides on the lows' partition
        lcb_rank = _lower_confidence_ranks(ends - starts, 0.99, P99_ALPHA)
        low_cols = _quantiles_in_groups(low, None, ranges, qs, None, lcb_rank)
        q_low, lcb = low_cols[:, :-1], low_cols[:, -1:]
    else:
        q_low = _quantiles_in_groups(low, None, ranges, qs, weight)
        lcb = np.full((len(starts), 1), np.nan)
    q_high = _quantiles_in_groups(high, None, ranges, qs, weight)
    keys: dict[str, pa.Array] = {}
    if win is not None:
        start_of = win.w0 + (g_outer % n_win) * win.step_ns
        keys["window_start_ns"] = pa.array(start_of, pa.int64())
        keys["window_end_ns"] = pa.array(start_of + win.win_ns, pa.int64())
    keys["hop"] = cols.hop_names.take(pa.array(g_outer // n_win))
    keys["src_node"] = cols.node_names.take(pa.array(g_pair // n_nodes))
    keys["dst_node"] = cols.node_names.take(pa.array(g_pair % n_nodes))
    weight_sum = None
    if weight is not None:
        cw = np.concatenate([[0.0], np.cumsum(weight)])
        weight_sum = cw[ends] - cw[starts]
    return _rows_table(keys, ends - starts, weight_sum, q_low, q_high, lcb[:, 0])


def _rows_table(
    keys: dict[str, pa.Array], count: I64, weight_sum: F64 | None, q_low: F64, q_high: F64,
    lcb: F64,
) -> pa.Table:
    """The percentile table from its key columns (``window_start_ns``/``window_end_ns`` when
    windowed, ``hop``, ``src_node``, ``dst_node``) and per row its count, weight sum, order
    statistics ``(rows, len(QUANTILES))`` of the lows and highs, and P99 lower confidence
    bound; rows sorted by the keys."""
    q_mid = (q_low + q_high) / 2
    out = dict(keys)
    out["count"] = pa.array(count, pa.int64())
    if weight_sum is not None:
        out["weight_sum"] = pa.array(weight_sum)
    for j, (name, _) in enumerate(QUANTILES):
        out[f"{name}_ns"] = pa.array(q_mid[:, j])
        out[f"{name}_low_ns"] = pa.array(q_low[:, j])
        out[f"{name}_high_ns"] = pa.array(q_high[:, j])
    out["p99_low_lcb_ns"] = pa.array(lcb)
    table = pa.table(out)
    sort = [("hop", "ascending"), ("src_node", "ascending"), ("dst_node", "ascending")]
    if "window_start_ns" in keys:
        sort = [("window_start_ns", "ascending"), *sort]
    return table.sort_by(sort)


def percentile_table(
    hops: pa.Table,
    window_s: float | None = None,
    step_s: float | None = None,
    all_pairs: bool = True,
) -> pa.Table:
    """P50/P90/P99/max with ``[low, high]`` per ``(hop, src_node, dst_node)``.

    ``hops`` is the per-request table (``hop, src_node, dst_node, src_ref_ns, latency_ns,
    low_ns, high_ns`` and optionally ``weight``). With ``window_s`` the rows are per window
    (``window_start_ns``/``window_end_ns``, windows every ``step_s``, default ``window_s``,
    assigned by the corrected source time); without it, one row per group over everything.
    ``all_pairs`` adds rows with ``src_node = dst_node = "*"`` over all node pairs of a hop
    that has more than one pair.
    """
    cols = _Columns.of(hops)
    n_pair = cols.n_nodes * cols.n_nodes
    # groups are (outer, pair) with outer = hop (and window): sorting by outer then pair
    # makes each outer's pairs contiguous, so its "*" group is one range of the same order
    outer: npt.NDArray[Any] = cols.hop
    pair: npt.NDArray[Any] = cols.pair
    win = None
    if window_s is not None:
        win = _Windows.of(hops, window_s, step_s, len(cols.hop_names), n_pair)
        hop = cols.hop if win.rows is None else cols.hop[win.rows]
        outer = hop.astype(win.widx.dtype)
        outer *= win.n_win
        outer += win.widx
        if win.rows is not None:
            pair = pair[win.rows]
    order, bounds, g_outer, g_pair = _group_ranges(outer, pair, n_pair)
    src = order if win is None or win.rows is None else win.rows[order]
    return _table(cols, cols.low[src], cols.high[src],
                  None if cols.weight is None else cols.weight[src], bounds, g_outer, g_pair,
                  win, all_pairs)


@dataclass(frozen=True, slots=True)
class _HopRows:
    """One hop's rows as numpy arrays (views of the Arrow buffers where they can be)."""

    name: str
    src: npt.NDArray[np.int32]  # node codes into the shared node names
    dst: npt.NDArray[np.int32]
    low: F64
    high: F64
    t_ns: I64
    t_key: tuple[int, int, int] | None  # (buffer address, offset, length) of ``t_ns``: the
    # hops of one source stage share that column (and their window index); None: a copy


def _string_codes(arr: pa.Array) -> tuple[npt.NDArray[Any], list[str]] | None:
    """``(codes, dictionary values)`` of a string or dictionary<string> chunk; ``None`` when
    it has nulls or another type (the general path takes those)."""
    if pa.types.is_string(arr.type):
        arr = pc.dictionary_encode(arr)
    if (not pa.types.is_dictionary(arr.type) or not pa.types.is_string(arr.type.value_type)
            or arr.null_count or arr.dictionary.null_count):
        return None
    return arr.indices.to_numpy(), arr.dictionary.to_pylist()


def _hop_rows(hops: pa.Table) -> tuple[list[_HopRows], list[str]] | None:
    """The table's rows split by hop, Arrow chunk by chunk (a chunk of one hop, as
    :func:`~._pipeline.hop_table` writes them, is used as it is; others are split), and the
    node names; ``None`` when a key or time is null or the table is empty."""
    node_code: dict[str, int] = {}
    parts: dict[str, list[tuple[Any, ...]]] = {}
    names = ["hop", "src_node", "dst_node", "low_ns", "high_ns", "src_ref_ns"]
    for batch in hops.select(names).to_batches():
        if not batch.num_rows:
            continue
        keys = [_string_codes(batch.column(k)) for k in range(3)]
        t_arr = batch.column(5)
        if any(k is None for k in keys) or t_arr.null_count:
            return None
        (hop, hop_d), (src, src_d), (dst, dst_d) = keys  # type: ignore[misc]
        nodes = []
        for codes, values in ((src, src_d), (dst, dst_d)):
            lookup = np.array([node_code.setdefault(v, len(node_code)) for v in values],
                              dtype=np.int32)
            same = np.array_equal(lookup, np.arange(len(values)))
            nodes.append(codes.astype(np.int32, copy=False) if same else lookup[codes])
        buf = t_arr.buffers()[1]
        t_key = (0 if buf is None else buf.address, t_arr.offset, len(t_arr))
        cols = [*nodes, *(batch.column(k).to_numpy(zero_copy_only=False)
                          .astype(np.float64, copy=False) for k in (3, 4)),
                t_arr.to_numpy().astype(np.int64, copy=False)]
        first, last = int(hop.min()), int(hop.max())
        if first == last:
            parts.setdefault(hop_d[first], []).append((*cols, t_key))
            continue
        for code in np.flatnonzero(np.bincount(hop)).tolist():
            rows = np.flatnonzero(hop == code)
            parts.setdefault(hop_d[code], []).append(
                (*(c[rows] for c in cols), None))
    if not parts:
        return None
    out = []
    for name, ps in parts.items():
        if len(ps) == 1:
            out.append(_HopRows(name, *ps[0]))
        else:
            src, dst, low, high, t = (np.concatenate([p[k] for p in ps]) for k in range(5))
            out.append(_HopRows(name, src, dst, low, high, t, None))
    return out, list(node_code)


@dataclass(frozen=True, slots=True)
class _GroupRows:
    """Rows of a percentile table, before they become Arrow columns."""

    window: I64  # window index (0 in the summary)
    hop: I64
    src: I64  # node codes, the node count for "*"
    dst: I64
    count: I64
    low: F64  # (rows, len(QUANTILES)) order statistics of the lows
    high: F64  # and of the highs
    lcb: F64  # P99 lower confidence bound of the lows

    @classmethod
    def concat(cls, parts: Sequence[_GroupRows]) -> _GroupRows:
        return cls(*(np.concatenate([getattr(r, f) for r in parts]) for f in cls.__slots__))


def _one_hop(
    sel: GroupedSelect, hop_code: int, n_nodes: int, n_win: int
) -> tuple[list[_GroupRows], list[_GroupRows]]:
    """``(summary rows, window rows)`` of one hop whose rows ``sel`` groups by
    ``key = (src · n_nodes + dst) · n_win + window`` (its columns: lows, highs). The groups
    of both tables are that key's fine groups or unions of them: each ``(pair, window)``
    (window table), each pair (summary), and for a hop with more than one pair each
    window's "*" (window table) and the whole hop's "*" (summary); the P99 lower
    confidence rank rides on the lows."""
    star = n_nodes
    g_pair, g_win = np.divmod(sel.keys, n_win)
    pairs, by_pair = np.unique(g_pair, return_inverse=True)
    zero = np.zeros(1, np.int64)
    # per level: in the window table?, fine group -> level group, (window, src, dst) per group
    levels: list[tuple[bool, I64 | None, tuple[I64, I64, I64]]] = [
        (True, None, (g_win, g_pair // n_nodes, g_pair % n_nodes)),
        (False, by_pair.reshape(-1).astype(np.int64),
         (np.zeros_like(pairs), pairs // n_nodes, pairs % n_nodes))]
    if len(pairs) > 1:
        wins, by_win = np.unique(g_win, return_inverse=True)
        stars = np.full_like(wins, star)
        levels.append((True, by_win.reshape(-1).astype(np.int64), (wins, stars, stars)))
        levels.append((False, np.zeros(len(g_pair), np.int64), (zero, zero + star, zero + star)))
    sizes = [sel.level_sizes(level) for _, level, _ in levels]
    ranks = [_order_ranks(n, [q for _, q in QUANTILES]) for n in sizes]
    lcb_rank = np.split(_lower_confidence_ranks(np.concatenate(sizes), 0.99, P99_ALPHA),
                        np.cumsum([len(n) for n in sizes])[:-1])
    q_low = sel.select(0, [(level, np.hstack([r, c[:, None]])) for (_, level, _), r, c
                           in zip(levels, ranks, lcb_rank, strict=True)])
    q_high = sel.select(1, [(level, r) for (_, level, _), r in zip(levels, ranks, strict=True)])
    summary: list[_GroupRows] = []
    windows: list[_GroupRows] = []
    for (windowed, _, (win, src, dst)), n, lo, hi in zip(levels, sizes, q_low, q_high,
                                                         strict=True):
        rows = _GroupRows(win, np.full(len(win), hop_code), src, dst, n, lo[:, :-1], hi,
                          lo[:, -1])
        (windows if windowed else summary).append(rows)
    return summary, windows


def _tumbling_tables(
    parts: list[_HopRows], node_names: list[str], window_ns: int
) -> tuple[pa.Table, pa.Table] | None:
    """``summary_and_windows`` for tumbling windows without weights: per hop, the rows are
    grouped by ``(pair, window)`` (no sort) and one :class:`GroupedSelect` per value column
    answers every group of both tables at once (:func:`_one_hop`); ``None`` when the keys
    would not fit int64."""
    n_nodes = len(node_names)
    times = list({p.t_key or id(p): p.t_ns for p in parts}.values())  # shared ones once
    base = min(int(t.min()) for t in times) // window_ns
    n_win = max(int(t.max()) for t in times) // window_ns - base + 1
    n_keys = n_nodes * n_nodes * n_win
    if n_keys >= 2**62:
        return None
    code = np.int32 if n_keys < 2**31 else np.int64  # int32: half the memory traffic
    windows_of: dict[tuple[int, int, int], npt.NDArray[Any]] = {}  # by time column
    summary: list[_GroupRows] = []
    windows: list[_GroupRows] = []
    for hop_code, p in enumerate(parts):
        w = None if p.t_key is None else windows_of.get(p.t_key)
        if w is None:
            w = np.subtract(p.t_ns, base * window_ns)
            np.floor_divide(w, window_ns, out=w)
            w = w.astype(code, copy=False)
            if p.t_key is not None:
                windows_of[p.t_key] = w
        key: npt.NDArray[Any] = p.src.astype(code)  # (pair, window)
        key *= code(n_nodes)
        key += p.dst
        key *= code(n_win)
        key += w
        sel = GroupedSelect.of(key, n_keys, (p.low, p.high))
        s, w_rows = _one_hop(sel, hop_code, n_nodes, n_win)
        summary += s
        windows += w_rows
    hop_names = pa.array([p.name for p in parts], pa.string())
    node_arr = pa.array([*node_names, "*"], pa.string())
    out = []
    for rows, windowed in ((_GroupRows.concat(summary), False),
                           (_GroupRows.concat(windows), True)):
        keys: dict[str, pa.Array] = {}
        if windowed:
            start = (base + rows.window) * window_ns
            keys["window_start_ns"] = pa.array(start, pa.int64())
            keys["window_end_ns"] = pa.array(start + window_ns, pa.int64())
        keys["hop"] = hop_names.take(pa.array(rows.hop))
        keys["src_node"] = node_arr.take(pa.array(rows.src))
        keys["dst_node"] = node_arr.take(pa.array(rows.dst))
        out.append(_rows_table(keys, rows.count, None, rows.low, rows.high, rows.lcb))
    return out[0], out[1]


def summary_and_windows(
    hops: pa.Table, window_s: float, step_s: float | None = None
) -> tuple[pa.Table, pa.Table]:
    """``(percentile_table(hops), percentile_table(hops, window_s, step_s))``, sharing the
    work when the windows tumble and nothing is weighted: per hop (Arrow chunk by chunk,
    nothing concatenated or sorted), one binning and count of each value column answers
    every group of both tables (:func:`_tumbling_tables`). Other inputs (weights, sliding
    windows, null keys or times) take :func:`percentile_table` twice."""
    step = window_s if step_s is None else step_s
    window_ns = round(window_s * 1e9)
    if "weight" not in hops.column_names and round(step * 1e9) == window_ns > 0:
        split = _hop_rows(hops)
        tables = None if split is None else _tumbling_tables(split[0], split[1], window_ns)
        if tables is not None:
            return tables
    return percentile_table(hops), percentile_table(hops, window_s, step_s)
