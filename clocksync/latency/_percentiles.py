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

One engine computes every table (:func:`percentile_table`, :func:`summary_and_windows`,
:func:`grouped_quantiles`). The hop table is read Arrow chunk by chunk and split by hop;
per hop, each row gets a *fine* group, its ``(node pair, window)``, and every group of the
output is a *level*: a union of fine groups (each pair and window; each pair over the whole
input; ``*`` = all pairs of a window, or of the whole input). The order statistics of all
levels come from one :class:`~._select.GroupedSelect` per hop and value column (a fixed
number of passes over the rows, no sort of them); weighted quantiles from a sort of each
level group's values. Sliding windows repeat each row once per window that holds it.
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

from ._arrow import group_order
from ._select import GroupedSelect

__all__ = ["P99_ALPHA", "QUANTILES", "grouped_quantiles", "lower_confidence_rank",
           "percentile_table", "summary_and_window", "summary_and_windows"]

#: ``p99_low_lcb_ns`` is a lower bound of the population P99 with confidence ``1 - P99_ALPHA``.
P99_ALPHA = 0.05

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]

#: Reported quantiles: column prefix and level.
QUANTILES: tuple[tuple[str, float], ...] = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99),
                                            ("max", 1.0))


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


def _weighted_quantiles(values: F64, weights: F64, order: I64, bounds: I64,
                        qs: Sequence[float]) -> F64:
    """``(groups, len(qs))``: per group ``order[bounds[k]:bounds[k+1]]`` the smallest value
    whose cumulative weight reaches ``q·total`` (the group's values sorted stably, their
    weights summed in that order); NaN for an empty group."""
    q_arr = np.asarray(qs, dtype=np.float64)
    out = np.full((len(bounds) - 1, len(qs)), np.nan)
    for k in np.flatnonzero(np.diff(bounds) > 0).tolist():
        rows = order[bounds[k]:bounds[k + 1]]
        v = values[rows]
        srt = np.argsort(v, kind="stable")
        cw = np.cumsum(weights[rows][srt])
        idx = np.searchsorted(cw, q_arr * cw[-1] * (1 - 1e-12), side="left")
        out[k] = v[srt][np.clip(idx, 0, len(v) - 1)]
    return out


def grouped_quantiles(
    group: I64, values: F64, qs: Sequence[float], n_groups: int, weights: F64 | None = None
) -> F64:
    """``(n_groups, len(qs))`` order-statistic quantiles of ``values`` per group (NaN if empty).

    ``group`` holds codes in ``[0, n_groups)``. Unweighted: the ``ceil(q·n)``-th smallest.
    Weighted: the smallest value whose cumulative weight reaches ``q·total``.
    """
    group = np.asarray(group, dtype=np.int64)
    values = np.asarray(values, dtype=np.float64)
    if weights is not None:
        order, bounds = group_order(group, n_groups)
        return _weighted_quantiles(values, np.asarray(weights, dtype=np.float64), order,
                                   bounds, qs)
    out = np.full((n_groups, len(qs)), np.nan)
    if len(values):
        sel = GroupedSelect.of(group, n_groups, (values,))
        out[sel.keys] = sel.select(0, [(None, _order_ranks(sel.sizes, qs))])[0]
    return out


@dataclass(frozen=True, slots=True)
class _HopRows:
    """One hop's rows as numpy arrays (views of the Arrow buffers where they can be)."""

    name: str | None
    src: I32  # node codes into the shared node names
    dst: I32
    low: F64
    high: F64
    t_ns: I64 | None  # the source's corrected time (windows), None when not needed
    weight: F64 | None


def _string_codes(arr: pa.Array) -> tuple[npt.NDArray[Any], list[str | None]]:
    """``(codes, values)`` of a chunk of a string-like column, dictionary-encoded or not
    (a null is a value of its own)."""
    if (pa.types.is_dictionary(arr.type) and pa.types.is_string(arr.type.value_type)
            and not arr.null_count and not arr.dictionary.null_count):
        return arr.indices.to_numpy(), arr.dictionary.to_pylist()
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if not pa.types.is_string(arr.type):
        arr = arr.cast(pa.string())
    enc = pc.dictionary_encode(arr, null_encoding="encode")
    return enc.indices.to_numpy(), enc.dictionary.to_pylist()


