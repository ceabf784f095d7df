"""The soak, short: ``lab/soak.py`` for 35 s with a fault every 6 s — a warm-up, then each of
the five faults once (the real one runs 10 minutes: ``python -m lab.soak``). A real agent
process at a 0.1 s poll (about as many polls and publishes as 48 s at 0.2 s) must survive
every fault of the rotation with flat RSS and open fds, recover each time, exit 0 on SIGTERM
and lose no sample. Each fault is held 2 s and probed every 0.25 s: at a 0.1 s poll a dead or
stopped server makes the agent free-running within about 1-1.5 s (8 polls' age, or 3 failed
polls), so the probes at 1.5 s and 1.75 s see it."""

from __future__ import annotations

import pytest

from lab.soak import render, run_soak


@pytest.mark.soak
def test_soak_short() -> None:
    result = run_soak(duration_s=35.0, fault_every_s=6.0, probe_every_s=0.25, poll_s=0.1,
                      window_samples=24)  # full within the 6 s warm-up (~5 samples/s)
    report = render(result)
    print(report)
    assert len(result.events) >= 4, report  # a fault every 6 s after the warm-up
    failed = [name for name, ok in result.checks.items() if not ok]
    assert not failed, report
