"""Columnar storage of raw events and per-request results: Parquet, zstd, timestamps
``DELTA_BINARY_PACKED`` (via :func:`clocksync._tabular.write_rows`, atomic).

Rows are sorted before writing so that the delta encoding sees small steps: events by
``(node, ts_ns)`` (each node's clock is monotone, so deltas are inter-event gaps), results by
``(hop, src_ref_ns)``. Result intervals are stored as whole ns rounded *outwards*
(``low_ns`` and ``table_low_ns`` down, ``high_ns`` and ``table_high_ns`` up) so a stored
interval still holds the truth; ``latency_ns`` is rounded to the nearest ns.
"""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .._tabular import read_rows, write_rows
from ._arrow import dictionary_codes
from ._schema import EVENT_COLUMNS

__all__ = ["read_latencies", "write_events", "write_latencies"]

_FLOOR = ("low_ns", "table_low_ns")
_CEIL = ("high_ns", "table_high_ns")


def write_events(table: pa.Table, path: str | os.PathLike[str], sort: bool = True) -> None:
    """Write events (``request_id, stage, node, ts_ns`` + context) to JSONL/CSV/Parquet."""
    if sort and table.num_rows:
        node, names = dictionary_codes(table.column("node"))
        rank = np.argsort(np.argsort(np.asarray(names.to_pylist(), dtype=object)))
        order = np.lexsort((table.column("ts_ns").to_numpy(), rank[node]))
        table = table.take(pa.array(order))
    write_rows(table, path, delta_columns=("ts_ns",))


def _as_int(table: pa.Table, name: str, how: str) -> pa.Table:
    if name not in table.column_names:
        return table
    values = table.column(name).to_numpy()
    rounded = {"floor": np.floor, "ceil": np.ceil, "round": np.rint}[how](values)
    idx = table.column_names.index(name)
    return table.set_column(idx, name, pa.array(rounded.astype(np.int64)))


def write_latencies(table: pa.Table, path: str | os.PathLike[str], sort: bool = True) -> None:
    """Write the per-request hop table; intervals rounded outwards to whole ns."""
    for name in _FLOOR:
        table = _as_int(table, name, "floor")
    for name in _CEIL:
        table = _as_int(table, name, "ceil")
    table = _as_int(table, "latency_ns", "round")
    for name in ("request_id", "hop", "src_node", "dst_node"):
        if name in table.column_names:  # Parquet writes its own dictionaries per row group
            table = table.set_column(table.column_names.index(name), name,
                                     table.column(name).cast(pa.string()))
    if sort and table.num_rows:
        hop, _ = dictionary_codes(table.column("hop"))
        order = np.lexsort((table.column("src_ref_ns").to_numpy(), hop))
        table = table.take(pa.array(order))
    write_rows(table, path, delta_columns=("src_ref_ns", "raw_latency_ns", "latency_ns",
                                           *_FLOOR, *_CEIL))


def read_latencies(path: str | os.PathLike[str]) -> pa.Table:
    """Read a per-request hop table written by :func:`write_latencies` (any row format)."""
    cols = [c for c in EVENT_COLUMNS if c.name == "request_id"]
    table = read_rows(path, cols)
    for name in ("latency_ns", *_FLOOR, *_CEIL):
        if name in table.column_names:
            idx = table.column_names.index(name)
            table = table.set_column(idx, name, pc.cast(table.column(name), pa.float64()))
    return table
