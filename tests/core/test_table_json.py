"""CorrectionTable JSON: round trips, and every malformed field named on load."""

from __future__ import annotations

import json

import numpy as np
import pytest

from clocksync import SCHEMA, CorrectionTable, Corrector, SchemaError, fit_table


@pytest.fixture
def table(stepped_samples):  # type: ignore[no-untyped-def]
    return fit_table(stepped_samples, reference="ntp:test")


def test_round_trip_is_exact(table) -> None:  # type: ignore[no-untyped-def]
    text = table.to_json()
    again = CorrectionTable.from_json(text)
    assert again.to_json() == text
    assert json.loads(text)["schema"] == SCHEMA
    first, last = int(table.cells.start_ns[0]), int(table.cells.start_ns[-1])
    ts = first + np.arange(1000, dtype=np.int64) * ((last - first) // 1000)
    a = Corrector([table]).correct(table.node, ts)
    b = Corrector([again]).correct(table.node, ts)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def _broken(table, path: str, value):  # type: ignore[no-untyped-def]
    obj = json.loads(table.to_json())
    target = obj
    keys = path.split(".")
    for key in keys[:-1]:
        target = target[int(key)] if key.isdigit() else target[key]
    last = keys[-1]
    if value is KeyError:
        del target[last]
    elif last.isdigit():
        target[int(last)] = value
    else:
        target[last] = value
    return json.dumps(obj)


@pytest.mark.parametrize(
    ("path", "value", "named"),
    [
        ("schema", "clocksync.table/2", "newer"),
        ("schema", "something/1", "schema"),
        ("node", "", "node"),
        ("node", KeyError, "node"),
        ("status", "fine", "status"),
        ("generated_at_ns", "yesterday", "generated_at_ns"),
        ("assumptions.max_skew_ppm", -1, "max_skew_ppm"),
        ("assumptions.bogus", 1, "bogus"),
        ("segments.0.fit.offset_ns", "x", "segments[0].fit.offset_ns"),
        ("segments.0.started_by", "magic", "segments[0].started_by"),
        ("cells.hi0_ns.3", None, "cells.hi0_ns[3]"),
        ("cells.start_local_ns.2", 0, "cells"),
        ("cells.flags.1", 99, "cells.flags[1]"),
        ("cells.segment.0", 7, "cells.segment[0]"),
        ("cells.lo0_ns", [], "cells.lo0_ns"),
    ],
)
def test_malformed_field_is_named(table, path: str, value, named: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SchemaError) as info:
        CorrectionTable.from_json(_broken(table, path, value), source="t.json")
    assert named in str(info.value)
    assert "t.json" in str(info.value)


def test_nan_is_refused(table) -> None:  # type: ignore[no-untyped-def]
    obj_text = _broken(table, "cells.hi0_ns.0", 0.0).replace('"hi0_ns":[0.0', '"hi0_ns":[NaN')
    with pytest.raises(SchemaError, match=r"cells.hi0_ns\[0\]"):
        CorrectionTable.from_json(obj_text)


def test_not_json_is_refused() -> None:
    with pytest.raises(SchemaError, match="not valid JSON"):
        CorrectionTable.from_json("{nope")
