"""Exchange arithmetic, guaranteed bounds and the delay filter against synthetic truth."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ptp import DelayFilter, Exchange, measure


def make_exchange(
    theta_ns: float,
    d_ms_ns: float,
    d_sm_ns: float,
    *,
    turnaround_ns: int = 1_000_000,
    skew_ppm: float = 0.0,
    residence_ms_ns: float = 0.0,
    residence_sm_ns: float = 0.0,
    t1_ns: int = 1_000_000_000_000,  # small enough for exact float arithmetic
) -> Exchange:
    """Timestamps of an exchange whose truth is known.

    ``theta_ns`` is reference - local at the Sync's arrival; the local clock runs fast by
    ``skew_ppm`` so the offset shrinks during the turnaround. Transparent clocks add
    residence times to the paths and report them in the correctionFields.
    """
    t2_ref = t1_ns + residence_ms_ns + d_ms_ns
    t2 = round(t2_ref - theta_ns)
    t3 = t2 + turnaround_ns
    theta3 = theta_ns - skew_ppm * 1e-6 * turnaround_ns
    t4 = round(t3 + theta3 + d_sm_ns + residence_sm_ns)
    return Exchange(t1_ns, t2, t3, t4, residence_ms_ns, residence_sm_ns)


def test_offset_and_delay_follow_ieee_1588_11_3() -> None:
    ex = make_exchange(theta_ns=5_000, d_ms_ns=2_000, d_sm_ns=2_000)
    assert ex.offset_ns == 5_000
    assert ex.mean_path_delay_ns == 2_000
    assert ex.round_trip_ns == 4_000
    # ptp4l's offsetFromMaster = t2 - t1 - meanPathDelay = local - master: our negative
    assert ex.t2_ns - ex.t1_ns - ex.mean_path_delay_ns == -ex.offset_ns


def test_asymmetry_moves_offset_by_half_of_it() -> None:
    ex = make_exchange(theta_ns=0, d_ms_ns=3_000, d_sm_ns=1_000)
    assert ex.offset_ns == pytest.approx(-1_000)  # (d_sm - d_ms) / 2
    m = measure(ex, ex.mean_path_delay_ns, max_skew_ppm=0, timestamp_error_ns=0)
    assert abs(m.offset_ns - 0) <= m.bound_ns


def test_correction_fields_remove_residence_times() -> None:
    ex = make_exchange(700, 1_000, 1_000, residence_ms_ns=50_000.5, residence_sm_ns=30_000.25)
    assert ex.offset_ns == pytest.approx(700, abs=1)
    assert ex.mean_path_delay_ns == pytest.approx(1_000, abs=1)


def test_filtered_delay_outside_the_interval_is_clipped() -> None:
    ex = make_exchange(0, 1_000, 1_000, turnaround_ns=0)
    m = measure(ex, filtered_delay_ns=1e6, max_skew_ppm=0, timestamp_error_ns=0)
    assert m.offset_ns == pytest.approx(m.upper_ns)
    assert m.lower_ns <= 0 <= m.upper_ns
    assert m.bound_ns == pytest.approx(m.upper_ns - m.lower_ns)


def test_non_causal_stamps_widen_the_bound() -> None:
    ex = Exchange(t1_ns=1_000, t2_ns=900, t3_ns=950, t4_ns=700)  # negative round trip
    m = measure(ex, 0.0, max_skew_ppm=0, timestamp_error_ns=10)
    assert ex.round_trip_ns < 0
    assert m.bound_ns == pytest.approx(-ex.round_trip_ns / 2 + 10)


@settings(max_examples=500, deadline=None)
@given(
    theta_ns=st.floats(-1e9, 1e9),
    d_ms_ns=st.floats(0, 1e6),
    d_sm_ns=st.floats(0, 1e6),
    turnaround_ns=st.integers(0, 50_000_000),
    skew_ppm=st.floats(-500, 500),
    filtered_frac=st.floats(0, 3),
)
def test_truth_always_inside_the_bound(
    theta_ns: float,
    d_ms_ns: float,
    d_sm_ns: float,
    turnaround_ns: int,
    skew_ppm: float,
    filtered_frac: float,
) -> None:
    """Any asymmetry, any skew within max_skew_ppm, any (even bad) filtered delay."""
    ex = make_exchange(theta_ns, d_ms_ns, d_sm_ns, turnaround_ns=turnaround_ns, skew_ppm=skew_ppm)
    m = measure(ex, filtered_frac * ex.mean_path_delay_ns, max_skew_ppm=500, timestamp_error_ns=2)
    assert abs(m.offset_ns - theta_ns) <= m.bound_ns
    # and never tighter than physics allows: half the measured round trip
    assert m.bound_ns >= ex.round_trip_ns / 2


def test_skew_beyond_the_assumption_can_break_the_bound() -> None:
    """The skew term is what keeps the bound honest: without it a fast clock escapes."""
    ex = make_exchange(0, 1_000, 1_000, turnaround_ns=10_000_000, skew_ppm=400)
    loose = measure(ex, 0, max_skew_ppm=0, timestamp_error_ns=0)
    safe = measure(ex, 0, max_skew_ppm=500, timestamp_error_ns=0)
    assert abs(loose.offset_ns) > loose.bound_ns
    assert abs(safe.offset_ns) <= safe.bound_ns


def test_delay_filter_median_min_and_outliers() -> None:
    med = DelayFilter(window=5, kind="median", outlier_factor=3.0)
    mini = DelayFilter(window=5, kind="min", outlier_factor=3.0)
    for rt in (4_000, 4_400, 3_800, 4_200):
        assert med.add(rt) and mini.add(rt)
    assert med.delay_ns == 2_050  # median of 2000, 2200, 1900, 2100
    assert mini.delay_ns == 1_900
    assert not med.add(50_000)  # 12x the median round trip: outlier
    assert med.delay_ns == 2_050
    assert DelayFilter().delay_ns is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"window": 0}, "window"), ({"kind": "mean"}, "kind"), ({"outlier_factor": 1.0}, "outlier")],
)
def test_delay_filter_rejects_bad_options(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        DelayFilter(**kwargs)  # type: ignore[arg-type]


def test_round_trip_at_rate_removes_the_skew_over_the_turnaround() -> None:
    ex = make_exchange(0, 2_000, 2_000, turnaround_ns=100_000_000, skew_ppm=100)
    assert ex.round_trip_ns == pytest.approx(4_000 - 10_000)  # 100 ppm x 100 ms
    assert ex.round_trip_at_rate_ns(1 + 100e-6) == pytest.approx(4_000, abs=1)
    assert ex.round_trip_at_rate_ns(1.0) == ex.round_trip_ns


def test_rate_estimator_needs_a_span_and_restarts_on_a_new_timeline() -> None:
    from ptp import RateEstimator

    est = RateEstimator(min_span_s=1.0)
    assert est.rate_ratio == 1.0
    for i in range(5):  # local runs 50 ppm fast, Syncs every 0.25 s
        t1 = 10**12 + i * 250_000_000
        est.add(t1, round(t1 * (1 + 50e-6)) + 700)
    assert est.rate_ratio == pytest.approx(1 + 50e-6, abs=1e-9)
    est.add(10**11, 5)  # master time went back: a new master
    assert est.rate_ratio == 1.0
