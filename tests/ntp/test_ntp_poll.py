"""Adaptive poll policy: fast while young or wide, slow while tight, within limits."""

from __future__ import annotations

import pytest

from clocksync import InputError
from clocksync.ntp import PollPolicy

POLICY = PollPolicy(min_poll_s=1, max_poll_s=64, target_bound_ns=100_000, young_samples=8)


def test_young_model_polls_at_minimum() -> None:
    assert POLICY.next_poll_s(32, bound_ns=10.0, samples=3) == 1


def test_wide_bound_shortens_tight_bound_lengthens_between_holds() -> None:
    assert POLICY.next_poll_s(16, bound_ns=150_000, samples=20) == 8
    assert POLICY.next_poll_s(16, bound_ns=20_000, samples=20) == 32
    assert POLICY.next_poll_s(16, bound_ns=80_000, samples=20) == 16


def test_limits_hold() -> None:
    assert POLICY.next_poll_s(64, bound_ns=1.0, samples=100) == 64
    assert POLICY.next_poll_s(1, bound_ns=1e9, samples=100) == 1
    assert POLICY.next_poll_s(16, bound_ns=float("inf"), samples=100) == 1


def test_rate_kiss_backs_off() -> None:
    assert POLICY.after_rate_limit(4) == 8
    assert POLICY.after_rate_limit(64) == 64


@pytest.mark.parametrize("kwargs", [{"min_poll_s": 0}, {"max_poll_s": 0.5}, {"factor": 1.0},
                                    {"target_bound_ns": -1.0}, {"young_samples": -1}])
def test_bad_configuration_names_the_field(kwargs: dict[str, float]) -> None:
    field = next(iter(kwargs))
    with pytest.raises(InputError, match=f"PollPolicy.{field}"):
        PollPolicy(**kwargs)  # type: ignore[arg-type]
