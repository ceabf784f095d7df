"""Alerts: sliding-window P99 rises above a robust baseline, and clock health.

Latency alert, per ``(hop, src_node, dst_node)`` and window (in time order): the baseline is
the median ``m`` and MAD of the P99 point values of the previous ``baseline_windows``
windows that had at least ``min_requests`` requests; the threshold is
``max(m + k_mad·1.4826·MAD, m·(1 + min_rise_fraction))``. The alert fires when the window's
P99 *lower bound* is above the threshold, so clock error alone can never fire it; more
precisely its 95%-confidence lower bound of the population P99 (``p99_low_lcb_ns``, see
:mod:`._percentiles`), so the sampling noise of a P99 from a few hundred requests does not
fire it either (the guaranteed lower bound is used where no confidence bound exists). A run of
consecutive firing windows is one alert (spanning the run, value = the peak; its worst
requests are those of the run's first window).

Clock-health alerts: a node's correction bound above ``max_clock_bound_ns`` in a window; a
node's table reported ``free_running``/``disrupted``, or events in holdover longer than
``free_running_after_s`` past its last sample; node pairs whose causal constraints contradict
the tables (:mod:`._causal`). Every alert carries its window, hop, nodes and the worst requests
with their context attributes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from .._model._units import format_ns
from ._causal import PairWindow

__all__ = [
    "Alert",
    "AlertConfig",
    "WorstRequest",
    "clock_alerts",
    "inconsistency_alerts",
    "latency_alerts",
    "worst_requests",
]

_MAD_TO_SIGMA = 1.4826
_BASE_COLUMNS = frozenset({
    "request_id", "hop", "src_node", "dst_node", "src_ref_ns", "latency_ns", "low_ns",
    "high_ns", "raw_latency_ns", "table_low_ns", "table_high_ns", "order_unknown",
    "inconsistent", "weight", "src_ts_ns", "dst_ts_ns",
})


@dataclass(frozen=True, slots=True)
class AlertConfig:
    """Alert thresholds (each documented, each configurable).

    Attributes:
        k_mad: MADs (scaled to σ) above the baseline median that count as a rise.
        baseline_windows: how many previous windows form the baseline.
        min_baseline_windows: fewer usable previous windows -> no latency alert yet.
        min_rise_fraction: the P99 must also exceed the median by this fraction.
        min_requests: windows with fewer requests are neither judged nor in baselines.
        worst: how many worst requests each alert carries.
        max_clock_bound_ns: a node's correction bound above this raises a clock alert (ns).
        free_running_after_s: holdover longer than this past the last sample alerts (s).
    """

    k_mad: float = 5.0
    baseline_windows: int = 12
    min_baseline_windows: int = 5
    min_rise_fraction: float = 0.2
    min_requests: int = 50
    worst: int = 5
    max_clock_bound_ns: float = 1_000_000.0
    free_running_after_s: float = 60.0


@dataclass(frozen=True, slots=True)
class WorstRequest:
    """One request an alert points at: its hop interval, the two local stamps it was
    computed from (``None`` when the hop table lacks them), and context attributes."""

    request_id: str
    latency_ns: float
    low_ns: float
    high_ns: float
    attributes: tuple[tuple[str, Any], ...] = ()
    src_ts_ns: int | None = None
    dst_ts_ns: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"request_id": self.request_id, "latency_ns": self.latency_ns,
                "low_ns": self.low_ns, "high_ns": self.high_ns,
                "src_ts_ns": self.src_ts_ns, "dst_ts_ns": self.dst_ts_ns,
                "attributes": dict(self.attributes)}


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert.

    Attributes:
        kind: ``latency_p99``, ``clock_bound``, ``clock_status``, ``free_running`` or
            ``inconsistent``.
        window_start_ns, window_end_ns: the window (reference time, ns).
        hop: hop name (``""`` for clock alerts about a single node).
        src_node, dst_node: the nodes (``dst_node`` empty for single-node alerts).
        value_ns: the measured value (P99 lower bound, clock bound, ...; ns, NaN if none).
        threshold_ns: what it exceeded (ns, NaN if none).
        message: one readable line.
        worst: worst requests, with their context attributes.
    """

    kind: str
    window_start_ns: int
    window_end_ns: int
    hop: str
    src_node: str
    dst_node: str
    value_ns: float
    threshold_ns: float
    message: str
    worst: tuple[WorstRequest, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in (
            "kind", "window_start_ns", "window_end_ns", "hop", "src_node", "dst_node",
            "value_ns", "threshold_ns", "message")}
        out["worst"] = [w.to_dict() for w in self.worst]
        return out


