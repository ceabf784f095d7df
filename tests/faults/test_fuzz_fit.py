"""Fuzz the fit: ``fit_table`` on arbitrary sample arrays raises only ClockSyncError
subclasses, and a table fitted from any valid samples loads back from its JSON form.

Both properties run ``FUZZ_EXAMPLES`` cases (200 by default; thousands with
``HYPOTHESIS_PROFILE=explore``).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from clocksync import ClockSyncError, CorrectionTable, SampleArrays, fit_table
from tests._fuzz import fuzz_settings

pytestmark = pytest.mark.fuzz

_INT64 = st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1)
_ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True, width=64)


def _arrays(t: list[int], off: list[float], delay: list[float],
            bound: list[float]) -> SampleArrays:
    n = min(len(t), len(off), len(delay), len(bound))
    return SampleArrays(np.array(["n"] * n, dtype=object), np.array(t[:n], dtype=np.int64),
                        np.array(off[:n], dtype=np.float64),
                        np.array(delay[:n], dtype=np.float64),
                        np.array(bound[:n], dtype=np.float64), np.array([""] * n, dtype=object))


@fuzz_settings(suppress_health_check=[HealthCheck.too_slow])
@given(t=st.lists(_INT64, max_size=12), off=st.lists(_ANY_FLOAT, max_size=12),
       delay=st.lists(_ANY_FLOAT, max_size=12), bound=st.lists(_ANY_FLOAT, max_size=12))
def test_fit_table_on_any_arrays_raises_only_our_errors(t: list[int], off: list[float],
                                                        delay: list[float],
                                                        bound: list[float]) -> None:
    arrays = _arrays(t, off, delay, bound)
    try:
        table = fit_table(arrays, generated_at_ns=0)
    except ClockSyncError:
        return
    # accepted: it must load back
    assert CorrectionTable.from_json(table.to_json()).node == "n"


@st.composite
def valid_samples(draw: st.DrawFn) -> SampleArrays:
    n = draw(st.integers(min_value=1, max_value=40))
    t0 = draw(st.integers(min_value=0, max_value=1 << 61))
    gaps = draw(st.lists(st.integers(min_value=0, max_value=10**12), min_size=n, max_size=n))
    t = np.minimum(t0 + np.cumsum(np.array(gaps, dtype=np.int64)), 1 << 62)
    off = draw(st.lists(st.floats(min_value=-1e17, max_value=1e17), min_size=n, max_size=n))
    delay = draw(st.lists(st.floats(min_value=0, max_value=1e12), min_size=n, max_size=n))
    bound = draw(st.lists(st.floats(min_value=1e-3, max_value=1e12), min_size=n, max_size=n))
    return SampleArrays(np.array(["n"] * n, dtype=object), t.astype(np.int64),
                        np.array(off), np.array(delay), np.array(bound),
                        np.array([""] * n, dtype=object))


@pytest.mark.slow
@fuzz_settings(suppress_health_check=[HealthCheck.too_slow])
@given(samples=valid_samples())
def test_a_fitted_table_always_loads_back(samples: SampleArrays) -> None:
    """Every table fit_table returns from valid samples reads back from its JSON; samples it
    cannot turn into a readable table are refused with an InputError, never written."""
    try:
        table = fit_table(samples, generated_at_ns=0)
    except ClockSyncError as exc:
        assert str(exc)
        return
    back = CorrectionTable.from_json(table.to_json())
    assert back.sample_count == len(samples)
    assert len(back.cells) == len(table.cells)
