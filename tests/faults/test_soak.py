"""The soak, short: ``lab/soak.py`` for 48 s with a fault every 8 s — a warm-up, then each of
the five faults once (the real one runs 10 minutes: ``python -m lab.soak``). A real agent
process at a 0.2 s poll must survive every fault of the rotation with flat RSS and open fds,
recover each time, exit 0 on SIGTERM and lose no sample."""

from __future__ import annotations

import pytest

from lab.soak import render, run_soak


@pytest.mark.soak
def test_soak_short() -> None:
    result = run_soak(duration_s=48.0, fault_every_s=8.0, probe_every_s=1.0,
                      window_samples=24)  # full within the 8 s warm-up (~4 samples/s)
    report = render(result)
    print(report)
    assert len(result.events) >= 4, report  # a fault every 8 s after the warm-up
    failed = [name for name, ok in result.checks.items() if not ok]
    assert not failed, report
