"""Corrected traces (``clocksync traces correct``, :func:`correct_trace_file`,
:func:`annotate_request`): per format, spans of two simulated nodes with known clock offsets
are annotated with a corrected start whose bound holds the true time; timestamps and every
other field are unchanged; what cannot be corrected is marked, never guessed."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan

from clocksync import DirectoryStore, InputError
from clocksync.cli import main
from clocksync.latency import (
    CLOCKSYNC_ATTRIBUTES,
    CorrectedTraceFile,
    TraceMapping,
    annotate_request,
    correct_trace_file,
    preset,
)

from .conftest import DURATION_S, T0, World

TRACE = "5b8efff798038103d269b633813fc60c"
NO_TABLE = "no correction table for the node"


@dataclass(frozen=True)
class FakeSpan:
    """One span to write: its node (``None``: no node attribute), true start (reference
    time, ns; ``None`` when it has no truth: a node without a table) and local start."""

    span_id: str
    node: str | None
    truth_ns: int | None
    local_ns: int


def _spans(world: World, n: int = 30, seed: int = 3) -> list[FakeSpan]:
    """``n`` spans per node inside the tables' span, then the awkward ones: before n1's
    first sample, past its holdover horizon, a node without a table, a span without a node."""
    rng = np.random.default_rng(seed)
    out: list[FakeSpan] = []
    for node in ("n1", "n2"):
        truths = T0 + rng.integers(10 * 10**9, int((DURATION_S - 10) * 1e9), n)
        locals_ = world.clocks[node].local_ns(truths)
        out += [FakeSpan(f"{len(out) + i + 1:016x}", node, int(t), int(loc))
                for i, (t, loc) in enumerate(zip(truths, locals_, strict=True))]
    out.append(FakeSpan("00000000000000f1", "n1", None, T0 - 3600 * 10**9))
    horizon = int(world.tables["n1"].cells.end_ns[-1])
    out.append(FakeSpan("00000000000000f2", "n1", None, horizon + 10**9))
    out.append(FakeSpan("00000000000000f3", "n3", None, T0 + 50 * 10**9))
    out.append(FakeSpan("00000000000000f4", None, None, T0 + 60 * 10**9))
    return out


# --- the formats, written by hand in each one's shape --------------------------------------


def _otlp_doc(spans: list[FakeSpan]) -> dict[str, Any]:
    def resource(node: str | None) -> dict[str, Any]:
        attrs = [{"key": "telemetry.sdk.name", "value": {"stringValue": "hand"}}]
        if node is not None:
            attrs.append({"key": "service.name", "value": {"stringValue": node}})
        return {"attributes": attrs, "droppedAttributesCount": 0}

    groups: dict[str | None, list[FakeSpan]] = {}
    for s in spans:
        groups.setdefault(s.node, []).append(s)
    return {"resourceSpans": [{
        "resource": resource(node), "schemaUrl": "https://opentelemetry.io/schemas/1.21.0",
        "scopeSpans": [{"scope": {"name": "hand", "version": "1"}, "spans": [{
            "traceId": TRACE, "spanId": s.span_id, "name": "op", "kind": 2,
            "startTimeUnixNano": str(s.local_ns), "endTimeUnixNano": str(s.local_ns + 7_000),
            "attributes": [{"key": "http.status_code", "value": {"intValue": "200"}}],
            "events": [{"timeUnixNano": str(s.local_ns + 10), "name": "ev"}],
            "status": {"code": 1}} for s in group]}]} for node, group in groups.items()]}


def _jaeger_doc(spans: list[FakeSpan]) -> dict[str, Any]:
    procs = {f"p{i}": {"serviceName": node, "tags": [
        {"key": "hostname", "type": "string", "value": node}]}
        for i, node in enumerate(("n1", "n2", "n3"))}
    procs["p9"] = {"serviceName": "", "tags": []}
    pid = {"n1": "p0", "n2": "p1", "n3": "p2", None: "p9"}
    return {"data": [{"traceID": TRACE, "processes": procs, "warnings": None, "spans": [{
        "traceID": TRACE, "spanID": s.span_id, "operationName": "op", "flags": 1,
        "references": [], "startTime": s.local_ns // 1000, "duration": 7,
        "tags": [{"key": "span.kind", "type": "string", "value": "server"}],
        "logs": [{"timestamp": s.local_ns // 1000, "fields": [
            {"key": "event", "type": "string", "value": "ev"}]}],
        "processID": pid[s.node], "warnings": None} for s in spans]}],
        "total": 0, "limit": 0, "offset": 0, "errors": None}


def _zipkin_doc(spans: list[FakeSpan]) -> list[dict[str, Any]]:
    out = []
    for s in spans:
        sp: dict[str, Any] = {
            "traceId": TRACE, "id": s.span_id, "name": "op", "kind": "SERVER",
            "timestamp": s.local_ns // 1000, "duration": 7,
            "annotations": [{"timestamp": s.local_ns // 1000, "value": "ev"}],
            "tags": {"http.path": "/x"}}
        if s.node is not None:
            sp["localEndpoint"] = {"serviceName": s.node}
        out.append(sp)
    return out


def _pb_request(spans: list[FakeSpan]) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    for node in ("n1", "n2", "n3", None):
        rs = request.resource_spans.add()
        if node is not None:
            rs.resource.attributes.add(key="service.name", value=AnyValue(string_value=node))
        ss = rs.scope_spans.add()
        ss.scope.name = "hand"
        for s in spans:
            if s.node != node:
                continue
            sp = ss.spans.add(trace_id=bytes.fromhex(TRACE), span_id=bytes.fromhex(s.span_id),
                              name="op", kind=PbSpan.SPAN_KIND_SERVER,
                              start_time_unix_nano=s.local_ns,
                              end_time_unix_nano=s.local_ns + 7_000)
            sp.attributes.add(key="http.status_code", value=AnyValue(int_value=200))
            sp.events.add(time_unix_nano=s.local_ns + 10, name="ev")
    return request


# --- reading the annotations back ----------------------------------------------------------


def _otlp_value(value: dict[str, Any]) -> Any:
    return value["stringValue"] if "stringValue" in value else int(value["intValue"])


def _json_annotations(fmt: str, doc: Any) -> dict[str, dict[str, Any]]:
    """span id -> its ``clocksync.*`` attributes."""
    out: dict[str, dict[str, Any]] = {}
    if fmt == "otlp":
        for rs in doc["resourceSpans"]:
            for ss in rs["scopeSpans"]:
                for sp in ss["spans"]:
                    out[sp["spanId"]] = {kv["key"]: _otlp_value(kv["value"])
                                         for kv in sp["attributes"]
                                         if kv["key"].startswith("clocksync.")}
    elif fmt == "jaeger":
        for sp in doc["data"][0]["spans"]:
            out[sp["spanID"]] = {kv["key"]: kv["value"] for kv in sp["tags"]
                                 if kv["key"].startswith("clocksync.")}
            types = {kv["type"] for kv in sp["tags"] if kv["key"] in (
                "clocksync.start_ref_ns", "clocksync.start_bound_ns")}
            assert types <= {"int64"}
    else:
        for sp in doc:
            tags = sp.get("tags", {})
            assert all(isinstance(v, str) for v in tags.values())  # Zipkin tags are strings
            out[sp["id"]] = {k: int(v) if k.endswith("_ns") else v for k, v in tags.items()
                             if k.startswith("clocksync.")}
    return out


def _pb_annotations(request: ExportTraceServiceRequest) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for rs in request.resource_spans:
        for ss in rs.scope_spans:
            for sp in ss.spans:
                out[sp.span_id.hex()] = {
                    kv.key: getattr(kv.value, kv.value.WhichOneof("value"))
                    for kv in sp.attributes if kv.key.startswith("clocksync.")}
    return out


def _strip_json(value: Any) -> Any:
    """``value`` without the attributes and tags a correction adds."""
    if isinstance(value, dict):
        return {k: _strip_json(v) for k, v in value.items() if not k.startswith("clocksync.")}
    if isinstance(value, list):
        return [_strip_json(v) for v in value
                if not (isinstance(v, dict) and str(v.get("key", "")).startswith("clocksync."))]
    return value


def _strip_pb(request: ExportTraceServiceRequest) -> ExportTraceServiceRequest:
    out = copy.deepcopy(request)
    for rs in out.resource_spans:
        for ss in rs.scope_spans:
            for sp in ss.spans:
                kept = [KeyValue(key=kv.key, value=kv.value) for kv in sp.attributes
                        if not kv.key.startswith("clocksync.")]
                del sp.attributes[:]
                sp.attributes.extend(kept)
    return out


def _check(spans: list[FakeSpan], got: dict[str, dict[str, Any]], resolution_ns: int) -> None:
    """Every span with a table and a truth: the true start within ``ref ± bound``; the
    rest marked uncorrectable with the reason; the span without a node untouched."""
    errors, raw = [], []
    for s in spans:
        attrs = got[s.span_id]
        if s.node is None:
            assert attrs == {}
            continue
        assert attrs["clocksync.node"] == s.node
        if s.truth_ns is None:
            assert attrs["clocksync.status"] == "uncorrectable", attrs
            assert "clocksync.start_ref_ns" not in attrs
            assert attrs["clocksync.reason"] == {
                "00000000000000f1": "before the table's first sample",
                "00000000000000f2": "past the table's holdover horizon",
                "00000000000000f3": NO_TABLE}[s.span_id]
            continue
        ref, bound = attrs["clocksync.start_ref_ns"], attrs["clocksync.start_bound_ns"]
        assert isinstance(ref, int) and isinstance(bound, int) and bound > resolution_ns // 2
        assert set(attrs) == {"clocksync.node", "clocksync.start_ref_ns",
                              "clocksync.start_bound_ns"}
        assert abs(ref - s.truth_ns) <= bound, (s, ref, bound)
        errors.append(abs(ref - s.truth_ns))
        raw.append(abs(s.local_ns - s.truth_ns))
    # the clocks are 180 µs ahead and 250 µs behind: the correction removes that
    assert min(raw) > 100_000 and max(errors) < 60_000 + resolution_ns


@pytest.fixture(scope="module")
def tables(world: World, tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("tables")
    store = DirectoryStore(base)
    for table in world.tables.values():
        store.write(table)
    return base


Writer = Callable[[Path, list[FakeSpan]], None]


def _write_json(doc_of: Callable[[list[FakeSpan]], Any]) -> Writer:
    def write(path: Path, spans: list[FakeSpan]) -> None:
        path.write_text(json.dumps(doc_of(spans), indent=2))

    return write


def _write_lines(path: Path, spans: list[FakeSpan]) -> None:
    """The Collector's file exporter: one ExportTraceServiceRequest per line."""
    path.write_text("".join(json.dumps(_otlp_doc([s])) + "\n" for s in spans))


