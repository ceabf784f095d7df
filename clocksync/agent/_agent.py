"""The agent: wires sources, the sample log, the fit, a :class:`~._scheduler.Scheduler` and a
:class:`~._publisher.Publisher`; it holds no math of its own.

One thread runs the loop: :meth:`Agent.step` does whatever is due (poll sources, refit,
publish, retry stores) and returns the wait until the next thing is due; the loop waits
that long on the injected :class:`~._time.Sleeper`, which a stop request (SIGTERM) wakes
at once. Time is injected: the node's clock (samples, tables), a
:class:`~._time.Timer` (monotonic seconds for scheduling) and the sleeper; the defaults
are the real ones, and :class:`~._time.SimTime` is all three in simulated time.

* Polling and refitting follow the scheduler (per-source intervals with backoff on
  failures; refits rate-limited by ``refit_min_s`` and ``fit_cpu_share``).
* Publishing: every store gets the table with the agent's status and its
  :class:`clocksync.PublisherBlock`; the table is republished at least every
  :data:`REPUBLISH_S` (keeps Redis expiry alive) and whenever the status or the sources'
  agreement changes. Stopping finishes the current poll, flushes the sample log, refits if
  new samples arrived and publishes a final table with status ``stopped``.
* A reference agent (no sources) serves its clock and reports ``serving``; with nothing to
  poll, fit or publish it wakes once per status check and sleeps otherwise.
* Peer mode: an optional :class:`clocksync.ntp.NtpServer` serves this node's own clock; it
  announces itself unsynchronised (leap 3, stratum 16) unless the node is a reference (no
  sources) or its status is synchronised.
* Agreement: after every sample and every round, the sources' latest fresh samples are
  cross-checked (:mod:`._crosscheck`, Marzullo); a source a strict majority disagrees with
  is a falseticker: named in the snapshot, /metrics, the publisher block and the log, and —
  with ``exclude_falsetickers`` (default) — its new samples stay out of the sample log and
  the fit until it agrees again (counted as errors with reason ``falseticker``); while
  sources disagree and no strict majority agrees, no new sample enters (``no_majority``).

The agent only measures: it never sets, slews or steps the system clock.
"""

from __future__ import annotations

import collections
import logging
import math
import threading
from dataclasses import dataclass, field

from .._corrector import Corrector
from .._fit import Assumptions, fit_table
from .._fit._agreement import Agreement
from .._io._keyfile import load_table_key
from .._io._store import TableStore, open_store
from .._model._clock import Clock
from .._model._errors import ClockSyncError, OutOfRangeError
from .._model._sample import Sample
from .._model._status import REPUBLISH_S, PublisherBlock, Status
from .._model._table import CorrectionTable
from .._model._units import format_ns
from ..ntp import NtpServer, PollPolicy
from ._config import AgentConfig
from ._crosscheck import CrossCheck, cross_check
from ._publisher import Publisher
from ._samplelog import SampleLog
from ._scheduler import Scheduler
from ._source import PollResult, Source
from ._sources import build_sources
from ._status import UNREACHABLE_POLLS, agent_health, agent_status
from ._time import EventSleeper, MonotonicTimer, Sleeper, Timer

__all__ = ["REPUBLISH_S", "STALL_S", "Agent", "AgentSnapshot", "SourceStatus", "build_sources"]

log = logging.getLogger("clocksync.agent")

#: the loop counts as stalled when it has not run for this long plus the longest poll
STALL_S = 30.0


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """A source as the HTTP endpoint reports it. Offsets: reference - local (ns)."""

    name: str
    poll_s: float
    samples: int
    errors: dict[str, int]
    reachable: bool
    stopped: bool
    last_offset_ns: float | None
    last_bound_ns: float | None
    last_error: str
    falseticker: bool = False
    nts_failures: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AgentSnapshot:
    """The agent's state at one instant (immutable; read by the HTTP thread).

    ``healthy``/``health_reason``: what ``/healthz`` answers (503 with the reason when not
    healthy; see :func:`clocksync.agent.agent_health`).
    """

    node: str
    status: str
    now_local_ns: int
    table: CorrectionTable | None
    table_json: str | None
    offset_now_ns: float | None
    bound_now_ns: float | None
    skew_ppm: float | None
    samples_total: int
    sources: tuple[SourceStatus, ...]
    fits: int
    fit_errors: int
    publishes: int
    publish_errors: dict[str, int]
    loop_age_s: float
    agreement: Agreement | None = None
    falsetickers: tuple[str, ...] = ()
    sources_agree: bool | None = None
    healthy: bool = True
    health_reason: str = ""


