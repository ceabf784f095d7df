"""Golden files, one per shape producers write (fixtures/shapes, written by make_shapes.py):
each is detected as its format and shape and gives exactly its expected stage events."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from clocksync import InputError
from clocksync.latency import (
    TraceMapping,
    detect_format,
    input_format,
    read_inputs,
    read_spans,
    read_trace_file,
)

SHAPES = Path(__file__).parent / "fixtures" / "shapes"
EXPECTED = json.loads((SHAPES / "expected.json").read_text())


def _rows(table: pa.Table) -> list[list[object]]:
    cols = [table.column(c).to_pylist() for c in ("request_id", "stage", "node", "ts_ns")]
    return sorted([list(r) for r in zip(*cols, strict=True)])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_golden_shape(name: str) -> None:
    want = EXPECTED[name]
    path = SHAPES / name
    mapping = TraceMapping.load(SHAPES / want["map"])
    assert input_format(path) == want["format"]
    got = read_spans(path)
    assert (got.format, got.detected, list(got.shapes)) == (want["format"], True, want["shapes"])
    assert got.bad == ()
    assert _rows(read_trace_file(path, mapping).table) == sorted(want["events"])
    # named format: the same events; through read_inputs (auto) too
    assert _rows(read_trace_file(path, mapping, fmt=want["format"]).table) == sorted(
        want["events"])
    assert _rows(read_inputs([path], mapping=mapping).table) == sorted(want["events"])


def test_proto3_defaults_are_read_not_rejected() -> None:
    spans = read_spans(SHAPES / "otlp_proto3_defaults.json").spans
    pp = [s for s in spans if s.resource.get("host.name") == "pp-1"]
    assert {s.name for s in pp} == {""} and {s.kind for s in pp} == {"unspecified"}
    assert all(s.attributes == {} and s.events[0][0] == "" for s in pp)
    assert pp[0].trace_id == "5b8efff798038103d269b633813fc60c"  # from base64
    bf = [s for s in spans if s.resource.get("host.name") == "bifrost-1"]
    assert {s.kind for s in bf} == {"consumer"}
    assert bf[0].attributes == {"rid": "req-1", "empty": None}
    assert bf[0].parent_span_id == "0000000000000001"


def test_jaeger_span_list_is_never_zipkin() -> None:
    doc = json.loads((SHAPES / "jaeger_spans.json").read_text())
    assert detect_format(doc) == "jaeger"
    assert detect_format(doc[0]) == "jaeger"
    spans = read_spans(SHAPES / "jaeger_spans.json").spans
    assert {s.kind for s in spans} == {"producer", "consumer"}
    assert spans[1].parent_span_id == spans[0].span_id
    assert {s.resolution_ns for s in spans} == {1000}


def test_zipkin_address_only_nodes_and_resolution_column() -> None:
    path = SHAPES / "zipkin_address_only.json"
    table = read_trace_file(path, TraceMapping.load(SHAPES / "address_map.json")).table
    assert set(table.column("node").to_pylist()) == {"10.0.0.1", "fe80::2"}
    assert set(table.column("resolution_ns").to_pylist()) == {1000}  # µs stamps


def test_restate_map_pairs_and_resolution() -> None:
    mapping = TraceMapping.load(SHAPES / "restate_map.toml")
    table = read_trace_file(SHAPES / "restate_lines.json", mapping).table
    res = dict(zip(table.column("stage").to_pylist(), table.column("resolution_ns").to_pylist(),
                   strict=True))
    assert res == {"ingress": None, "invocation-start": 1_000_000}
    # pairing by parent span id instead: each ingress->start pair is one request
    from clocksync.latency import FieldRef, StageRule

    paired = TraceMapping(
        rules=(StageRule("ingress", name_regex="^ingress( |$)",
                         request_id=(FieldRef(field="span_id"),)),
               StageRule("invocation-start", name_regex="^invocation-start( |$)",
                         request_id=(FieldRef(field="parent_span_id"),))),
        node_keys=mapping.node_keys)
    table = read_trace_file(SHAPES / "restate_lines.json", paired).table
    assert sorted(zip(table.column("request_id").to_pylist(), table.column("stage").to_pylist(),
                      strict=True)) == [
        ("0000000000000001", "ingress"), ("0000000000000001", "invocation-start"),
        ("0000000000000002", "ingress"), ("0000000000000002", "invocation-start")]


@pytest.mark.parametrize(("name", "fmt"), [
    ("jaeger_trace.json", "zipkin"), ("zipkin_traces.json", "otlp"),
    ("otlp_collector_lines.json", "jaeger")])
def test_named_format_that_reads_nothing_is_an_error(name: str, fmt: str) -> None:
    path = SHAPES / name
    with pytest.raises(InputError,
                       match=rf"{path}:1: not a document of format {fmt} \(it looks like"):
        read_trace_file(path, fmt=fmt)  # type: ignore[arg-type]
    with pytest.raises(InputError, match=rf"read as {fmt} \(named by --format\), but no "
                                         rf"{fmt} span was found .*looks like"):
        read_trace_file(path, fmt=fmt, skip_bad=True)  # type: ignore[arg-type]


def test_bare_jaeger_trace_and_zipkin_span_are_not_invalid_json(tmp_path: Path) -> None:
    """Wall 2: one bare object is a document, not 'not valid JSON'; line numbers kept."""
    got = read_spans(SHAPES / "zipkin_span.json")
    assert got.shapes == ("Zipkin span",) and got.spans[0].where.endswith(":1")
    got = read_spans(SHAPES / "jaeger_trace.json")
    assert got.shapes == ("Jaeger trace object",) and len(got.spans) == 6


def test_truncated_protobuf_is_a_bad_record(tmp_path: Path) -> None:
    data = (SHAPES / "otlp_request.pb").read_bytes()
    path = tmp_path / "cut.pb"
    path.write_bytes(data[:-7])
    with pytest.raises(InputError, match=rf"{path}: message 1: not an OTLP protobuf message"):
        read_trace_file(path)
    events = read_trace_file(path, skip_bad=True)
    assert [b.where for b in events.bad] == [f"{path}: message 1"]


def test_json_lines_found_by_content_even_with_a_bad_first_line(tmp_path: Path) -> None:
    lines = (SHAPES / "otlp_collector_lines.json").read_text().splitlines()
    lines[0] = lines[0][:50]
    path = tmp_path / "export.json"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=rf"{path}:1: not valid JSON"):
        read_spans(path)
    got = read_spans(path, skip_bad=True)
    assert [b.where for b in got.bad] == [f"{path}:1"] and len(got.spans) == len(lines) - 1
    assert got.spans[0].where == f"{path}:2"


def test_documents_one_after_another(tmp_path: Path) -> None:
    """Pretty-printed documents concatenated (e.g. `cat a.json b.json`): all read, with the
    line where each span starts."""
    one = (SHAPES / "zipkin_span.json").read_text()
    path = tmp_path / "cat.json"
    path.write_text(one + one)
    got = read_spans(path)
    assert len(got.spans) == 2 and got.spans[1].where == f"{path}:{one.count(chr(10)) + 1}"


def test_protobuf_without_opentelemetry_proto(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules,
                        "opentelemetry.proto.collector.trace.v1.trace_service_pb2", None)
    path = SHAPES / "otlp_request.pb"
    with pytest.raises(InputError, match=rf"{path}: reading OTLP protobuf needs the "
                                         "opentelemetry-proto package"):
        read_spans(path)
