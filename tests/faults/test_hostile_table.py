"""Tables a Corrector must refuse, with an error that names the file and the field: an
unknown schema, NaN (or infinite) fields, and validity ranges that overlap themselves.

Each broken table is written into a table directory and loaded the way correctors load
tables (``Corrector.from_store``), and parsed directly (``CorrectionTable.from_json``).
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from clocksync import CorrectionTable, Corrector, SchemaError, SimClock, fit_table
from clocksync.testing import LinkModel, simulate_samples

T0 = 1_767_225_600 * 10**9
NAN = float("nan")


@functools.cache
def _good() -> dict[str, Any]:
    clock = SimClock(t0_ns=T0, offset0_ns=1e5, skew_ppm=20.0, seed=5)
    samples = simulate_samples(clock, "n1", T0, 600, 16, LinkModel(), np.random.default_rng(5))
    obj: dict[str, Any] = json.loads(fit_table(samples, reference="sim").to_json())
    return obj


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(obj: dict[str, Any]) -> None:
        keys: list[Any] = [int(k) if k.isdigit() else k for k in path.split(".")]
        target: Any = obj
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value
    return edit


def _overlap_cells(obj: dict[str, Any]) -> None:
    """Cell 3 starts 1 µs before cell 2 ends: two cells claim the same local time."""
    cells = obj["cells"]
    cells["start_local_ns"][3] = cells["end_local_ns"][2] - 1_000


def _repeat_cell(obj: dict[str, Any]) -> None:
    """Cell 2 listed twice: the validity range overlaps itself."""
    for values in obj["cells"].values():
        values.insert(2, values[2])


def _backwards_cell(obj: dict[str, Any]) -> None:
    cells = obj["cells"]
    cells["end_local_ns"][1] = cells["start_local_ns"][1] - 1


def _backwards_segment(obj: dict[str, Any]) -> None:
    seg = obj["segments"][0]
    seg["last_sample_local_ns"] = seg["first_sample_local_ns"] - 1


CASES: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("newer schema", _set("schema", "clocksync.table/99"), "newer than this clocksync"),
    ("foreign schema", _set("schema", "chrony.tracking/1"), "field 'schema'"),
    ("schema not a string", _set("schema", 1), "field 'schema'"),
    ("no schema", lambda obj: obj.pop("schema"), "field 'schema': missing"),
    ("NaN envelope", _set("cells.hi0_ns.0", NAN), r"cells.hi0_ns[0]"),
    ("NaN slope", _set("cells.lo1_ns_per_s.2", NAN), r"cells.lo1_ns_per_s[2]"),
    ("inf envelope", _set("cells.lo0_ns.1", float("-inf")), r"cells.lo0_ns[1]"),
    ("NaN fit offset", _set("segments.0.fit.offset_ns", NAN), "segments[0].fit.offset_ns"),
    ("NaN sigma", _set("segments.0.fit.sigma_skew_ppm", NAN), "segments[0].fit.sigma_skew_ppm"),
    ("NaN assumption", _set("assumptions.max_skew_ppm", NAN), "max_skew_ppm"),
    ("NaN in extra", _set("extra.poll_interval_s", NAN), "field 'extra'"),
    ("overlapping cells", _overlap_cells, "cells.start_local_ns[3]"),
    ("cell repeated", _repeat_cell, "cells.start_local_ns[3]"),
    ("cell ends before it starts", _backwards_cell, "cells.end_local_ns[1]"),
    ("segment ends before it starts", _backwards_segment,
     "segments[0].last_sample_local_ns"),
    ("envelope beyond int64 ns", _set("cells.hi0_ns.0", 1e300), "cells.hi0_ns[0]"),
    ("time beyond int64", _set("cells.end_local_ns.0", 2**64), "cells.end_local_ns[0]"),
]


@pytest.mark.parametrize(("edit", "named"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_corrector_refuses_the_table(tmp_path: Path, edit: Callable[[dict[str, Any]], None],
                                     named: str) -> None:
    obj = copy.deepcopy(_good())
    edit(obj)
    text = json.dumps(obj, allow_nan=True)
    path = tmp_path / "n1.table.json"
    path.write_text(text)
    with pytest.raises(SchemaError) as info:
        Corrector.from_store(str(tmp_path), strict=True)
    message = str(info.value)
    assert str(path) in message and named in message, message
    lenient = Corrector.from_store(str(tmp_path))  # left out, named with its reason
    assert lenient.nodes == () and lenient.load_errors == {"n1": message}
    with pytest.raises(SchemaError, match=r"pushed\.json"):
        CorrectionTable.from_json(text, source="pushed.json")


def test_the_unbroken_table_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "n1.table.json").write_text(json.dumps(_good()))
    corrector = Corrector.from_store(str(tmp_path))
    first = _good()["cells"]["start_local_ns"][0]
    ref, bound = corrector.correct("n1", first + 10**9)
    assert isinstance(ref, int) and 0 < bound < 1e6
