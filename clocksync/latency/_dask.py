"""Dask integration (``pip install 'clocksync[dask]'``; public as
:mod:`clocksync.latency.dask`): the per-request computation is a pure function of a
partition of events and the correction tables, so it runs unchanged on ``dask.dataframe``
partitions; percentiles come back as mergeable sketches.

``dask_latencies`` first shuffles the events by ``request_id`` so each request's events
share a partition. Causal tightening then runs per partition: each partition sees a subset
of the messages, which gives a valid, possibly looser, bound than one pass over everything
(fewer constraints never make a bound wrong). ``dask_sketch`` reduces the per-request
results to a :class:`QuantileSketch` (guaranteed quantile intervals, mergeable);
``dask_hop_counts`` to the per-hop counts of a report. ``clocksync latency --scheduler``
runs these three.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd
import pyarrow as pa

from .._model._table import CorrectionTable
from ._causal import CausalAssumptions
from ._pipeline import HopCount, hop_table
from ._schema import DEFAULT_STAGES
from ._sketch import QuantileSketch

__all__ = ["dask_hop_counts", "dask_latencies", "dask_sketch", "latencies_of_partition"]

_BASE: dict[str, str] = {
    "request_id": "string", "hop": "string", "src_node": "string", "dst_node": "string",
    "latency_ns": "float64", "low_ns": "float64", "high_ns": "float64",
    "raw_latency_ns": "int64", "table_low_ns": "float64", "table_high_ns": "float64",
    "src_ref_ns": "int64", "order_unknown": "bool", "inconsistent": "bool",
}
_EVENT_BASE = ("request_id", "stage", "node", "ts_ns")


def latencies_of_partition(
    events: pd.DataFrame,
    tables_json: tuple[str, ...],
    stages: tuple[str, ...] = DEFAULT_STAGES,
    causal: CausalAssumptions | None = CausalAssumptions(),  # noqa: B008 - frozen
    skip_bad: bool = False,
) -> pd.DataFrame:
    """Per-request hops of one pandas partition (tables passed as JSON so they travel)."""
    from .. import Corrector

    corrector = Corrector(CorrectionTable.from_json(t) for t in tables_json)
    meta = _meta(events)
    if events.empty:
        return meta
    table = pa.Table.from_pandas(events, preserve_index=False)
    out = hop_table(table, corrector, stages, causal, skip_bad).table
    for name in ("request_id", "hop", "src_node", "dst_node"):
        out = out.set_column(out.column_names.index(name), name,
                             out.column(name).cast(pa.string()))
    df: pd.DataFrame = out.to_pandas().astype(_BASE)[list(meta.columns)]
    return df


def _meta(events: pd.DataFrame) -> pd.DataFrame:
    cols: dict[str, Any] = {k: pd.Series(dtype=v) for k, v in _BASE.items()}
    for name in events.columns:
        if name not in _EVENT_BASE:
            cols[name] = pd.Series(dtype=events[name].dtype)
    return pd.DataFrame(cols)


def dask_latencies(
    events: Any,
    tables: Iterable[CorrectionTable],
    stages: tuple[str, ...] = DEFAULT_STAGES,
    causal: CausalAssumptions | None = CausalAssumptions(),  # noqa: B008 - frozen
    skip_bad: bool = False,
    shuffle: bool = True,
) -> Any:
    """A ``dask.dataframe`` of per-request hops from a ``dask.dataframe`` of events.

    ``shuffle=False`` when the partitions already hold whole requests (e.g. partitioned by
    request id upstream).
    """
    tables_json = tuple(t.to_json() for t in tables)
    ddf = events.shuffle(on="request_id") if shuffle else events
    meta = _meta(ddf._meta)
    return ddf.map_partitions(latencies_of_partition, tables_json, stages, causal, skip_bad,
                              meta=meta)


def dask_sketch(latencies: Any, accuracy: float = 0.01,
                all_pairs: bool = False) -> QuantileSketch:
    """Reduce a dask frame of per-request hops to one merged :class:`QuantileSketch`.

    ``all_pairs`` also sketches each hop over all its node pairs, under
    ``src_node = dst_node = "*"`` (as :func:`~clocksync.latency.percentile_table` names them).
    """
    from dask.delayed import delayed

    def one(df: pd.DataFrame) -> QuantileSketch:
        table = pa.Table.from_pandas(df, preserve_index=False)
        sketch = QuantileSketch.from_hops(table, accuracy)
        if all_pairs and table.num_rows:
            star = pa.array(["*"] * table.num_rows, pa.string())
            table = table.set_column(table.column_names.index("src_node"), "src_node", star)
            table = table.set_column(table.column_names.index("dst_node"), "dst_node", star)
            sketch = sketch.merge(QuantileSketch.from_hops(table, accuracy))
        return sketch

    def merge(parts: list[QuantileSketch]) -> QuantileSketch:
        total = QuantileSketch(accuracy)
        for part in parts:
            total = total.merge(part)
        return total

    parts = [delayed(one)(p) for p in latencies.to_delayed()]
    result: QuantileSketch = delayed(merge)(parts).compute()
    return result


def dask_hop_counts(latencies: Any, order: Iterable[str] = ()) -> tuple[HopCount, ...]:
    """Per hop: requests, cross-node ones, negative raw latencies, order unknown and
    inconsistent, summed over the partitions; hops in ``order`` first (chain order), then
    the rest by name. The median widths are not computed here (NaN)."""
    frame = latencies.assign(
        cross=latencies["src_node"] != latencies["dst_node"],
        neg=latencies["raw_latency_ns"] < 0,
        one=1,
    )[["hop", "one", "cross", "neg", "order_unknown", "inconsistent"]]
    sums = frame.groupby("hop").sum().compute()
    names = [str(h) for h in sums.index]
    first = [h for h in order if h in names]
    nan = float("nan")
    return tuple(
        HopCount(hop, int(sums.at[hop, "one"]), int(sums.at[hop, "cross"]),
                 int(sums.at[hop, "neg"]), int(sums.at[hop, "order_unknown"]),
                 int(sums.at[hop, "inconsistent"]), nan, nan)
        for hop in first + sorted(set(names) - set(first)))
