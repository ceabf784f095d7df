"""``clocksync traces inspect`` and the trace paths of ``clocksync latency`` through click's
CliRunner: the inspection, the format each input was read as, the client/server hop that
only span kinds tell apart, and no silent empty result (``--allow-empty`` to accept one)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from clocksync import DirectoryStore, SimClock, fit_table
from clocksync.cli import main
from clocksync.testing import LinkModel, simulate_samples

from .conftest import T0

FIX = Path(__file__).parent / "fixtures"
SHAPES = FIX / "shapes"


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tables for every node of the fixtures; backend's clock 150 µs behind."""
    base = tmp_path_factory.mktemp("tables")
    store = DirectoryStore(base)
    rng = np.random.default_rng(8)
    for name, offset in (("pp-1", 0.0), ("bifrost-1", 150_000.0), ("frontend", 0.0),
                         ("backend", 150_000.0)):
        clock = SimClock(t0_ns=T0, offset0_ns=offset, skew_ppm=10.0)
        store.write(fit_table(simulate_samples(clock, name, T0 - 60 * 10**9, 120.0, 1.0,
                                               LinkModel(), rng)))
    return base


def test_inspect_text_names_what_a_map_needs() -> None:
    path = SHAPES / "zipkin_client_server.json"
    res = CliRunner().invoke(main, ["traces", "inspect", str(path)])
    assert res.exit_code == 0, res.output
    out = res.output
    assert f"{path}: zipkin (Zipkin span list; detected from the content)" in out
    assert "services (2):" in out and "frontend" in out and "backend" in out
    assert "get /api" in out and "kinds (2):" in out and "client" in out and "server" in out
    assert "resource attributes (2):" in out and "host.ip" in out
    # the default map (span events named like the stages) matches nothing
    assert "spans matching no rule: 4" in out
    mapped = CliRunner().invoke(main, ["traces", "inspect", str(path), "--trace-map",
                                       str(SHAPES / "client_server_map.json")])
    assert mapped.exit_code == 0, mapped.output
    lines = mapped.output.splitlines()
    assert "[0] client_send <- kind client -> start: 2 spans matched, 2 events" in lines[
        lines.index("rules:") + 1]
    client = next(line for line in lines if line.startswith("frontend"))
    server = next(line for line in lines if line.startswith("backend"))
    assert "client_send, client_recv (frontend)" in client
    assert "server_recv, server_send (backend)" in server


def test_inspect_json() -> None:
    res = CliRunner().invoke(main, ["traces", "inspect", str(FIX / "jaeger.json"), "--json",
                                    "--trace-map", str(FIX / "trace_map.json")])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["files"][0]["format"] == "jaeger" and doc["files"][0]["detected"] is True
    assert doc["files"][0]["shapes"] == ['Jaeger query API ({"data": [...]})']
    assert doc["spans"] == 6 and doc["services"] == {"restate-bifrost": 3, "restate-pp": 3}
    assert doc["span_names"] == {"bifrost.append": 3, "pp.process": 3}
    assert doc["span_attributes"]["restate.invocation.id"]["distinct"] == 3
    assert doc["resource_attributes"]["hostname"]["examples"] == ["pp-1", "bifrost-1"]
    assert [r["events"] for r in doc["rules"]] == [3, 3, 3, 3]
    assert doc["nodes"] == {"bifrost-1": 3, "pp-1": 3} and doc["unmatched_spans"] == 0


def test_inspect_names_missing_nodes(tmp_path: Path) -> None:
    mapping = tmp_path / "map.toml"
    mapping.write_text('node = ["k8s.node.name"]\n[[stages]]\nstage = "a"\nspan = "pp.*"\n')
    res = CliRunner().invoke(main, ["traces", "inspect", str(FIX / "zipkin.json"),
                                    "--trace-map", str(mapping), "--skip-bad"])
    assert res.exit_code == 0, res.output
    assert "! 3 spans: no node attribute (tried k8s.node.name)" in res.output