def _write_pb(path: Path, spans: list[FakeSpan]) -> None:
    path.write_bytes(_pb_request(spans).SerializeToString())


def _write_pb_framed(path: Path, spans: list[FakeSpan]) -> None:
    blobs = [_pb_request(part).SerializeToString() for part in (spans[:20], spans[20:])]
    path.write_bytes(b"".join(len(b).to_bytes(4, "big") + b for b in blobs))


CASES: dict[str, tuple[str, str, Writer, int]] = {
    "otlp-json": ("otlp", "t.json", _write_json(_otlp_doc), 1),
    "otlp-lines": ("otlp", "t.json", _write_lines, 1),
    "otlp-pb": ("otlp", "t.pb", _write_pb, 1),
    "otlp-pb-framed": ("otlp", "t.binpb", _write_pb_framed, 1),
    "jaeger": ("jaeger", "t.json", _write_json(_jaeger_doc), 1000),
    "zipkin": ("zipkin", "t.json", _write_json(_zipkin_doc), 1000),
}


def _read_back(case: str, path: Path) -> tuple[Any, dict[str, dict[str, Any]]]:
    """(the document(s) without our attributes, span id -> our attributes)."""
    if case.startswith("otlp-pb"):
        data = path.read_bytes()
        if case == "otlp-pb-framed":
            blobs, pos = [], 0
            while pos < len(data):
                size = int.from_bytes(data[pos:pos + 4], "big")
                blobs.append(data[pos + 4:pos + 4 + size])
                pos += 4 + size
        else:
            blobs = [data]
        requests = [ExportTraceServiceRequest.FromString(b) for b in blobs]
        got: dict[str, dict[str, Any]] = {}
        for r in requests:
            got.update(_pb_annotations(r))
        return [_strip_pb(r).SerializeToString(deterministic=True) for r in requests], got
    fmt = CASES[case][0]
    docs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] \
        if case == "otlp-lines" else [json.loads(path.read_text())]
    got = {}
    for doc in docs:
        got.update(_json_annotations(fmt, doc))
    return [_strip_json(d) for d in docs], got


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_format_annotated_within_bound_and_otherwise_unchanged(
        case: str, world: World, tables: Path, tmp_path: Path) -> None:
    fmt, name, write, resolution = CASES[case]
    spans = _spans(world)
    src, out = tmp_path / name, tmp_path / ("out-" + name)
    write(src, spans)
    result = correct_trace_file(src, out, world.corrector)
    assert isinstance(result, CorrectedTraceFile) and result.format == fmt
    c = result.counts
    assert (c.spans, c.annotated, c.uncorrectable, c.no_node, c.bad) == (64, 60, 3, 1, 0)
    assert c.nodes["n1"].annotated == 30 and c.nodes["n1"].uncorrectable == 2
    assert c.nodes["n3"].uncorrectable == 1 and c.reasons[NO_TABLE] == 1
    stripped_out, got = _read_back(case, out)
    stripped_in, untouched = _read_back(case, src)
    assert all(v == {} for v in untouched.values())
    _check(spans, got, resolution)
    # timestamps and every other field: as they were (only our keys were added)
    assert stripped_out == stripped_in
    # correcting the corrected file changes nothing (earlier annotations are replaced)
    again = tmp_path / ("again-" + name)
    correct_trace_file(out, again, world.corrector)
    assert again.read_bytes() == out.read_bytes()
    if case == "otlp-lines":  # line for line
        assert len(out.read_text().splitlines()) == len(spans)


