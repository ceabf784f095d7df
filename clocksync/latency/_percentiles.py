"""Percentiles of hop latencies with guaranteed intervals, per hop and node pair, over the
whole input and over sliding windows.

Each request's true latency ``ℓ_i`` lies in ``[low_i, high_i]``. The q-quantile used here is
an order statistic (``inverted_cdf``: the smallest value whose cumulative weight reaches q),
and an order statistic is non-decreasing in every one of its arguments. So
``Q_q(low) <= Q_q(ℓ) <= Q_q(high)``: the same quantile of the lows and of the highs is a
guaranteed interval for the true quantile — no independence or distribution assumption.
The point value is the quantile of the interval midpoints. With sampling weights the same
argument holds for the weighted quantile of the *sampled* requests (the sampling itself adds
a statistical error, which is not part of the bound).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["QUANTILES", "grouped_quantiles", "percentile_table"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

#: Reported quantiles: column prefix and level.
QUANTILES: tuple[tuple[str, float], ...] = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99),
                                            ("max", 1.0))
_KEYS = ("hop", "src_node", "dst_node")


def grouped_quantiles(
    group: I64, values: F64, qs: Sequence[float], n_groups: int, weights: F64 | None = None
) -> F64:
    """``(n_groups, len(qs))`` order-statistic quantiles of ``values`` per group (NaN if empty).

    ``group`` holds codes in ``[0, n_groups)``. Unweighted: the ``ceil(q·n)``-th smallest.
    Weighted: the smallest value whose cumulative weight reaches ``q·total``.
    """
    out = np.full((n_groups, len(qs)), np.nan)
    if len(values) == 0:
        return out
    order = np.lexsort((values, group))
    g, v = group[order], values[order]
    starts = np.searchsorted(g, np.arange(n_groups), side="left")
    ends = np.searchsorted(g, np.arange(n_groups), side="right")
    nonempty = ends > starts
    if weights is None:
        counts = (ends - starts).astype(np.float64)
        for j, q in enumerate(qs):
            k = np.clip(np.ceil(q * counts).astype(np.int64) - 1, 0, None)
            idx = np.minimum(starts + k, np.maximum(ends - 1, 0))
            out[nonempty, j] = v[idx[nonempty]]
        return out
    cw = np.cumsum(weights[order].astype(np.float64))
    before = np.where(starts > 0, cw[np.maximum(starts - 1, 0)], 0.0)
    total = np.where(nonempty, cw[np.maximum(ends - 1, 0)] - before, 0.0)
    for j, q in enumerate(qs):
        target = before + q * total
        idx = np.searchsorted(cw, target * (1 - 1e-12), side="left")
        idx = np.clip(idx, starts, np.maximum(ends - 1, 0))
        out[nonempty, j] = v[idx[nonempty]]
    return out


def _window_starts(t_ns: I64, window_ns: int, step_ns: int) -> tuple[I64, I64]:
    """``(row index, window start)`` for every window of length ``window_ns`` each row is in."""
    per = window_ns // step_ns
    base = np.floor_divide(t_ns, step_ns)
    rows = np.tile(np.arange(len(t_ns), dtype=np.int64), per)
    starts = np.concatenate([(base - m) * step_ns for m in range(per)]).astype(np.int64)
    return rows, starts


def _multi_pair_rows(hops: pa.Table) -> I64:
    """Rows of the hops that have more than one ``(src_node, dst_node)`` pair."""
    if not hops.num_rows:
        return np.zeros(0, np.int64)
    pairs = hops.group_by(["hop", "src_node", "dst_node"]).aggregate([]).group_by(
        "hop").aggregate([("src_node", "count")])
    many = pairs.filter(pc.greater(pairs.column("src_node_count"), 1)).column("hop")
    mask = pc.is_in(hops.column("hop"), value_set=many.combine_chunks())
    return np.flatnonzero(mask.to_numpy(zero_copy_only=False)).astype(np.int64)


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
    ``all_pairs`` adds rows with ``src_node = dst_node = "*"`` over all node pairs of a hop.
    """
    keys = [hops.column(k).combine_chunks() for k in _KEYS]
    mid = hops.column("latency_ns").to_numpy().astype(np.float64)
    low = hops.column("low_ns").to_numpy().astype(np.float64)
    high = hops.column("high_ns").to_numpy().astype(np.float64)
    weight = (hops.column("weight").to_numpy().astype(np.float64)
              if "weight" in hops.column_names else None)
    rows = np.arange(hops.num_rows, dtype=np.int64)
    multi = _multi_pair_rows(hops) if all_pairs else rows[:0]
    if len(multi):
        star = pa.array(["*"] * len(multi), pa.string())
        keys = [pa.concat_arrays([keys[0], keys[0].take(pa.array(multi))]),
                pa.concat_arrays([keys[1], star]), pa.concat_arrays([keys[2], star])]
        rows = np.concatenate([rows, multi])
    win_start: I64 | None = None
    win_ns = 0
    if window_s is not None:
        win_ns = round(window_s * 1e9)
        step_ns = round((step_s or window_s) * 1e9)
        if win_ns <= 0 or step_ns <= 0 or win_ns % step_ns:
            raise ValueError("window must be a positive multiple of the step")
        t = hops.column("src_ref_ns").to_numpy().astype(np.int64)[rows]
        rep, win_start = _window_starts(t, win_ns, step_ns)
        keys = [k.take(pa.array(rep)) for k in keys]
        rows = rows[rep]
    codes = []
    dicts = []
    for k in keys:
        enc = pc.dictionary_encode(k)
        codes.append(enc.indices.to_numpy(zero_copy_only=False).astype(np.int64))
        dicts.append(enc.dictionary)
    parts = [*codes] if win_start is None else [*codes, win_start]
    if len(rows):
        stacked = np.stack(parts, axis=1)
        uniq, inverse = np.unique(stacked, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
    else:
        uniq, inverse = np.zeros((0, len(parts)), dtype=np.int64), np.zeros(0, np.int64)
    n_groups = len(uniq)
    w = None if weight is None else weight[rows]
    qs = [q for _, q in QUANTILES]
    q_mid = grouped_quantiles(inverse, mid[rows], qs, n_groups, w)
    q_low = grouped_quantiles(inverse, low[rows], qs, n_groups, w)
    q_high = grouped_quantiles(inverse, high[rows], qs, n_groups, w)
    out: dict[str, pa.Array] = {}
    if win_start is not None:
        out["window_start_ns"] = pa.array(uniq[:, 3], pa.int64())
        out["window_end_ns"] = pa.array(uniq[:, 3] + win_ns, pa.int64())
    for i, name in enumerate(_KEYS):
        out[name] = dicts[i].take(pa.array(uniq[:, i]))
    out["count"] = pa.array(np.bincount(inverse, minlength=n_groups), pa.int64())
    if w is not None:
        out["weight_sum"] = pa.array(np.bincount(inverse, weights=w, minlength=n_groups))
    for j, (name, _) in enumerate(QUANTILES):
        out[f"{name}_ns"] = pa.array(q_mid[:, j])
        out[f"{name}_low_ns"] = pa.array(q_low[:, j])
        out[f"{name}_high_ns"] = pa.array(q_high[:, j])
    table = pa.table(out)
    sort = [("hop", "ascending"), ("src_node", "ascending"), ("dst_node", "ascending")]
    if win_start is not None:
        sort = [("window_start_ns", "ascending"), *sort]
    return table.sort_by(sort)
