"""The measure-only E2E slave port as a pure state machine (no sockets, no clocks).

Feed it decoded messages with their local receive times and the local send times of its
Delay_Reqs; it chooses the master (BMCA over Announces), matches Sync/Follow_Up/Delay_Resp
by sequenceId and port identities, applies correctionFields, filters the path delay and
hands back one :class:`PtpResult` per completed exchange. Every time it sees is *local*
time: the I/O layer maps kernel stamps through a :class:`clocksync.Clock` first.

Two kinds of Delay_Req (``PortConfig.cold_every``):

* *tight* ones leave right after the Sync they pair with, so the local clock can drift only
  for that short turnaround: they give the samples and their narrow guaranteed bounds;
* every ``cold_every``-th is *cold*: sent a random 20-60 % of a Sync interval later, like
  ptp4l's randomized requests. Measured on a veth, a packet sent right after one was
  received crosses ~1.3 µs faster than one sent from an idle system (warm caches, awake
  CPUs) — while the master's Sync is always "cold". Filtering the path delay over cold
  exchanges only keeps that artefact out of the offsets; the bounds hold either way.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TypeVar

from clocksync import Assumptions

from ._bmca import AnnounceDataset, ForeignMasters
from ._codec import encode, with_sequence_id
from ._exchange import DelayFilter, Exchange, Measurement, RateEstimator, measure
from ._messages import Announce, DelayReq, DelayResp, FollowUp, PtpMessage, Sync
from ._types import NS_PER_S, PortIdentity, format_clock_identity

__all__ = [
    "REJECT_DUPLICATE",
    "REJECT_NOT_MASTER",
    "REJECT_NO_MASTER",
    "REJECT_WRONG_DOMAIN",
    "REJECT_WRONG_SEQUENCE",
    "DelayReqDue",
    "PortConfig",
    "PtpResult",
    "SlavePort",
]

_V = TypeVar("_V")

#: The project-wide skew assumption (declared once, in :class:`clocksync.Assumptions`).
DEFAULT_MAX_SKEW_PPM = Assumptions().max_skew_ppm

# Reasons a received message is dropped (keys of :attr:`SlavePort.rejected`). Messages that
# are simply not for this slave (other slaves' Delay_Req/Delay_Resp, peer delay, signaling,
# management) are ignored without counting.
#: the message's domainNumber is not :attr:`PortConfig.domain`
REJECT_WRONG_DOMAIN = "wrong_domain"
#: a Sync, Follow_Up or Delay_Resp before any master qualified (BMCA: too few Announces)
REJECT_NO_MASTER = "no_master"
#: a Sync, Follow_Up or Delay_Resp from a port other than the selected master
REJECT_NOT_MASTER = "not_master"
#: a Delay_Resp for us whose sequenceId matches no outstanding Delay_Req (late, replayed)
REJECT_WRONG_SEQUENCE = "wrong_sequence"
#: a Sync or Follow_Up whose sequenceId was already received from this master (replayed)
REJECT_DUPLICATE = "duplicate"


@dataclass(frozen=True, slots=True)
class PortConfig:
    """Options of the measure-only slave (each documented once, with its unit).

    Attributes:
        domain: domainNumber to listen to (0-255); other domains are ignored.
        window: exchanges in the meanPathDelay filter window.
        delay_filter: ``"median"`` (ptp4l's default) or ``"min"``.
        outlier_factor: an exchange whose round trip exceeds this x the window median is
            rejected (> 1).
        max_skew_ppm: assumed bound on the local clock's frequency error (ppm), widens each
            bound by ``max_skew x |t3 - t2|``; default: clocksync's ``max_skew_ppm``
            assumption (``clocksync.Assumptions``), safe for commodity crystals.
        timestamp_error_ns: added to every bound for quantization and clock mapping (ns).
        utc_correct: subtract currentUtcOffset from master times when the master announces
            the PTP (TAI) timescale with a valid offset, so offsets compare with UTC clocks.
        announce_threshold: Announces needed within 4 intervals to qualify a master.
        delay_req_interval_s: Delay_Req spacing until the master's Delay_Resp states
            its logMinDelayReqInterval (s).
        cold_every: every n-th Delay_Req is sent late ("cold") and only those feed the
            path-delay filter; 0 sends all right after the Sync and filters over all.
        emit_cold: also return cold exchanges as results (their bounds are wide: the
            turnaround is tens of ms).
        seed: seed of the cold requests' random send delays.
    """

    domain: int = 0
    window: int = 8
    delay_filter: str = "median"
    outlier_factor: float = 3.0
    max_skew_ppm: float = DEFAULT_MAX_SKEW_PPM
    timestamp_error_ns: float = 50.0
    utc_correct: bool = True
    announce_threshold: int = 2
    delay_req_interval_s: float = 1.0
    cold_every: int = 4
    emit_cold: bool = False
    seed: int | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.domain <= 255:
            raise ValueError(f"PortConfig.domain: 0..255, got {self.domain}")
        if self.max_skew_ppm < 0 or self.timestamp_error_ns < 0:
            raise ValueError("PortConfig.max_skew_ppm/timestamp_error_ns: must be >= 0")
        if self.cold_every < 0 or self.cold_every == 1:
            raise ValueError(f"PortConfig.cold_every: 0 or >= 2, got {self.cold_every}")


@dataclass(frozen=True, slots=True)
class DelayReqDue:
    """A Delay_Req should be sent at ``at_s`` (the caller's monotonic seconds).

    Attributes:
        at_s: when to send (``<=`` now: at once).
        cold: a late, path-delay-only request (see the module docs).
    """

    at_s: float
    cold: bool


@dataclass(frozen=True, slots=True)
class PtpResult:
    """One completed exchange.

    Attributes:
        master: the master port (``clockid-port``, linuxptp style).
        sequence_id: the Delay_Req's sequenceId.
        exchange: the four timestamps (local ones already mapped through the clock).
        measurement: offset (reference - local), bound, delays.
        accepted: ``False`` when the delay filter rejected the exchange as an outlier.
        cold: a late request (wide bound); only returned with ``PortConfig.emit_cold``.
    """

    master: str
    sequence_id: int
    exchange: Exchange
    measurement: Measurement
    accepted: bool
    cold: bool = False


@dataclass
class _Sync:
    t2_ns: int
    correction_ns: float
    origin_ns: int | None  # one-step: the Sync's own originTimestamp


@dataclass
class _Request:
    sync_key: int
    cold: bool
    t3_ns: int | None = None
    t4_ns: int | None = None
    c_sm_ns: float = 0.0


@dataclass
class SlavePort:
    """State of one measure-only slave port (E2E delay mechanism).

    :attr:`rejected` counts dropped messages by reason (the ``REJECT_*`` constants).
    """

    identity: PortIdentity
    config: PortConfig = field(default_factory=PortConfig)
    master: AnnounceDataset | None = None
    rejected: dict[str, int] = field(default_factory=dict)
    _masters: ForeignMasters = field(init=False)
    _filter: DelayFilter = field(init=False)
    _rng: random.Random = field(init=False)
    _rate: RateEstimator = field(default_factory=RateEstimator)
    _rate_master: tuple[bytes, int] | None = None
    _syncs: dict[int, _Sync] = field(default_factory=dict)
    _follow_ups: dict[int, tuple[int, float]] = field(default_factory=dict)
    _requests: dict[int, _Request] = field(default_factory=dict)
    _next_seq: int = 0
    _count: int = 0  # Delay_Reqs sent
    _cold_accepted: int = 0
    _last_req_s: float = float("-inf")
    _pending_until_s: float = float("-inf")  # a cold request is scheduled until then
    _last_sync_seq: int = -1
    _req_template: bytes | None = None
    _req_interval_s: float = 1.0

    def __post_init__(self) -> None:
        self._masters = ForeignMasters(threshold=self.config.announce_threshold)
        self._filter = DelayFilter(
            self.config.window, self.config.delay_filter, self.config.outlier_factor
        )
        self._rng = random.Random(self.config.seed)
        self._req_interval_s = self.config.delay_req_interval_s

    @property
    def rate_ratio(self) -> float:
        """Measured local / master frequency (1.0 until Syncs span a second)."""
        return self._rate.rate_ratio

    # -- inputs -----------------------------------------------------------------------

    def on_message(
        self, msg: PtpMessage, rx_local_ns: int, now_s: float
    ) -> PtpResult | DelayReqDue | None:
        """Handle a received message.

        Returns a :class:`PtpResult` when it completes an exchange, a :class:`DelayReqDue`
        when it is a Sync that calls for a Delay_Req (get it from :meth:`delay_req` at
        that time), else ``None``.
        """
        if int(msg.domainNumber) != self.config.domain:
            self._reject(REJECT_WRONG_DOMAIN)
            return None
        if isinstance(msg, Announce):
            self._masters.add(AnnounceDataset.from_announce(msg), now_s)
            self.master = self._masters.best(now_s)
            return None
        self.master = self._masters.best(now_s)
        if not isinstance(msg, Sync | FollowUp | DelayResp):
            return None  # other slaves' Delay_Reqs, peer delay, signaling: not for us
        if isinstance(msg, DelayResp) and msg.requestingPortIdentity.key() != self.identity.key():
            return None  # another slave's answer
        if self.master is None or msg.source.key() != self.master.sender:
            self._reject(REJECT_NO_MASTER if self.master is None else REJECT_NOT_MASTER)
            return None
        if self._rate_master != self.master.sender:
            self._rate.clear()  # a new master: nothing of the old one pairs with its messages
            self._syncs.clear()
            self._follow_ups.clear()
            self._rate_master = self.master.sender
        if isinstance(msg, Sync):
            if int(msg.sequenceId) in self._syncs:
                self._reject(REJECT_DUPLICATE)
                return None
            return self._on_sync(msg, rx_local_ns, now_s)
        if isinstance(msg, FollowUp):
            seq = int(msg.sequenceId)
            if seq in self._follow_ups:
                self._reject(REJECT_DUPLICATE)
                return None
            self._follow_ups[seq] = (msg.preciseOriginTimestamp.to_ns(), msg.correction_ns)
            _trim(self._follow_ups)
            sync = self._syncs.get(seq)
            if sync is not None and sync.origin_ns is None:
                t1 = self._follow_ups[seq][0] + sync.correction_ns + self._follow_ups[seq][1]
                self._rate.add(t1, sync.t2_ns)
            return self._complete_for_sync(seq)
        if isinstance(msg, DelayResp):
            return self._on_delay_resp(msg)
        return None

    def _on_sync(self, msg: Sync, rx_local_ns: int, now_s: float) -> DelayReqDue | None:
        seq = int(msg.sequenceId)
        origin = None if msg.two_step else msg.originTimestamp.to_ns()
        self._syncs[seq] = _Sync(rx_local_ns, msg.correction_ns, origin)
        self._last_sync_seq = seq
        _trim(self._syncs)
        if origin is not None:
            self._rate.add(origin + msg.correction_ns, rx_local_ns)
        elif seq in self._follow_ups:  # its Follow_Up came first
            precise, c_fu = self._follow_ups[seq]
            self._rate.add(precise + msg.correction_ns + c_fu, rx_local_ns)
        if now_s < self._pending_until_s:
            return None  # a cold request is still to go
        earliest_s = self._last_req_s + 0.9 * self._req_interval_s
        every = self.config.cold_every
        if every and self._count % every == every - 1:
            sync_interval_s = min(2.0 ** int(msg.logMessageInterval), 1.0)
            at_s = max(now_s + self._rng.uniform(0.2, 0.6) * sync_interval_s, earliest_s)
            self._pending_until_s = at_s
            return DelayReqDue(at_s, cold=True)
        if now_s < earliest_s:
            return None
        return DelayReqDue(now_s, cold=False)

    def delay_req(self, now_s: float, cold: bool = False) -> tuple[int, bytes]:
        """The Delay_Req to send now for the latest Sync: ``(sequenceId, wire bytes)``.

        Then call :meth:`sent` with its local send time.
        """
        seq = self._next_seq
        self._next_seq = (seq + 1) & 0xFFFF
        self._count += 1
        self._last_req_s = now_s
        self._pending_until_s = float("-inf")
        self._requests[seq] = _Request(sync_key=self._last_sync_seq, cold=cold)
        _trim(self._requests)
        if self._req_template is None:
            self._req_template = encode(
                DelayReq(
                    domainNumber=self.config.domain,
                    sourcePortIdentity=self.identity.copy(),
                    logMessageInterval=0x7F,
                )
            )
        return seq, with_sequence_id(self._req_template, seq)

    def sent(self, sequence_id: int, tx_local_ns: int) -> None:
        """Record the local send time of our Delay_Req ``sequence_id``."""
        req = self._requests.get(sequence_id)
        if req is not None:
            req.t3_ns = tx_local_ns

    def _on_delay_resp(self, msg: DelayResp) -> PtpResult | None:
        if msg.requestingPortIdentity.key() != self.identity.key():
            return None  # another slave's answer
        req = self._requests.get(int(msg.sequenceId))
        if req is None or req.t3_ns is None or req.t4_ns is not None:
            self._reject(REJECT_WRONG_SEQUENCE)
            return None
        req.t4_ns = msg.receiveTimestamp.to_ns()
        req.c_sm_ns = msg.correction_ns
        if int(msg.logMessageInterval) != 0x7F:
            self._req_interval_s = 2.0 ** int(msg.logMessageInterval)
        return self._complete(int(msg.sequenceId))

    def _complete_for_sync(self, sync_seq: int) -> PtpResult | None:
        for seq, req in self._requests.items():
            if req.sync_key == sync_seq and req.t4_ns is not None:
                return self._complete(seq)
        return None

    def _reject(self, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1

    # -- completion -------------------------------------------------------------------

    def _complete(self, seq: int) -> PtpResult | None:
        req = self._requests[seq]
        sync = self._syncs.get(req.sync_key)
        if sync is None or req.t3_ns is None or req.t4_ns is None or self.master is None:
            return None
        if sync.origin_ns is not None:
            t1, c_ms = sync.origin_ns, sync.correction_ns
        elif req.sync_key in self._follow_ups:
            precise, c_fu = self._follow_ups[req.sync_key]
            t1, c_ms = precise, sync.correction_ns + c_fu
        else:
            return None  # the Follow_Up is still on its way
        del self._requests[seq]
        t4 = req.t4_ns
        if self.config.utc_correct and self.master.ptp_timescale and self.master.utc_offset_valid:
            shift = self.master.current_utc_offset_s * NS_PER_S
            t1, t4 = t1 - shift, t4 - shift
        ex = Exchange(t1, sync.t2_ns, req.t3_ns, t4, c_ms, req.c_sm_ns)
        # with cold requests, only they estimate the delay (tight ones until the first)
        # with cold requests, only they estimate the delay (tight ones until the first);
        # their long turnaround is converted to master time with the measured rate
        # (cold ones only once the rate is known: 100 ppm x 100 ms would be 10 µs)
        round_trip = ex.round_trip_at_rate_ns(self._rate.rate_ratio)
        usable_cold = req.cold and self._rate.ready
        estimate = usable_cold or not self.config.cold_every or self._cold_accepted == 0
        if req.cold and not usable_cold:
            estimate = False
        accepted = self._filter.add(round_trip, estimate=estimate)
        if usable_cold and accepted:
            if self._cold_accepted == 0:
                self._filter.restart_estimate(round_trip)
            self._cold_accepted += 1
        if req.cold and not self.config.emit_cold:
            return None
        delay = self._filter.delay_ns
        m = measure(
            ex,
            ex.mean_path_delay_ns if delay is None else delay,
            max_skew_ppm=self.config.max_skew_ppm,
            timestamp_error_ns=self.config.timestamp_error_ns,
        )
        sender, port = self.master.sender
        return PtpResult(f"{format_clock_identity(sender)}-{port}", seq, ex, m, accepted, req.cold)


def _trim(table: dict[int, _V], keep: int = 16) -> None:
    """Keep only the newest ``keep`` entries (dicts keep insertion order)."""
    while len(table) > keep:
        del table[next(iter(table))]
