"""Dynamic sampling for live use: keep a share of requests that adapts to an event budget,
always keep slow outliers, and weight what is kept so percentiles stay unbiased.

Per batch of events (any order, any mix of nodes):

- the observed event rate (events per second of event time, smoothed) sets the keep
  probability ``p = min(1, budget_events_per_s / rate)``;
- a request is kept when ``u(request_id) < p``, with ``u`` a deterministic hash of the id in
  ``[0, 1)``: every node and every batch takes the same decision for the same request, so a
  request's events are kept or dropped together without coordination;
- a request whose longest same-node span (last minus first timestamp of its events on one
  node, in this batch: one clock, so no offset error) reaches the outlier threshold is
  always kept; the threshold is ``slow_ns`` or, when unset, the ``slow_quantile`` of recent
  spans. (A request slow only on the wire between nodes is not an outlier by this test:
  telling it needs corrected clocks, which is what sampling saves.);
- the ``weight`` column is the inverse inclusion probability (Horvitz-Thompson): 1 for
  outliers (always kept), ``1/p`` for sampled requests. It rides along as a context column
  and :func:`percentile_table` uses it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from ._arrow import dictionary_codes, unique_dictionary

__all__ = ["AdaptiveSampler", "SampleBatch", "SamplingConfig", "request_uniform"]

U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
_PRIME = np.uint64(0x100000001B3)


def _splitmix64(x: U64) -> U64:
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return np.asarray(x ^ (x >> np.uint64(31)), dtype=np.uint64)


def request_uniform(ids: pa.Array) -> F64:
    """A deterministic uniform number in ``[0, 1)`` per string (vectorized polynomial hash of
    the UTF-8 bytes, then splitmix64): the same id gives the same number everywhere."""
    arr = ids.cast(pa.large_string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    n = len(arr)
    if n == 0:
        return np.zeros(0)
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64, count=n + 1, offset=arr.offset * 8)
    data = arr.buffers()[2]
    raw = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
    first, last = int(offsets[0]), int(offsets[-1])
    lengths = np.diff(offsets)
    h = np.zeros(n, dtype=np.uint64)
    if last > first:
        b = raw[first:last].astype(np.uint64) + np.uint64(1)
        pos = np.arange(last - first) - np.repeat(offsets[:-1] - first, lengths)
        powers = np.cumprod(np.full(int(lengths.max()), _PRIME, dtype=np.uint64))
        prod = b * powers[pos]
        nonempty = lengths > 0
        h[nonempty] = np.add.reduceat(prod, (offsets[:-1] - first)[nonempty])
    h = _splitmix64(h ^ lengths.astype(np.uint64))
    return np.asarray((h >> np.uint64(11)).astype(np.float64) / float(1 << 53))


def _longest_node_span(codes: npt.NDArray[np.int64], node: npt.NDArray[np.int64], ts: I64,
                       n_req: int, n_nodes: int) -> F64:
    """Per request, the longest span (last minus first timestamp) of its events on one node
    (every request has an event). A table per ``(request, node)`` when it is no larger than a
    few times the events; else (many nodes) the events sorted by ``(request, node)``."""
    key = codes * n_nodes + node
    if n_req * n_nodes <= 4 * len(key) + 65_536:
        lo = np.full(n_req * n_nodes, np.iinfo(np.int64).max)
        hi = np.full(n_req * n_nodes, np.iinfo(np.int64).min)
        np.minimum.at(lo, key, ts)
        np.maximum.at(hi, key, ts)
        per_node = np.where(hi >= lo, hi - lo, 0).reshape(n_req, n_nodes)
        return np.asarray(per_node.max(axis=1), dtype=np.float64)
    order = np.argsort(key, kind="stable")
    k_s, t_s = key[order], ts[order]
    starts = np.flatnonzero(np.diff(k_s, prepend=k_s[0] - 1))
    span = np.maximum.reduceat(t_s, starts) - np.minimum.reduceat(t_s, starts)
    req = k_s[starts] // n_nodes  # ascending, every request present
    out = np.maximum.reduceat(span, np.flatnonzero(np.diff(req, prepend=req[0] - 1)))
    return np.asarray(out, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class SamplingConfig:
    """Sampler settings.

    Attributes:
        budget_events_per_s: events per second (of event time) the pipeline may process.
        slow_ns: fixed outlier threshold on a request's longest same-node span (ns);
            ``None`` = adaptive.
        slow_quantile: adaptive threshold: this quantile of recent spans.
        smoothing: weight of the newest batch in the rate and threshold estimates.
    """

    budget_events_per_s: float
    slow_ns: float | None = None
    slow_quantile: float = 0.99
    smoothing: float = 0.5

    def __post_init__(self) -> None:
        if not (self.budget_events_per_s > 0):
            raise ValueError("SamplingConfig.budget_events_per_s: must be > 0")
        if not (0 < self.slow_quantile < 1) or not (0 < self.smoothing <= 1):
            raise ValueError("SamplingConfig: slow_quantile in (0, 1), smoothing in (0, 1]")


@dataclass(frozen=True, slots=True)
class SampleBatch:
    """One batch's outcome: the kept events (with ``weight``) and what was decided."""

    events: pa.Table
    probability: float
    threshold_ns: float
    requests_seen: int
    requests_kept: int
    outliers_kept: int


class AdaptiveSampler:
    """Stateful sampler for a stream of event batches (see the module docstring)."""

    def __init__(self, config: SamplingConfig) -> None:
        self.config = config
        self.rate_events_per_s: float | None = None
        self.threshold_ns: float | None = config.slow_ns

    def sample(self, events: pa.Table) -> SampleBatch:
        cfg = self.config
        n = events.num_rows
        if n == 0:
            return SampleBatch(events, 1.0, float("nan"), 0, 0, 0)
        codes, ids = dictionary_codes(events.column("request_id"), used_only=True,
                                      unique=unique_dictionary(events, "request_id"))
        ts = events.column("ts_ns").to_numpy().astype(np.int64)
        span_s = max((int(ts.max()) - int(ts.min())) / 1e9, 1e-3)
        rate = n / span_s
        a = cfg.smoothing
        self.rate_events_per_s = rate if self.rate_events_per_s is None else (
            a * rate + (1 - a) * self.rate_events_per_s)
        p = min(1.0, cfg.budget_events_per_s / self.rate_events_per_s)
        n_req = len(ids)
        node, names = dictionary_codes(events.column("node"))
        spans = _longest_node_span(codes, node, ts, n_req, len(names))
        if cfg.slow_ns is None:
            q = float(np.quantile(spans, cfg.slow_quantile))
            self.threshold_ns = q if self.threshold_ns is None else (
                a * q + (1 - a) * self.threshold_ns)
        threshold = float(self.threshold_ns if self.threshold_ns is not None else np.inf)
        slow = spans >= threshold
        keep = slow | (request_uniform(ids) < p)
        weight = np.where(slow, 1.0, 1.0 / p)
        rows = keep[codes]
        kept = events.filter(pa.array(rows))
        kept = kept.append_column("weight", pa.array(weight[codes[rows]]))
        return SampleBatch(kept, p, threshold, n_req, int(keep.sum()), int(slow.sum()))
