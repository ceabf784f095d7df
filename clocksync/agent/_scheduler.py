"""When the agent does what: source polls, refits, republishing, and the loop's next wait.

Pure bookkeeping over injected time (a :class:`~._time.Timer`): no sockets, no fitting.

* Polls: each source has its own interval. After a sample it follows the
  :class:`clocksync.ntp.PollPolicy` (fast while the model is young or its bound wide,
  slower while tight); after a Kiss-o'-Death RATE it lengthens; after a poll without a
  sample it backs off — never shorter than ``min_poll_s`` × factor^(failures in a row),
  up to ``max_poll_s`` (``factor`` is the policy's, 2); a source that must stop (KoD
  DENY/RSTR) is never due again.
* Refits: only when new samples arrived, no more often than ``refit_min_s``, nor than keeps
  fitting under ``fit_cpu_share`` of one core (the last fit's CPU time / the share).
* Republishing: at least every ``republish_s`` once a table was published (never before:
  an agent without a table has nothing to republish, and must not wake for it).
* The loop's next wait: until the earliest of these, a pending store retry, and the next
  status check (every ``status_every_s``); so an idle agent sleeps.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from .._model._status import REPUBLISH_S
from ..ntp import PollPolicy
from ._source import PollResult
from ._time import Timer

__all__ = ["STATUS_EVERY_S", "Scheduler", "SourceSlot"]

T = TypeVar("T")

#: the status (free-running, holdover horizon) is re-evaluated at least this often (s)
STATUS_EVERY_S = 1.0


@dataclass
class SourceSlot:
    """One source's schedule: interval (s), next due time (timer s), failures in a row."""

    poll_s: float
    next_due: float = 0.0
    failures_in_row: int = 0
    stopped: bool = False


class Scheduler:
    """Poll, refit and republish times of one agent (see the module docstring).

    Args:
        policy: poll intervals (``min_poll_s``, ``max_poll_s``, ``target_bound_ns``).
        timer: monotonic seconds.
        sources: how many sources (slot ``i`` belongs to source ``i``).
        refit_min_s: shortest interval between refits (s).
        fit_cpu_share: share of one core fitting may use (0..1].
        republish_s: longest interval between publishes of an unchanged table (s).
        cpu_time: CPU seconds of this process (default ``time.process_time``).
    """

    def __init__(self, policy: PollPolicy, timer: Timer, sources: int, *,
                 refit_min_s: float, fit_cpu_share: float, republish_s: float = REPUBLISH_S,
                 status_every_s: float = STATUS_EVERY_S,
                 cpu_time: Callable[[], float] = time.process_time) -> None:
        self.policy = policy
        self.timer = timer
        self.slots = [SourceSlot(policy.min_poll_s) for _ in range(sources)]
        self.refit_min_s = refit_min_s
        self.fit_cpu_share = fit_cpu_share
        self.republish_s = republish_s
        self.status_every_s = status_every_s
        self._cpu_time = cpu_time
        self.next_refit = -math.inf
        self.last_publish: float | None = None

    # -- polls --------------------------------------------------------------------------
    def due(self, now: float) -> list[int]:
        """The sources to poll now (indices), in order."""
        return [i for i, s in enumerate(self.slots) if not s.stopped and now >= s.next_due]

    def polled(self, i: int, result: PollResult, *, bound_ns: float, samples: int) -> float:
        """Record source ``i``'s poll; returns its next interval (s).

        ``bound_ns``: the model's bound now (inf without a model); ``samples``: in the log.
        """
        slot = self.slots[i]
        policy = self.policy
        if result.sample is not None:
            slot.failures_in_row = 0
        else:
            slot.failures_in_row += 1
        if result.stop:
            slot.stopped = True
        if result.rate_limited:
            slot.poll_s = policy.after_rate_limit(slot.poll_s)
        elif result.sample is None:  # back off: one factor per failure in a row
            backoff_s = policy.min_poll_s * policy.factor ** min(slot.failures_in_row, 64)
            slot.poll_s = min(policy.max_poll_s, max(slot.poll_s, backoff_s))
        else:
            slot.poll_s = policy.next_poll_s(slot.poll_s, bound_ns=bound_ns, samples=samples)
        slot.next_due = self.timer.monotonic() + slot.poll_s
        return slot.poll_s

    def poll_s(self) -> float:
        """The longest interval of the sources still polled (``max_poll_s`` with none)."""
        active = [s.poll_s for s in self.slots if not s.stopped]
        return max(active) if active else self.policy.max_poll_s

    # -- refits -------------------------------------------------------------------------
    def refit_due(self, now: float, new_samples: bool) -> bool:
        return new_samples and now >= self.next_refit

    def fit(self, run: Callable[[], T]) -> T:
        """Run a fit, measure its CPU time and schedule the next refit from it."""
        started_cpu, started = self._cpu_time(), self.timer.monotonic()
        try:
            return run()
        finally:
            cost_s = max(0.0, self._cpu_time() - started_cpu)
            self.next_refit = started + max(self.refit_min_s, cost_s / self.fit_cpu_share)

    # -- publishing ---------------------------------------------------------------------
    def published(self, now: float) -> None:
        self.last_publish = now

    def republish_due(self, now: float) -> bool:
        return self.last_publish is not None and now >= self.last_publish + self.republish_s

    # -- the loop -----------------------------------------------------------------------
    def wait_s(self, now: float, *, new_samples: bool, retry_at: float | None) -> float:
        """Seconds until something is due (never negative; at most ``status_every_s``)."""
        due = [s.next_due for s in self.slots if not s.stopped]
        if retry_at is not None:
            due.append(retry_at)
        if new_samples:
            due.append(self.next_refit)
        if self.last_publish is not None:
            due.append(self.last_publish + self.republish_s)
        due.append(now + self.status_every_s)
        return max(0.0, min(due) - now)
