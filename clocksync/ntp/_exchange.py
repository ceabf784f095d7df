"""Exchange arithmetic: four timestamps -> offset, delay and a guaranteed bound. Pure.

Timestamps (ns): ``t1`` request sent (local clock), ``t2`` request received (server clock),
``t3`` reply sent (server clock), ``t4`` reply received (local clock)::

    offset_ns = ((t2 - t1) + (t3 - t4)) / 2      reference - local; > 0: local clock behind
    delay_ns  = (t4 - t1) - (t3 - t2)

Why the bound holds. Causality alone says the request arrived after it left and the reply
after it left, so the true offset θ satisfies ``t3 - t4 < θ < t2 - t1`` — an interval of
width ``delay`` centred on ``offset_ns``, whatever the path asymmetry, provided each TX stamp
is not later than the real departure and each RX stamp not earlier than the real arrival.
Kernel software stamps and our user-space fallbacks both keep that order
(:mod:`clocksync.net`). On top of ``delay/2`` the bound adds:

- ``root_delay/2 + root_dispersion``: the server's own distance to true time;
- the server's precision ``2^precision`` s (its clock reading resolution);
- a stamp error per local stamp kind, halved (each end stamp moves the offset by half its
  error): :data:`STAMP_ERROR_NS` — kernel 100 ns (cross-CPU clock-read disagreement and
  NTP 2^-32 s quantisation), user space 1000 ns (interpreter clock read around the system
  call; the project-wide default timestamping error of a sample);
- frequency error during the exchange: ``freq_tolerance_ppm · 1e-6 · (t4 - t1)`` — the local
  and server clocks may run up to that fast or slow while the exchange is in flight; the
  default is the fit's ``max_skew_ppm`` (1000 ppm, :class:`clocksync.Assumptions`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from .._model._assumptions import Assumptions
from .._model._sample import TIMESTAMP_ERROR_NS, default_bound_ns
from .._model._stamps import StampKind
from ._errors import NtpRejectError, RejectReason

__all__ = [
    "DEFAULT_FREQ_TOLERANCE_PPM",
    "STAMP_ERROR_NS",
    "Exchange",
    "exchange_bound_ns",
    "select_min_delay",
]

#: Worst-case stamp error of one local timestamp, by kind (ns).
STAMP_ERROR_NS: dict[StampKind, float] = {
    StampKind.KERNEL: 100.0,
    StampKind.USER: TIMESTAMP_ERROR_NS,
}
#: Largest frequency error assumed for either clock during one exchange (ppm): the shared
#: ``max_skew_ppm`` default of :class:`clocksync.Assumptions`, as the fit and PTP use.
DEFAULT_FREQ_TOLERANCE_PPM = Assumptions().max_skew_ppm


@dataclass(frozen=True, slots=True)
class Exchange:
    """The four timestamps of one client/server exchange (ns since the Unix epoch).

    Raises:
        NtpRejectError: (``ABSURD_TIMESTAMPS``) ``t4 < t1``, ``t3 < t2`` or a negative delay.
    """

    t1_ns: int
    t2_ns: int
    t3_ns: int
    t4_ns: int

    def __post_init__(self) -> None:
        if self.t4_ns < self.t1_ns:
            raise NtpRejectError(RejectReason.ABSURD_TIMESTAMPS,
                              "reply received before the request was sent (t4 < t1)")
        if self.t3_ns < self.t2_ns:
            raise NtpRejectError(RejectReason.ABSURD_TIMESTAMPS, "t3 < t2")
        if self.delay_ns < 0:
            raise NtpRejectError(RejectReason.ABSURD_TIMESTAMPS,
                              f"negative round-trip delay {self.delay_ns} ns: the server "
                              "held the request longer than the whole exchange took")

    @property
    def offset_ns(self) -> float:
        """Reference minus local time (ns); positive means the local clock is behind."""
        return ((self.t2_ns - self.t1_ns) + (self.t3_ns - self.t4_ns)) / 2.0

    @property
    def delay_ns(self) -> float:
        """Round-trip network delay (ns), server hold time excluded."""
        return float((self.t4_ns - self.t1_ns) - (self.t3_ns - self.t2_ns))

    @property
    def t_mid_ns(self) -> int:
        """Local time halfway between ``t1`` and ``t4``: the instant the offset refers to."""
        return self.t1_ns + (self.t4_ns - self.t1_ns) // 2


def exchange_bound_ns(
    exchange: Exchange,
    *,
    root_delay_ns: float,
    root_dispersion_ns: float,
    server_precision_ns: float,
    tx_kind: StampKind,
    rx_kind: StampKind,
    freq_tolerance_ppm: float = DEFAULT_FREQ_TOLERANCE_PPM,
) -> float:
    """Half-width (ns) of the interval that holds the true offset at ``exchange.t_mid_ns``."""
    stamp_ns = (STAMP_ERROR_NS[tx_kind] + STAMP_ERROR_NS[rx_kind]) / 2.0
    freq_ns = freq_tolerance_ppm * 1e-6 * (exchange.t4_ns - exchange.t1_ns)
    return default_bound_ns(
        exchange.delay_ns,
        root_delay_ns,
        root_dispersion_ns,
        timestamp_error_ns=stamp_ns + server_precision_ns + freq_ns,
    )


_T = TypeVar("_T")


def select_min_delay(items: Sequence[_T], delays_ns: Sequence[float]) -> _T:
    """The item with the smallest delay (the first one on ties): the least queued exchange.

    Raises:
        ValueError: ``items`` is empty or the lengths differ.
    """
    if not items or len(items) != len(delays_ns):
        raise ValueError("select_min_delay: need as many delays as items, at least one")
    best = min(range(len(items)), key=lambda i: delays_ns[i])
    return items[best]
