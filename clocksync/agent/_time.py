"""Injected time for the agent: a timer (monotonic seconds) and a sleeper (waits).

The agent schedules with :class:`Timer` and waits with :class:`Sleeper`; both are passed in.
The real ones are :class:`MonotonicTimer` and :class:`EventSleeper` (a stop request wakes
it at once). :class:`SimTime` is both, plus a node clock (:class:`clocksync.Clock`), in
simulated time: a wait advances the time by the wait, so tests drive the agent's loop for
hours in milliseconds and count its waits. Nothing here changes any clock.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

__all__ = ["EventSleeper", "MonotonicTimer", "SimTime", "Sleeper", "Timer"]


@runtime_checkable
class Timer(Protocol):
    """Monotonic seconds (arbitrary origin) for scheduling."""

    def monotonic(self) -> float: ...


@runtime_checkable
class Sleeper(Protocol):
    """Waits of the agent's loop."""

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds``, or less once :meth:`wake` was called (before or during)."""

    def wake(self) -> None:
        """End the current wait and every later one: the loop is stopping (thread-safe,
        safe from a signal handler)."""


@dataclass(frozen=True, slots=True)
class MonotonicTimer:
    """``time.monotonic()``."""

    def monotonic(self) -> float:
        return time.monotonic()


class EventSleeper:
    """Waits on a :class:`threading.Event`: :meth:`wake` (from a signal handler or another
    thread) ends the wait at once, and every later one."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def sleep(self, seconds: float) -> None:
        self._event.wait(max(0.0, seconds))

    def wake(self) -> None:
        self._event.set()


@dataclass
class SimTime:
    """Simulated time: a timer, a sleeper and a node clock that only move when asked.

    ``sleep(s)`` advances the time by ``s`` (not at all after a :meth:`wake`) and records
    the wait in :attr:`waits`; :meth:`advance` moves time (e.g. a source's poll that takes
    a while). The node clock reads ``start_ns`` plus the simulated time elapsed
    (``read_ns`` maps system time 1:1).

    Attributes:
        start_ns: the node clock's reading at simulated time 0 (ns since the epoch).
        waits: every wait asked for (s), in order.
    """

    start_ns: int = 1_767_225_600 * 10**9
    waits: list[float] = field(default_factory=list)
    _elapsed_ns: int = 0
    _woken: bool = False

    def monotonic(self) -> float:
        return self._elapsed_ns / 1e9

    def now_ns(self) -> int:
        return self.start_ns + self._elapsed_ns

    def read_ns(self, system_ns: int) -> int:
        return system_ns

    def advance(self, seconds: float) -> None:
        """Move the simulated time forward by ``seconds`` (>= 0)."""
        if seconds < 0:
            raise ValueError(f"time only moves forward, got {seconds} s")
        self._elapsed_ns += math.ceil(seconds * 1e9)  # a wait > 0 always moves time

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        if not self._woken:
            self.advance(max(0.0, seconds))

    def wake(self) -> None:
        self._woken = True
