"""Signed tables: an HMAC key shared by writers and readers; unsigned, altered or foreign
tables refused when a key is configured, whatever the store."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from clocksync import (
    CorrectionTable,
    Corrector,
    InputError,
    SignatureError,
    TableKey,
    fit_table,
    load_table_key,
    open_store,
)
from clocksync.cli import main

SECRET = b"correct horse battery staple 42"
OTHER = b"another shared secret, not ours"


@pytest.fixture
def table(stepped_samples):  # type: ignore[no-untyped-def]
    return fit_table(stepped_samples, reference="ntp:test")


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "table.key"
    path.write_bytes(SECRET + b"\n")
    return path


def test_signed_round_trip_and_readers_without_key(table: CorrectionTable) -> None:
    key = TableKey(SECRET)
    text = table.to_json(key)
    signed = CorrectionTable.from_json(text, "t", key=key)
    assert signed.to_json() == table.to_json()
    assert CorrectionTable.from_json(text).to_json() == table.to_json()  # key-less reader
    # re-indenting in transit is not tampering: the MAC covers values, not whitespace
    pretty = json.dumps(json.loads(text), indent=2)
    assert CorrectionTable.from_json(pretty, "t", key=key).to_json() == table.to_json()


def test_unsigned_foreign_and_altered_tables_are_refused(table: CorrectionTable) -> None:
    key = TableKey(SECRET)
    with pytest.raises(SignatureError, match=r"^src: table is not signed"):
        CorrectionTable.from_json(table.to_json(), "src", key=key)
    foreign = table.to_json(TableKey(OTHER))
    with pytest.raises(SignatureError, match=rf"signed with key {TableKey(OTHER).key_id}"):
        CorrectionTable.from_json(foreign, "src", key=key)
    obj = json.loads(table.to_json(key))
    obj["cells"]["hi0_ns"][0] += 1.0  # shift one bound by 1 ns
    with pytest.raises(SignatureError, match="field 'signature': does not match"):
        CorrectionTable.from_json(json.dumps(obj), "src", key=key)
    obj = json.loads(table.to_json(key))
    obj["signature"] = "0" * 64
    with pytest.raises(SignatureError, match="field 'signature'"):
        CorrectionTable.from_json(json.dumps(obj), "src", key=key)


@pytest.mark.parametrize("kind", ["dir", "memory"])
def test_stores_sign_and_verify(table: CorrectionTable, tmp_path: Path, kind: str) -> None:
    url = str(tmp_path / "tables") if kind == "dir" else f"memory://signed-{id(table)}"
    key = TableKey(SECRET)
    open_store(url, table_key=key).write(table)
    assert open_store(url, table_key=key).read_all()[table.node].to_json() == table.to_json()
    assert Corrector.from_store(url, table_key=key).nodes == (table.node,)
    open_store(url).write(table)  # a rogue writer without the key
    with pytest.raises(SignatureError, match="not signed"):
        Corrector.from_store(url, table_key=key, strict=True)
    lenient = Corrector.from_store(url, table_key=key)  # the rogue table is left out, named
    assert lenient.nodes == () and "not signed" in lenient.load_errors[table.node]


def test_key_file_errors_name_the_file_and_never_show_the_secret(tmp_path: Path) -> None:
    short = tmp_path / "short.key"
    short.write_bytes(b"tooshort\n")
    with pytest.raises(InputError, match=rf"^{short}: table key: must be at least 16 bytes"):
        load_table_key(short)
    with pytest.raises(InputError, match="cannot read table key file"):
        load_table_key(tmp_path / "missing.key")
    key = TableKey(SECRET)
    assert SECRET.decode() not in repr(key)


def test_cli_refuses_a_rogue_table(table: CorrectionTable, tmp_path: Path, key_file: Path,
                                   caplog: pytest.LogCaptureFixture) -> None:
    store = tmp_path / "tables"
    open_store(str(store), table_key=load_table_key(key_file)).write(table)
    events = tmp_path / "in.jsonl"
    t = int(table.cells.start_ns[0]) + 10**9
    events.write_text(json.dumps({"node": table.node, "ts_ns": t}) + "\n")
    runner = CliRunner()
    ok = runner.invoke(main, ["correct", str(events), "--tables", str(store),
                              "--table-key-file", str(key_file),
                              "--out", str(tmp_path / "out.jsonl")])
    assert ok.exit_code == 0, ok.output
    report = runner.invoke(main, ["skew", "report", "--store", str(store), "--json",
                                  "--table-key-file", str(key_file)])
    assert report.exit_code == 0, report.output
    assert json.loads(report.output)["nodes"][0]["node"] == table.node
    with caplog.at_level(logging.DEBUG):
        open_store(str(store)).write(table)  # overwritten, unsigned
        bad = runner.invoke(main, ["correct", str(events), "--tables", str(store),
                                   "--table-key-file", str(key_file),
                                   "--out", str(tmp_path / "out2.jsonl")])
    assert bad.exit_code != 0
    assert "not signed" in bad.output and str(store) in bad.output
    assert not (tmp_path / "out2.jsonl").exists()
    assert SECRET.decode() not in bad.output + caplog.text
