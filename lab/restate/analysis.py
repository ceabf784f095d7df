"""The Restate lab's truth: per-request rows of ``clocksync latency --preset restate`` joined
with the relays' ORIGINAL stamps, the per-hop table, and the live collector's quantile
intervals against the true quantiles of the requests in its window.

**Truth of one request.** ``g`` = ORIGINAL dst stamp − ORIGINAL src stamp (the relays record
them before rewriting; one system clock serves every process). Restate stamps
``invocation-start`` from a coarse clock: its true event time lies in ``[t, t + R)`` with
``R`` = :data:`clocksync.latency.RESTATE_START_RESOLUTION_NS` (5 ms, measured on this
kernel, docs/restate-lab.md). So the true latency lies in

* ``[g, g + R)`` when the dst stage is ``invocation-start``,
* ``(g − R, g]`` when the src stage is,
* ``[g, g]`` otherwise,

and, every preset hop being parent span -> child span, it is ``>= 0`` (the child happens
after its parent starts). ``truth_lo_ns``/``truth_hi_ns`` are that set's ends. A request is
**covered** when ``[low, high]`` contains the whole set (``low <= truth_lo`` and
``truth_hi <= high``): whatever the true event time within the stamp's resolution, the
interval holds it. A quantile interval ``[Q(lows), Q(highs)]`` **contains the true
quantile** when it contains ``[Q(truth_lo), Q(truth_hi)]`` — the range the true quantile can
take (order statistics are monotone), with ``Q`` the collector's own definition: the
``ceil(q·n)``-th smallest (``inverted_cdf``).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from clocksync.latency import RESTATE_START_RESOLUTION_NS

__all__ = ["COARSE_STAGES", "QUANTILES", "covered", "join_truth", "live_quantiles", "metric_gauges",
           "order_statistic", "stage", "summarize"]

#: stages stamped from a coarse clock -> the stamp's resolution (ns)
COARSE_STAGES: dict[str, int] = {"invocation-start": RESTATE_START_RESOLUTION_NS}
#: the quantiles of the collector's ``clocksync_hop_latency_seconds``
QUANTILES = (0.5, 0.9, 0.99)
#: float seconds on /metrics round-trip to within this (ns)
_GAUGE_TOLERANCE_NS = 1.0


def stage(name: str) -> str:
    """A span's stage: the first word of its name (as the preset)."""
    return name.split(" ", 1)[0]


def truth_interval(src_stage: str, dst_stage: str, gap_ns: int) -> tuple[int, int]:
    """``(truth_lo, truth_hi)`` of a request whose ORIGINAL stamps differ by ``gap_ns``."""
    lo = gap_ns - COARSE_STAGES.get(src_stage, 0)
    hi = gap_ns + COARSE_STAGES.get(dst_stage, 0)
    return max(lo, 0), hi


def join_truth(rows: Sequence[Mapping[str, Any]], truth: Sequence[Mapping[str, Any]]
               ) -> list[dict[str, Any]]:
    """Each row with its truth: the dst span is the one of the row's dst stage and node whose
    REWRITTEN start is the row's ``dst_ts_ns`` (the request id, the child's invocation id,
    picks among equal stamps), the src span its parent, whose rewritten start must be the
    row's ``src_ts_ns``. Adds ``truth_ns`` (the stamps' gap ``g``), ``truth_lo_ns``,
    ``truth_hi_ns``, ``src_true_ns``; ``truth_ns`` None when no span matches."""
    by_id = {r["span_id"]: r for r in truth if r["span_id"]}
    by_stamp: dict[tuple[str, str, int], list[Mapping[str, Any]]] = defaultdict(list)
    for r in truth:
        by_stamp[(r["node"], stage(r["name"]), int(r["sim_start_ns"]))].append(r)
    joined = []
    for row in rows:
        src_stage, _, dst_stage = str(row["hop"]).partition("->")
        found = None
        for dst in by_stamp.get((str(row["dst_node"]), dst_stage, int(row["dst_ts_ns"])), ()):
            src = by_id.get(dst["parent_span_id"])
            if (src is not None and stage(src["name"]) == src_stage
                    and src["node"] == row["src_node"]
                    and int(src["sim_start_ns"]) == int(row["src_ts_ns"])):
                found = (src, dst)
                if dst["invocation_id"] == row["request_id"]:
                    break
        if found is None:
            joined.append({**row, "truth_ns": None})
            continue
        src, dst = found
        gap = int(dst["true_start_ns"]) - int(src["true_start_ns"])
        lo, hi = truth_interval(src_stage, dst_stage, gap)
        joined.append({**row, "truth_ns": gap, "truth_lo_ns": lo, "truth_hi_ns": hi,
                       "src_true_ns": int(src["true_start_ns"])})
    return joined


def covered(row: Mapping[str, Any]) -> bool:
    """``[low, high]`` contains the request's whole truth interval."""
    return (float(row["low_ns"]) <= float(row["truth_lo_ns"])
            and float(row["truth_hi_ns"]) <= float(row["high_ns"]))