def test_annotate_request_in_place(world: World) -> None:
    spans = _spans(world)
    request = _pb_request(spans)
    before = request.SerializeToString(deterministic=True)
    counts = annotate_request(request, world.corrector)
    assert (counts.spans, counts.annotated, counts.uncorrectable, counts.no_node) == \
        (64, 60, 3, 1)
    _check(spans, _pb_annotations(request), 1)
    assert _strip_pb(request).SerializeToString(deterministic=True) == before
    # the counts add up across requests, and annotating twice replaces, never duplicates
    twice = annotate_request(request, world.corrector)
    assert (counts + twice).annotated == 120
    assert sum(1 for rs in request.resource_spans for ss in rs.scope_spans for sp in ss.spans
               for kv in sp.attributes if kv.key == "clocksync.node") == 63
    assert "60 annotated, 3 uncorrectable, 1 without a node" in counts.summary()
    assert set(CLOCKSYNC_ATTRIBUTES) >= {k for v in _pb_annotations(request).values()
                                         for k in v}


def test_coarse_start_rule_widens_the_bound(world: World) -> None:
    """Restate's invocation-start is stamped by a 5 ms clock: the bound covers [t, t+5 ms)."""
    truth = T0 + 100 * 10**9
    local = int(world.clocks["n2"].local_ns(truth))
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.add(key="service.instance.id",
                               value=AnyValue(string_value="cluster/n2"))
    ss = rs.scope_spans.add()
    coarse = local - 3_000_000  # the true start is 3 ms after the coarse stamp
    for name, stamp in (("invocation-start x", coarse), ("ingress y", local)):
        ss.spans.add(trace_id=bytes.fromhex(TRACE), span_id=b"\x00" * 7 + bytes([len(name)]),
                     name=name, start_time_unix_nano=stamp, end_time_unix_nano=stamp + 1)
    annotate_request(request, world.corrector, preset("restate"))
    got = {sp.name: {kv.key: getattr(kv.value, kv.value.WhichOneof("value"))
                     for kv in sp.attributes} for sp in ss.spans}
    start, ingress = got["invocation-start x"], got["ingress y"]
    assert start["clocksync.node"] == ingress["clocksync.node"] == "n2"
    assert abs(start["clocksync.start_ref_ns"] - truth) <= start["clocksync.start_bound_ns"]
    assert start["clocksync.start_bound_ns"] >= 2_500_000
    assert ingress["clocksync.start_bound_ns"] < 100_000


