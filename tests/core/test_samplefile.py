"""Sample files: JSONL, CSV and Parquet round trips and precise errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from clocksync import InputError, read_samples, write_samples


@pytest.mark.parametrize("ext", ["jsonl", "csv", "parquet"])
def test_round_trip(tmp_path: Path, stepped_samples, ext: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / f"s.{ext}"
    write_samples(stepped_samples, path)
    back = read_samples(path)
    assert np.array_equal(back.t_local_ns, stepped_samples.t_local_ns)
    assert np.allclose(back.offset_ns, stepped_samples.offset_ns, rtol=0, atol=1e-6)
    assert np.allclose(back.bound_ns, stepped_samples.bound_ns, rtol=0, atol=1e-6)
    assert list(back.node) == list(stepped_samples.node)
    assert not list(tmp_path.glob(".*"))  # no temporary left behind


def test_bound_defaults_from_delays(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text("node,t_local_ns,offset_ns,delay_ns,root_delay_ns,root_dispersion_ns\n"
                    "a,1000,5,200,100,30\n")
    s = read_samples(path)
    assert s.bound_ns[0] == pytest.approx(200 / 2 + 100 / 2 + 30 + 1000)


HEADER = "node,t_local_ns,offset_ns,delay_ns"


@pytest.mark.parametrize(
    ("name", "text", "where"),
    [
        ("bad.jsonl", '{"node":"a","t_local_ns":1,"offset_ns":0,"delay_ns":1}\n{"node":"a",'
                      '"t_local_ns":"x","offset_ns":0,"delay_ns":1}\n',
         "bad.jsonl:2: field 't_local_ns'"),
        ("bad.jsonl", '{"node":"a","t_local_ns":1,"offset_ns":0}\n',
         "bad.jsonl:1: field 'delay_ns' is missing"),
        ("bad.jsonl", "not json\n", "bad.jsonl:1: not valid JSON"),
        ("bad.csv", f"{HEADER}\na,1,0,1\na,2,zz,1\n", "bad.csv:3: field 'offset_ns'"),
        ("bad.csv", f"{HEADER}\na,-5,0,1\n", "bad.csv:2: field 't_local_ns' must be >= 0"),
        ("bad.csv", f"{HEADER}\na,5,0,-1\n", "field 'delay_ns' must be >= 0"),
        ("bad.csv", f"{HEADER},bound_ns\na,5,0,1,0\n", "field 'bound_ns' must be > 0"),
        ("bad.txt", "x", "unknown file type"),
        ("bad.parquet", "not parquet", "not a readable Parquet file"),
    ],
)
def test_errors_name_file_line_and_field(tmp_path: Path, name: str, text: str, where: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(InputError) as info:
        read_samples(path)
    assert where in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        read_samples(tmp_path / "nope.csv")