def summarize(joined: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per hop and node pair: n, raw median and how many raw latencies are negative, the
    corrected median and the median half-width (with the stamp resolution) and the clocks'
    part of it (``table_low_ns..table_high_ns``), the truth's medians, coverage."""
    groups: dict[tuple[str, str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for row in joined:
        groups[(row["hop"], row["src_node"], row["dst_node"])].append(row)
    out = []
    for (hop, src, dst), group in sorted(groups.items()):
        known = [r for r in group if r.get("truth_ns") is not None]
        raw = np.asarray([float(r["raw_latency_ns"]) for r in group])
        lat = np.asarray([float(r["latency_ns"]) for r in group])
        half = np.asarray([(float(r["high_ns"]) - float(r["low_ns"])) / 2 for r in group])
        clock = np.asarray([(float(r["table_high_ns"]) - float(r["table_low_ns"])) / 2
                            for r in group])
        n_cov = sum(1 for r in known if covered(r))

        def med(key: str, rows: Sequence[Mapping[str, Any]] = known) -> float | None:
            return float(np.median([float(r[key]) for r in rows])) if rows else None

        out.append({
            "hop": hop, "src_node": src, "dst_node": dst, "n": len(group),
            "raw_median_ns": float(np.median(raw)), "raw_negative": int((raw < 0).sum()),
            "corrected_median_ns": float(np.median(lat)),
            "bound_median_ns": float(np.median(half)),
            "clock_bound_median_ns": float(np.median(clock)),
            "truth_median_ns": med("truth_ns"), "truth_lo_median_ns": med("truth_lo_ns"),
            "truth_hi_median_ns": med("truth_hi_ns"),
            "with_truth": len(known), "covered": n_cov,
            "coverage": n_cov / len(known) if known else None,
            "resolution_violations": sum(1 for r in known
                                         if r["truth_hi_ns"] < r["truth_lo_ns"]),
        })
    return out


def order_statistic(values: Iterable[float], q: float) -> float:
    """The ``ceil(q·n)``-th smallest (the collector's quantile, ``inverted_cdf``)."""
    arr = np.sort(np.asarray(list(values), dtype=np.float64))
    if not arr.size:
        return math.nan
    return float(arr[max(1, math.ceil(q * arr.size)) - 1])


def metric_gauges(text: str) -> dict[tuple[str, str, str], dict[float, dict[str, float]]]:
    """``clocksync_hop_latency_seconds`` of a /metrics page:
    ``{(hop, src, dst): {quantile: {"low": ns, "high": ns}}}``."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[tuple[str, str, str], dict[float, dict[str, float]]] = defaultdict(dict)
    for family in text_string_to_metric_families(text):
        if family.name != "clocksync_hop_latency_seconds":
            continue
        for s in family.samples:
            key = (s.labels["hop"], s.labels["src_node"], s.labels["dst_node"])
            out[key].setdefault(float(s.labels["quantile"]), {})[s.labels["side"]] = \
                s.value * 1e9
    return dict(out)


def live_quantiles(gauges: Mapping[tuple[str, str, str], Mapping[float, Mapping[str, float]]],
                   report: Mapping[str, Any], joined: Sequence[Mapping[str, Any]]
                   ) -> list[dict[str, Any]]:
    """Per cross-node hop and node pair of the gauges: the live P50/P90/P99 intervals and the
    true quantiles of the requests in the report's window (``window_start_ns <= src_ref_ns <
    window_end_ns``, from the batch rows of the same spans); ``n_live`` from the report's
    window row, ``n`` the requests found in the window (equal: the same requests)."""
    start, end = int(report["window_start_ns"]), int(report["window_end_ns"])
    n_live = {(w["hop"], w["src_node"], w["dst_node"]): int(w["count"])
              for w in report.get("windows", ())}
    members: dict[tuple[str, str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for r in joined:
        if start <= int(r["src_ref_ns"]) < end and r.get("truth_ns") is not None:
            members[(r["hop"], r["src_node"], r["dst_node"])].append(r)
    out = []
    for key in sorted(gauges):
        hop, src, dst = key
        if src == dst or "*" in (src, dst):
            continue
        rows = members.get(key, [])
        entry: dict[str, Any] = {"hop": hop, "src_node": src, "dst_node": dst, "n": len(rows),
                                 "n_live": n_live.get(key), "quantiles": []}
        ok = entry["n"] == entry["n_live"] and entry["n"] > 0
        for q in QUANTILES:
            live = gauges[key].get(q, {})
            true_lo = order_statistic((r["truth_lo_ns"] for r in rows), q)
            true_hi = order_statistic((r["truth_hi_ns"] for r in rows), q)
            low, high = live.get("low", math.nan), live.get("high", math.nan)
            inside = (low <= true_lo + _GAUGE_TOLERANCE_NS
                      and true_hi <= high + _GAUGE_TOLERANCE_NS)
            ok = ok and inside
            entry["quantiles"].append({"q": q, "low_ns": low, "high_ns": high,
                                       "true_lo_ns": true_lo, "true_hi_ns": true_hi,
                                       "contained": inside})
        entry["contained"] = ok
        out.append(entry)
    return out