def worst_requests(hops: pa.Table, mask: npt.NDArray[np.bool_], n: int,
                   by: str = "high_ns") -> tuple[WorstRequest, ...]:
    """The ``n`` rows of ``hops`` under ``mask`` with the largest ``by``, with attributes."""
    idx = np.flatnonzero(mask)
    if not len(idx):
        return ()
    order = -hops.column(by).to_numpy()[idx]
    pick = None
    if len(order) > 4 * n > 0:  # the n smallest without sorting them all
        kth = np.partition(order, n - 1)[n - 1]
        if not np.isnan(kth):  # (ties with the n-th are kept: the stable order decides)
            near = np.flatnonzero(order <= kth)
            pick = near[np.argsort(order[near], kind="stable")[:n]]
    if pick is None:
        pick = np.argsort(order, kind="stable")[:n]
    # one-row slices: a take of a chunked dictionary column would copy all of its chunks
    rows = [r for i in idx[pick].tolist() for r in hops.slice(i, 1).to_pylist()]
    ctx = [c for c in hops.column_names if c not in _BASE_COLUMNS]
    return tuple(
        WorstRequest(str(r["request_id"]), float(r["latency_ns"]), float(r["low_ns"]),
                     float(r["high_ns"]), tuple((c, r[c]) for c in ctx),
                     r.get("src_ts_ns"), r.get("dst_ts_ns"))
        for r in rows)


def _is_in(column: pa.ChunkedArray, values: list[str]) -> npt.NDArray[np.bool_]:
    """Which rows of a string (or dictionary-typed) column hold one of ``values`` (a
    dictionary-typed column is looked up by its dictionaries, not row by row)."""
    value_set = pa.array(values, pa.string())
    if not pa.types.is_dictionary(column.type):
        hit = pc.is_in(column, value_set=value_set)
        return np.asarray(hit.to_numpy(zero_copy_only=False), dtype=bool)
    parts = []
    for chunk in column.chunks:
        known = pc.is_in(chunk.dictionary.cast(pa.string()), value_set=value_set)
        lookup = np.append(np.asarray(known.to_numpy(zero_copy_only=False), dtype=bool), False)
        codes = chunk.indices.fill_null(-1).to_numpy(zero_copy_only=False)
        parts.append(lookup[codes])  # (-1: null, never in)
    return np.concatenate(parts) if parts else np.zeros(0, dtype=bool)


def _group_mask(hops: pa.Table, hop: str, src: str, dst: str, start: int, end: int
                ) -> npt.NDArray[np.bool_]:
    m = _is_in(hops.column("hop"), [hop])
    if src != "*":
        m &= _is_in(hops.column("src_node"), [src]) & _is_in(hops.column("dst_node"), [dst])
    t = hops.column("src_ref_ns").to_numpy()
    inside: npt.NDArray[np.bool_] = m & (t >= start) & (t < end)
    return inside


def _p99_message(hop: str, src: str, dst: str, value: float, median: float,
                 threshold: float) -> str:
    pair = "all pairs" if src == "*" else f"{src}->{dst}"
    return (f"{hop} ({pair}): P99 >= {format_ns(value)} (clock-error-proof lower bound, 95% "
            f"confidence), baseline median {format_ns(median)}, threshold "
            f"{format_ns(threshold)}")


def latency_alerts(windows: pa.Table, hops: pa.Table, cfg: AlertConfig) -> list[Alert]:
    """P99 rise alerts from a windowed percentile table (see the module docstring)."""
    alerts: list[Alert] = []
    if not windows.num_rows:
        return alerts
    cols = {c: windows.column(c).to_pylist() for c in (
        "window_start_ns", "window_end_ns", "hop", "src_node", "dst_node", "count",
        "p99_ns", "p99_low_ns", "p99_low_lcb_ns")}
    series: dict[tuple[str, str, str], list[int]] = {}
    for i in range(windows.num_rows):
        series.setdefault((cols["hop"][i], cols["src_node"][i], cols["dst_node"][i]),
                          []).append(i)
    for (hop, src, dst), rows in series.items():
        rows.sort(key=lambda i: cols["window_start_ns"][i])
        usable = [i for i in rows if cols["count"][i] >= cfg.min_requests]
        for pos, i in enumerate(usable):
            prev = usable[max(0, pos - cfg.baseline_windows):pos]
            base = np.array([cols["p99_ns"][j] for j in prev])
            if len(base) < cfg.min_baseline_windows:
                continue
            med = float(np.median(base))
            mad = float(np.median(np.abs(base - med)))
            threshold = max(med + cfg.k_mad * _MAD_TO_SIGMA * mad,
                            med * (1 + cfg.min_rise_fraction))
            lcb = cols["p99_low_lcb_ns"][i]
            value = float(cols["p99_low_ns"][i] if lcb is None or np.isnan(lcb) else lcb)
            if value <= threshold:
                continue
            start, end = int(cols["window_start_ns"][i]), int(cols["window_end_ns"][i])
            last = alerts[-1] if alerts else None
            if (last is not None and last.kind == "latency_p99" and last.hop == hop
                    and last.src_node == src and last.dst_node == dst
                    and start <= last.window_end_ns):
                # the rise goes on: one alert spanning the run of windows
                peak = max(value, last.value_ns)
                alerts[-1] = replace(last, window_end_ns=end, value_ns=peak,
                                     message=_p99_message(hop, src, dst, peak, med,
                                                          last.threshold_ns))
                continue
            mask = _group_mask(hops, hop, src, dst, start, end)
            alerts.append(Alert(
                "latency_p99", start, end, hop, src, dst, value, threshold,
                _p99_message(hop, src, dst, value, med, threshold),
                worst_requests(hops, mask, cfg.worst)))
    return alerts