@dataclass
class _SourceState:
    """What the agent reports about one source (its schedule is the scheduler's slot)."""

    source: Source
    samples: int = 0
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    nts_failures: collections.Counter[str] = field(default_factory=collections.Counter)
    last_sample: Sample | None = None
    last_error: str = ""
    falseticker: bool = False


class Agent:
    """One node's agent (see the module docstring).

    Args:
        config: validated options.
        clock: the node's clock: samples and tables are in its time (default: the one the
            ``clock`` option names, the system clock unless configured; a SimClock or
            :class:`~._time.SimTime` in demos and tests).
        timer: monotonic seconds for scheduling (default: ``time.monotonic``).
        sleeper: where the loop waits (default: an event a stop request sets).
        sources: override the sources built from ``config``.
        stores: override the stores opened from ``config.store_urls`` (not closed by the
            agent; those it opened, it closes).
    """

    def __init__(self, config: AgentConfig, *, clock: Clock | None = None,
                 timer: Timer | None = None, sleeper: Sleeper | None = None,
                 sources: list[Source] | None = None,
                 stores: list[TableStore] | None = None) -> None:
        self.config = config
        self.node = config.node
        self.clock: Clock = clock if clock is not None else config.build_clock()
        self.timer: Timer = timer if timer is not None else MonotonicTimer()
        self.sleeper: Sleeper = sleeper if sleeper is not None else EventSleeper()
        self.samples = SampleLog(config.samples_dir, config.node,
                                 segment_samples=config.segment_samples,
                                 retention_s=config.retention_s,
                                 keep_samples=config.window_samples)
        table_key = (load_table_key(config.table_key_file) if config.table_key_file
                     else None)
        self.publisher = Publisher(
            stores if stores is not None
            else [open_store(u, table_key=table_key) for u in config.store_urls],
            self.timer, table_key=table_key, backoff_max_s=config.publish_backoff_max_s,
            owns_stores=stores is None)
        built = sources if sources is not None else build_sources(config, self.clock)
        self._sources = [_SourceState(s) for s in built]
        self.scheduler = Scheduler(
            PollPolicy(min_poll_s=config.min_poll_s, max_poll_s=config.max_poll_s,
                       target_bound_ns=config.target_bound_ns),
            self.timer, len(built), refit_min_s=config.refit_min_s,
            fit_cpu_share=config.fit_cpu_share)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._table: CorrectionTable | None = None
        self._corrector: Corrector | None = None
        self._status = Status.SERVING if not built else Status.UNKNOWN
        self._fitted_count = -1  # samples appended when the last fit ran
        self._resumed = False
        self._fits = 0
        self._fit_errors = 0
        self._loop_mono = self.timer.monotonic()
        self._server: NtpServer | None = None
        self._max_skew_ppm = Assumptions.from_mapping(dict(config.fit)).max_skew_ppm
        self._check: CrossCheck | None = None
        self._check_key: tuple[bool | None, tuple[str, ...]] = (None, ())
        self._agreement_changed = False

    # -- lifecycle --------------------------------------------------------------------------
    @property
    def server(self) -> NtpServer | None:
        return self._server

    def start_server(self, port: int | None = None) -> NtpServer | None:
        """Start the peer-mode NTP server (once); returns it, or None when off.

        ``port``: default ``serve_port`` (0 there means off); an explicit 0 picks a free port.
        """
        if self._server is None:
            if port is None:
                if not self.config.serve_port:
                    return None
                port = self.config.serve_port
            self._server = NtpServer(self.clock, address=self.config.serve_address, port=port,
                                     synchronised=self._serves_synchronised()).start()
        return self._server

    def resume(self) -> None:
        """Fit and publish the samples resumed from the sample log (once; the first
        :meth:`step` does it when not called before)."""
        if not self._resumed:
            self._resumed = True
            if self.samples.resumed:
                self._refit()

    def request_stop(self) -> None:
        """Ask the loop to finish (safe from signal handlers and other threads)."""
        self._stop.set()
        self.sleeper.wake()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> None:
        """Run until :meth:`request_stop`; then flush, refit, publish ``stopped``, close."""
        self.start_server()
        try:
            while not self._stop.is_set():
                wait_s = self.step()
                if not self._stop.is_set():
                    self.sleeper.sleep(wait_s)
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        """Flush the sample log, refit if needed, publish the final table with status
        ``stopped`` (one try per store), close sources and stores."""
        try:
            self.samples.flush()
        except OSError as exc:
            log.error("sample log: final flush failed: %s", exc)
        if self.samples.appended + self.samples.resumed \
                and self._fitted_count != self.samples.appended:
            self._refit(publish=False)
        self._status = Status.STOPPED
        if self._server is not None:
            self._server.synchronised = False
        if self._table is not None:
            self._publish(force=True)
        for s in self._sources:
            s.source.close()
        self.publisher.close()
        if self._server is not None:
            self._server.stop()
            self._server = None

    # -- one iteration ----------------------------------------------------------------------
    def step(self) -> float:
        """Do whatever is due now; returns seconds until something is due next."""
        self.resume()
        timer, scheduler = self.timer, self.scheduler
        self._loop_mono = timer.monotonic()
        for i in scheduler.due(self._loop_mono):
            if self._stop.is_set():
                break
            self._poll(i)
        self._cross_check()  # samples age out of it while their sources stay silent
        new_samples = self._fitted_count != self.samples.appended
        if scheduler.refit_due(timer.monotonic(), new_samples):
            try:  # before the refit publishes: a published table's samples are on disk
                self.samples.flush()
            except OSError as exc:
                log.error("sample log: flush failed: %s", exc)
            self._refit()
        changed = self._update_status() or self._agreement_changed
        self._agreement_changed = False
        if changed or scheduler.republish_due(timer.monotonic()):
            self._publish()
        self.publisher.retry()
        return scheduler.wait_s(timer.monotonic(),
                                new_samples=self._fitted_count != self.samples.appended,
                                retry_at=self.publisher.retry_at())

    def _poll(self, i: int) -> None:
        state = self._sources[i]
        try:
            result = state.source.poll()
        except Exception as exc:  # a broken source must not kill the agent
            log.exception("source %s: poll failed", state.source.name)
            result = PollResult(None, ("internal",), reachable=False, message=str(exc))
        with self._lock:  # snapshot() copies these from the HTTP thread
            state.errors.update(result.errors)
            state.nts_failures.update(result.nts_failures)
            if result.errors:
                state.last_error = result.message
            if result.sample is not None:
                state.samples += 1
                state.last_sample = result.sample
        if result.sample is not None:
            check = self._cross_check()
            held = ("falseticker" if state.falseticker else
                    "no_majority" if check.agree is False and not check.majority else "")
            if held and self.config.exclude_falsetickers:
                with self._lock:
                    state.errors[held] += 1
                    state.last_error = f"{held}: sample left out of the fit"
            else:
                self.samples.append([result.sample])
        bound_ns = self._bound_now() if self._corrector is not None else math.inf
        with self._lock:
            poll_s = self.scheduler.polled(i, result, bound_ns=bound_ns,
                                           samples=len(self.samples))
        if result.sample is None:
            log.warning("source %s: %s (next poll in %.3g s)", state.source.name,
                        result.message or "no sample", poll_s)
        if result.stop:
            log.error("source %s: stopped polling (%s)", state.source.name, result.message)

    # -- agreement --------------------------------------------------------------------------
    def _cross_check(self) -> CrossCheck:
        """Cross-check the sources' latest fresh samples; mark falsetickers, log changes."""
        latest = [(s.source.name, s.last_sample, slot.poll_s)
                  for s, slot in zip(self._sources, self.scheduler.slots, strict=True)
                  if s.last_sample is not None]
        check = cross_check(latest, now_local_ns=self.clock.now_ns(),
                            max_skew_ppm=self._max_skew_ppm)
        with self._lock:
            self._check = check
            for s in self._sources:
                s.falseticker = s.source.name in check.falsetickers
        key = (check.agree, check.falsetickers)
        if key == self._check_key:
            return check
        was_agreeing = self._check_key[0] is not False
        self._check_key = key
        self._agreement_changed = True
        if check.agree is not False:
            if not was_agreeing:
                log.info("sources agree again")
            return check
        spans = "; ".join(f"{iv.source} {format_ns(iv.offset_ns, iv.bound_ns)}"
                          for iv in check.intervals)
        if check.falsetickers:
            agreed = check.agreement
            assert agreed is not None
            log.warning("falseticker%s: %s outside the offset interval %s that %s agree on "
                        "(%s)%s", "s" if len(check.falsetickers) > 1 else "",
                        ", ".join(check.falsetickers),
                        format_ns(agreed.offset_ns, agreed.bound_ns),
                        ", ".join(agreed.truechimers), spans,
                        "; its samples are left out of the fit"
                        if self.config.exclude_falsetickers else "")
        else:
            log.warning("sources disagree and no strict majority agrees, so no falseticker "
                        "can be named%s: %s", "; new samples are left out of the fit until "
                        "one does" if self.config.exclude_falsetickers else "", spans)
        return check

    # -- fitting ----------------------------------------------------------------------------
    def _refit(self, publish: bool = True) -> None:
        window = self.samples.recent(self.config.window_s, self.config.window_samples)
        self._fitted_count = self.samples.appended
        if not window:
            return
        try:
            table = self.scheduler.fit(lambda: fit_table(
                window, reference="", generated_at_ns=None, **self.config.fit))
        except ClockSyncError as exc:
            self._fit_errors += 1
            log.error("fit failed on %d samples: %s", len(window), exc)
            return
        self._fits += 1
        corrector = Corrector([table])
        with self._lock:
            self._table, self._corrector = table, corrector
        if publish:
            self._update_status()
            self._publish()

    def _bound_now(self) -> float:
        offset = self._offset_now(self.clock.now_ns())
        return offset[1] if offset is not None else math.inf

    def _offset_now(self, local_ns: int) -> tuple[float, float] | None:
        corrector = self._corrector
        if corrector is None:
            return None
        try:
            ref, bound = corrector.correct(self.node, local_ns)
        except OutOfRangeError:
            return None
        return float(ref - local_ns), float(bound)

    # -- status and publishing ----------------------------------------------------------------
    def _update_status(self) -> bool:
        if self._status == Status.STOPPED:
            return False
        slots = [s for s in self.scheduler.slots if not s.stopped]
        all_unreachable = not slots or all(s.failures_in_row >= UNREACHABLE_POLLS
                                           for s in slots)
        status = agent_status(self._table, now_local_ns=self.clock.now_ns(),
                              poll_s=self.scheduler.poll_s(), all_unreachable=all_unreachable,
                              last_sample_local_ns=self.samples.newest_t_local_ns,
                              has_sources=bool(self._sources))
        changed = status != self._status
        self._status = status
        if self._server is not None:
            self._server.synchronised = self._serves_synchronised()
        return changed

    def _serves_synchronised(self) -> bool:
        return self._status == Status.SERVING or self._status == Status.SYNCHRONISED

    def _publish(self, force: bool = False) -> None:
        table = self._table
        if table is None:
            return
        check = self._check
        block = PublisherBlock(
            poll_interval_s=self.scheduler.poll_s(), republish_s=self.scheduler.republish_s,
            sources=tuple(s.source.name for s in self._sources),
            sources_agree=check.agree if check is not None else None,
            falsetickers=check.falsetickers if check is not None else ())
        self.publisher.publish(table, status=self._status, block=block,
                               now_local_ns=self.clock.now_ns(), force=force)
        self.scheduler.published(self.timer.monotonic())

    # -- reading state ------------------------------------------------------------------------
    @property
    def source_names(self) -> list[str]:
        return [s.source.name for s in self._sources]

    @property
    def store_urls(self) -> list[str]:
        """The stores' URLs (passwords redacted)."""
        return self.publisher.urls

    @property
    def status(self) -> Status:
        return self._status

    @property
    def table(self) -> CorrectionTable | None:
        """The last published table (with the agent's status)."""
        return self.publisher.published[0]

    def snapshot(self) -> AgentSnapshot:
        """The state now (the HTTP thread calls this per request)."""
        now_local = self.clock.now_ns()
        table, table_json = self.publisher.published
        offset = self._offset_now(now_local)
        with self._lock:
            sources = tuple(SourceStatus(
                name=s.source.name, poll_s=slot.poll_s, samples=s.samples,
                errors=dict(s.errors),
                reachable=slot.failures_in_row < UNREACHABLE_POLLS and not slot.stopped,
                stopped=slot.stopped,
                last_offset_ns=s.last_sample.offset_ns if s.last_sample else None,
                last_bound_ns=s.last_sample.bound if s.last_sample else None,
                last_error=s.last_error, falseticker=s.falseticker,
                nts_failures=dict(s.nts_failures))
                for s, slot in zip(self._sources, self.scheduler.slots, strict=True))
            check = self._check
        current = table.current if table is not None else None
        status = self._status
        loop_age_s = self.timer.monotonic() - self._loop_mono
        healthy, reason = agent_health(
            status, has_table=self._corrector is not None, covers_now=offset is not None,
            loop_age_s=loop_age_s,
            stall_s=STALL_S + max((s.poll_s for s in sources), default=0.0))
        return AgentSnapshot(
            node=self.node,
            status=str(status),
            now_local_ns=now_local,
            table=table,
            table_json=table_json,
            offset_now_ns=offset[0] if offset else None,
            bound_now_ns=offset[1] if offset else None,
            skew_ppm=current.skew_ppm if current else None,
            samples_total=self.samples.appended + self.samples.resumed,
            sources=sources,
            fits=self._fits,
            fit_errors=self._fit_errors,
            publishes=self.publisher.publishes,
            publish_errors=self.publisher.errors(),
            loop_age_s=loop_age_s,
            agreement=check.agreement if check is not None else None,
            falsetickers=check.falsetickers if check is not None else (),
            sources_agree=check.agree if check is not None else None,
            healthy=healthy,
            health_reason=reason,
        )