# --- bad input and the command line --------------------------------------------------------


def test_bad_json_line_names_file_and_line_and_writes_nothing(
        world: World, tables: Path, tmp_path: Path) -> None:
    src, out = tmp_path / "t.jsonl", tmp_path / "out.jsonl"
    _write_lines(src, _spans(world, n=2))
    lines = src.read_text().splitlines()
    lines[2] = '{"resourceSpans": [ broken'
    src.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=rf"{src}:3: not valid JSON"):
        correct_trace_file(src, out, world.corrector)
    assert not out.exists() and list(tmp_path.iterdir()) == [src]
    res = CliRunner().invoke(main, ["traces", "correct", str(src), "--tables", str(tables),
                                    "--out", str(out)])
    assert res.exit_code == 1 and f"{src}:3: not valid JSON" in res.output
    assert not out.exists()
    # --skip-bad: counted, and the bad line is copied as it was
    res = CliRunner().invoke(main, ["traces", "correct", str(src), "--tables", str(tables),
                                    "--out", str(out), "--skip-bad"])
    assert res.exit_code == 0, res.output
    assert "1 malformed records skipped" in res.output
    assert out.read_text().splitlines()[2] == '{"resourceSpans": [ broken'
    assert "clocksync.start_ref_ns" in out.read_text().splitlines()[0]


