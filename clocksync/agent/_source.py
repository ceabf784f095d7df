"""The source protocol of the agent: every source (NTP server, peer, chronyd, PTP, ptp4l,
or :class:`MemorySource` in tests) is polled the same way and answers a :class:`PollResult`.

Offsets: reference - local (ns); positive = the local clock is behind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from .._model._sample import Sample

__all__ = ["FAILURE_REASONS", "MemorySource", "PollResult", "Source"]

#: error reasons that mean "no answer" (nothing came back, or the local tool failed); every
#: other reason is an answer that was rejected (a bad reply, a falseticker's sample, ...)
FAILURE_REASONS = frozenset({"timeout", "network", "chronyc", "internal", "ptp4l", "stale",
                             "nts_tls", "nts_ke"})


@dataclass(frozen=True, slots=True)
class PollResult:
    """What one poll of a source produced.

    Attributes:
        sample: the sample (None when the poll failed).
        errors: error kinds seen, e.g. ``("timeout", "bad_origin")``; NTP reject reasons
            use :class:`clocksync.ntp.RejectReason` values.
        reachable: the source answered at all (a rejected reply counts as an answer).
        rate_limited: the server sent a Kiss-o'-Death RATE: poll less often.
        stop: the source must not be polled again (KoD DENY/RSTR, unusable setup).
        message: a human-readable note on the last error.
        nts_failures: NTS failures since the previous poll, one entry per failure, by
            :class:`clocksync.ntp.NtsFailure` value (tls, ke, nak, auth, unique_id).
    """

    sample: Sample | None
    errors: tuple[str, ...] = ()
    reachable: bool = True
    rate_limited: bool = False
    stop: bool = False
    message: str = ""
    nts_failures: tuple[str, ...] = ()


@runtime_checkable
class Source(Protocol):
    """A measurement source of one node."""

    name: str

    def poll(self) -> PollResult:
        """Measure once (may block up to the source's timeout)."""

    def close(self) -> None:
        """Release sockets."""


class MemorySource:
    """A source that answers from a script (tests, simulations): each poll takes the next
    :class:`PollResult` (or calls the next function for one), and after the script ends,
    ``then`` — a result, a function, or ``None`` for "unreachable" timeouts.

    ``polls`` counts the polls; ``closed`` tells whether :meth:`close` was called.
    """

    def __init__(self, name: str,
                 script: Iterable[PollResult | Callable[[], PollResult]] = (),
                 then: PollResult | Callable[[], PollResult] | None = None) -> None:
        self.name = name
        self._script: Iterator[PollResult | Callable[[], PollResult]] = iter(script)
        self._then = then
        self.polls = 0
        self.closed = False

    def poll(self) -> PollResult:
        self.polls += 1
        step = next(self._script, self._then)
        if step is None:
            return PollResult(None, ("timeout",), reachable=False, message="no reply")
        return step() if callable(step) else step

    def close(self) -> None:
        self.closed = True
