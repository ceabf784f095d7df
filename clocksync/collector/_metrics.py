"""The collector's Prometheus metrics (``GET /metrics``); ``docs/collector-metrics.md``.

Hop latencies go into two histograms per ``(hop, src_node, dst_node)``: one of the
requests' guaranteed lower bounds, one of their upper bounds, on fixed log-spaced buckets
(:data:`BUCKETS_S`). Bucket counts and sums are kept in numpy (a vectorised bucket index and
one ``bincount`` per batch, not one ``observe`` per request) and exported by a custom collector
that snapshots them under a lock, so scrape threads read while the engine writes.

prometheus-client (the ``metrics`` extra) is imported when a :class:`CollectorMetrics` is
made, so the package loads without it.
"""

from __future__ import annotations

import functools
import operator
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar, cast

import numpy as np
from numpy.typing import NDArray

from .._model._status import STATUSES

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric

__all__ = ["BUCKETS_PER_DECADE", "BUCKETS_S", "AlertKey", "CollectorMetrics", "QuantileRow"]

#: log-spaced histogram buckets per decade: 10^(1/48) = 1.0491, so each bucket is < 5 % wide
BUCKETS_PER_DECADE = 48
#: the histograms' bucket upper edges (s): 1 µs to 100 s, 48 per decade (5 significant
#: digits, so the ``le`` labels read cleanly and are the same on every collector); values
#: at or below the first edge (lower bounds ≤ 0 included) fall into the first bucket, values
#: above the last one into ``+Inf``
BUCKETS_S: tuple[float, ...] = tuple(
    float(f"{10.0 ** (k / BUCKETS_PER_DECADE - 6):.5g}")
    for k in range(8 * BUCKETS_PER_DECADE + 1))

#: the bucket edges in ns, then +inf: a value v (ns) counts in the first bucket whose edge is
#: >= v (Prometheus' ``le``)
_EDGES_NS = np.array([*BUCKETS_S, np.inf]) * 1e9
_LOG10_FIRST_NS = float(np.log10(_EDGES_NS[0]))
_N_BUCKETS = len(BUCKETS_S) + 1  # and +Inf
_LE = [*map(repr, BUCKETS_S), "+Inf"]  # the `le` labels, as Go prints these floats
_HOP_LABELS = ["hop", "src_node", "dst_node"]
_Key = tuple[str, str, str]
_K = TypeVar("_K")


@dataclass(frozen=True, slots=True)
class QuantileRow:
    """One quantile of one hop and node pair over the collector's current window.

    Attributes:
        hop, src_node, dst_node: the hop and its nodes (the series' labels).
        quantile: 0.5, 0.9, 0.99, ... (the ``quantile`` label).
        low_ns, high_ns: the guaranteed interval of that quantile (ns): the true quantile of
            the window's requests lies in ``[low_ns, high_ns]``.
    """

    hop: str
    src_node: str
    dst_node: str
    quantile: float
    low_ns: float
    high_ns: float


@dataclass(frozen=True, slots=True)
class AlertKey:
    """An active alert: its kind (``latency_p99``, ``clock_bound``, ...) and what it is about
    (``hop``, ``src_node``, ``dst_node``; ``""`` where it does not apply)."""

    kind: str
    hop: str = ""
    src_node: str = ""
    dst_node: str = ""


@dataclass(slots=True)
class _HopSeries:
    """Running totals of one (hop, src_node, dst_node): per-bucket (not cumulative) counts of
    the lower and upper bounds, their sums (ns), and request counts."""

    low: NDArray[np.int64] = field(default_factory=lambda: np.zeros(_N_BUCKETS, np.int64))
    high: NDArray[np.int64] = field(default_factory=lambda: np.zeros(_N_BUCKETS, np.int64))
    low_sum_ns: float = 0.0
    high_sum_ns: float = 0.0
    count: int = 0
    order_unknown: int = 0
    inconsistent: int = 0

    def side(self, side: str) -> tuple[NDArray[np.int64], float]:
        """The per-bucket counts and the sum (ns) of the ``low`` or ``high`` bounds."""
        if side == "low":
            return self.low, self.low_sum_ns
        return self.high, self.high_sum_ns

    def copy(self) -> _HopSeries:
        return _HopSeries(self.low.copy(), self.high.copy(), self.low_sum_ns, self.high_sum_ns,
                          self.count, self.order_unknown, self.inconsistent)