def test_malformed_span_and_broken_document(world: World, tmp_path: Path) -> None:
    src, out = tmp_path / "z.json", tmp_path / "out.json"
    doc = _zipkin_doc(_spans(world, n=2))
    doc[1]["timestamp"] = "soon"
    src.write_text(json.dumps(doc, indent=1))
    with pytest.raises(InputError, match=r"z\.json:\d+: field 'timestamp'"):
        correct_trace_file(src, out, world.corrector)
    result = correct_trace_file(src, out, world.corrector, skip_bad=True)
    assert result.counts.bad == 1 and len(result.bad) == 1
    written = json.loads(out.read_text())
    assert written[1] == doc[1]  # the bad span is left as it was
    src.write_text(json.dumps(doc)[:-30])
    with pytest.raises(InputError, match="corrected copy would lose"):
        correct_trace_file(src, out, world.corrector, skip_bad=True)


def test_cli_summary_and_usage_errors(world: World, tables: Path, tmp_path: Path) -> None:
    src, out = tmp_path / "j.json", tmp_path / "out.json"
    _write_json(_jaeger_doc)(src, _spans(world))
    res = CliRunner().invoke(main, ["traces", "correct", str(src), "--tables", str(tables),
                                    "--out", str(out)])
    assert res.exit_code == 0, res.output
    line, = res.output.splitlines()
    assert line.startswith(f"clocksync traces correct: {src} -> {out} (jaeger, Jaeger query API")
    assert "64 spans: 60 annotated, 3 uncorrectable, 1 without a node" in line
    assert "n1 30 + 2 uncorrectable, n2 30, n3 0 + 1 uncorrectable" in line
    res = CliRunner().invoke(main, ["traces", "correct", str(src), "--tables", str(tables),
                                    "--out", str(out), "--preset", "restate", "--trace-map",
                                    str(src)])
    assert res.exit_code == 2 and "--trace-map FILE or --preset NAME, not both" in res.output
    # a map whose node chain finds nothing: an error, no output
    out.unlink()
    res = CliRunner().invoke(main, ["traces", "correct", str(src), "--tables", str(tables),
                                    "--out", str(out), "--preset", "restate"])
    assert res.exit_code == 1 and "no span has a node" in res.output and not out.exists()
    res = CliRunner().invoke(main, ["traces", "correct", str(src), "--tables",
                                    str(tmp_path / "nowhere"), "--out", str(out)])
    assert res.exit_code == 1 and not out.exists()
    res = CliRunner().invoke(main, ["traces", "correct", str(src), "--tables", str(tables),
                                    "--out", str(out), "--format", "zipkin"])
    assert res.exit_code == 1 and "looks like jaeger" in res.output and not out.exists()


def test_trace_map_node_chain_is_used(world: World, tmp_path: Path) -> None:
    """The node comes from the map's chain: here the Jaeger process tag ``hostname``."""
    src, out = tmp_path / "j.json", tmp_path / "out.json"
    doc = _jaeger_doc(_spans(world, n=3))
    for proc in doc["data"][0]["processes"].values():
        proc["serviceName"] = "svc"
    src.write_text(json.dumps(doc))
    mapping = TraceMapping(node_keys=("hostname",))
    result = correct_trace_file(src, out, world.corrector, mapping)
    assert result.counts.nodes["n2"].annotated == 3 and "svc" not in result.counts.nodes
