"""Exchange arithmetic: signs, the bound formula, causality property, min-delay selection."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clocksync.net import StampKind
from clocksync.ntp import (
    STAMP_ERROR_NS,
    Exchange,
    NtpRejectError,
    RejectReason,
    exchange_bound_ns,
    select_min_delay,
)

T0 = 1_800_000_000_000_000_000


def _exchange(theta_ns: int, out_ns: int, back_ns: int, hold_ns: int) -> Exchange:
    """Local clock = reference - theta; one-way delays out/back; server holds hold_ns."""
    t1_ref = T0
    t2 = t1_ref + out_ns
    t3 = t2 + hold_ns
    t4_ref = t3 + back_ns
    return Exchange(t1_ns=t1_ref - theta_ns, t2_ns=t2, t3_ns=t3, t4_ns=t4_ref - theta_ns)


def test_local_clock_behind_gives_positive_offset() -> None:
    ex = _exchange(theta_ns=5_000, out_ns=100, back_ns=100, hold_ns=30)
    assert ex.offset_ns == 5_000.0
    assert ex.delay_ns == 200.0
    assert ex.t_mid_ns == ex.t1_ns + 115


def test_asymmetry_shifts_offset_by_half_the_difference() -> None:
    ex = _exchange(theta_ns=0, out_ns=1_100, back_ns=100, hold_ns=0)
    assert ex.offset_ns == 500.0
    assert ex.delay_ns == 1_200.0


@given(st.integers(-10**12, 10**12), st.integers(0, 10**9), st.integers(0, 10**9),
       st.integers(0, 10**9))
def test_truth_always_within_half_delay(theta: int, out: int, back: int, hold: int) -> None:
    ex = _exchange(theta, out, back, hold)
    assert abs(ex.offset_ns - theta) <= ex.delay_ns / 2


def test_bound_formula_and_stamp_kinds() -> None:
    ex = _exchange(theta_ns=0, out_ns=4_000, back_ns=6_000, hold_ns=1_000)
    kernel = exchange_bound_ns(ex, root_delay_ns=2_000, root_dispersion_ns=300,
                               server_precision_ns=64, tx_kind=StampKind.KERNEL,
                               rx_kind=StampKind.KERNEL, freq_tolerance_ppm=500)
    freq = 500e-6 * 11_000
    assert kernel == pytest.approx(10_000 / 2 + 2_000 / 2 + 300 + 64 + freq
                                   + STAMP_ERROR_NS[StampKind.KERNEL])
    mixed = exchange_bound_ns(ex, root_delay_ns=2_000, root_dispersion_ns=300,
                              server_precision_ns=64, tx_kind=StampKind.USER,
                              rx_kind=StampKind.KERNEL, freq_tolerance_ppm=500)
    assert mixed - kernel == pytest.approx(
        (STAMP_ERROR_NS[StampKind.USER] - STAMP_ERROR_NS[StampKind.KERNEL]) / 2)
    assert STAMP_ERROR_NS[StampKind.USER] > STAMP_ERROR_NS[StampKind.KERNEL]


@pytest.mark.parametrize(("t1", "t2", "t3", "t4"), [
    (10, 20, 30, 5),      # t4 < t1
    (10, 30, 20, 40),     # t3 < t2
    (10, 20, 100, 40),    # server held it longer than the whole exchange: negative delay
])
def test_absurd_exchanges_are_rejected(t1: int, t2: int, t3: int, t4: int) -> None:
    with pytest.raises(NtpRejectError) as info:
        Exchange(T0 + t1, T0 + t2, T0 + t3, T0 + t4)
    assert info.value.reason is RejectReason.ABSURD_TIMESTAMPS


def test_select_min_delay_first_on_ties() -> None:
    assert select_min_delay(["a", "b", "c", "d"], [5.0, 2.0, 9.0, 2.0]) == "b"
    with pytest.raises(ValueError):
        select_min_delay([], [])
    with pytest.raises(ValueError):
        select_min_delay(["a"], [1.0, 2.0])
