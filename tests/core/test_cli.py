"""The CLI through click's CliRunner: fit -> correct -> skew report -> demo, and every
error path (file, line/row and field named; exit code non-zero; no partial output)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from clocksync import write_samples
from clocksync.cli import main


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def samples_file(tmp_path: Path, stepped_samples) -> Path:  # type: ignore[no-untyped-def]
    path = tmp_path / "samples.parquet"
    write_samples(stepped_samples, path)
    return path


def test_help_everywhere(runner: CliRunner) -> None:
    for args in (["--help"], ["fit", "--help"], ["correct", "--help"], ["skew", "report",
                 "--help"], ["demo", "--help"]):
        result = runner.invoke(main, args)
        assert result.exit_code == 0, result.output
        assert "Usage" in result.output


def test_fit_correct_report(runner: CliRunner, tmp_path: Path, samples_file: Path,
                            stepped_samples) -> None:  # type: ignore[no-untyped-def]
    tables = tmp_path / "tables"
    result = runner.invoke(main, ["fit", str(samples_file), "--out", str(tables),
                                  "--max-wander-ppb-per-s", "20", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["tables"][0]["node"] == "n1"
    table_json = json.loads((tables / "n1.table.json").read_text())
    assert table_json["assumptions"]["max_wander_ppb_per_s"] == 20

    events = tmp_path / "events.csv"
    ts = stepped_samples.t_local_ns[5:50]
    events.write_text("node,ts_ns,request_id\n" + "".join(f"n1,{t},r{i}\n"
                                                         for i, t in enumerate(ts)))
    out = tmp_path / "out.parquet"
    result = runner.invoke(main, ["correct", str(events), "--tables", str(tables),
                                  "--out", str(out)])
    assert result.exit_code == 0, result.output
    got = pq.read_table(out)
    assert got.column_names == ["node", "ts_ns", "request_id", "ref_ns", "bound_ns", "flags"]
    assert np.all(got.column("bound_ns").to_numpy() > 0)

    last = int(stepped_samples.t_local_ns.max())
    result = runner.invoke(main, ["skew", "report", "--store", str(tables), "--json",
                                  "--at-ns", str(last + 10**9)])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)["nodes"]
    assert rows[0]["node"] == "n1" and rows[0]["status"] == "synchronised"
    assert rows[0]["bound_now_ns"] > 0 and abs(rows[0]["skew_ppm"] - 120) < 5
    result = runner.invoke(main, ["skew", "report", "--store", str(tables),
                                  "--at-ns", str(last + 3600 * 10**9)])
    assert result.exit_code == 0
    assert "free_running" in result.output and "±" in result.output


@pytest.mark.slow
def test_demo_json_covers_truth(runner: CliRunner, tmp_path: Path) -> None:
    # 10 s, not the default 15: bifrost-1's step (at 8 s) still falls inside the run
    result = runner.invoke(main, ["demo", "--json", "--duration", "10", "--store",
                                  str(tmp_path / "t")])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    for row, truth in zip(data["report"], data["truth"], strict=True):
        assert abs(row["offset_now_ns"] - truth["offset_ns"]) <= row["bound_now_ns"]
    for hop in data["hops"]:
        assert hop["covered"] == hop["requests"]
    assert data["hops"][0]["raw_negative"] > 0  # raw cross-node differences lie


def _fails(runner: CliRunner, args: list[str], *needles: str) -> None:
    result = runner.invoke(main, args)
    assert result.exit_code != 0, result.output
    for needle in needles:
        assert needle in result.output, result.output


def test_fit_errors(runner: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("node,t_local_ns,offset_ns,delay_ns\nn,1,0,1\nn,2,oops,1\n")
    out = tmp_path / "t"
    _fails(runner, ["fit", str(bad), "--out", str(out)], "bad.csv:3", "offset_ns")
    assert not out.exists()
    _fails(runner, ["fit", str(tmp_path / "missing.jsonl"), "--out", str(out)], "no such file")
    _fails(runner, ["fit", str(bad), "--out", str(out), "--max-skew-ppm", "-3"],
           "max-skew-ppm")
    _fails(runner, ["fit", "--out", str(out)], "Missing argument")


def test_correct_errors_leave_no_output(runner: CliRunner, tmp_path: Path,
                                        samples_file: Path) -> None:
    tables = tmp_path / "tables"
    assert runner.invoke(main, ["fit", str(samples_file), "--out", str(tables)]).exit_code == 0
    out = tmp_path / "out.jsonl"
    unknown = tmp_path / "u.jsonl"
    unknown.write_text('{"node":"n1","ts_ns":1767225700000000000}\n'
                       '{"node":"ghost","ts_ns":1767225700000000000}\n')
    _fails(runner, ["correct", str(unknown), "--tables", str(tables), "--out", str(out)],
           "u.jsonl", "data row 2", "'node'", "ghost")
    early = tmp_path / "e.jsonl"
    early.write_text('{"node":"n1","ts_ns":5}\n')
    _fails(runner, ["correct", str(early), "--tables", str(tables), "--out", str(out)],
           "e.jsonl", "data row 1", "ts_ns")
    badts = tmp_path / "b.jsonl"
    badts.write_text('{"node":"n1","ts_ns":"soon"}\n')
    _fails(runner, ["correct", str(badts), "--tables", str(tables), "--out", str(out)],
           "b.jsonl:1", "ts_ns")
    _fails(runner, ["correct", str(early), "--tables", str(tmp_path / "none"), "--out",
                    str(out)], "no such table directory")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "x.table.json").write_text('{"schema": "clocksync.table/9"}')
    _fails(runner, ["correct", str(early), "--tables", str(broken), "--out", str(out)],
           "x.table.json", "schema", "newer")
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    result = runner.invoke(main, ["correct", str(early), "--tables", str(tables), "--out",
                                  str(out), "--on-invalid", "inf"])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["bound_ns"] is None or "Infinity" in out.read_text()


def test_skew_report_errors(runner: CliRunner, tmp_path: Path) -> None:
    _fails(runner, ["skew", "report", "--store", str(tmp_path / "nope")], "no such table")
    _fails(runner, ["skew", "report", "--store", "ftp://x"], "unknown store scheme")
