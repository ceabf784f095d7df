"""Columnar storage of raw events and per-request results: Parquet, zstd, timestamps
``DELTA_BINARY_PACKED`` (via :func:`clocksync._io._tabular.write_rows`, atomic).

Rows are sorted before writing so that the delta encoding sees small steps: events in row
groups of about :data:`EVENT_ROW_GROUP_ROWS` events, whole requests in order of their
first event (each request in one row group), by ``(node, ts_ns)`` inside each (each
node's clock is monotone, so deltas are inter-event gaps); results by ``(hop, src_ref_ns)``.
Event row groups stay dictionary-encoded in full, so a reader gets each row group's
distinct request ids from its dictionary instead of hashing every event's id. Result
intervals are stored as whole ns rounded *outwards* (``low_ns`` and ``table_low_ns`` down,
``high_ns`` and ``table_high_ns`` up) so a stored interval still holds the truth;
``latency_ns`` is rounded to the nearest ns.
"""

from __future__ import annotations

import json
import os

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from .._io._tabular import read_rows, write_rows
from ._arrow import dictionary_codes
from ._schema import EVENT_COLUMNS

__all__ = ["EVENT_ROW_GROUP_ROWS", "WHOLE_REQUESTS_KEY", "read_latencies", "write_events",
           "write_latencies"]

_FLOOR = ("low_ns", "table_low_ns")
_CEIL = ("high_ns", "table_high_ns")
#: events per Parquet row group (pyarrow's default size, made explicit: the layout uses it)
EVENT_ROW_GROUP_ROWS = 1 << 20
#: room for a whole row group's dictionary (ids up to ~60 bytes); past it Parquet falls back
#: to plain encoding for the rest of the row group
_EVENT_DICTIONARY_PAGE_BYTES = 64 << 20
#: Parquet key-value metadata of event files whose row groups hold whole requests: the
#: JSON list of the row groups' sizes (a rewritten file with other row groups is not trusted)
WHOLE_REQUESTS_KEY = "clocksync.whole_request_row_groups"


def _plain_strings(table: pa.Table, names: tuple[str, ...]) -> pa.Table:
    """Dictionary-typed columns ``names`` as plain strings: Parquet then writes each row
    group's own dictionary (only the values it holds), not the whole column's in each."""
    for name in names:
        if name in table.column_names and pa.types.is_dictionary(table.schema.field(name).type):
            table = table.set_column(table.column_names.index(name), name,
                                     table.column(name).cast(pa.string()))
    return table


def _request_blocks(table: pa.Table, ts_ns: npt.NDArray[np.int64]
                    ) -> tuple[npt.NDArray[np.int64], list[int]]:
    """Row group of each event and each row group's size: requests in order of their first
    event, cut into consecutive runs of about :data:`EVENT_ROW_GROUP_ROWS` events, each
    request wholly inside one run (events with a null id count as one more request)."""
    rid, ids = dictionary_codes(table.column("request_id"))
    slot = np.where(rid >= 0, rid, len(ids))
    first = np.full(len(ids) + 1, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first, slot, ts_ns)
    per_request = np.bincount(slot, minlength=len(ids) + 1)
    by_start = np.argsort(first, kind="stable")
    before = np.cumsum(per_request[by_start]) - per_request[by_start]  # events ahead of it
    block_of = np.empty(len(first), dtype=np.int64)
    block_of[by_start] = before // EVENT_ROW_GROUP_ROWS
    block = block_of[slot]
    sizes = np.bincount(block)
    return block, [int(n) for n in sizes[sizes > 0]]


def write_events(table: pa.Table, path: str | os.PathLike[str], sort: bool = True) -> None:
    """Write events (``request_id, stage, node, ts_ns`` + context) to JSONL/CSV/Parquet.

    With ``sort``, Parquet row groups hold whole requests (each request's events in one
    row group), recorded in the file's metadata (:data:`WHOLE_REQUESTS_KEY`) so that a
    reader can tell the row groups' request-id dictionaries apart without hashing them."""
    sizes: list[int] | None = None
    metadata: dict[str, str] | None = None
    if sort and table.num_rows:
        node, names = dictionary_codes(table.column("node"))
        rank = np.argsort(np.argsort(np.asarray(names.to_pylist(), dtype=object)))
        ts_ns = table.column("ts_ns").to_numpy()
        block, sizes = _request_blocks(table, ts_ns)
        order = np.lexsort((ts_ns, rank[node], block))
        table = table.take(pa.array(order))
        metadata = {WHOLE_REQUESTS_KEY: json.dumps(sizes)}
    table = _plain_strings(table, ("request_id", "stage", "node"))
    write_rows(table, path, delta_columns=("ts_ns",),
               row_group_rows=sizes if sizes else EVENT_ROW_GROUP_ROWS,
               dictionary_page_bytes=_EVENT_DICTIONARY_PAGE_BYTES, metadata=metadata)


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
    table = _plain_strings(table, ("request_id", "hop", "src_node", "dst_node"))
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
