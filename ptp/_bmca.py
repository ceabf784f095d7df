"""Best master selection: the dataset comparison of IEEE 1588-2008 9.3.4 (Figures 27, 28).

Pure: Announce messages in, the best foreign master out. A foreign master is *qualified*
once ``threshold`` Announces (FOREIGN_MASTER_THRESHOLD = 2, 9.3.2.4.4) arrived within
``FOREIGN_MASTER_TIME_WINDOW`` = 4 announce intervals, and drops out when none arrived for
``announceReceiptTimeout`` intervals.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ._messages import Announce

__all__ = ["AnnounceDataset", "ForeignMasters", "compare_datasets"]


@dataclass(frozen=True, slots=True, order=False)
class AnnounceDataset:
    """The fields of an Announce that the BMCA compares (Table 25), plus its sender.

    Attributes:
        priority1, priority2: grandmasterPriority1/2 (lower wins).
        clock_class, clock_accuracy, variance: grandmasterClockQuality (lower wins).
        gm_identity: grandmasterIdentity (8 octets; lower wins as the last tie-break).
        steps_removed: boundary clocks between the grandmaster and the sender.
        sender: sourcePortIdentity ``(clockIdentity, portNumber)`` of the Announce.
        domain: domainNumber.
        current_utc_offset_s: TAI - UTC (s), meaningful when ``utc_offset_valid``.
        utc_offset_valid, ptp_timescale: flagField bits of the Announce.
        log_announce_interval: logMessageInterval of the Announce (log2 s).
    """

    priority1: int
    clock_class: int
    clock_accuracy: int
    variance: int
    priority2: int
    gm_identity: bytes
    steps_removed: int
    sender: tuple[bytes, int]
    domain: int = 0
    current_utc_offset_s: int = 0
    utc_offset_valid: bool = False
    ptp_timescale: bool = False
    log_announce_interval: int = 1

    @classmethod
    def from_announce(cls, msg: Announce) -> AnnounceDataset:
        quality = msg.grandmasterClockQuality
        return cls(
            priority1=int(msg.grandmasterPriority1),
            clock_class=int(quality.clockClass),
            clock_accuracy=int(quality.clockAccuracy),
            variance=int(quality.offsetScaledLogVariance),
            priority2=int(msg.grandmasterPriority2),
            gm_identity=bytes(msg.grandmasterIdentity),
            steps_removed=int(msg.stepsRemoved),
            sender=msg.source.key(),
            domain=int(msg.domainNumber),
            current_utc_offset_s=int(msg.currentUtcOffset),
            utc_offset_valid=msg.flag("currentUtcOffsetValid"),
            ptp_timescale=msg.flag("ptpTimescale"),
            log_announce_interval=int(msg.logMessageInterval),
        )


def compare_datasets(a: AnnounceDataset, b: AnnounceDataset) -> int:
    """``-1`` when ``a`` is the better master, ``1`` when ``b`` is, ``0`` when identical.

    Different grandmasters (Figure 27): priority1, clockClass, clockAccuracy,
    offsetScaledLogVariance, priority2, then grandmasterIdentity; lower wins. The same
    grandmaster (Figure 28): fewer stepsRemoved wins, then the lower sender identity.
    """
    if a.gm_identity != b.gm_identity:
        ka = (a.priority1, a.clock_class, a.clock_accuracy, a.variance, a.priority2, a.gm_identity)
        kb = (b.priority1, b.clock_class, b.clock_accuracy, b.variance, b.priority2, b.gm_identity)
        return -1 if ka < kb else 1
    ka2 = (a.steps_removed, a.sender)
    kb2 = (b.steps_removed, b.sender)
    if ka2 == kb2:
        return 0
    return -1 if ka2 < kb2 else 1


@dataclass
class _Foreign:
    dataset: AnnounceDataset
    times_s: list[float] = field(default_factory=list)


class ForeignMasters:
    """The foreign-master table of one slave port (9.3.2.4) and its best entry."""

    def __init__(self, threshold: int = 2, receipt_timeout: int = 3) -> None:
        self.threshold = threshold
        self.receipt_timeout = receipt_timeout
        self._table: dict[tuple[bytes, int], _Foreign] = {}

    def add(self, dataset: AnnounceDataset, now_s: float) -> None:
        """Record an Announce received at ``now_s`` (any monotonic seconds)."""
        entry = self._table.setdefault(dataset.sender, _Foreign(dataset))
        entry.dataset = dataset
        window_s = 4 * 2.0**dataset.log_announce_interval
        entry.times_s = [t for t in entry.times_s if now_s - t <= window_s] + [now_s]

    def best(self, now_s: float) -> AnnounceDataset | None:
        """The best qualified, unexpired foreign master at ``now_s``, or ``None``."""
        best: AnnounceDataset | None = None
        for sender, entry in list(self._table.items()):
            interval_s = 2.0**entry.dataset.log_announce_interval
            if now_s - entry.times_s[-1] > self.receipt_timeout * interval_s:
                del self._table[sender]
                continue
            window_s = 4 * interval_s
            if sum(1 for t in entry.times_s if now_s - t <= window_s) < self.threshold:
                continue
            if best is None or compare_datasets(entry.dataset, best) < 0:
                best = entry.dataset
        return best
