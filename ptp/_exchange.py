"""E2E exchange arithmetic (IEEE 1588-2008 11.3) and the delay filter. Pure math, no I/O.

Timestamps (ns)::

    t1  master sends Sync          (master = reference time; Sync/Follow_Up)
    t2  slave receives Sync        (local time)
    t3  slave sends Delay_Req      (local time)
    t4  master receives Delay_Req  (reference time; Delay_Resp)

with ``c_ms`` = correctionField of Sync (+ Follow_Up) and ``c_sm`` = correctionField of the
Delay_Resp (residence times of transparent clocks, subtracted from the path).

Sign convention: **offset = reference - local** (positive: the local clock is behind). That is
the *negative* of ptp4l's ``master offset`` (local - master, 11.2 ``offsetFromMaster``).

Guaranteed interval. With causal timestamps (a TX stamp is never later than the departure,
an RX stamp never earlier than the arrival) both one-way delays are >= 0, so at ``t2``::

    lower = t1 + c_ms - t2                                    (the Sync cannot arrive early)
    upper = t4 - c_sm - t3 + max_skew * |t3 - t2|             (nor the Delay_Req)

where the last term allows the local clock to drift between ``t2`` and ``t3``. The interval
is ``round_trip + skew term`` wide; asymmetry can put the truth anywhere inside it, so no
estimate from one exchange can claim less than half of it.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass

__all__ = ["DelayFilter", "Exchange", "Measurement", "RateEstimator", "measure"]


@dataclass(frozen=True, slots=True)
class Exchange:
    """One complete Sync (+ Follow_Up) / Delay_Req / Delay_Resp exchange.

    Attributes:
        t1_ns: Sync departure, reference time (originTimestamp or Follow_Up's precise one).
        t2_ns: Sync arrival, local time.
        t3_ns: Delay_Req departure, local time.
        t4_ns: Delay_Req arrival, reference time (Delay_Resp's receiveTimestamp).
        c_ms_ns: correctionField of Sync + Follow_Up (ns).
        c_sm_ns: correctionField of the Delay_Resp (ns).
    """

    t1_ns: int
    t2_ns: int
    t3_ns: int
    t4_ns: int
    c_ms_ns: float = 0.0
    c_sm_ns: float = 0.0

    @property
    def master_to_slave_ns(self) -> float:
        """Sync path as measured: ``t2 - t1 - c_ms`` (ns; true delay plus the offset)."""
        return self.t2_ns - self.t1_ns - self.c_ms_ns

    @property
    def slave_to_master_ns(self) -> float:
        """Delay_Req path as measured: ``t4 - t3 - c_sm`` (ns; true delay minus the offset)."""
        return self.t4_ns - self.t3_ns - self.c_sm_ns

    @property
    def round_trip_ns(self) -> float:
        """Both paths: ``2 * meanPathDelay`` (ns)."""
        return self.master_to_slave_ns + self.slave_to_master_ns

    def round_trip_at_rate_ns(self, rate_ratio: float) -> float:
        """The round trip with the local turnaround ``t3 - t2`` converted to master time.

        ``rate_ratio`` is local frequency / master frequency (1 + y). A local clock off by
        ``y`` shifts the plain round trip by ``-y x (t3 - t2)``: 10 µs for 100 ppm over a
        100 ms turnaround. IEEE 1588 and ptp4l (``tsproc``) correct it the same way.
        """
        return (self.t4_ns - self.c_sm_ns - self.t1_ns - self.c_ms_ns) - (
            self.t3_ns - self.t2_ns
        ) / rate_ratio

    @property
    def mean_path_delay_ns(self) -> float:
        """meanPathDelay (11.3.2): half the round trip (ns)."""
        return self.round_trip_ns / 2.0

    @property
    def offset_ns(self) -> float:
        """Reference - local at ``t2`` from this exchange alone (ns); = -offsetFromMaster."""
        return (self.slave_to_master_ns - self.master_to_slave_ns) / 2.0

    @property
    def turnaround_ns(self) -> int:
        """``|t3 - t2|``: how long the local clock ran between Sync arrival and Delay_Req."""
        return abs(self.t3_ns - self.t2_ns)


@dataclass(frozen=True, slots=True)
class Measurement:
    """An offset at ``t_local_ns`` with its guaranteed half-width and the delays behind it.

    Attributes:
        t_local_ns: local time the offset refers to (the Sync's arrival, t2).
        offset_ns: reference - local (ns).
        bound_ns: the truth lies in ``offset_ns ± bound_ns``.
        round_trip_ns: this exchange's ``2 * meanPathDelay`` (ns).
        mean_path_delay_ns: the filtered meanPathDelay the offset used (ns).
        lower_ns, upper_ns: the guaranteed interval of this exchange (ns).
    """

    t_local_ns: int
    offset_ns: float
    bound_ns: float
    round_trip_ns: float
    mean_path_delay_ns: float
    lower_ns: float
    upper_ns: float


def measure(
    ex: Exchange,
    filtered_delay_ns: float,
    *,
    max_skew_ppm: float,
    timestamp_error_ns: float,
) -> Measurement:
    """Offset at ``t2`` as ``t1 + c_ms + filtered meanPathDelay - t2`` (ptp4l's estimator),
    clipped into the exchange's guaranteed interval, with the bound that interval implies.

    Args:
        ex: the exchange.
        filtered_delay_ns: meanPathDelay from :class:`DelayFilter` (ns).
        max_skew_ppm: largest frequency error assumed for the local clock (ppm); it widens
            the interval by ``max_skew * |t3 - t2|``.
        timestamp_error_ns: added to the bound for timestamp quantization and the clock
            mapping (ns).
    """
    lower = -ex.master_to_slave_ns
    upper = ex.slave_to_master_ns + max_skew_ppm * 1e-6 * ex.turnaround_ns
    if upper < lower:
        # Non-causal stamps (negative round trip): the stamps are off by at least the gap;
        # take the midpoint and let the gap widen the bound.
        estimate = (lower + upper) / 2.0
        bound = (lower - upper) / 2.0 + timestamp_error_ns
    else:
        estimate = min(max(lower + filtered_delay_ns, lower), upper)
        bound = max(estimate - lower, upper - estimate) + timestamp_error_ns
    return Measurement(
        t_local_ns=ex.t2_ns,
        offset_ns=estimate,
        bound_ns=bound,
        round_trip_ns=ex.round_trip_ns,
        mean_path_delay_ns=filtered_delay_ns,
        lower_ns=lower,
        upper_ns=upper,
    )


class DelayFilter:
    """meanPathDelay filter over the last ``window`` exchanges, with outlier rejection.

    ``kind`` is ``"median"`` (like ptp4l's moving median) or ``"min"``. An exchange whose
    round trip exceeds ``outlier_factor`` x the window's median round trip is an outlier:
    :meth:`add` returns ``False`` and it does not enter the delay estimate (it still counts
    for the median round trip, so a lasting change of the path is followed). Exchanges
    added with ``estimate=False`` only count for the outlier median.
    """

    def __init__(self, window: int = 8, kind: str = "median", outlier_factor: float = 3.0):
        if window < 1:
            raise ValueError(f"DelayFilter.window: must be >= 1, got {window}")
        if kind not in ("median", "min"):
            raise ValueError(f"DelayFilter.kind: 'median' or 'min', got {kind!r}")
        if outlier_factor <= 1.0:
            raise ValueError(f"DelayFilter.outlier_factor: must be > 1, got {outlier_factor}")
        self.kind = kind
        self.outlier_factor = outlier_factor
        self._round_trips: deque[float] = deque(maxlen=window)
        self._delays: deque[float] = deque(maxlen=window)

    def add(self, round_trip_ns: float, *, estimate: bool = True) -> bool:
        """Add one exchange's round trip (ns); ``False`` when it is rejected as an outlier."""
        ok = True
        if len(self._round_trips) >= 3:
            median = statistics.median(self._round_trips)
            ok = round_trip_ns <= self.outlier_factor * max(median, 1.0)
        self._round_trips.append(round_trip_ns)
        if ok and estimate:
            self._delays.append(round_trip_ns / 2.0)
        return ok

    def restart_estimate(self, round_trip_ns: float) -> None:
        """Base the estimate on this (already added) round trip alone from now on."""
        self._delays.clear()
        self._delays.append(round_trip_ns / 2.0)

    @property
    def delay_ns(self) -> float | None:
        """The filtered meanPathDelay (ns), ``None`` before the first accepted exchange."""
        if not self._delays:
            return None
        if self.kind == "min":
            return min(self._delays)
        return float(statistics.median(self._delays))


class RateEstimator:
    """The local clock's rate relative to the master from a stream of Syncs.

    ``rate_ratio = (t2_last - t2_first) / (t1_last - t1_first)`` over the last ``window``
    Syncs, once they span ``min_span_s``; 1.0 before. Its error is about the Sync delay
    jitter over the span (1 µs / 4 s = 0.25 ppm). Only the path-delay *estimate* uses it;
    bounds rely on ``max_skew_ppm`` alone.
    """

    def __init__(self, window: int = 64, min_span_s: float = 1.0) -> None:
        self.min_span_s = min_span_s
        self._points: deque[tuple[float, int]] = deque(maxlen=window)

    def add(self, t1_ns: float, t2_ns: int) -> None:
        """One Sync: master origin time (corrections applied) and local arrival time."""
        if self._points and t1_ns <= self._points[-1][0]:
            self._points.clear()  # master time went backwards: a new master or a step
        self._points.append((t1_ns, t2_ns))

    def clear(self) -> None:
        self._points.clear()

    @property
    def ready(self) -> bool:
        """Whether the Syncs span ``min_span_s`` (before that the ratio is 1.0)."""
        return len(self._points) >= 2 and (
            self._points[-1][0] - self._points[0][0] >= self.min_span_s * 1e9
        )

    @property
    def rate_ratio(self) -> float:
        """Local / master frequency (1.0 until :attr:`ready`)."""
        if not self.ready:
            return 1.0
        (a1, a2), (b1, b2) = self._points[0], self._points[-1]
        return (b2 - a2) / (b1 - a1)