@dataclass(slots=True)
class _State:
    """Everything the exposition shows; a scrape copies it under the lock."""

    hops: dict[_Key, _HopSeries] = field(default_factory=dict)
    quantiles: tuple[QuantileRow, ...] = ()
    incomplete: dict[str, int] = field(default_factory=dict)
    received: dict[str, int] = field(default_factory=dict)
    rejected_items: dict[str, int] = field(default_factory=dict)
    rejected_payloads: dict[tuple[str, str], int] = field(default_factory=dict)
    uncorrectable: dict[str, int] = field(default_factory=dict)
    evicted: int = 0
    late: int = 0
    pending: tuple[int, int, int] | None = None
    watermark_ns: int | None = None
    tables: tuple[tuple[str, float, str], ...] = ()
    alerts: tuple[AlertKey, ...] = ()
    alerts_fired: dict[str, int] = field(default_factory=dict)

    def copy(self) -> _State:
        return _State({k: v.copy() for k, v in self.hops.items()}, self.quantiles,
                      dict(self.incomplete), dict(self.received), dict(self.rejected_items),
                      dict(self.rejected_payloads), dict(self.uncorrectable), self.evicted,
                      self.late, self.pending, self.watermark_ns, self.tables, self.alerts,
                      dict(self.alerts_fired))


def _nonneg(n: int) -> int:
    if n < 0:
        raise ValueError(f"a counter cannot go down (n={n})")
    return n


def _add(counts: dict[_K, int], key: _K, n: int) -> None:
    counts[key] = counts.get(key, 0) + _nonneg(n)


def _bucket_index(values_ns: NDArray[np.float64]) -> NDArray[np.intp]:
    """Each value's bucket: the index of the first edge of ``_EDGES_NS`` >= it (what
    ``np.searchsorted(_EDGES_NS, values_ns)`` gives, about 9 times faster: the log spacing
    guesses the index to within one, one comparison each way fixes it). No NaN."""
    clipped = np.clip(values_ns, _EDGES_NS[0], _EDGES_NS[-2] * 1.01)
    guess = np.ceil((np.log10(clipped) - _LOG10_FIRST_NS) * BUCKETS_PER_DECADE)
    idx = np.clip(guess, 0, len(BUCKETS_S)).astype(np.intp)
    idx += values_ns > _EDGES_NS[idx]
    idx -= (idx > 0) & (values_ns <= _EDGES_NS[np.maximum(idx - 1, 0)])
    return idx


