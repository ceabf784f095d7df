"""Fuzz the table JSON loader: random JSON trees and mutated valid tables.

Property: ``CorrectionTable.from_json`` raises nothing but :class:`SchemaError` (naming the
source), and a table it accepts holds no NaN and can be used by a :class:`Corrector` —
every lookup either answers with a finite or infinite bound, never NaN, or raises one of
the Corrector's documented errors.

The mutation strategy (:func:`mutated`) is shared with the reader fuzzers.
"""

from __future__ import annotations

import copy
import functools
import json
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from clocksync import (
    CorrectionTable,
    Corrector,
    InvalidTimestampError,
    OutOfRangeError,
    SchemaError,
    SimClock,
    fit_table,
)
from clocksync.testing import LinkModel, simulate_samples
from tests._fuzz import fuzz_settings

pytestmark = pytest.mark.fuzz

__all__ = ["NASTY", "json_trees", "mutated"]

T0 = 1_767_225_600 * 10**9
SOURCE = "fuzz-table.json"
INT64_MAX = 2**63 - 1

#: values that break naive loaders: NaN/inf, int64 edges, wrong types, empty containers
NASTY: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from([
        math.nan, math.inf, -math.inf, None, True, False, 0, -1, 2**31, 2**53 + 1,
        INT64_MAX, 2**63, 2**64, -(2**63) - 1, 10**30, 10**400, 1e308, -1e308, 5e-324, -0.0,
        "", "x", "NaN", "1e3", "\x00", "é", [], {}, [None], {"": 0}, [[[]]],
    ]),
    st.integers(),
    st.floats(),
    st.text(max_size=6),
)

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(),
                         st.text(max_size=10))


def json_trees(keys: list[str] | None = None) -> st.SearchStrategy[Any]:
    """Random JSON trees whose object keys are drawn from ``keys`` (and random text)."""
    key = st.text(max_size=8) if not keys else st.one_of(st.sampled_from(keys),
                                                         st.text(max_size=8))
    return st.recursive(json_scalars, lambda kids: st.one_of(
        st.lists(kids, max_size=4), st.dictionaries(key, kids, max_size=5)), max_leaves=25)


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, (*prefix, i))


def _pick(draw: st.DrawFn, obj: Any) -> tuple[Any, Any] | None:
    """A random ``(container, key)`` inside ``obj``, found by a random walk down the tree
    (cheap on big documents; biased to stop at every depth)."""
    here: tuple[Any, Any] | None = None
    node = obj
    while isinstance(node, dict | list) and node:
        keys = list(node) if isinstance(node, dict) else range(len(node))
        key = draw(st.sampled_from(keys))
        here = (node, key)
        node = node[key]
        if draw(st.integers(0, 3)) == 0:
            break
    return here


@st.composite
def mutated(draw: st.DrawFn, base: Any, max_edits: int = 4) -> Any:
    """``base`` (a parsed JSON document) with 1..``max_edits`` structural edits: a value
    replaced by a nasty one or a random tree, nudged (±1, negated, scaled), deleted,
    duplicated or swapped within its list, or a list truncated."""
    obj = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, max_edits))):
        picked = _pick(draw, obj)
        if picked is None:
            return copy.deepcopy(draw(NASTY))
        parent, key = picked
        value = parent[key]
        op = draw(st.sampled_from(["nasty", "tree", "nudge", "nudge", "delete", "dup",
                                   "swap", "truncate"]))
        if op == "nasty":
            parent[key] = copy.deepcopy(draw(NASTY))
        elif op == "tree":
            parent[key] = draw(json_trees())
        elif op == "nudge" and isinstance(value, int | float) and not isinstance(value, bool):
            how = draw(st.sampled_from(["+1", "-1", "neg", "x1e6", "big"]))
            parent[key] = {"+1": value + 1, "-1": value - 1, "neg": -value,
                           "x1e6": value * 1_000_000, "big": value + 10**18}[how]
        elif op == "delete":
            del parent[key]
        elif op == "dup" and isinstance(parent, list):
            parent.insert(key, copy.deepcopy(value))
        elif op == "swap" and isinstance(parent, list) and len(parent) > 1:
            other = draw(st.integers(0, len(parent) - 1))
            parent[key], parent[other] = parent[other], parent[key]
        elif op == "truncate" and isinstance(value, list):
            del value[draw(st.integers(0, len(value))):]
        else:
            parent[key] = copy.deepcopy(draw(NASTY))
    return obj


