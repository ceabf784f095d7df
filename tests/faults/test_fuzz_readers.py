"""Fuzz every event and trace reader with mutated realistic fixtures.

Inputs start from the real fixtures of ``tests/latency/fixtures`` (events as JSONL, CSV and
Parquet; traces as OTLP JSON and JSONL, Jaeger and Zipkin, and every producer shape of
``fixtures/shapes``: proto3-JSON defaults, collector JSON lines, OTLP protobuf, bare Jaeger
traces/trace lists/span lists, single Zipkin spans and trace lists) and are mutated structurally
(a field replaced by a nasty value or a random tree, deleted, duplicated, nudged) or at the
byte level (junk spliced in, bytes cut).

Property: the readers raise nothing but :class:`InputError`, whose message starts with the
file name (and names ``file:line``/row where there is one); with ``skip_bad`` every
skipped record is a :class:`BadRecord` naming the file; rows that come out have a string
request id, stage and node and a non-negative int64 timestamp.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from clocksync import InputError
from clocksync.latency import (
    Events,
    TraceMapping,
    inspect_traces,
    read_events_file,
    read_trace_file,
)
from tests._fuzz import fuzz_settings

from .test_fuzz_table import NASTY, mutated

pytestmark = pytest.mark.fuzz

FIX = Path(__file__).parent.parent / "latency" / "fixtures"
MAPPING = TraceMapping.from_json(FIX / "trace_map.json")
TRACE_DOCS = {name: json.loads((FIX / name).read_text())
              for name in ("otlp.json", "jaeger.json", "zipkin.json")}
OTLP_LINES = [json.loads(line) for line in (FIX / "otlp.jsonl").read_text().splitlines()
              if line.strip()]
EVENT_LINES = [json.loads(line) for line in (FIX / "events.jsonl").read_text().splitlines()
               if line.strip()]
CSV_BYTES = (FIX / "events.csv").read_bytes()
SHAPES = FIX / "shapes"
SHAPE_EXPECTED = json.loads((SHAPES / "expected.json").read_text())
SHAPE_DOCS = {name: json.loads((SHAPES / name).read_text()) for name in SHAPE_EXPECTED
              if name.endswith(".json") and not name.endswith("_lines.json")}
SHAPE_LINES = {name: [json.loads(line) for line in (SHAPES / name).read_text().splitlines()]
               for name in SHAPE_EXPECTED if name.endswith("_lines.json")}
SHAPE_BINARY = sorted(name for name in SHAPE_EXPECTED if name.endswith(("pb", "binpb")))
SHAPE_MAPS = {name: TraceMapping.load(SHAPES / want["map"])
              for name, want in SHAPE_EXPECTED.items()}
MAP_DOCS = [json.loads((FIX / "trace_map.json").read_text())] + [
    json.loads((SHAPES / m).read_text())
    for m in ("defaults_map.json", "client_server_map.json", "address_map.json")]
PARQUET = pq.read_table(FIX / "events.parquet")

_SUPPRESS = [HealthCheck.too_slow, HealthCheck.data_too_large]


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="csfaults_readers_") as name:
        yield Path(name)


def _check_events(events: Events, path: Path) -> None:
    table = events.table
    for bad in events.bad:
        assert bad.where.startswith(str(path)), bad
    if table.num_rows == 0:
        return
    for name in ("request_id", "stage", "node"):
        column = table.column(name)
        assert column.null_count == 0, name
        assert pa.types.is_string(column.type) or (
            pa.types.is_dictionary(column.type) and pa.types.is_string(column.type.value_type)
        ), (name, column.type)
    ts = table.column("ts_ns")
    assert ts.type == pa.int64() and ts.null_count == 0
    assert min(ts.to_pylist()) >= 0


def _read(reader: Any, path: Path, **kwargs: Any) -> None:
    for skip_bad in (False, True):
        try:
            events = reader(path, skip_bad=skip_bad, **kwargs)
        except InputError as exc:
            assert str(exc).startswith(str(path)), str(exc)
            continue
        _check_events(events, path)


def _splice(data: bytes, edits: list[tuple[int, bytes, int]]) -> bytes:
    out = bytearray(data)
    for pos, junk, cut in edits:
        pos = pos % (len(out) + 1)
        out[pos:pos + cut] = junk
    return bytes(out)


byte_edits = st.lists(st.tuples(st.integers(0, 1 << 16), st.binary(max_size=6),
                                 st.integers(0, 8)), min_size=1, max_size=4)


# --- traces --------------------------------------------------------------------------------

@fuzz_settings(suppress_health_check=_SUPPRESS)
@given(st.data(), st.sampled_from(sorted(TRACE_DOCS)), st.sampled_from([None, "named"]))
def test_mutated_trace_documents(workdir: Path, data: st.DataObject, name: str,
                                 fmt: str | None) -> None:
    doc = data.draw(mutated(TRACE_DOCS[name], max_edits=3))
    path = workdir / f"mut-{name}"
    path.write_text(json.dumps(doc, allow_nan=True, indent=1))
    kind = name.split(".")[0]
    _read(read_trace_file, path, mapping=MAPPING, fmt=kind if fmt else None)


@fuzz_settings(suppress_health_check=_SUPPRESS)
@given(st.data())
def test_mutated_otlp_jsonl_lines(workdir: Path, data: st.DataObject) -> None:
    lines = [json.dumps(doc) for doc in OTLP_LINES]
    k = data.draw(st.integers(0, len(lines) - 1))
    lines[k] = json.dumps(data.draw(mutated(OTLP_LINES[k], max_edits=3)), allow_nan=True)
    path = workdir / "mut-otlp.jsonl"
    path.write_text("\n".join(lines) + "\n")
    _read(read_trace_file, path, mapping=MAPPING)


@fuzz_settings(suppress_health_check=_SUPPRESS)
@given(st.sampled_from([*sorted(TRACE_DOCS), "otlp.jsonl"]), byte_edits)
def test_trace_bytes_spliced(workdir: Path, name: str,
                             edits: list[tuple[int, bytes, int]]) -> None:
    path = workdir / f"bytes-{name}"
    path.write_bytes(_splice((FIX / name).read_bytes(), edits))
    _read(read_trace_file, path, mapping=MAPPING)


def _inspect(path: Path, **kwargs: Any) -> None:
    """``inspect_traces`` raises nothing but :class:`InputError` naming the file."""
    for skip_bad in (False, True):
        try:
            inspect_traces([path], skip_bad=skip_bad, **kwargs)
        except InputError as exc:
            assert str(exc).startswith(str(path)), str(exc)


@fuzz_settings(suppress_health_check=_SUPPRESS)
@given(st.data(), st.sampled_from(sorted(SHAPE_DOCS)), st.sampled_from([None, "named"]))
def test_mutated_shape_documents(workdir: Path, data: st.DataObject, name: str,
                                 fmt: str | None) -> None:
    doc = data.draw(mutated(SHAPE_DOCS[name], max_edits=3))
    path = workdir / f"mut-{name}"
    path.write_text(json.dumps(doc, allow_nan=True, indent=1))
    kind = SHAPE_EXPECTED[name]["format"] if fmt else None
    _read(read_trace_file, path, mapping=SHAPE_MAPS[name], fmt=kind)
    _inspect(path, mapping=SHAPE_MAPS[name], fmt=kind)


@fuzz_settings(suppress_health_check=_SUPPRESS)
@given(st.data(), st.sampled_from(sorted(SHAPE_LINES)))
def test_mutated_collector_lines(workdir: Path, data: st.DataObject, name: str) -> None:
    docs = SHAPE_LINES[name]
    lines = [json.dumps(doc) for doc in docs]
    k = data.draw(st.integers(0, len(lines) - 1))
    lines[k] = json.dumps(data.draw(mutated(docs[k], max_edits=3)), allow_nan=True)
    path = workdir / f"mut-{name}"  # a .json name: JSON lines are found by content
    path.write_text("\n".join(lines) + "\n")
    _read(read_trace_file, path, mapping=SHAPE_MAPS[name])
    _inspect(path, mapping=SHAPE_MAPS[name])


@fuzz_settings(suppress_health_check=_SUPPRESS)
@given(st.sampled_from([*SHAPE_BINARY, *sorted(SHAPE_DOCS), *sorted(SHAPE_LINES)]),
       byte_edits)
def test_shape_bytes_spliced(workdir: Path, name: str,
                             edits: list[tuple[int, bytes, int]]) -> None:
    """Protobuf (framed and bare) and every JSON shape with junk spliced in or bytes cut."""
    path = workdir / f"bytes-{name}"
    path.write_bytes(_splice((SHAPES / name).read_bytes(), edits))
    _read(read_trace_file, path, mapping=SHAPE_MAPS[name])
    _inspect(path, mapping=SHAPE_MAPS[name])


@fuzz_settings(suppress_health_check=_SUPPRESS)
@given(st.data(), st.sampled_from(range(len(MAP_DOCS))))
def test_mutated_trace_maps(workdir: Path, data: st.DataObject, which: int) -> None:
    """A mutated map file loads, or is refused with an InputError naming the file; a map
    that loads reads the fixtures without anything but InputError."""
    doc = data.draw(mutated(MAP_DOCS[which], max_edits=3))
    path = workdir / "map.json"
    path.write_text(json.dumps(doc, allow_nan=True))
    try:
        mapping = TraceMapping.load(path)
    except InputError as exc:
        assert str(exc).startswith(str(path)), str(exc)
        return
    for name in ("zipkin.json", "otlp.json"):
        _read(read_trace_file, FIX / name, mapping=mapping)


# --- events --------------------------------------------------------------------------------

@fuzz_settings(suppress_health_check=_SUPPRESS)
@given(st.data())
def test_mutated_events_jsonl(workdir: Path, data: st.DataObject) -> None:
    records = data.draw(mutated(EVENT_LINES, max_edits=3))
    path = workdir / "mut-events.jsonl"
    if isinstance(records, list):
        text = "\n".join(json.dumps(r, allow_nan=True) for r in records)
    else:
        text = json.dumps(records, allow_nan=True)
    path.write_text(text + "\n")
    _read(read_events_file, path)


@fuzz_settings(suppress_health_check=_SUPPRESS)
@given(byte_edits, st.sampled_from(["csv", "jsonl"]))
def test_events_text_bytes_spliced(workdir: Path, edits: list[tuple[int, bytes, int]],
                                   fmt: str) -> None:
    path = workdir / f"bytes-events.{fmt}"
    data = _splice((FIX / f"events.{fmt}").read_bytes(), edits)
    path.write_bytes(data)
    _read(read_events_file, path)


@fuzz_settings(suppress_health_check=_SUPPRESS)
@given(st.sampled_from(PARQUET.column_names), st.sampled_from(["nasty", "null", "drop",
                                                               "strings", "floats"]),
       NASTY, st.integers(0, PARQUET.num_rows - 1))
def test_mutated_events_parquet(workdir: Path, column: str, how: str, value: Any,
                                row: int) -> None:
    """A column dropped, nulled, retyped, or one cell replaced by a nasty value."""
    values = PARQUET.column(column).to_pylist()
    if how == "drop":
        table = PARQUET.drop_columns([column])
    else:
        if how == "null":
            values[row] = None
        elif how == "strings":
            values = [None if v is None else str(v) for v in values]
        elif how == "floats":
            values = [float(v) + 0.5 if isinstance(v, int) else 1.5 for v in values]
        else:
            values[row] = value
        try:
            array = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            array = pa.array([None if v is None else json.dumps(v) for v in values])
        table = PARQUET.set_column(PARQUET.column_names.index(column), column, array)
    path = workdir / "mut-events.parquet"
    pq.write_table(table, path)
    _read(read_events_file, path)


@fuzz_settings(suppress_health_check=_SUPPRESS)
@given(byte_edits)
def test_events_parquet_bytes_corrupted(workdir: Path,
                                        edits: list[tuple[int, bytes, int]]) -> None:
    path = workdir / "bytes-events.parquet"
    path.write_bytes(_splice((FIX / "events.parquet").read_bytes(), edits))
    _read(read_events_file, path)


# --- integers beyond int64 (found by the fuzzers above) -------------------------------------

@pytest.mark.parametrize("skip_bad", [False, True])
def test_int_beyond_int64_in_ts_ns_is_an_input_error(tmp_path: Path, skip_bad: bool) -> None:
    path = tmp_path / "big.jsonl"
    path.write_text(json.dumps({**EVENT_LINES[0], "ts_ns": 2**64}) + "\n"
                    + json.dumps(EVENT_LINES[1]) + "\n")
    if skip_bad:
        events = read_events_file(path, skip_bad=True)
        assert len(events.bad) == 1 and events.bad[0].where == f"{path}:1"
    else:
        with pytest.raises(InputError, match=rf"{path}:1: field 'ts_ns'"):
            read_events_file(path)


def test_int_beyond_int64_in_a_context_column_is_kept_or_refused(tmp_path: Path) -> None:
    path = tmp_path / "big-context.jsonl"
    path.write_text(json.dumps({**EVENT_LINES[0], "partition": 2**64}) + "\n")
    try:
        events = read_events_file(path)
    except InputError as exc:
        assert str(path) in str(exc)
    else:
        assert events.table.num_rows == 1