def clock_alerts(
    node_names: tuple[str, ...],
    node: npt.NDArray[np.int32],
    t_ref_ns: npt.NDArray[np.int64],
    bound_ns: npt.NDArray[np.float64],
    holdover_age_s: npt.NDArray[np.float64],
    statuses: dict[str, str],
    window_s: float,
    cfg: AlertConfig,
) -> list[Alert]:
    """Clock-health alerts from per-event correction bounds (one entry per usable event).

    ``holdover_age_s`` is how long past its table's last sample each event was taken
    (0 when not in holdover).
    """
    alerts: list[Alert] = []
    for name, status in sorted(statuses.items()):
        if status in ("free_running", "disrupted"):
            alerts.append(Alert("clock_status", 0, 0, "", name, "", np.nan, np.nan,
                                f"node {name}: table status is {status}"))
    if not len(node):
        return alerts
    win_ns = round(window_s * 1e9)
    win = np.floor_divide(t_ref_ns, win_ns)
    w0 = int(win.min())
    n_win = int(win.max()) - w0 + 1
    key = node.astype(np.int64) * n_win + (win - w0)
    size = len(node_names) * n_win
    worst = np.full(size, -np.inf)
    np.maximum.at(worst, key, bound_ns)
    age = np.zeros(size)
    if holdover_age_s.any():  # (no event in holdover: nothing to look at)
        np.maximum.at(age, key, holdover_age_s)
    for k in np.flatnonzero(np.isfinite(worst)):
        name = node_names[k // n_win]
        start = (w0 + int(k % n_win)) * win_ns
        end = start + win_ns
        if worst[k] > cfg.max_clock_bound_ns:
            alerts.append(Alert(
                "clock_bound", start, end, "", name, "", float(worst[k]),
                cfg.max_clock_bound_ns,
                f"node {name}: correction bound up to ±{format_ns(float(worst[k]))}"
                f" > ±{format_ns(cfg.max_clock_bound_ns)}"))
        if age[k] > cfg.free_running_after_s:
            alerts.append(Alert(
                "free_running", start, end, "", name, "", np.nan, np.nan,
                f"node {name}: free-running, {age[k]:.0f} s past its table's last sample"
                f" (> {cfg.free_running_after_s:.0f} s)"))
    return alerts


def inconsistency_alerts(windows: tuple[PairWindow, ...], hops: pa.Table, hop: str,
                         cfg: AlertConfig) -> list[Alert]:
    """One loud alert per node pair and window whose constraints contradict."""
    alerts: list[Alert] = []
    for w in windows:
        if w.status != "inconsistent":
            continue
        mask = _group_mask(hops, hop, "*", "*", w.start_ns, w.end_ns)
        pair = [w.node_a, w.node_b]
        mask &= _is_in(hops.column("src_node"), pair) & _is_in(hops.column("dst_node"), pair)
        if "inconsistent" in hops.column_names:
            mask &= np.asarray(hops.column("inconsistent").to_numpy(zero_copy_only=False), bool)
        alerts.append(Alert(
            "inconsistent", w.start_ns, w.end_ns, hop, w.node_a, w.node_b, np.nan, np.nan,
            f"INCONSISTENT {w.node_a}<->{w.node_b}: {w.n_inconsistent} message(s): {w.reason}",
            worst_requests(hops, mask, cfg.worst)))
    return alerts
