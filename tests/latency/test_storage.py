"""Storage: Parquet with zstd and delta-encoded timestamps; round trips; intervals rounded
outwards so stored bounds still hold."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

# tests the private modules clocksync.latency._storage and _arrow, clocksync._io._tabular
from clocksync.latency import read_events_file, read_latencies, write_events, write_latencies


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


def test_parquet_dictionary_read_same_per_request_table(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Events written by write_events to Parquet in several row groups, read with the request
    ids as per-row-group dictionaries, give exactly the per-request table of the same events
    read from JSONL: same rows in the same order. Row groups hold whole requests, so the
    reader joins their dictionaries without hashing; a copy rewritten with other row groups
    keeps the claim in its metadata but is not trusted (its dictionaries are unified by
    hashing), with the same result; and a filtered dictionary column (unused ids left in
    its dictionary) counts only the requests present."""
    from clocksync.latency import (
        _storage,  # tests the private module latency._storage
        hop_table,
        simulate_requests,
    )
    from clocksync.latency._arrow import unique_dictionary
    from tests.latency.conftest import T0, make_world

    world = make_world(5)
    rng = np.random.default_rng(5)
    routes = [("n1", "n2"), ("n2", "n1"), ("n1", "n1")]
    n_req = 3000
    events, _ = simulate_requests(world.clocks, routes, n_req, T0 + 20 * 10**9, 100.0, rng)
    events = events.take(pa.array(rng.permutation(events.num_rows)))
    monkeypatch.setattr(_storage, "EVENT_ROW_GROUP_ROWS", 1000)
    parquet, jsonl = tmp_path / "ev.parquet", tmp_path / "ev.jsonl"
    write_events(events, parquet)
    write_events(events, jsonl)
    meta = pq.ParquetFile(parquet).metadata
    assert meta.num_row_groups == -(-events.num_rows // 1000)
    per_group = [set(pq.ParquetFile(parquet).read_row_group(i, columns=["request_id"])
                     .column(0).to_pylist()) for i in range(meta.num_row_groups)]
    assert sum(len(g) for g in per_group) == n_req  # each request in exactly one row group
    rewritten = tmp_path / "rewritten.parquet"
    pq.write_table(pq.read_table(parquet), rewritten, row_group_size=700)
    assert _storage.WHOLE_REQUESTS_KEY.encode() in pq.read_schema(rewritten).metadata

    from_pq, from_jsonl = read_events_file(parquet).table, read_events_file(jsonl).table
    rid = from_pq.column("request_id")
    assert pa.types.is_dictionary(rid.type) and unique_dictionary(from_pq, "request_id")
    assert len({c.dictionary.buffers()[1].address for c in rid.chunks}) == 1  # joined
    from_rw = read_events_file(rewritten).table
    assert not unique_dictionary(from_rw, "request_id")
    assert len({c.dictionary.buffers()[1].address
                for c in from_rw.column("request_id").chunks}) > 1  # to unify

    def plain(t: pa.Table) -> pa.Table:
        return t.cast(pa.schema([pa.field(f.name, f.type.value_type)
                                 if pa.types.is_dictionary(f.type) else f for f in t.schema]))

    assert plain(hop_table(from_rw, world.corrector).table).equals(
        plain(hop_table(from_jsonl, world.corrector).table))

    a = plain(hop_table(from_pq, world.corrector).table)
    b = plain(hop_table(from_jsonl, world.corrector).table)
    assert a.num_rows == 4 * n_req
    assert a.equals(b)

    keep = pc.less(pc.utf8_length(pc.cast(from_pq.column("request_id"), pa.string())), 7)
    fa = hop_table(from_pq.filter(keep), world.corrector)
    fb = hop_table(from_jsonl.filter(pc.less(pc.utf8_length(from_jsonl.column("request_id")),
                                             7)), world.corrector)
    assert fa.table.num_rows == fb.table.num_rows < a.num_rows
    assert plain(fa.table).equals(plain(fb.table))


def test_join_disjoint_dictionaries_only_for_the_row_group_layout() -> None:
    """Dictionaries are joined without hashing only when the chunks come as one run per
    row group (each run sharing its own dictionary, run sizes as stated); anything else
    (sizes that differ, a dictionary seen again after another, nulls in a dictionary,
    plain strings) is refused, and the caller hashes."""
    from clocksync.latency._arrow import dictionary_codes, join_disjoint_dictionaries

    d1, d2 = pa.array(["a", "b", "c"]), pa.array(["x", "y"])

    def chunk(idx: list[int | None], d: pa.Array) -> pa.DictionaryArray:
        return pa.DictionaryArray.from_arrays(pa.array(idx, pa.int32()), d)

    col = pa.chunked_array([chunk([0, 1], d1), chunk([2, None, 0], d1), chunk([1, 0, 1], d2)])
    joined = join_disjoint_dictionaries(col, [5, 3])
    assert joined is not None
    assert joined.to_pylist() == col.to_pylist() == ["a", "b", "c", None, "a", "y", "x", "y"]
    codes, dictionary = dictionary_codes(joined, unique=True)
    assert dictionary.to_pylist() == ["a", "b", "c", "x", "y"]
    assert codes.tolist() == [0, 1, 2, -1, 0, 4, 3, 4]
    assert join_disjoint_dictionaries(col, [4, 4]) is None
    again = pa.chunked_array([chunk([0], d1), chunk([0], d2), chunk([1], d1)])
    assert join_disjoint_dictionaries(again, [1, 1, 1]) is None
    with_null = pa.chunked_array([chunk([0], pa.array(["a", None]))])
    assert join_disjoint_dictionaries(with_null, [1]) is None
    assert join_disjoint_dictionaries(pa.chunked_array([pa.array(["a"])]), [1]) is None


def test_write_rows_refuses_row_groups_that_do_not_split_the_table(tmp_path: Path) -> None:
    from clocksync._io._tabular import write_rows  # tests the private module _io._tabular

    table = pa.table({"x": [1, 2, 3]})
    for sizes in ([1, 1], [2, 2], [3, 0]):
        with pytest.raises(ValueError, match="row group sizes"):
            write_rows(table, tmp_path / "x.parquet", row_group_rows=sizes)
    assert not list(tmp_path.iterdir())  # nothing half-written
    write_rows(table, tmp_path / "x.parquet", row_group_rows=[1, 2])
    meta = pq.ParquetFile(tmp_path / "x.parquet").metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [1, 2]


def test_write_events_with_null_request_ids_keeps_every_row(tmp_path: Path) -> None:
    """A null request id is a bad record for the reader, not a reason to lose rows on
    writing: every row is written, nulls in one row group of their own request slot."""
    table = pa.table({
        "request_id": ["r1", None, "r1", "r2", None],
        "stage": ["pp_enqueue", "pp_exit", "pp_exit", "pp_enqueue", "pp_enqueue"],
        "node": ["a", "a", "a", "b", "b"],
        "ts_ns": [5, 6, 7, 1, 2],
    })
    path = tmp_path / "ev.parquet"
    write_events(table, path)
    back = pq.read_table(path)
    assert back.num_rows == 5
    assert sorted(back.column("ts_ns").to_pylist()) == [1, 2, 5, 6, 7]
    events = read_events_file(path, skip_bad=True)
    assert events.table.num_rows == 3 and len(events.bad) == 2
    assert all("request_id" in b.reason for b in events.bad)


def test_false_whole_request_claim_is_caught(tmp_path: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    """A file whose metadata claims whole requests per row group while its row groups split
    requests (a hostile or broken writer) would turn each split request into two incomplete
    ones: the pivot sees incomplete requests sharing an id, says so, and groups the ids by
    hashing; the per-request table is the one of the same events without any claim."""
    import json

    from clocksync._io._tabular import write_rows  # to write a file that lies
    from clocksync.latency import hop_table, simulate_requests
    from clocksync.latency._arrow import unique_dictionary
    from clocksync.latency._storage import WHOLE_REQUESTS_KEY
    from tests.latency.conftest import T0, make_world

    world = make_world(6)
    rng = np.random.default_rng(6)
    events, _ = simulate_requests(world.clocks, [("n1", "n2"), ("n2", "n1")], 500,
                                  T0 + 20 * 10**9, 50.0, rng)
    sizes = [701, 598, events.num_rows - 1299]  # not multiples of 4: requests are split
    lying = tmp_path / "lying.parquet"
    write_rows(events, lying, delta_columns=("ts_ns",), row_group_rows=sizes,
               metadata={WHOLE_REQUESTS_KEY: json.dumps(sizes)})
    honest = tmp_path / "honest.jsonl"
    write_events(events, honest)
    from_lying = read_events_file(lying).table
    assert unique_dictionary(from_lying, "request_id")  # the reader believed it
    with caplog.at_level("WARNING"):
        got = hop_table(from_lying, world.corrector)
    assert "claim of whole requests per row group is false" in caplog.text
    want = hop_table(read_events_file(honest).table, world.corrector)
    assert got.requests == want.requests == 500 and got.incomplete == 0

    def plain(t: pa.Table) -> pa.Table:
        return t.cast(pa.schema([pa.field(f.name, f.type.value_type)
                                 if pa.types.is_dictionary(f.type) else f for f in t.schema]))

    key = ["request_id", "hop"]
    assert plain(got.table).sort_by([(k, "ascending") for k in key]).equals(
        plain(want.table).sort_by([(k, "ascending") for k in key]))


@pytest.mark.parametrize("claim", [b"\xff\xfe", b"{}", b"null", b"[1e400]", b'["4"]',
                                   b"[" + b"9" * 400 + b"]", b"[-4]"])
def test_malformed_whole_request_claim_is_ignored(tmp_path: Path, claim: bytes) -> None:
    """Garbage in the whole-request metadata is no claim: the file reads as any other."""
    from clocksync.latency._arrow import unique_dictionary
    from clocksync.latency._storage import WHOLE_REQUESTS_KEY

    table = pa.table({"request_id": ["r1", "r1", "r2", "r2"],
                      "stage": ["pp_enqueue", "pp_exit"] * 2, "node": ["a"] * 4,
                      "ts_ns": [1, 2, 3, 4]})
    path = tmp_path / "ev.parquet"
    pq.write_table(table.replace_schema_metadata({WHOLE_REQUESTS_KEY.encode(): claim}), path)
    events = read_events_file(path)
    assert events.table.num_rows == 4
    assert not unique_dictionary(events.table, "request_id")