def test_client_and_server_span_of_one_name_give_a_cross_node_hop(tables: Path) -> None:
    """Wall 6: kind tells the client span from the server span of the same name."""
    res = CliRunner().invoke(main, [
        "latency", str(SHAPES / "zipkin_client_server.json"), "--tables", str(tables),
        "--trace-map", str(SHAPES / "client_server_map.json"),
        "--stages", "client_send,server_recv,server_send,client_recv", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["requests"] == 2
    rows = [s for s in doc["summary"] if s["hop"] == "client_send->server_recv"]
    assert {(s["src_node"], s["dst_node"]) for s in rows} >= {("frontend", "backend")}
    hop = next(s for s in rows if s["src_node"] == "frontend")
    # raw 150/120 µs; backend's clock is 150 µs behind, so the true hop is ~300/270 µs
    assert 200_000 < hop["p50_ns"] < 400_000
    assert 0 < hop["p50_low_ns"] <= hop["p50_ns"] <= hop["p50_high_ns"]  # order known
    assert doc["inputs"] == [{"path": str(SHAPES / "zipkin_client_server.json"),
                              "format": "zipkin", "chosen": "detected from the content"}]


def test_report_names_the_format_read(tables: Path) -> None:
    path = SHAPES / "otlp_collector_lines.json"
    args = ["latency", str(path), "--tables", str(tables), "--trace-map",
            str(FIX / "trace_map.json")]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert f"input {path}: otlp (detected from the content)" in res.output
    res = CliRunner().invoke(main, [*args, "--format", "otlp"])
    assert f"input {path}: otlp (named by --format)" in res.output


def test_no_silent_empty_result(tables: Path) -> None:
    """Wall 5: spans read, no request formed: exit 1 naming what was read and expected."""
    path = FIX / "otlp.json"
    args = ["latency", str(path), "--tables", str(tables)]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 1, res.output
    out = res.output
    assert f"no request formed: read 6 spans from {path}: otlp (OTLP JSON;" in out
    assert "services: restate-bifrost (3), restate-pp (3)" in out
    assert "span names: bifrost.append (3), pp.process (3)" in out
    assert "the stage chain needs: pp_enqueue, pp_exit, bifrost_arrive, bifrost_done" in out
    assert "[0] pp_enqueue <- any span -> event:pp_enqueue: 0 spans matched, 0 events" in out
    assert "traces inspect" in out
    res = CliRunner().invoke(main, [*args, "--allow-empty", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["requests"] == 0


def test_map_matching_nothing_and_wrong_chain(tables: Path, tmp_path: Path) -> None:
    mapping = tmp_path / "map.json"
    mapping.write_text(json.dumps({"stages": [{"stage": "pp_enqueue", "span": "nope"},
                                              {"stage": "pp_exit", "span": "nope"}]}))
    res = CliRunner().invoke(main, ["latency", str(FIX / "zipkin.json"), "--tables",
                                    str(tables), "--trace-map", str(mapping)])
    assert res.exit_code == 1
    assert "read 6 spans" in res.output and "[0] pp_enqueue <- span 'nope' -> start: 0 spans"\
        in res.output
    # events files too: stages outside the chain are named
    events = tmp_path / "ev.jsonl"
    events.write_text('{"request_id": "r", "stage": "a", "node": "pp-1", "ts_ns": 1}\n')
    res = CliRunner().invoke(main, ["latency", str(events), "--tables", str(tables)])
    assert res.exit_code == 1
    assert "no request formed: 1 input records (0 malformed)" in res.output
    assert "stage events: a (1)" in res.output


def test_named_format_reading_nothing_fails(tables: Path) -> None:
    """Wall 2: --format jaeger on a Zipkin file is an error, not '0 input records'."""
    res = CliRunner().invoke(main, ["latency", str(FIX / "zipkin.json"), "--tables",
                                    str(tables), "--format", "jaeger"])
    assert res.exit_code == 1
    assert "not a document of format jaeger (it looks like zipkin)" in res.output
