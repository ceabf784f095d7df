"""Measurement sources of the agent: one class per kind behind :class:`Source`.

* :class:`NtpSource` — an NTP server, measured with :class:`clocksync.ntp.NtpClient` (kernel
  timestamps, bursts with minimum-delay selection, interleaved mode).
* :class:`NtpSource` with ``nts=True`` — an NTS server (:class:`clocksync.ntp.NtsClient`:
  NTS-KE, cookies, authenticated exchanges; never unauthenticated), whose failures are
  counted by reason (tls, ke, nak, auth, unique_id) in :attr:`PollResult.nts_failures`.
* :class:`NtpSource` with ``kind="peer"`` — another agent's peer-mode NTP port.
* :class:`ChronySource` — a chronyd already running on this node, read with
  ``chronyc -c tracking`` / ``-c sources``: chronyd's own estimate of the system clock's
  offset is reported, nothing is measured twice.
* PTP (our slave, or a local ptp4l) lives in :mod:`._ptpsource`, imported only when
  configured (it needs scapy).

A poll returns a :class:`PollResult`: the sample (if any), the errors by kind, and whether the
source asks to slow down (KoD RATE) or to stop (KoD DENY/RSTR, missing chronyc).
Offsets: reference - local (ns); positive = the local clock is behind.
"""

from __future__ import annotations

import collections
import dataclasses
import subprocess
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .._fit import Assumptions
from .._model._clock import Clock, SystemClock
from .._model._errors import InputError
from .._model._sample import TIMESTAMP_ERROR_NS, Sample
from ..ntp import (
    DEFAULT_KE_PORT,
    KissOfDeathError,
    NtpClient,
    NtpRejectError,
    NtpTimeoutError,
    NtsClient,
    NtsKeyExchangeError,
    parse_target,
)
from ._source import FAILURE_REASONS, PollResult, Source

if TYPE_CHECKING:
    from ._config import AgentConfig

__all__ = [
    "FAILURE_REASONS",
    "MAX_CLOCK_ERROR_PPM",
    "ChronySource",
    "ChronyTracking",
    "NtpSource",
    "PollResult",
    "Source",
    "build_sources",
    "parse_chrony_sources",
    "parse_chrony_tracking",
]

#: chrony's default ``maxclockerror`` (ppm): added to its skew when its dispersion ages
MAX_CLOCK_ERROR_PPM = 1.0


def _error_kind(exc: Exception) -> str:
    if isinstance(exc, NtpRejectError):
        return str(exc.reason.value)
    if isinstance(exc, NtpTimeoutError):
        return "timeout"
    return "network"