@functools.cache
def _base_tables() -> tuple[dict[str, Any], ...]:
    """Two real tables: a short steady one, and one with a step and a gap (holdover, void
    and ambiguous cells, two segments)."""
    steady = SimClock(t0_ns=T0, offset0_ns=2e5, skew_ppm=-30.0, seed=1)
    stepped = SimClock(t0_ns=T0, offset0_ns=3e6, skew_ppm=120.0, wander_ppb_per_s=10.0,
                       span_s=2000, steps=((T0 + 500 * 10**9, 5e6),), seed=3)
    out = []
    for clock, gaps in ((steady, ()), (stepped, ((700.0, 800.0),))):
        samples = simulate_samples(clock, "n1", T0, 1000, 80, LinkModel(),
                                   np.random.default_rng(1), gaps_s=gaps)
        table = fit_table(samples, reference="ntp:fuzz", holdover_horizon_s=600.0)
        out.append(json.loads(table.to_json()))
    return tuple(out)


def _probe_times(table: CorrectionTable) -> list[int]:
    c = table.cells
    times = [0, 1, INT64_MAX, T0]
    if len(c):
        starts, ends = c.start_ns.tolist(), c.end_ns.tolist()
        times += starts[:3] + starts[-3:] + [e - 1 for e in ends[-3:]]
        times += [(s + e) // 2 for s, e in zip(starts[:3] + starts[-3:],
                                               ends[:3] + ends[-3:], strict=True)]
        times += [max(0, starts[0] - 1)]
    return [t for t in times if 0 <= t <= INT64_MAX]


def _check_usable(table: CorrectionTable) -> None:
    """No NaN anywhere; every Corrector call answers or raises a documented error."""
    c = table.cells
    for name in ("hi0", "hi1", "lo0", "lo1", "slo", "shi"):
        assert not np.isnan(getattr(c, name)).any(), name
    for seg in table.segments:
        for value in (seg.fit.offset_ns, seg.fit.skew_ppm, seg.fit.sigma_offset_ns,
                      seg.fit.sigma_skew_ppm, seg.fit.residual_rms_ns):
            assert not math.isnan(value)
    assert not any(isinstance(v, float) and math.isnan(v) for v in table.assumptions.values())
    corrector = Corrector([table])
    times = _probe_times(table)
    for t in times:
        try:
            ref, bound = corrector.correct(table.node, t)
        except (OutOfRangeError, InvalidTimestampError):
            continue
        assert isinstance(ref, int)
        assert not math.isnan(bound) and bound >= 0
    arr = np.array(sorted(times), dtype=np.int64)
    refs, bounds = corrector.correct(table.node, arr, on_invalid="inf")
    assert refs.dtype == np.int64 and not np.isnan(bounds).any()
    flags = corrector.flags(table.node, arr)
    assert flags.shape == arr.shape
    try:
        _, lat_bound = corrector.latency(table.node, arr[:1], table.node, arr[-1:])
    except (OutOfRangeError, InvalidTimestampError):
        return
    assert not np.isnan(np.asarray(lat_bound, dtype=np.float64)).any()


def _load(text: str | bytes) -> CorrectionTable | None:
    try:
        table = CorrectionTable.from_json(text, source=SOURCE)
    except SchemaError as exc:
        assert SOURCE in str(exc), str(exc)
        return None
    _check_usable(table)
    again = CorrectionTable.from_json(table.to_json(), source=SOURCE)  # re-serialisable
    assert again.to_json() == table.to_json()
    return table


def test_base_tables_load_and_are_usable() -> None:
    for obj in _base_tables():
        assert _load(json.dumps(obj)) is not None


_TABLE_KEYS = sorted({k for obj in _base_tables() for p in _paths(obj) for k in p
                      if isinstance(k, str)})


@fuzz_settings()
@given(json_trees(_TABLE_KEYS))
def test_random_json_trees_raise_only_schema_error(tree: Any) -> None:
    assert _load(json.dumps(tree)) is None or isinstance(tree, dict)


@fuzz_settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data())
def test_mutated_tables_raise_schema_error_or_stay_usable(data: st.DataObject) -> None:
    base = data.draw(st.sampled_from(_base_tables()))
    text = json.dumps(data.draw(mutated(base)), allow_nan=True)
    _load(text)


@fuzz_settings()
@given(st.binary(max_size=64), st.sampled_from([0, 10, 100, 1000]))
def test_garbled_bytes_raise_only_schema_error(junk: bytes, cut: int) -> None:
    text = json.dumps(_base_tables()[0]).encode()
    _load(text[:cut] + junk)
