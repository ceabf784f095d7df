"""Readers: every format from its fixture gives the same events; malformed input names
file:line and is fatal unless skip_bad, where it is counted."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from clocksync import InputError
from clocksync.latency import StageRule, TraceMapping, input_format, read_inputs

FIX = Path(__file__).parent / "fixtures"
EXPECTED = json.loads((FIX / "expected_events.json").read_text())
MAPPING = TraceMapping.from_json(FIX / "trace_map.json")


def _rows(table: pa.Table) -> list[tuple[str, str, str, int]]:
    cols = [table.column(c).to_pylist() for c in ("request_id", "stage", "node", "ts_ns")]
    return sorted(zip(*cols, strict=True))


def _expected() -> list[tuple[str, str, str, int]]:
    return sorted((e["request_id"], e["stage"], e["node"], e["ts_ns"]) for e in EXPECTED)


@pytest.mark.parametrize("name", ["events.jsonl", "events.csv", "events.parquet"])
def test_events_files(name: str) -> None:
    events = read_inputs([FIX / name])
    assert input_format(FIX / name) == "events"
    assert _rows(events.table) == _expected()
    assert events.table.column("ts_ns").type == pa.int64()
    # context columns ride along
    assert events.table.column("cpu_pct").to_pylist()[:1] == [40.5]
    assert events.bad == ()


@pytest.mark.parametrize(("name", "kind"), [
    ("otlp.json", "otlp"), ("jaeger.json", "jaeger"), ("zipkin.json", "zipkin")])
def test_trace_files(name: str, kind: str) -> None:
    assert input_format(FIX / name) == kind
    events = read_inputs([FIX / name], mapping=MAPPING)
    assert _rows(events.table) == _expected()
    assert "trace_id" in events.table.column_names


def test_otlp_jsonl_span_events_default_mapping() -> None:
    events = read_inputs([FIX / "otlp.jsonl"])  # default mapping: span events named by stage
    trace_of = {"req-1": "5b8efff798038103d269b633813fc60c",
                "req-2": "eee19b7ec3c1b174a1b79f5e1b2c8f01",
                "req-3": "0af7651916cd43dd8448eb211c80319c"}
    want = sorted((trace_of[r], s, n, t) for r, s, n, t in _expected())
    assert _rows(events.table) == want


def test_context_keys_from_traces() -> None:
    mapping = TraceMapping(rules=MAPPING.rules, node_keys=MAPPING.node_keys,
                           request_id_key=MAPPING.request_id_key,
                           context_keys=("restate.partition", "service.name"))
    table = read_inputs([FIX / "otlp.json"], mapping=mapping).table
    got = {(r, s): (p, sv) for r, s, p, sv in zip(
        table.column("request_id").to_pylist(), table.column("stage").to_pylist(),
        table.column("restate.partition").to_pylist(), table.column("service.name").to_pylist(),
        strict=True)}
    assert got[("req-2", "pp_exit")] == (1, "restate-pp")
    assert got[("req-2", "bifrost_done")] == (1, "restate-bifrost")


def test_bad_events_jsonl_fatal_and_skipped(tmp_path: Path) -> None:
    path = tmp_path / "ev.jsonl"
    lines = [json.dumps(e) for e in EXPECTED[:4]]
    lines.insert(1, '{"request_id": "x", "stage": "pp_exit", "node": "n", "ts_ns": -5}')
    lines.insert(3, "{not json")
    lines.append('{"request_id": "y", "stage": "pp_exit", "ts_ns": 12}')
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=rf"{path}:[24]: (field 'ts_ns'|not valid JSON)"):
        read_inputs([path])
    events = read_inputs([path], skip_bad=True)
    assert [b.where for b in events.bad] == [f"{path}:2", f"{path}:4", f"{path}:7"]
    assert "node" in events.bad[2].reason and "JSON" in events.bad[1].reason
    assert events.table.num_rows == 4 and events.records == 7


def test_bad_events_csv_names_line(tmp_path: Path) -> None:
    path = tmp_path / "ev.csv"
    path.write_text("request_id,stage,node,ts_ns\nr,pp_exit,n,10\nr,bifrost_arrive,m,abc\n")
    with pytest.raises(InputError, match=rf"{path}:3: field 'ts_ns'"):
        read_inputs([path])
    events = read_inputs([path], skip_bad=True)
    assert [str(b).split(": ")[0] for b in events.bad] == [f"{path}:3"]
    assert events.table.num_rows == 1


def test_bad_events_parquet_names_row(tmp_path: Path) -> None:
    path = tmp_path / "ev.parquet"
    pq.write_table(pa.table({"request_id": ["a", "b", None], "stage": ["s", "s", "s"],
                             "node": ["n", "n", "n"], "ts_ns": [1, -2, 3]}), path)
    with pytest.raises(InputError, match=r"ev.parquet: row [12]: field '(ts_ns|request_id)'"):
        read_inputs([path])
    events = read_inputs([path], skip_bad=True)
    assert sorted(b.where for b in events.bad) == [f"{path}: row 1", f"{path}: row 2"]
    assert events.table.column("request_id").to_pylist() == ["a"]


def test_bad_otlp_span_names_line(tmp_path: Path) -> None:
    doc = json.loads((FIX / "otlp.json").read_text())
    spans = doc["resourceSpans"][1]["scopeSpans"][0]["spans"]
    del spans[1]["startTimeUnixNano"]
    path = tmp_path / "bad.json"
    text = json.dumps(doc, indent=2)
    path.write_text(text)
    # the line where the broken span's object starts
    line = text[: text.index('"spanId": "0000000000000066"')].count("\n") - 1
    with pytest.raises(InputError, match=rf"{path}:{line}: field 'startTimeUnixNano'"):
        read_inputs([path], mapping=MAPPING)
    events = read_inputs([path], mapping=MAPPING, skip_bad=True)
    assert len(events.bad) == 1 and events.bad[0].where == f"{path}:{line}"
    assert events.table.num_rows == len(EXPECTED) - 2


def test_bad_trace_jsonl_line_and_missing_node(tmp_path: Path) -> None:
    lines = (FIX / "otlp.jsonl").read_text().splitlines()
    lines[1] = lines[1][:40]  # truncated line
    lines[2] = lines[2].replace('"host.name"', '"other"')
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=rf"{path}:2: not valid JSON"):
        read_inputs([path])
    events = read_inputs([path], skip_bad=True)
    assert [b.where for b in events.bad] == [f"{path}:2", f"{path}:3", f"{path}:3"]
    assert all("no node attribute" in b.reason for b in events.bad[1:])
    assert events.table.num_rows == 4


def test_jaeger_and_zipkin_bad_spans(tmp_path: Path) -> None:
    jdoc = json.loads((FIX / "jaeger.json").read_text())
    jdoc["data"][0]["spans"][0]["startTime"] = "soon"
    jpath = tmp_path / "j.json"
    jpath.write_text(json.dumps(jdoc, indent=1))
    with pytest.raises(InputError, match=rf"{jpath}:\d+: field 'startTime'"):
        read_inputs([jpath], mapping=MAPPING)
    zdoc = json.loads((FIX / "zipkin.json").read_text())
    del zdoc[3]["traceId"]
    zpath = tmp_path / "z.json"
    zpath.write_text(json.dumps(zdoc, indent=1))
    got = read_inputs([zpath], mapping=MAPPING, skip_bad=True)
    assert len(got.bad) == 1 and "traceId" in got.bad[0].reason
    assert got.table.num_rows == len(EXPECTED) - 2


def test_stage_rule_validation() -> None:
    with pytest.raises(ValueError, match=r"StageRule\.at"):
        StageRule("x", "*", "middle")