def _hop_rows(hops: pa.Table, with_time: bool) -> tuple[list[_HopRows], list[str | None]]:
    """The table's rows split by hop, in row order, Arrow chunk by chunk (a chunk of one hop,
    as :func:`~._pipeline.hop_table` writes them, is used as it is; others are split), and
    the node names the codes refer to. ``with_time``: read ``src_ref_ns`` too (no nulls)."""
    node_code: dict[str | None, int] = {}
    parts: dict[str | None, list[tuple[Any, ...]]] = {}
    names = ["hop", "src_node", "dst_node", "low_ns", "high_ns"]
    weighted = "weight" in hops.column_names
    if with_time:
        names.append("src_ref_ns")
    if weighted:
        names.append("weight")
    for batch in hops.select(names).to_batches():
        if not batch.num_rows:
            continue
        (hop, hop_d), (src, src_d), (dst, dst_d) = (_string_codes(batch.column(k))
                                                    for k in range(3))
        nodes = []
        for codes, values in ((src, src_d), (dst, dst_d)):
            lookup = np.array([node_code.setdefault(v, len(node_code)) for v in values],
                              dtype=np.int32)
            same = np.array_equal(lookup, np.arange(len(values)))
            nodes.append(codes.astype(np.int32, copy=False) if same else lookup[codes])
        cols: list[Any] = [*nodes, *(batch.column(k).to_numpy(zero_copy_only=False)
                                     .astype(np.float64, copy=False) for k in (3, 4))]
        t_arr = batch.column("src_ref_ns") if with_time else None
        if t_arr is not None and t_arr.null_count:
            raise ValueError("percentiles per window: src_ref_ns has nulls")
        cols.append(None if t_arr is None else t_arr.to_numpy().astype(np.int64, copy=False))
        cols.append(batch.column("weight").to_numpy(zero_copy_only=False)
                    .astype(np.float64, copy=False) if weighted else None)
        first, last = int(hop.min()), int(hop.max())
        if first == last:
            parts.setdefault(hop_d[first], []).append(tuple(cols))
            continue
        for code in np.flatnonzero(np.bincount(hop)).tolist():
            rows = np.flatnonzero(hop == code)
            parts.setdefault(hop_d[code], []).append(
                tuple(None if c is None else c[rows] for c in cols))
    out = []
    for name, ps in parts.items():
        cat = [ps[0][k] if len(ps) == 1 or ps[0][k] is None
               else np.concatenate([p[k] for p in ps]) for k in range(6)]
        out.append(_HopRows(name, *cat))
    return out, list(node_code)


