"""Inputs that can't hurt (issue 14, cases 1-4 and the fit's validation): bad samples are
refused at the source with a message naming file, row and field; a table ``fit`` writes
always loads back; an unreadable table in a store is reported by node and reason while the
others are used (exit 2), fatal only with ``--strict``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from clocksync import (
    ClockSyncError,
    CorrectionTable,
    Corrector,
    DirectoryStore,
    InputError,
    Sample,
    SampleArrays,
    SchemaError,
    StoreError,
    fit_table,
    write_samples,
)
from clocksync.cli import main

T0 = 1_796_642_583_449_875_000  # 2026-12-07, in ns


def _rows(n: int = 30, **change: dict[str, object]) -> list[dict[str, object]]:
    rng = np.random.default_rng(5)
    rows: list[dict[str, object]] = [
        {"node": "n1", "t_local_ns": T0 + i * 10**9,
         "offset_ns": 2_000.0 + float(rng.normal(0, 50)), "delay_ns": 40_000.0}
        for i in range(n)]
    for i, fields in change.items():
        rows[int(i[1:])].update(fields)
    return rows


def _jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _fit(tmp_path: Path, rows: list[dict[str, object]]) -> tuple[int, str, Path]:
    src = _jsonl(tmp_path / "s.jsonl", rows)
    out = tmp_path / "t"
    res = CliRunner().invoke(main, ["fit", str(src), "--out", str(out)])
    return res.exit_code, res.output, out


def _one_line_error(output: str) -> str:
    assert "Traceback" not in output
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    assert lines[0].startswith("Error: ")
    return lines[0]


# -- case 1: 1e300 was a traceback --------------------------------------------------------------
def test_case1_huge_offset_and_delay_are_refused_naming_row_and_field(tmp_path: Path) -> None:
    code, out, tables = _fit(tmp_path, _rows(r7={"offset_ns": 1e300, "delay_ns": 1e300}))
    assert code == 1
    line = _one_line_error(out)
    assert "s.jsonl" in line and "row 7" in line and "'offset_ns'" in line and "1e+17" in line
    assert not tables.exists()


@pytest.mark.parametrize(("field", "value", "limit"), [
    ("delay_ns", 2e12, "1e+12"), ("delay_ns", -1.0, ">= 0"),
    ("bound_ns", 5e12, "1e+12"), ("bound_ns", 0.0, "> 0"),
    ("offset_ns", -2e17, "1e+17"), ("t_local_ns", (1 << 62) + 1, str(1 << 62)),
])
def test_physical_limits(field: str, value: float, limit: str) -> None:
    samples = {k: [r[k] for r in _rows(5)] for k in ("node", "t_local_ns", "offset_ns",
                                                     "delay_ns")}
    samples.setdefault("bound_ns", [30_000.0] * 5)
    samples[field] = list(samples[field])
    samples[field][3] = value
    with pytest.raises(InputError, match=rf"row 3: field '{field}'.*{re.escape(limit)}"):
        fit_table(samples)


def test_library_samples_are_checked_too() -> None:
    arrays = SampleArrays(np.array(["n"] * 3, dtype=object), np.array([1, 2, 3], np.int64),
                          np.array([0.0, np.inf, 0.0]), np.zeros(3), np.ones(3),
                          np.array([""] * 3, dtype=object))
    with pytest.raises(InputError, match="row 1: field 'offset_ns'"):
        fit_table(arrays)
    with pytest.raises(InputError, match="t_local_ns: must be >= 0"):
        fit_table([Sample("n", -5, 0.0, 1.0)])


# -- case 2: an empty input exited 0 -------------------------------------------------------------
def test_case2_empty_input_is_an_error(tmp_path: Path) -> None:
    code, out, tables = _fit(tmp_path, [])
    assert code == 1
    assert "no samples" in _one_line_error(out)
    assert not tables.exists()
    with pytest.raises(InputError, match="no samples"):
        fit_table([])


# -- case 3: one µs sample among ns wrote an unreadable table ------------------------------------
@pytest.mark.parametrize(("factor", "unit"), [(1_000, "µs"), (1_000_000, "ms"),
                                              (1_000_000_000, "s")])
def test_case3_a_sample_in_another_unit_is_refused_naming_rows(tmp_path: Path, factor: int,
                                                               unit: str) -> None:
    rows = _rows()
    for i in (4, 9):
        rows[i]["t_local_ns"] = int(rows[i]["t_local_ns"]) // factor  # type: ignore[call-overload]
    code, out, tables = _fit(tmp_path, rows)
    assert code == 1
    line = _one_line_error(out)
    assert "rows 4, 9" in line and "'t_local_ns'" in line and f"looks like {unit}," in line
    assert not tables.exists()


def test_monotonic_times_from_boot_are_not_mistaken_for_another_unit() -> None:
    """Local times counted from boot span orders of magnitude (1 s .. hours): no unit hint."""
    t = [10**9 + i * 60 * 10**9 for i in range(60)]
    table = fit_table([Sample("n", ti, 1_000.0, 40_000.0) for ti in t])
    assert table.sample_count == 60


def test_what_fit_writes_always_loads_back(tmp_path: Path) -> None:
    code, out, tables = _fit(tmp_path, _rows())
    assert code == 0, out
    (file,) = tables.iterdir()
    assert CorrectionTable.from_json(file.read_bytes()).node == "n1"


# -- case 4: one unreadable table blinded the operator -------------------------------------------
@pytest.fixture
def fleet(tmp_path: Path) -> Path:
    """A directory store with good tables of n1 and n2 and an unreadable one of n3."""
    store = DirectoryStore(tmp_path / "fleet")
    for node in ("n1", "n2"):
        rows = _rows()
        for r in rows:
            r["node"] = node
        store.write(fit_table({k: [r[k] for r in rows] for k in rows[0]}))
    (tmp_path / "fleet" / "n3.table.json").write_text('{"schema": "clocksync.table/1", "node"')
    return tmp_path / "fleet"


def test_case4_skew_report_shows_the_good_nodes_and_names_the_bad(fleet: Path) -> None:
    res = CliRunner().invoke(main, ["skew", "report", "--store", str(fleet),
                                    "--at-ns", str(T0 + 40 * 10**9)])
    assert res.exit_code == 2, res.output
    assert "n1" in res.stdout and "n2" in res.stdout
    assert "node n3: table not loaded" in res.stderr and "n3.table.json" in res.stderr
    assert "Traceback" not in res.output
    res = CliRunner().invoke(main, ["skew", "report", "--store", str(fleet), "--json",
                                    "--at-ns", str(T0 + 40 * 10**9)])
    assert res.exit_code == 2
    doc = json.loads(res.stdout)
    assert [n["node"] for n in doc["nodes"]] == ["n1", "n2"]
    assert list(doc["load_errors"]) == ["n3"] and "n3.table.json" in doc["load_errors"]["n3"]


def test_case4_strict_makes_any_failure_fatal(fleet: Path) -> None:
    res = CliRunner().invoke(main, ["skew", "report", "--store", str(fleet), "--strict"])
    assert res.exit_code == 1
    assert "n3.table.json" in _one_line_error(res.output)


def test_correct_goes_on_with_the_good_nodes(fleet: Path, tmp_path: Path) -> None:
    src = _jsonl(tmp_path / "ev.jsonl", [{"node": "n1", "ts_ns": T0 + 20 * 10**9},
                                          {"node": "n3", "ts_ns": T0 + 20 * 10**9}])
    out = tmp_path / "out.jsonl"
    res = CliRunner().invoke(main, ["correct", str(src), "--tables", str(fleet), "--out",
                                    str(out)])
    assert res.exit_code == 2, res.output
    assert "node n3: table not loaded" in res.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows[0]["bound_ns"] is not None and np.isfinite(float(rows[0]["bound_ns"]))
    assert rows[1]["flags"] & 8  # out_of_range: no correction for n3
    res = CliRunner().invoke(main, ["correct", str(src), "--tables", str(fleet), "--out",
                                    str(tmp_path / "strict.jsonl"), "--strict"])
    assert res.exit_code == 1 and not (tmp_path / "strict.jsonl").exists()


def test_corrector_from_store_keeps_the_good_tables(fleet: Path) -> None:
    corrector = Corrector.from_store(str(fleet))
    assert corrector.nodes == ("n1", "n2")
    assert list(corrector.load_errors) == ["n3"]
    with pytest.raises(SchemaError, match=r"n3\.table\.json"):
        Corrector.from_store(str(fleet), strict=True)
    (fleet / "n3.table.json").unlink()
    (fleet / "n2.table.json").write_bytes(b"\xff\x00garbage")
    assert corrector.refresh()
    assert corrector.nodes == ("n1",) and list(corrector.load_errors) == ["n2"]
    assert Corrector({}).load_errors == {}


def test_an_empty_store_is_an_error_unless_allowed(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    res = CliRunner().invoke(main, ["skew", "report", "--store", str(empty)])
    assert res.exit_code == 1 and "no tables" in _one_line_error(res.output)
    res = CliRunner().invoke(main, ["skew", "report", "--store", str(empty), "--allow-empty"])
    assert res.exit_code == 0, res.output


def test_errors_are_clocksync_errors() -> None:
    assert issubclass(InputError, ClockSyncError) and issubclass(StoreError, ClockSyncError)
    assert write_samples  # the public writer is what the CLI harness uses
