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

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from scipy.stats import binom

from ._arrow import dictionary_codes, group_order, shared_codes
from ._select import select_ranks

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
    for k in np.flatnonzero(ends > starts).tolist():
        a, b = int(starts[k]), int(ends[k])
        v = ordered[a:b]
        n = b - a
        if w_ordered is None:
            kth = [min(max(math.ceil(q * n) - 1, 0), n - 1) for q in qs]
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
    q_mid = (q_low + q_high) / 2
    out: dict[str, pa.Array] = {}
    if win is not None:
        start_of = win.w0 + (g_outer % n_win) * win.step_ns
        out["window_start_ns"] = pa.array(start_of, pa.int64())
        out["window_end_ns"] = pa.array(start_of + win.win_ns, pa.int64())
    out["hop"] = cols.hop_names.take(pa.array(g_outer // n_win))
    out["src_node"] = cols.node_names.take(pa.array(g_pair // n_nodes))
    out["dst_node"] = cols.node_names.take(pa.array(g_pair % n_nodes))
    out["count"] = pa.array(ends - starts, pa.int64())
    if weight is not None:
        cw = np.concatenate([[0.0], np.cumsum(weight)])
        out["weight_sum"] = pa.array(cw[ends] - cw[starts])
    for j, (name, _) in enumerate(QUANTILES):
        out[f"{name}_ns"] = pa.array(q_mid[:, j])
        out[f"{name}_low_ns"] = pa.array(q_low[:, j])
        out[f"{name}_high_ns"] = pa.array(q_high[:, j])
    out["p99_low_lcb_ns"] = pa.array(lcb[:, 0])
    table = pa.table(out)
    sort = [("hop", "ascending"), ("src_node", "ascending"), ("dst_node", "ascending")]
    if win is not None:
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


def summary_and_windows(
    hops: pa.Table, window_s: float, step_s: float | None = None
) -> tuple[pa.Table, pa.Table]:
    """``(percentile_table(hops), percentile_table(hops, window_s, step_s))``, sharing the
    work when the windows tumble and nothing is weighted: one sort of the rows by
    ``(hop, pair, window)`` and one gather of the lows and highs serve both tables (the
    whole-input groups are unions of consecutive window groups; the per-window tables
    take the same runs in ``(hop, window, pair)`` order, copied run by run)."""
    step = window_s if step_s is None else step_s
    if "weight" in hops.column_names or round(step * 1e9) != round(window_s * 1e9):
        return percentile_table(hops), percentile_table(hops, window_s, step_s)
    cols = _Columns.of(hops)
    n_pair = cols.n_nodes * cols.n_nodes
    win = _Windows.of(hops, window_s, step_s, len(cols.hop_names), n_pair)
    # outer = (hop, pair), inner = window: rows sorted by hop, pair, window
    hp: npt.NDArray[Any] = cols.hop.astype(win.widx.dtype)
    hp *= n_pair
    hp += cols.pair
    order, bounds, g_hp, g_w = _group_ranges(hp, win.widx, win.n_win)
    low, high = cols.low[order], cols.high[order]
    # the per-window table: the same runs in (hop, window, pair) order
    g_hop, g_pair = g_hp // n_pair, g_hp % n_pair
    runs = np.lexsort((g_pair, g_w, g_hop))
    lengths = np.diff(bounds)
    w_bounds = np.concatenate([[0], np.cumsum(lengths[runs])]).astype(np.int64)
    picks = [slice(int(bounds[r]), int(bounds[r + 1])) for r in runs.tolist()]
    w_low = np.concatenate([low[p] for p in picks]) if picks else low.copy()
    w_high = np.concatenate([high[p] for p in picks]) if picks else high.copy()
    windows = _table(cols, w_low, w_high, None, w_bounds, g_hop[runs] * win.n_win + g_w[runs],
                     g_pair[runs], win, True)
    # the whole-input table: consecutive window groups of one (hop, pair) merge
    first = np.concatenate([[True], g_hp[1:] != g_hp[:-1]]) if len(g_hp) else np.zeros(0, bool)
    s_bounds = np.concatenate([bounds[:-1][first], [len(low)]]).astype(np.int64)
    summary = _table(cols, low, high, None, s_bounds, g_hop[first], g_pair[first], None, True)
    return summary, windows