@dataclass(frozen=True, slots=True)
class _WindowSpec:
    """Windows of ``win_ns`` every ``step_ns``; window ``k`` starts at ``(base + k)·step_ns``
    (``base`` from the earliest time), ``n_win`` of them."""

    win_ns: int
    step_ns: int
    base: int
    n_win: int

    @property
    def per(self) -> int:
        """Windows that hold each time."""
        return self.win_ns // self.step_ns

    @classmethod
    def of(cls, parts: Sequence[_HopRows], window_s: float, step_s: float | None
           ) -> _WindowSpec:
        win_ns = round(window_s * 1e9)
        step_ns = round((step_s or window_s) * 1e9)
        if win_ns <= 0 or step_ns <= 0 or win_ns % step_ns:
            raise ValueError("window must be a positive multiple of the step")
        times = [p.t_ns for p in parts if p.t_ns is not None and len(p.t_ns)]
        if not times:
            return cls(win_ns, step_ns, 0, 1)
        first = min(int(t.min()) for t in times) // step_ns
        last = max(int(t.max()) for t in times) // step_ns
        base = first - (win_ns // step_ns - 1)
        return cls(win_ns, step_ns, base, last - base + 1)

    def index(self, t_ns: I64) -> I64:
        """Per time, its latest window (the others precede it, one step apart)."""
        w = np.floor_divide(t_ns, self.step_ns)
        w -= self.base
        return w


@dataclass(frozen=True, slots=True)
class _GroupRows:
    """Rows of a percentile table, before they become Arrow columns."""

    window: I64  # window index (0 in the summary)
    hop: I64
    src: I64  # node codes, the node count for "*"
    dst: I64
    count: I64
    weight_sum: F64 | None
    low: F64  # (rows, len(QUANTILES)) order statistics of the lows
    high: F64  # and of the highs
    lcb: F64  # P99 lower confidence bound of the lows (NaN when weighted)

    @classmethod
    def concat(cls, parts: Sequence[_GroupRows], n_q: int, weighted: bool) -> _GroupRows:
        if not parts:
            empty = np.zeros(0, np.int64)
            return cls(empty, empty, empty, empty, empty, np.zeros(0) if weighted else None,
                       np.zeros((0, n_q)), np.zeros((0, n_q)), np.zeros(0))
        def cat(field: str) -> Any:
            return np.concatenate([getattr(r, field) for r in parts])

        return cls(window=cat("window"), hop=cat("hop"), src=cat("src"), dst=cat("dst"),
                   count=cat("count"),
                   weight_sum=cat("weight_sum") if weighted else None,
                   low=cat("low"), high=cat("high"), lcb=cat("lcb"))


@dataclass(frozen=True, slots=True)
class _Level:
    """Groups of the output made of fine groups: ``of_fine[k]`` = the group of fine group
    ``k`` (``None``: the fine groups themselves), and per group its window, source and
    destination codes; ``windowed``: a row of the window table, else of the summary."""

    windowed: bool
    of_fine: I64 | None
    window: I64
    src: I64
    dst: I64


def _levels(keys: I64, n_nodes: int, windowed: bool, summary: bool,
            star: bool) -> list[_Level]:
    """The levels of one hop whose fine groups have keys ``window·n_nodes² + src·n_nodes +
    dst`` (ascending): the fine groups (per pair and window, or per pair when not
    ``windowed``), per pair (``summary`` of windowed rows), and, when ``star`` and the hop
    has more than one pair, ``*`` per window and over everything."""
    g_win, g_pair = np.divmod(keys, n_nodes * n_nodes)
    levels = [_Level(windowed, None, g_win, g_pair // n_nodes, g_pair % n_nodes)]
    pairs, by_pair = np.unique(g_pair, return_inverse=True)
    if windowed and summary:
        levels.append(_Level(False, by_pair.reshape(-1).astype(np.int64),
                             np.zeros_like(pairs), pairs // n_nodes, pairs % n_nodes))
    if star and len(pairs) > 1:
        if windowed:
            wins, by_win = np.unique(g_win, return_inverse=True)
            stars = np.full_like(wins, n_nodes)
            levels.append(_Level(True, by_win.reshape(-1).astype(np.int64), wins, stars,
                                 stars))
        if summary:
            one = np.zeros(1, np.int64)
            levels.append(_Level(False, np.zeros(len(keys), np.int64), one, one + n_nodes,
                                 one + n_nodes))
    return levels


def _unweighted_rows(key: npt.NDArray[Any], n_keys: int, low: F64, high: F64,
                     hop_code: int, n_nodes: int, windowed: bool, summary: bool,
                     star: bool) -> list[tuple[bool, _GroupRows]]:
    """Every level's rows of one hop from one :class:`GroupedSelect` per value column (the
    P99 lower confidence rank rides on the lows)."""
    sel = GroupedSelect.of(key, n_keys, (low, high))
    levels = _levels(sel.keys, n_nodes, windowed, summary, star)
    sizes = [sel.level_sizes(lv.of_fine) for lv in levels]
    ranks = [_order_ranks(n, [q for _, q in QUANTILES]) for n in sizes]
    lcb_rank = np.split(_lower_confidence_ranks(np.concatenate(sizes), 0.99, P99_ALPHA),
                        np.cumsum([len(n) for n in sizes])[:-1])
    q_low = sel.select(0, [(lv.of_fine, np.hstack([r, c[:, None]]))
                           for lv, r, c in zip(levels, ranks, lcb_rank, strict=True)])
    q_high = sel.select(1, [(lv.of_fine, r) for lv, r in zip(levels, ranks, strict=True)])
    return [(lv.windowed, _GroupRows(lv.window, np.full(len(lv.window), hop_code), lv.src,
                                     lv.dst, n, None, lo[:, :-1], hi, lo[:, -1]))
            for lv, n, lo, hi in zip(levels, sizes, q_low, q_high, strict=True)]


def _weighted_rows(key: npt.NDArray[Any], n_keys: int, low: F64, high: F64, weight: F64,
                   pair: I64, n_pair: int, hop_code: int, n_nodes: int, windowed: bool,
                   summary: bool, star: bool) -> list[tuple[bool, _GroupRows]]:
    """Every level's rows of one hop, weighted: each level group's rows in pair order (in
    row order within a pair), their values sorted and weights summed in that order. The
    rows sorted by key (window, then pair) serve every level whose groups are runs of
    consecutive fine groups (the fine ones, ``*`` per window and over everything)."""
    order = np.argsort(key.astype(np.uint16) if n_keys <= 65_536 else key, kind="stable")
    k_sorted = key[order]
    first = np.concatenate([[0], np.flatnonzero(k_sorted[1:] != k_sorted[:-1]) + 1])
    fine_bounds = np.append(first, len(key)).astype(np.int64)
    qs = [q for _, q in QUANTILES]
    out = []
    for lv in _levels(k_sorted[first].astype(np.int64), n_nodes, windowed, summary, star):
        n_groups = len(lv.window)
        if lv.of_fine is None:
            lv_order, bounds = order, fine_bounds
        elif np.all(lv.of_fine[1:] >= lv.of_fine[:-1]):  # runs of fine groups
            cut = np.flatnonzero(np.diff(lv.of_fine)) + 1
            lv_order, bounds = order, fine_bounds[np.concatenate([[0], cut, [len(first)]])]
        else:  # the rows again, by the level's group, then pair
            fine = np.empty(len(key), dtype=np.int64)
            fine[order] = np.repeat(np.arange(len(first)), np.diff(fine_bounds))
            group = lv.of_fine[fine]
            by = group * n_pair + pair
            lv_order = np.argsort(by.astype(np.uint16) if n_groups * n_pair <= 65_536 else by,
                                  kind="stable")
            bounds = np.zeros(n_groups + 1, dtype=np.int64)
            np.cumsum(np.bincount(group, minlength=n_groups), out=bounds[1:])
        weight_sum = (np.add.reduceat(weight[lv_order], bounds[:-1]) if len(lv_order)
                      else np.zeros(n_groups))  # (every level group holds rows)
        out.append((lv.windowed, _GroupRows(
            lv.window, np.full(n_groups, hop_code), lv.src, lv.dst, np.diff(bounds),
            weight_sum, _weighted_quantiles(low, weight, lv_order, bounds, qs),
            _weighted_quantiles(high, weight, lv_order, bounds, qs),
            np.full(n_groups, np.nan))))
    return out


def _hop_groups(p: _HopRows, hop_code: int, n_nodes: int, spec: _WindowSpec | None,
                windowed: bool, summary: bool, star: bool) -> list[tuple[bool, _GroupRows]]:
    """The rows of one hop's groups, each tagged with its table (``True``: the window
    table, by ``spec``, when ``windowed``; ``False``: the summary, when ``summary``): from
    one grouping of the rows when the windows tumble (or there are none), else the summary
    from the rows and the windows from the rows repeated once per window that holds them."""
    if windowed and summary and spec is not None and spec.per > 1:
        return (_hop_groups(p, hop_code, n_nodes, None, False, True, star)
                + _hop_groups(p, hop_code, n_nodes, spec, True, False, star))
    n_win = spec.n_win if windowed and spec is not None else 1
    n_pair = n_nodes * n_nodes
    n_keys = n_pair * n_win
    code = np.int32 if n_keys < 2**31 else np.int64  # int32: half the memory traffic
    low, high, weight = p.low, p.high, p.weight
    pair: npt.NDArray[Any] = p.src.astype(code)
    pair *= code(n_nodes)
    pair += p.dst
    key: npt.NDArray[Any] = pair
    if windowed and spec is not None:
        assert p.t_ns is not None
        w: npt.NDArray[Any] = spec.index(p.t_ns).astype(code)
        if spec.per > 1:  # each row in each window that holds it: w, w - 1, ...
            n = len(w)
            rows = np.tile(np.arange(n, dtype=np.int64), spec.per)
            w = np.concatenate([w - m for m in range(spec.per)])
            pair = pair[rows]
            low, high = low[rows], high[rows]
            weight = None if weight is None else weight[rows]
        key = w * code(n_pair)
        key += pair
    if weight is not None:
        return _weighted_rows(key, n_keys, low, high, weight, pair.astype(np.int64), n_pair,
                              hop_code, n_nodes, windowed, summary, star)
    return _unweighted_rows(key, n_keys, low, high, hop_code, n_nodes, windowed, summary,
                            star)


def _tables(hops: pa.Table, window_s: float | None, step_s: float | None, summary: bool,
            all_pairs: bool) -> tuple[pa.Table | None, pa.Table | None]:
    """``(summary or None, window table or None)`` of a hop table: the one engine."""
    parts, node_names = _hop_rows(hops, with_time=window_s is not None)
    spec = None if window_s is None else _WindowSpec.of(parts, window_s, step_s)
    n_nodes = len(node_names)
    weighted = "weight" in hops.column_names
    if spec is not None and (n_nodes + 1) ** 2 * spec.n_win >= 2**62:
        raise ValueError("percentiles: too many windows for the node pairs")
    rows: list[tuple[bool, _GroupRows]] = []
    for hop_code, p in enumerate(parts):
        rows += _hop_groups(p, hop_code, n_nodes, spec, spec is not None, summary, all_pairs)
    hop_names = pa.array([p.name for p in parts], pa.string())
    node_arr = pa.array([*node_names, "*"], pa.string())
    n_q = len(QUANTILES)
    out: list[pa.Table | None] = []
    for windowed in (False, True):
        if (windowed and spec is None) or (not windowed and not summary):
            out.append(None)
            continue
        mine = _GroupRows.concat([r for tag, r in rows if tag == windowed], n_q, weighted)
        keys: dict[str, pa.Array] = {}
        if windowed:
            assert spec is not None
            start = (spec.base + mine.window) * spec.step_ns
            keys["window_start_ns"] = pa.array(start, pa.int64())
            keys["window_end_ns"] = pa.array(start + spec.win_ns, pa.int64())
        keys["hop"] = hop_names.take(pa.array(mine.hop, pa.int64()))
        keys["src_node"] = node_arr.take(pa.array(mine.src, pa.int64()))
        keys["dst_node"] = node_arr.take(pa.array(mine.dst, pa.int64()))
        out.append(_rows_table(keys, mine.count, mine.weight_sum, mine.low, mine.high,
                               mine.lcb))
    return out[0], out[1]


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
        out["weight_sum"] = pa.array(weight_sum, pa.float64())
    for j, (name, _) in enumerate(QUANTILES):
        out[f"{name}_ns"] = pa.array(q_mid[:, j], pa.float64())
        out[f"{name}_low_ns"] = pa.array(q_low[:, j], pa.float64())
        out[f"{name}_high_ns"] = pa.array(q_high[:, j], pa.float64())
    out["p99_low_lcb_ns"] = pa.array(lcb, pa.float64())
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
    summary, windows = _tables(hops, window_s, step_s, window_s is None, all_pairs)
    table = summary if window_s is None else windows
    assert table is not None
    return table


def summary_and_windows(
    hops: pa.Table, window_s: float, step_s: float | None = None
) -> tuple[pa.Table, pa.Table]:
    """``(percentile_table(hops), percentile_table(hops, window_s, step_s))`` from one
    reading of the hop table (and, for tumbling windows, one grouping of its rows)."""
    summary, windows = _tables(hops, window_s, step_s, True, True)
    assert summary is not None and windows is not None
    return summary, windows


def summary_and_window(hops: pa.Table, window_s: float, step_s: float | None, start_ns: int
                       ) -> tuple[pa.Table, pa.Table]:
    """``(percentile_table(hops), the rows of percentile_table(hops, window_s, step_s) of
    the window that starts at start_ns)``, the window's rows sorted as that table has them.

    When every row's ``src_ref_ns`` lies in that window (and it is one of the table's
    windows), the window's rows are the summary's with the window's bounds: the rows are
    grouped once, not once for the summary and once for each window that holds them."""
    spec = _WindowSpec.of([], window_s, step_s)  # (the windows' sizes, checked)
    win_ns = spec.win_ns
    times = hops.column("src_ref_ns") if "src_ref_ns" in hops.column_names else None
    if (hops.num_rows and times is not None and not times.null_count
            and start_ns % spec.step_ns == 0):
        bounds = pc.min_max(times)
        if start_ns <= bounds["min"].as_py() and bounds["max"].as_py() < start_ns + win_ns:
            summary, _ = _tables(hops, None, None, True, True)
            assert summary is not None
            n = summary.num_rows
            rows = summary.add_column(0, "window_start_ns", pa.array(
                np.full(n, start_ns, np.int64))).add_column(1, "window_end_ns", pa.array(
                    np.full(n, start_ns + win_ns, np.int64)))
            return summary, rows
    summary, windows = summary_and_windows(hops, window_s, step_s)
    return summary, windows.filter(pc.equal(windows.column("window_start_ns"), start_ns))
