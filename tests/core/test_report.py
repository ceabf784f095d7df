"""Skew report status on the reader side: the agent's published status while the table is
fresh, free-running once the agent stopped republishing."""

from __future__ import annotations

import dataclasses

from clocksync import Corrector, fit_table
from clocksync._report import FREE_RUNNING_POLLS, REPUBLISH_S, skew_rows


def test_status_follows_the_publisher_while_fresh(stepped_samples) -> None:  # type: ignore[no-untyped-def]
    table = fit_table(stepped_samples)
    last = int(table.last_sample_local_ns or 0)
    poll_s = 16.0
    # refits are rate-limited: the last fitted sample is old, but the agent is alive
    now = last + int(20 * poll_s * 1e9)
    fresh = dataclasses.replace(table, status="synchronised", generated_at_ns=now - 10**9,
                                extra={"agent": {"poll_interval_s": poll_s}})
    assert skew_rows(Corrector([fresh]), now)[0].status == "synchronised"
    stale_after_s = FREE_RUNNING_POLLS * poll_s + 2 * REPUBLISH_S
    gone = dataclasses.replace(fresh, generated_at_ns=now - int((stale_after_s + 1) * 1e9))
    assert skew_rows(Corrector([gone]), now)[0].status == "free_running"
    disrupted = dataclasses.replace(gone, status="disrupted")
    assert skew_rows(Corrector([disrupted]), now)[0].status == "disrupted"
