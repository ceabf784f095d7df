"""The robust line: numpy Newton solver against scipy's ``least_squares(loss="soft_l1")`` (the same
objective), and the estimate it gives on samples with queueing spikes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize

from clocksync._fit._robust import (  # tests the private module clocksync._fit._robust
    fit_line,
    soft_l1_line,
)


def _scipy(x: np.ndarray, y: np.ndarray, w: np.ndarray, scale: float, a0: float,
           s0: float) -> tuple[float, float, np.ndarray]:
    sol = optimize.least_squares(lambda p: (y - p[0] - p[1] * x) * w, np.array([a0, s0]),
                                 loss="soft_l1", f_scale=scale, method="trf",
                                 xtol=1e-14, ftol=1e-14, gtol=1e-14)
    return float(sol.x[0]), float(sol.x[1]), np.asarray(sol.jac)


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(3, 300),
       outliers=st.floats(0.0, 0.4))
def test_newton_matches_scipy_least_squares(seed: int, n: int, outliers: float) -> None:
    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(-1800.0, 1800.0, n))
    dist = rng.uniform(5e3, 5e4, n)
    y = 300.0 + 0.02 * x + rng.normal(0.0, 1.0, n) * dist * 0.2
    spikes = rng.random(n) < outliers
    y[spikes] += rng.exponential(20.0, spikes.sum()) * dist[spikes]  # queueing: one-sided
    w = 1.0 / dist
    scale = max(float(np.median(np.abs(y * w))), 1e-3)
    a, slope, jac = soft_l1_line(x, y, w, scale, 0.0, 0.0)
    a_ref, slope_ref, jac_ref = _scipy(x, y, w, scale, 0.0, 0.0)

    def cost(a_: float, s_: float) -> float:
        z = ((y - a_ - s_ * x) * w / scale) ** 2
        return float(np.sum(2.0 * (np.sqrt(1.0 + z) - 1.0)))

    # same minimum of the same convex cost (ours may be a hair lower: tighter tolerance)
    assert cost(a, slope) <= cost(a_ref, slope_ref) * (1 + 1e-9) + 1e-12
    span = float(np.ptp(x)) or 1.0
    assert abs(a - a_ref) <= 1e-4 * float(np.median(dist)) + 1e-6 * abs(a_ref)
    assert abs(slope - slope_ref) * span <= 1e-4 * float(np.median(dist)) + 1e-6 * abs(a_ref)
    # the covariance convention: J^T J of the loss-scaled Jacobian, as scipy reports it
    # (scipy stops at its own tolerance, so the weights differ in the last digits)
    ours, ref = jac.T @ jac, jac_ref.T @ jac_ref
    scale_ = np.sqrt(np.outer(np.diag(ref), np.diag(ref)))
    np.testing.assert_allclose(ours / scale_, ref / scale_, atol=1e-2)


def test_spikes_do_not_drag_the_line() -> None:
    rng = np.random.default_rng(7)
    t = np.arange(600, dtype=np.float64)
    dist = np.full(600, 20_000.0)
    off = 1_000.0 + 0.5 * t + rng.normal(0.0, 2_000.0, 600)
    off[::10] += 2_000_000.0  # every tenth sample sat in a queue for 2 ms
    fit = fit_line(t, off, dist)
    plain = np.polyfit(t, off, 1)
    assert abs(fit.slope_ns_per_s - 0.5) < abs(plain[0] - 0.5) / 4
    assert abs(fit.slope_ns_per_s - 0.5) < 3 * fit.sigma_slope_ns_per_s
    # least squares would be pulled up by the mean spike, 200 µs; soft-L1 by a fraction
    offset_at_0 = fit.offset_ns + fit.slope_ns_per_s * (0 - fit.anchor_s)
    assert abs(offset_at_0 - 1_000.0) < 200_000.0 / 5
    assert fit.sigma_slope_ns_per_s > 0


@pytest.mark.parametrize("n", [1, 2])
def test_too_few_samples_for_a_robust_fit(n: int) -> None:
    fit = fit_line(np.arange(n, dtype=np.float64), np.zeros(n), np.full(n, 10.0))
    assert fit.used == n
    assert fit.sigma_offset_ns == 10.0
