"""Storage: Parquet with zstd and delta-encoded timestamps; round trips; intervals rounded
outwards so stored bounds still hold."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from clocksync.latency._events import read_events_file
from clocksync.latency._storage import read_latencies, write_events, write_latencies


def _encodings(path: Path, column: str) -> set[str]:
    meta = pq.ParquetFile(path).metadata
    names = [meta.schema.column(i).name for i in range(meta.num_columns)]
    col = names.index(column)
    out: set[str] = set()
    for rg in range(meta.num_row_groups):
        chunk = meta.row_group(rg).column(col)
        out |= set(chunk.encodings)
        assert chunk.compression == "ZSTD"
    return out


def test_events_round_trip_delta_zstd(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    n = 2000
    table = pa.table({
        "request_id": [f"r{i // 4}" for i in range(n)],
        "stage": ["pp_enqueue", "pp_exit", "bifrost_arrive", "bifrost_done"] * (n // 4),
        "node": rng.choice(["a", "b"], n),
        "ts_ns": (1_764_129_600_000_000_000 + np.cumsum(rng.integers(1, 10**6, n))),
        "cpu_pct": rng.uniform(0, 100, n),
    })
    path = tmp_path / "ev.parquet"
    write_events(table, path)
    assert "DELTA_BINARY_PACKED" in _encodings(path, "ts_ns")
    back = read_events_file(path).table

    def rows(t: pa.Table) -> list[tuple[object, ...]]:
        return sorted(zip(*(t.column(c).to_pylist() for c in table.column_names), strict=True))

    assert rows(back) == rows(table)
    jsonl = tmp_path / "ev.jsonl"
    write_events(table, jsonl)
    assert read_events_file(jsonl).table.num_rows == n


def test_latencies_rounded_outwards(tmp_path: Path) -> None:
    table = pa.table({
        "request_id": ["a", "b"], "hop": ["x->y", "x->y"], "src_node": ["n", "n"],
        "dst_node": ["m", "m"], "latency_ns": [10.6, 20.2], "low_ns": [5.5, 15.9],
        "high_ns": [15.7, 24.5], "raw_latency_ns": [3, -4], "table_low_ns": [1.2, 2.8],
        "table_high_ns": [30.1, 40.9], "src_ref_ns": [1_000, 2_000],
    })
    path = tmp_path / "lat.parquet"
    write_latencies(table, path)
    assert "DELTA_BINARY_PACKED" in _encodings(path, "src_ref_ns")
    back = read_latencies(path).sort_by("request_id")
    assert back.column("low_ns").to_pylist() == [5.0, 15.0]
    assert back.column("high_ns").to_pylist() == [16.0, 25.0]
    assert back.column("table_low_ns").to_pylist() == [1.0, 2.0]
    assert back.column("table_high_ns").to_pylist() == [31.0, 41.0]
    assert back.column("latency_ns").to_pylist() == [11.0, 20.0]
    assert back.column("raw_latency_ns").to_pylist() == [3, -4]