class CollectorMetrics:
    """The collector's metrics, kept in memory and rendered at every scrape.

    Every ``count_*`` method adds ``n`` (≥ 0) to a counter; ``n=0`` creates the series at 0,
    so that its first increase shows in ``rate()``/``increase()``. Every ``set_*`` method
    replaces what it sets: series missing from the new rows disappear. All methods are
    thread-safe.

    Args:
        registry: where to register (a fresh ``CollectorRegistry`` if ``None``).
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        from prometheus_client import CollectorRegistry

        self._lock = threading.Lock()
        self._state = _State()
        # each histogram series' text as the last scrape wrote it (as big as that body)
        self._written: _SeriesTexts = {}
        self.registry: CollectorRegistry = registry if registry is not None \
            else CollectorRegistry(auto_describe=True)
        self.registry.register(self)

    # -- writers (the engine) --------------------------------------------------------------

    def observe_hops(self, hop: str, src_node: str, dst_node: str,
                     low_ns: NDArray[np.float64], high_ns: NDArray[np.float64],
                     order_unknown: int = 0, inconsistent: int = 0) -> None:
        """Count one batch of requests of one hop and node pair.

        Args:
            low_ns, high_ns: each request's guaranteed latency interval (ns, same length,
                ``low_ns <= high_ns``; a low ≤ 0 means the order of the two stages is
                unknown; a high may be ``inf``: counted in the ``+Inf`` bucket, left out
                of the histogram's ``_sum``).
            order_unknown: how many of them have an unknown order (interval straddles 0).
            inconsistent: how many contradict causality (the tables disagree).

        Raises:
            ValueError: arrays of different shapes, NaN, a low above its high, or counts
                outside ``[0, len(low_ns)]``.
        """
        low = np.asarray(low_ns, dtype=np.float64).reshape(-1)
        high = np.asarray(high_ns, dtype=np.float64).reshape(-1)
        n = len(low)
        if len(high) != n:
            raise ValueError(f"{n} lower bounds but {len(high)} upper bounds")
        if not (0 <= order_unknown <= n and 0 <= inconsistent <= n):
            raise ValueError(f"order_unknown={order_unknown}, inconsistent={inconsistent} "
                             f"must be in [0, {n}]")
        if not np.all(low <= high):  # also false for NaN
            raise ValueError("every low_ns must be <= its high_ns (and not NaN)")
        low_counts = np.bincount(_bucket_index(low), minlength=_N_BUCKETS)
        high_counts = np.bincount(_bucket_index(high), minlength=_N_BUCKETS)
        low_sum = float(low.sum(where=np.isfinite(low)))  # _sum: of the finite bounds
        high_sum = float(high.sum(where=np.isfinite(high)))
        with self._lock:
            series = self._state.hops.get((hop, src_node, dst_node))
            if series is None:
                series = self._state.hops[(hop, src_node, dst_node)] = _HopSeries()
            series.low += low_counts
            series.high += high_counts
            series.low_sum_ns += low_sum
            series.high_sum_ns += high_sum
            series.count += n
            series.order_unknown += order_unknown
            series.inconsistent += inconsistent

    def set_quantiles(self, rows: Iterable[QuantileRow]) -> None:
        """Replace every ``clocksync_hop_latency_seconds`` series by ``rows`` (the current
        window's quantile intervals); series not in ``rows`` disappear."""
        rows = tuple(rows)
        with self._lock:
            self._state.quantiles = rows

    def count_incomplete(self, missing_stage: str, n: int = 1) -> None:
        """Requests given up incomplete (a stage never arrived), by the first missing stage."""
        with self._lock:
            _add(self._state.incomplete, missing_stage, n)

    def count_received(self, endpoint: str, n: int) -> None:
        """Spans or stage events taken in by a receiver endpoint."""
        with self._lock:
            _add(self._state.received, endpoint, n)

    def count_rejected_items(self, endpoint: str, n: int) -> None:
        """Spans or stage events refused one by one (the rest of their payload was taken)."""
        with self._lock:
            _add(self._state.rejected_items, endpoint, n)

    def count_rejected_payload(self, endpoint: str, reason: str, n: int = 1) -> None:
        """Payloads refused as a whole (HTTP 400/413/415/429...), by endpoint and reason."""
        with self._lock:
            _add(self._state.rejected_payloads, (endpoint, reason), n)

    def count_evicted(self, n: int) -> None:
        """Pending requests dropped because the collector was over its memory budget."""
        with self._lock:
            self._state.evicted += _nonneg(n)

    def count_late(self, n: int) -> None:
        """Requests whose stages arrived after their window had closed (left out of it)."""
        with self._lock:
            self._state.late += _nonneg(n)

    def count_uncorrectable(self, node: str, n: int) -> None:
        """Requests dropped because a timestamp of ``node`` has no guaranteed correction (no
        table, before its first sample, or past its holdover)."""
        with self._lock:
            _add(self._state.uncorrectable, node, n)

    def set_pending(self, requests: int, nbytes: int, budget_bytes: int) -> None:
        """Requests waiting for their stages, the memory they hold (bytes), the budget
        (bytes)."""
        with self._lock:
            self._state.pending = (requests, nbytes, budget_bytes)

    def set_watermark(self, ref_ns: int) -> None:
        """The watermark (reference time, ns since the Unix epoch): windows ending before it
        are closed."""
        with self._lock:
            self._state.watermark_ns = int(ref_ns)

    def set_tables(self, rows: Iterable[tuple[str, float, str]]) -> None:
        """Replace the per-node table rows: ``(node, age_s, status)``, ``age_s`` = seconds
        since the table's last sample, ``status`` a :class:`clocksync.Status` value."""
        rows = tuple((str(node), float(age), str(status)) for node, age, status in rows)
        with self._lock:
            self._state.tables = rows

    def set_alerts(self, active: Iterable[AlertKey]) -> None:
        """Replace the set of active alerts; those not in ``active`` disappear."""
        active = tuple(dict.fromkeys(active))
        with self._lock:
            self._state.alerts = active

    def count_alert(self, kind: str, n: int = 1) -> None:
        """Alerts fired (a new alert, not one still active), by kind."""
        with self._lock:
            _add(self._state.alerts_fired, kind, n)

    # -- readers (scrapes) -----------------------------------------------------------------

    def exposition(self) -> tuple[bytes, str]:
        """``(body, content type)`` of the Prometheus text exposition of :attr:`registry`:
        the same text prometheus-client writes for it, but for the two histogram families,
        written here a series at a time (each series is 388 lines: prometheus-client's
        line-by-line rendering of them took over 100 ms a scrape), and a series that has
        counted no request since the last scrape as that scrape wrote it."""
        from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

        with self._lock:
            state = self._state.copy()
        others = generate_latest(_Families(self, state, histograms=False))
        return others + _histograms_text(state, self._written).encode(), CONTENT_TYPE_LATEST

    def collect(self) -> Iterator[Metric]:
        """The metric families now (called by the registry at every scrape)."""
        with self._lock:
            state = self._state.copy()
        return self._families(state)

    def describe(self) -> Iterator[Metric]:
        """The metric families without samples (the registry checks names with it)."""
        return self._families(_State())

    def _families(self, s: _State, histograms: bool = True) -> Iterator[Metric]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        keys = sorted(s.hops)
        requests = CounterMetricFamily(
            "clocksync_hop_requests", "Requests whose hop latency was computed",
            labels=_HOP_LABELS)
        unknown = CounterMetricFamily(
            "clocksync_hop_order_unknown_requests", "Requests whose guaranteed interval "
            "straddles 0: which of the two stages came first is unknown", labels=_HOP_LABELS)
        inconsistent = CounterMetricFamily(
            "clocksync_hop_inconsistent_requests", "Requests whose stages contradict "
            "causality given the clock tables (the tables disagree)", labels=_HOP_LABELS)
        for key in keys:
            requests.add_metric(list(key), s.hops[key].count)
            unknown.add_metric(list(key), s.hops[key].order_unknown)
            inconsistent.add_metric(list(key), s.hops[key].inconsistent)
        yield from (requests, unknown, inconsistent)
        for side in ("low", "high") if histograms else ():
            name, doc = _histogram_name(side)
            hist = HistogramMetricFamily(name, doc, labels=_HOP_LABELS)
            for key, cumulative, total_s in _histogram_rows(s, side):
                hist.add_metric(list(key), list(zip(_LE, cumulative, strict=True)), total_s)
            yield hist
        quantiles = GaugeMetricFamily(
            "clocksync_hop_latency_seconds", "Guaranteed interval of a hop latency quantile "
            "over the collector's current window (s): side=low/high", labels=[
                *_HOP_LABELS, "quantile", "side"])
        for row in s.quantiles:
            labels = [row.hop, row.src_node, row.dst_node, f"{row.quantile:g}"]
            quantiles.add_metric([*labels, "low"], row.low_ns / 1e9)
            quantiles.add_metric([*labels, "high"], row.high_ns / 1e9)
        yield quantiles
        yield from _collector_families(s)


class _Families:
    """What ``generate_latest`` renders: the families of one state, with or without the
    histograms."""

    def __init__(self, metrics: CollectorMetrics, state: _State, histograms: bool) -> None:
        self._metrics, self._state, self._histograms = metrics, state, histograms

    def collect(self) -> Iterator[Metric]:
        return self._metrics._families(self._state, self._histograms)


def _histogram_name(side: str) -> tuple[str, str]:
    """The name and help text of the histogram of the ``low`` or ``high`` bounds."""
    bound = "lower" if side == "low" else "upper"
    return (f"clocksync_hop_latency_{side}_seconds",
            f"Per-request guaranteed {bound} bound of the hop latency (s); histogram_quantile "
            f"of it is a {bound} bound of the true quantile, to one bucket (<5 %)")


def _histogram_rows(s: _State, side: str) -> Iterator[tuple[_Key, list[int], float]]:
    """Per series (in label order): its labels, cumulative bucket counts and sum (s)."""
    for key in sorted(s.hops):
        counts, total_ns = s.hops[key].side(side)
        yield key, np.cumsum(counts).tolist(), total_ns / 1e9


def _label(value: str) -> str:
    """A label value escaped as the text exposition format wants it."""
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')


@functools.lru_cache(maxsize=4096)
def _series_heads(name: str, key: _Key) -> tuple[str, ...]:
    """What precedes each value of one histogram series, a line each: its buckets'
    ``NAME_bucket{labels,le="..."} ``, then ``NAME_count{labels} ``, ``NAME_sum{labels} ``
    (labels in name order, as prometheus-client writes them). A series keeps its labels, so
    these are made once, not at every scrape."""
    hop, src, dst = map(_label, key)
    labels = f'dst_node="{dst}",hop="{hop}"'
    src_label = f'src_node="{src}"'
    buckets = [f'{name}_bucket{{{labels},le="{le}",{src_label}}} ' for le in _LE]
    return (*buckets, f"{name}_count{{{labels},{src_label}}} ",
            f"{name}_sum{{{labels},{src_label}}} ")


#: a series' text as last written, by (side, labels): (its request count then, the text)
_SeriesTexts = dict[tuple[str, _Key], tuple[int, str]]


def _histograms_text(s: _State, written: _SeriesTexts) -> str:
    """The two histogram families in the text exposition format, as prometheus-client
    writes them (labels in name order, values as Go prints floats). A series whose request
    count has not changed since a scrape wrote it is taken from ``written`` (where each
    series written is kept); a cumulative count that repeats (every bucket above a series'
    largest bound holds its count) is printed once."""
    from prometheus_client import utils

    go = cast("Callable[[float], str]", utils.floatToGoString)  # (untyped in the package)
    out: list[str] = []
    for side in ("low", "high"):
        name, doc = _histogram_name(side)
        out += [f"# HELP {name} {doc}\n", f"# TYPE {name} histogram\n"]
        for key, series in sorted(s.hops.items()):
            kept = written.get((side, key))
            if kept is not None and kept[0] == series.count:
                out.append(kept[1])
                continue
            counts, total_ns = series.side(side)
            cumulative, which = np.unique(np.cumsum(counts), return_inverse=True)
            printed = [f"{go(c)}\n" for c in cumulative.tolist()]
            values = [printed[i] for i in which.tolist()]
            values += [values[-1], f"{go(total_ns / 1e9)}\n"]
            text = "".join(map(operator.add, _series_heads(name, key), values))
            written[(side, key)] = (series.count, text)
            out.append(text)
    return "".join(out)


def _collector_families(s: _State) -> Iterator[Metric]:
    """The collector's own families (clocksync_collector_*)."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    def by_label(name: str, doc: str, label: str, counts: dict[str, int]
                 ) -> CounterMetricFamily:
        family = CounterMetricFamily(name, doc, labels=[label])
        for value, n in sorted(counts.items()):
            family.add_metric([value], n)
        return family

    def single(kind: type[CounterMetricFamily | GaugeMetricFamily], name: str, doc: str,
               value: float | None) -> CounterMetricFamily | GaugeMetricFamily:
        family = kind(name, doc, labels=[])
        if value is not None:
            family.add_metric([], value)
        return family

    yield by_label("clocksync_collector_incomplete_requests", "Requests given up incomplete, "
                   "by the first stage that never arrived", "missing_stage", s.incomplete)
    yield by_label("clocksync_collector_received_items", "Spans or stage events taken in, by "
                   "receiver endpoint", "endpoint", s.received)
    yield by_label("clocksync_collector_rejected_items", "Spans or stage events refused singly "
                   "(OTLP rejectedSpans), by endpoint", "endpoint", s.rejected_items)
    payloads = CounterMetricFamily("clocksync_collector_rejected_payloads", "Payloads refused "
                                   "as a whole, by endpoint and reason",
                                   labels=["endpoint", "reason"])
    for (endpoint, reason), n in sorted(s.rejected_payloads.items()):
        payloads.add_metric([endpoint, reason], n)
    yield payloads
    yield by_label("clocksync_collector_uncorrectable_requests", "Requests dropped: a "
                   "timestamp of this node has no guaranteed correction", "node",
                   s.uncorrectable)
    yield single(CounterMetricFamily, "clocksync_collector_evicted_requests", "Pending "
                 "requests dropped over the memory budget", s.evicted)
    yield single(CounterMetricFamily, "clocksync_collector_late_requests", "Requests whose "
                 "stages arrived after their window closed", s.late)
    pending = s.pending if s.pending is not None else (None, None, None)
    yield single(GaugeMetricFamily, "clocksync_collector_pending_requests", "Requests waiting "
                 "for their stages", pending[0])
    yield single(GaugeMetricFamily, "clocksync_collector_pending_bytes", "Memory held by "
                 "pending requests (bytes)", pending[1])
    yield single(GaugeMetricFamily, "clocksync_collector_memory_budget_bytes", "Memory budget "
                 "of pending requests (bytes); over it the oldest are evicted", pending[2])
    yield single(GaugeMetricFamily, "clocksync_collector_watermark_seconds", "Watermark: "
                 "reference time (s since the Unix epoch) before which windows are closed",
                 None if s.watermark_ns is None else s.watermark_ns / 1e9)
    age = GaugeMetricFamily("clocksync_collector_table_age_seconds", "Age of a node's clock "
                            "table: seconds since its last sample", labels=["node"])
    status = GaugeMetricFamily("clocksync_collector_table_status", "1 for the current status "
                               "of a node's clock table, 0 for the others",
                               labels=["node", "status"])
    for node, age_s, current in sorted(s.tables):
        age.add_metric([node], age_s)
        for name in STATUSES if current in STATUSES else (*STATUSES, current):
            status.add_metric([node, name], 1.0 if name == current else 0.0)
    yield from (age, status)
    active = GaugeMetricFamily("clocksync_collector_alert_active", "1 while the collector's "
                               "alert of this kind is active for this hop and node pair "
                               "(absent otherwise)", labels=["kind", *_HOP_LABELS])
    for key in sorted(s.alerts, key=lambda a: (a.kind, a.hop, a.src_node, a.dst_node)):
        active.add_metric([key.kind, key.hop, key.src_node, key.dst_node], 1.0)
    yield active
    yield by_label("clocksync_collector_alerts_fired", "Alerts raised by the collector, by "
                   "kind", "kind", s.alerts_fired)
