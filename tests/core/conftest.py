"""Fixtures for the core tests: simulated clocks with known truth."""

from __future__ import annotations

import numpy as np
import pytest

from clocksync import SimClock
from clocksync.testing import LinkModel, simulate_samples

T0 = 1_767_225_600 * 10**9


@pytest.fixture
def stepped_clock() -> SimClock:
    return SimClock(t0_ns=T0, offset0_ns=3e6, skew_ppm=120.0, wander_ppb_per_s=10.0,
                    span_s=7200, steps=((T0 + 1800 * 10**9, 5e5),), seed=3)


@pytest.fixture
def stepped_samples(stepped_clock: SimClock):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(1)
    return simulate_samples(stepped_clock, "n1", T0, 3600, 16, LinkModel(), rng,
                            gaps_s=((2400, 2700),))
