"""Latency inputs that can't hurt (issue 14, cases 7 and 8, and partial store failure):
timestamps in another unit get a hint naming the column and the unit; stage notes name the
stages missing or unknown, with counts, in text and JSON; an unreadable table is reported by
node while the other nodes are analysed (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from click.testing import CliRunner

from clocksync import DirectoryStore
from clocksync.cli import main
from clocksync.latency import simulate_requests, write_events

from .conftest import T0, World


@pytest.fixture(scope="module")
def base(world: World, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pa.Table]:
    root = tmp_path_factory.mktemp("badinput")
    store = DirectoryStore(root / "tables")
    for table in world.tables.values():
        store.write(table)
    events, _ = simulate_requests(world.clocks, [("n1", "n2")], 200, T0 + 20 * 10**9, 200.0,
                                  np.random.default_rng(3))
    return root, events


def _run(root: Path, events: pa.Table, name: str, *extra: str) -> tuple[int, str, str]:
    path = root / name
    write_events(events, path)
    res = CliRunner().invoke(main, ["latency", str(path), "--tables", str(root / "tables"),
                                    *extra])
    return res.exit_code, res.stdout, res.stderr


def test_case7_timestamps_in_microseconds_get_a_unit_hint(base: tuple[Path, pa.Table]) -> None:
    root, events = base
    on_n2 = pc.equal(events.column("node"), "n2")
    us = pc.if_else(on_n2, pc.divide(events.column("ts_ns"), 1000), events.column("ts_ns"))
    code, _out, err = _run(root, events.set_column(3, "ts_ns", us), "us.parquet")
    assert code == 1
    assert "Traceback" not in err
    assert "ts_ns values around 1.76e+15 look like µs, not ns" in err
    assert "1970-01-21" in err


def test_case8_stage_notes_name_the_stages(base: tuple[Path, pa.Table]) -> None:
    root, events = base
    stage = events.column("stage")
    typo = pc.if_else(pc.equal(stage, "pp_exit"), pa.scalar("pp_exlt"), stage)
    code, out, err = _run(root, events.set_column(1, "stage", typo), "typo.parquet")
    assert code == 0, err
    assert "200 requests lack some stage: 200 lack stage pp_exit" in out
    assert "200 events with unknown stage 'pp_exlt'" in out
    code, out, _ = _run(root, events.set_column(1, "stage", typo), "typo.parquet", "--json")
    doc = json.loads(out)
    assert doc["missing_stages"] == {"pp_exit": 200}
    assert doc["unknown_stages"] == {"pp_exlt": 200}


def test_an_unreadable_table_leaves_the_other_nodes(base: tuple[Path, pa.Table],
                                                    tmp_path: Path) -> None:
    root, events = base
    tables = tmp_path / "tables"
    tables.mkdir()
    for f in (root / "tables").iterdir():
        (tables / f.name).write_bytes(f.read_bytes())
    (tables / "n3.table.json").write_text("not json")
    path = tmp_path / "ev.parquet"
    write_events(events, path)
    res = CliRunner().invoke(main, ["latency", str(path), "--tables", str(tables), "--json"])
    assert res.exit_code == 2, res.output
    doc = json.loads(res.stdout)
    assert doc["requests"] == 200 and list(doc["load_errors"]) == ["n3"]
    assert "node n3: table not loaded" in res.stderr
    res = CliRunner().invoke(main, ["latency", str(path), "--tables", str(tables), "--strict"])
    assert res.exit_code == 1 and "n3.table.json" in res.output