class NtpSource:
    """An NTP server (``kind="ntp"``) or another agent's NTP port (``kind="peer"``).

    Args:
        target: ``HOST[:PORT]`` (default port 123).
        node: this node's name.
        clock: this node's clock.
        burst: exchanges per poll; the minimum-delay one becomes the sample.
        burst_interval_s: pause between exchanges (s).
        timeout_s: wait per exchange (s).
        interleaved: ask for interleaved mode.
        kind: ``"ntp"`` or ``"peer"`` (prefix of the sample's ``source``).
        nts: measure with NTS; ``target``'s port is then the NTS-KE port (default 4460)
            and the source is named ``nts:HOST:PORT``.
        nts_ca_file: CA certificates trusted for NTS-KE (empty: the system store).
    """

    def __init__(self, target: str, *, node: str, clock: Clock | None = None, burst: int = 4,
                 burst_interval_s: float = 0.05, timeout_s: float = 1.0,
                 interleaved: bool = True, kind: str = "ntp", nts: bool = False,
                 nts_ca_file: str = "") -> None:
        if kind not in ("ntp", "peer"):
            raise InputError(f"source kind: must be ntp or peer, got {kind!r}")
        host, port = parse_target(target, DEFAULT_KE_PORT if nts else 123)
        self.name = f"{'nts' if nts else kind}:{host}:{port}"
        self.burst = burst
        self.burst_interval_s = burst_interval_s
        self._client: NtpClient | NtsClient
        if nts:
            self._client = NtsClient(host, port, ca_file=nts_ca_file or None, node=node,
                                     clock=clock, timeout_s=timeout_s, interleaved=interleaved)
        else:
            self._client = NtpClient(host, port, node=node, clock=clock, timeout_s=timeout_s,
                                     interleaved=interleaved)
        self._rejected_seen: collections.Counter[str] = collections.Counter()
        self._nts_seen: collections.Counter[str] = collections.Counter()

    def poll(self) -> PollResult:
        try:
            burst = self._client.burst(self.burst, self.burst_interval_s)
        except KissOfDeathError as exc:
            return PollResult(None, self._rejected_since_last(), reachable=True,
                              rate_limited=not exc.stop_polling, stop=exc.stop_polling,
                              message=str(exc), nts_failures=self._nts_since_last())
        except NtsKeyExchangeError as exc:
            return PollResult(None, (f"nts_{exc.reason.value}", *self._rejected_since_last()),
                              reachable=False, message=str(exc),
                              nts_failures=self._nts_since_last())
        except (NtpTimeoutError, NtpRejectError, OSError) as exc:
            return PollResult(None, self._lost((exc,)) + self._rejected_since_last(),
                              reachable=isinstance(exc, NtpRejectError), message=str(exc),
                              nts_failures=self._nts_since_last())
        errors = self._lost(burst.failures) + self._rejected_since_last()
        sample = dataclasses.replace(burst.best.sample, source=self.name)
        message = str(burst.failures[-1]) if burst.failures else (
            f"ignored {len(errors)} refused replies" if errors else "")
        return PollResult(sample, errors, message=message, nts_failures=self._nts_since_last())

    def _nts_since_last(self) -> tuple[str, ...]:
        if not isinstance(self._client, NtsClient):
            return ()
        fresh = self._client.nts_failures - self._nts_seen
        self._nts_seen = self._client.nts_failures.copy()
        return tuple(sorted(fresh.elements()))

    @staticmethod
    def _lost(failures: tuple[Exception, ...]) -> tuple[str, ...]:
        """Exchanges without any reply (rejected replies are counted per reply instead)."""
        return tuple(_error_kind(e) for e in failures if not isinstance(e, NtpRejectError))

    def _rejected_since_last(self) -> tuple[str, ...]:
        """One entry per reply the client refused since the previous poll (forged, stale,
        malformed, KoD, ...), so ``/metrics`` counts replies, not failed polls."""
        fresh = self._client.rejected - self._rejected_seen
        self._rejected_seen = self._client.rejected.copy()
        return tuple(sorted(fresh.elements()))

    def close(self) -> None:
        self._client.close()


@dataclass(frozen=True, slots=True)
class ChronyTracking:
    """The fields of ``chronyc -c tracking`` the agent uses (seconds as chrony prints them).

    ``system_time_s`` > 0 means the system clock is *slow* of NTP time (chrony's sign), which
    is our positive offset.
    """

    reference_id: str
    reference_name: str
    stratum: int
    ref_time_s: float
    system_time_s: float
    skew_ppm: float
    root_delay_s: float
    root_dispersion_s: float
    leap_status: str


def parse_chrony_tracking(text: str) -> ChronyTracking:
    """Parse the one CSV line of ``chronyc -c tracking``.

    Raises:
        InputError: not 14 comma-separated fields or a field that is not a number.
    """
    line = text.strip().splitlines()[0] if text.strip() else ""
    fields = line.split(",")
    if len(fields) < 14:
        raise InputError(f"chronyc -c tracking: expected 14 fields, got {len(fields)}: "
                         f"{line!r}")
    try:
        return ChronyTracking(
            reference_id=fields[0], reference_name=fields[1], stratum=int(fields[2]),
            ref_time_s=float(fields[3]), system_time_s=float(fields[4]),
            skew_ppm=float(fields[9]), root_delay_s=float(fields[10]),
            root_dispersion_s=float(fields[11]), leap_status=fields[13])
    except ValueError as exc:
        raise InputError(f"chronyc -c tracking: bad field ({exc}): {line!r}") from None


def parse_chrony_sources(text: str) -> list[dict[str, str]]:
    """``chronyc -c sources`` lines as records (mode, state, name, stratum, poll, reach)."""
    out = []
    for line in text.strip().splitlines():
        fields = line.split(",")
        if len(fields) >= 6:
            out.append(dict(zip(("mode", "state", "name", "stratum", "poll", "reach"),
                                fields[:6], strict=True)))
    return out


