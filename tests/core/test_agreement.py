"""Marzullo agreement between sources: the majority interval, falsetickers named."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clocksync._fit._agreement import (  # tests the private module clocksync._fit._agreement
    SourceInterval,
    agree,
)


def test_all_agree() -> None:
    a = agree([SourceInterval("ntp", 100, 50), SourceInterval("ptp", 120, 10)])
    assert a.consistent and a.truechimers == ("ntp", "ptp")
    assert (a.low_ns, a.high_ns) == (110, 130)


def test_falseticker_is_named() -> None:
    a = agree([SourceInterval("ntp:a", 0, 100), SourceInterval("ntp:b", 50, 100),
               SourceInterval("ptp", 5_000, 10)])
    assert a.falsetickers == ("ptp",)
    assert set(a.truechimers) == {"ntp:a", "ntp:b"}
    assert (a.low_ns, a.high_ns) == (-50, 100)


def test_touching_intervals_agree() -> None:
    a = agree([SourceInterval("a", 0, 10), SourceInterval("b", 20, 10)])
    assert a.consistent and a.low_ns == a.high_ns == 10


def test_empty_is_an_error() -> None:
    with pytest.raises(ValueError):
        agree([])


@given(st.floats(-1e6, 1e6), st.lists(st.tuples(st.floats(-1e3, 1e3), st.floats(1, 1e3)),
                                      min_size=1, max_size=8))
def test_true_sources_always_agree_and_hold_the_truth(truth: float,
                                                      errs: list[tuple[float, float]]) -> None:
    # every source whose bound is true contains the truth, so all of them agree
    ivs = [SourceInterval(f"s{i}", truth + e * min(1.0, b / 1e3), b)
           for i, (e, b) in enumerate(errs)]
    a = agree(ivs)
    assert a.consistent
    assert a.low_ns - 1e-6 <= truth <= a.high_ns + 1e-6
