"""``clocksync latency`` through click's CliRunner: readable table with bounds, --json with
the same content, --out, --plot, --skip-bad, errors naming file:line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from clocksync import DirectoryStore, SimClock, fit_table
from clocksync.cli import main
from clocksync.latency import RequestModel, write_events
from clocksync.testing import LinkModel, simulate_samples

from .conftest import T0, World, store_world


@pytest.fixture(scope="module")
def setup(world: World, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return store_world(world, tmp_path_factory.mktemp("cli"), 3000, 3,
                       RequestModel(slow_after_s=120.0, slow_extra_ns=4_000_000.0))


def test_readable_report(setup: tuple[Path, Path]) -> None:
    tables, events = setup
    res = CliRunner().invoke(main, ["latency", str(events), "--tables", str(tables),
                                    "--min-wire-delay", "10us"])
    assert res.exit_code == 0, res.output
    out = res.output
    assert "pp_exit->bifrost_arrive" in out and "pp_enqueue->bifrost_done" in out
    assert re.search(r"\d ± \d+\.\d+ µs", out)  # value ± bound, one unit per column
    assert "raw < 0: " in out and "tables only" in out
    assert "[latency_p99]" in out and "cpu_pct=" in out


def test_json_same_content_out_and_plot(setup: tuple[Path, Path], tmp_path: Path) -> None:
    tables, events = setup
    out_file = tmp_path / "hops.parquet"
    png = tmp_path / "plot.png"
    res = CliRunner().invoke(main, ["latency", str(events), "--tables", str(tables), "--json",
                                    "--window", "10s", "--out", str(out_file),
                                    "--plot", str(png)])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["requests"] == 3000 and doc["window_s"] == 10.0
    hops = {h["hop"]: h for h in doc["hops"]}
    assert hops["pp_exit->bifrost_arrive"]["negative_raw"] > 0
    assert any(a["kind"] == "latency_p99" for a in doc["alerts"])
    row = next(s for s in doc["summary"] if s["hop"] == "pp_enqueue->bifrost_done"
               and s["src_node"] == "*")
    assert row["p99_low_ns"] <= row["p99_ns"] <= row["p99_high_ns"]
    assert pq.read_table(out_file).num_rows == 4 * 3000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_trace_fixture_through_cli(tmp_path: Path) -> None:
    fix = Path(__file__).parent / "fixtures"
    store = DirectoryStore(tmp_path / "tables")
    rng = np.random.default_rng(8)
    for name, offset in (("pp-1", 0.0), ("bifrost-1", 150_000.0)):
        clock = SimClock(t0_ns=T0, offset0_ns=offset, skew_ppm=10.0)
        store.write(fit_table(simulate_samples(clock, name, T0 - 60 * 10**9, 120.0, 1.0,
                                               LinkModel(), rng)))
    args = ["latency", str(fix / "otlp.json"), "--tables", str(tmp_path / "tables"),
            "--trace-map", str(fix / "trace_map.json")]
    res = CliRunner().invoke(main, [*args, "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["requests"] == 3 and doc["uncorrectable_requests"] == 0
    cross = {h["hop"]: h for h in doc["hops"]}["pp_exit->bifrost_arrive"]
    assert cross["requests"] == 3 and cross["negative_raw"] == 2  # req-1, req-2
    text = CliRunner().invoke(main, args).output
    assert "pp-1->bifrost-1" in text and "raw < 0: 2/3" in text


def test_errors(setup: tuple[Path, Path], tmp_path: Path) -> None:
    tables, _ = setup
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"request_id": "a", "stage": "pp_exit", "node": "n1", "ts_ns": "x"}\n')
    res = CliRunner().invoke(main, ["latency", str(bad), "--tables", str(tables)])
    assert res.exit_code == 1 and f"{bad}:1: field 'ts_ns'" in res.output
    res = CliRunner().invoke(main, ["latency", str(bad), "--tables", str(tables),
                                    "--skip-bad"])
    assert res.exit_code == 1 and "no request formed: 1 input records (1 malformed" in \
        res.output and f"{bad}:1: field 'ts_ns'" in res.output  # never a silent empty result
    res = CliRunner().invoke(main, ["latency", str(bad), "--tables", str(tables),
                                    "--skip-bad", "--allow-empty"])
    assert res.exit_code == 0, res.output
    assert "1 malformed" in res.output and f"skipped {bad}:1" in res.output
    res = CliRunner().invoke(main, ["latency", str(bad)])
    assert res.exit_code == 2 and "--tables" in res.output
    res = CliRunner().invoke(main, ["latency", str(bad), "--tables", str(tables),
                                    "--window", "soon"])
    assert res.exit_code == 2 and "not a duration" in res.output
    res = CliRunner().invoke(main, ["latency", str(bad), "--tables", str(tables),
                                    "--window", "10s", "--step", "3s"])
    assert res.exit_code == 2 and "multiple of the step" in res.output
    res = CliRunner().invoke(main, ["latency", str(bad), "--tables", str(tables),
                                    "--stages", "only_one"])
    assert res.exit_code == 2 and "at least two stages" in res.output


def test_sample_budget(setup: tuple[Path, Path]) -> None:
    tables, events = setup
    res = CliRunner().invoke(main, ["latency", str(events), "--tables", str(tables), "--json",
                                    "--sample-budget", "15"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    # 12000 events over 200 s = 60/s; a budget of 15/s keeps about a quarter
    assert 0.2 < doc["sampling"]["probability"] < 0.3
    assert doc["requests"] == doc["sampling"]["requests_kept"] < 3000
    row = next(s for s in doc["summary"] if s["hop"] == "pp_enqueue->pp_exit"
               and s["src_node"] == "*")
    assert row["weight_sum"] == pytest.approx(3000, rel=0.15)


def test_save_events_converts_to_the_fast_layout(setup: tuple[Path, Path],
                                                 tmp_path: Path) -> None:
    """--save-events stores JSONL input as Parquet in the whole-request layout (the reader
    then joins its ids without hashing), and a run over the saved file reports the same."""
    from clocksync.latency import read_events_file
    from clocksync.latency._arrow import unique_dictionary  # the saved file's layout: private
    from clocksync.latency._storage import WHOLE_REQUESTS_KEY

    tables, events = setup
    jsonl = tmp_path / "events.jsonl"
    write_events(read_events_file(events).table, jsonl)
    saved = tmp_path / "saved.parquet"
    args = ["latency", "--tables", str(tables), "--json"]
    first = CliRunner().invoke(main, [*args, str(jsonl), "--save-events", str(saved)])
    assert first.exit_code == 0, first.output
    assert WHOLE_REQUESTS_KEY.encode() in pq.read_schema(saved).metadata
    assert unique_dictionary(read_events_file(saved).table, "request_id")
    again = CliRunner().invoke(main, [*args, str(saved)])
    assert again.exit_code == 0, again.output
    first_doc, again_doc = json.loads(first.output), json.loads(again.output)
    assert [i["path"] for i in again_doc.pop("inputs")] == [str(saved)]
    first_doc.pop("inputs")
    assert again_doc == first_doc


def test_cli_turns_off_numpy_hugepage_advice_unless_told(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The one-shot CLI stops numpy's huge-page advice (costly page faults on a cold run)
    unless NUMPY_MADVISE_HUGEPAGE is set, which it then leaves to numpy."""
    from clocksync.cli._latency import _no_hugepage_advice  # tests private cli._latency

    setter = np._core.multiarray._set_madvise_hugepage  # type: ignore[attr-defined]
    before = setter(True)
    try:
        monkeypatch.delenv("NUMPY_MADVISE_HUGEPAGE", raising=False)
        assert _no_hugepage_advice() is True  # it was on
        assert setter(True) is False  # and is now off
        monkeypatch.setenv("NUMPY_MADVISE_HUGEPAGE", "1")
        assert _no_hugepage_advice() is None
        assert setter(True) is True  # left as it was
    finally:
        setter(before)