@dataclass
class ChronySource:
    """The local chronyd's estimate of this node's clock, read with ``chronyc``.

    The sample at local time *now*: offset = chronyd's remaining correction of the system
    clock (``System time``); bound = ``root_delay/2 + root_dispersion`` aged by
    ``(skew + maxclockerror) × (now − ref time)``, plus the default timestamping error — the
    bound ClockBound derives from the same numbers. chronyd must be synchronised (leap status
    not "Not synchronised") and, when it lists sources, one must be selected ('*').

    With a :class:`~clocksync.SimClock` the sample is shifted by the simulated clock's own
    offset from the system clock, like every other source.
    """

    node: str
    clock: Clock = field(default_factory=SystemClock)
    chronyc_path: str = "chronyc"
    host: str = ""
    timeout_s: float = 2.0
    name: str = field(init=False)

    def __post_init__(self) -> None:
        self.name = "chrony:" + (self.host or "local")

    def _run(self, command: str, allow_empty: bool = False) -> str:
        args = [self.chronyc_path, "-c", "-n"]
        if self.host:
            args += ["-h", self.host]
        done = subprocess.run([*args, command], capture_output=True, text=True,
                              timeout=self.timeout_s, check=False)
        if done.returncode != 0 or not (allow_empty or done.stdout.strip()):
            raise OSError(f"{' '.join(args)} {command}: exit {done.returncode}: "
                          f"{(done.stderr or done.stdout).strip()[:200]}")
        return done.stdout

    def poll(self) -> PollResult:
        try:
            sys_ns = time.time_ns()
            tracking = parse_chrony_tracking(self._run("tracking"))
            sources = parse_chrony_sources(self._run("sources", allow_empty=True))
        except FileNotFoundError as exc:
            return PollResult(None, ("chronyc",), reachable=False, stop=True, message=str(exc))
        except (OSError, subprocess.TimeoutExpired, InputError) as exc:
            return PollResult(None, ("chronyc",), reachable=False, message=str(exc))
        if tracking.leap_status.lower().startswith("not sync") or tracking.stratum >= 16:
            return PollResult(None, ("unsynchronised",), message="chronyd is not synchronised")
        if sources and not any(s["state"] == "*" for s in sources):
            return PollResult(None, ("no_selected_source",),
                              message="chronyd has no selected source")
        local_ns = self.clock.read_ns(sys_ns)
        age_s = max(0.0, sys_ns / 1e9 - tracking.ref_time_s)
        root_delay_ns = tracking.root_delay_s * 1e9
        dispersion_ns = (tracking.root_dispersion_s * 1e9
                         + age_s * (abs(tracking.skew_ppm) + MAX_CLOCK_ERROR_PPM) * 1e3)
        offset_ns = tracking.system_time_s * 1e9 + float(sys_ns - local_ns)
        sample = Sample(
            node=self.node, t_local_ns=local_ns, offset_ns=offset_ns, delay_ns=0.0,
            bound_ns=root_delay_ns / 2 + dispersion_ns + TIMESTAMP_ERROR_NS,
            source=f"{self.name}:{tracking.reference_name or tracking.reference_id}",
            root_delay_ns=root_delay_ns, root_dispersion_ns=dispersion_ns,
            stratum=tracking.stratum)
        return PollResult(sample)

    def close(self) -> None:
        return None


def build_sources(config: AgentConfig, clock: Clock) -> list[Source]:
    """The sources a config asks for, in the order ntp servers, peers, chrony, ptp
    interfaces, ptp4l (the PTP module, and scapy with it, is imported only when asked)."""
    sources: list[Source] = []

    def ntp(target: str, kind: str, nts: bool = False) -> NtpSource:
        return NtpSource(target, kind=kind, node=config.node, clock=clock, burst=config.burst,
                         burst_interval_s=config.burst_interval_s, timeout_s=config.timeout_s,
                         interleaved=config.interleaved, nts=nts,
                         nts_ca_file=config.nts_ca_file)

    try:
        sources += [ntp(target, "ntp", config.uses_nts(target))
                    for target in config.ntp_servers]
        sources += [ntp(target, "peer") for target in config.peers]
        if config.chrony:
            sources.append(ChronySource(config.node, clock, config.chronyc_path,
                                        config.chronyc_host))
        if config.ptp_interfaces or config.ptp4l_uds:
            from ._ptpsource import Ptp4lSource, PtpSource

            max_skew_ppm = Assumptions.from_mapping(dict(config.fit)).max_skew_ppm
            for iface in config.ptp_interfaces:
                sources.append(PtpSource(iface, node=config.node, clock=clock,
                                         transport=config.ptp_transport,
                                         domain=config.ptp_domain, timeout_s=config.timeout_s,
                                         max_skew_ppm=max_skew_ppm))
            if config.ptp4l_uds:
                sources.append(Ptp4lSource(config.ptp4l_uds, node=config.node, clock=clock,
                                           timeout_s=config.timeout_s))
    except Exception:
        for source in sources:
            source.close()
        raise
    return sources
