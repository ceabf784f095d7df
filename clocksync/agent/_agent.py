"""The agent loop: poll sources -> sample log -> refit the recent window -> publish.

One thread runs the loop; it sleeps on an event until the next source is due, a refit is
allowed, or a failed publish should be retried, so a stop request (SIGTERM) wakes it at
once. Stopping finishes the current poll, flushes the sample log, refits if new samples
arrived, publishes, and returns.

* Polling: each source has its own interval from :class:`clocksync.ntp.PollPolicy` (fast
  while the model is young or its bound wide; slower while tight; longer after a KoD RATE;
  never again after DENY/RSTR).
* Refitting: only the recent window (``window_s``, ``window_samples``) is fitted, and no more
  often than ``refit_min_s`` nor than keeps fitting under ``fit_cpu_share`` of a core.
* Publishing: every store gets the table with the agent's status; a failed write is retried
  with exponential backoff (up to ``publish_backoff_max_s``) without blocking the loop. The
  table is republished at least every :data:`REPUBLISH_S` (keeps Redis expiry alive) and
  whenever the status changes.
* Peer mode: an optional :class:`clocksync.ntp.NtpServer` serves this node's own clock; it
  announces itself unsynchronised (leap 3, stratum 16) unless the node is a reference (no
  sources) or its status is synchronised.
* Agreement: after every sample and every round, the sources' latest fresh samples are
  cross-checked (:mod:`._crosscheck`, Marzullo); a source a strict majority disagrees with
  is a falseticker: named in the snapshot, /metrics and the log, and — with
  ``exclude_falsetickers`` (default) — its new samples stay out of the sample log and the
  fit until it agrees again (counted as errors with reason ``falseticker``); while sources
  disagree and no strict majority agrees, no new sample enters (reason ``no_majority``).

The agent only measures: it never sets, slews or steps the system clock.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import math
import threading
import time
from dataclasses import dataclass, field

from .._agreement import Agreement
from .._clock import Clock, SystemClock
from .._corrector import Corrector
from .._errors import ClockSyncError, OutOfRangeError, StoreError
from .._fit import Assumptions, fit_table
from .._report import REPUBLISH_S
from .._sample import Sample
from .._store import TableStore, open_store
from .._table import CorrectionTable
from .._tablekey import load_table_key
from .._units import format_ns
from ..ntp import NtpServer, PollPolicy
from ._config import AgentConfig
from ._crosscheck import CrossCheck, cross_check
from ._samplelog import SampleLog
from ._sources import ChronySource, NtpSource, PollResult, Source
from ._status import UNREACHABLE_POLLS, agent_status

__all__ = ["REPUBLISH_S", "Agent", "AgentSnapshot", "SourceStatus", "build_sources"]

log = logging.getLogger("clocksync.agent")

#: first wait before retrying a failed publish (s)
_BACKOFF_FIRST_S = 0.5


def build_sources(config: AgentConfig, clock: Clock) -> list[Source]:
    """The sources a config asks for, in the order ntp servers, peers, chrony, ptp
    interfaces, ptp4l (the PTP module, and scapy with it, is imported only when asked)."""
    sources: list[Source] = []
    common = {"node": config.node, "clock": clock, "burst": config.burst,
              "burst_interval_s": config.burst_interval_s, "timeout_s": config.timeout_s,
              "interleaved": config.interleaved}
    try:
        for target in config.ntp_servers:
            sources.append(NtpSource(target, kind="ntp", nts=config.uses_nts(target),
                                     nts_ca_file=config.nts_ca_file,
                                     **common))  # type: ignore[arg-type]
        for target in config.peers:
            sources.append(NtpSource(target, kind="peer", **common))  # type: ignore[arg-type]
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
    """The agent's state at one instant (immutable; read by the HTTP thread)."""

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


@dataclass
class _SourceState:
    source: Source
    poll_s: float
    next_due: float = 0.0
    samples: int = 0
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    nts_failures: collections.Counter[str] = field(default_factory=collections.Counter)
    failures_in_row: int = 0
    answered: bool = False
    stopped: bool = False
    last_sample: Sample | None = None
    last_error: str = ""
    falseticker: bool = False


@dataclass
class _StoreState:
    store: TableStore
    pending: CorrectionTable | None = None
    failures: int = 0
    next_try: float = 0.0
    errors: int = 0


class Agent:
    """One node's agent (see the module docstring).

    Args:
        config: validated options.
        clock: the node's clock (default: the system clock; a SimClock in demos/tests).
        sources: override the sources built from ``config``.
        stores: override the stores opened from ``config.store_urls``.
    """

    def __init__(self, config: AgentConfig, *, clock: Clock | None = None,
                 sources: list[Source] | None = None,
                 stores: list[TableStore] | None = None) -> None:
        self.config = config
        self.node = config.node
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.policy = PollPolicy(min_poll_s=config.min_poll_s, max_poll_s=config.max_poll_s,
                                 target_bound_ns=config.target_bound_ns)
        self.samples = SampleLog(config.samples_dir, config.node,
                                 segment_samples=config.segment_samples,
                                 retention_s=config.retention_s,
                                 keep_samples=config.window_samples)
        self._own_stores = stores is None  # opened here: closed by shutdown()
        self._table_key = (load_table_key(config.table_key_file) if config.table_key_file
                           else None)
        self._stores = [_StoreState(s) for s in
                        (stores if stores is not None
                         else [open_store(u, table_key=self._table_key)
                               for u in config.store_urls])]
        built = sources if sources is not None else build_sources(config, self.clock)
        self._sources = [_SourceState(s, config.min_poll_s) for s in built]
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._table: CorrectionTable | None = None
        self._published: CorrectionTable | None = None
        self._published_json: str | None = None
        self._corrector: Corrector | None = None
        self._status = "unknown"
        self._fitted_count = -1  # samples appended when the last fit ran
        self._next_refit = 0.0
        self._last_publish = -math.inf
        self._generation = 0
        self._fits = 0
        self._fit_errors = 0
        self._publishes = 0
        self._loop_mono = time.monotonic()
        self._server: NtpServer | None = None
        self._max_skew_ppm = Assumptions.from_mapping(dict(config.fit)).max_skew_ppm
        self._check: CrossCheck | None = None
        self._check_key: tuple[bool | None, tuple[str, ...]] = (None, ())
        self._agreement_changed = False
        self._fit_from_resumed()

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

    def request_stop(self) -> None:
        """Ask the loop to finish (safe from signal handlers and other threads)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> None:
        """Run until :meth:`request_stop`; then flush, refit, publish and close."""
        self.start_server()
        try:
            while not self._stop.is_set():
                wait_s = self.step()
                self._stop.wait(wait_s)
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        """Flush the sample log, refit if needed, publish (one try per store), close."""
        try:
            self.samples.flush()
        except OSError as exc:
            log.error("sample log: final flush failed: %s", exc)
        if self.samples.appended + self.samples.resumed and self._fitted_count \
                != self.samples.appended:
            self._refit(time.monotonic())
        self._update_status()
        if self._table is not None:
            self._publish(force=True)
        for s in self._sources:
            s.source.close()
        if self._own_stores:
            for state in self._stores:
                close = getattr(state.store, "close", None)
                if callable(close):
                    close()
        if self._server is not None:
            self._server.stop()
            self._server = None

    # -- one iteration ----------------------------------------------------------------------
    def step(self) -> float:
        """Do whatever is due now; returns seconds until something is due next."""
        now = time.monotonic()
        self._loop_mono = now
        for state in self._sources:
            if self._stop.is_set():
                break
            if not state.stopped and now >= state.next_due:
                self._poll(state)
                now = time.monotonic()
        self._cross_check()  # samples age out of it while their sources stay silent
        if self._refit_due(now):
            try:  # before the refit publishes: a published table's samples are on disk
                self.samples.flush()
            except OSError as exc:
                log.error("sample log: flush failed: %s", exc)
            self._refit(now)
        changed = self._update_status() or self._agreement_changed
        self._agreement_changed = False
        if changed or time.monotonic() - self._last_publish >= REPUBLISH_S:
            self._publish()
        now = time.monotonic()
        for store in self._stores:
            if store.pending is not None and now >= store.next_try:
                self._try_store(store, now)
        return self._next_wake(time.monotonic())

    def _next_wake(self, now: float) -> float:
        due = [s.next_due for s in self._sources if not s.stopped]
        due += [s.next_try for s in self._stores if s.pending is not None]
        if self._fitted_count != self.samples.appended:
            due.append(self._next_refit)
        due.append(self._last_publish + REPUBLISH_S)
        due.append(now + 1.0)  # status (free-running) is re-evaluated at least every second
        return max(0.0, min(due) - now)

    def _poll(self, state: _SourceState) -> None:
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
                state.failures_in_row = 0
                state.answered = True
                state.last_sample = result.sample
            else:
                state.failures_in_row += 1
                state.answered = result.reachable
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
        else:
            log.warning("source %s: %s", state.source.name, result.message or "no sample")
        if result.stop:
            state.stopped = True
            log.error("source %s: stopped polling (%s)", state.source.name, result.message)
        bound = self._bound_now() if self._corrector is not None else math.inf
        if result.rate_limited:
            state.poll_s = self.policy.after_rate_limit(state.poll_s)
        else:
            state.poll_s = self.policy.next_poll_s(state.poll_s, bound_ns=bound,
                                                   samples=len(self.samples))
        state.next_due = time.monotonic() + state.poll_s

    # -- agreement --------------------------------------------------------------------------
    def _cross_check(self) -> CrossCheck:
        """Cross-check the sources' latest fresh samples; mark falsetickers, log changes."""
        latest = [(s.source.name, s.last_sample, s.poll_s) for s in self._sources
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
    def _refit_due(self, now: float) -> bool:
        return self._fitted_count != self.samples.appended and now >= self._next_refit

    def _fit_from_resumed(self) -> None:
        if self.samples.resumed:
            self._refit(time.monotonic())

    def _refit(self, now: float) -> None:
        window = self.samples.recent(self.config.window_s, self.config.window_samples)
        self._fitted_count = self.samples.appended
        if not window:
            return
        started = time.process_time()
        try:
            table = fit_table(window, reference="", generated_at_ns=None, **self.config.fit)
        except ClockSyncError as exc:
            self._fit_errors += 1
            log.error("fit failed on %d samples: %s", len(window), exc)
            return
        cost_s = time.process_time() - started
        self._fits += 1
        self._next_refit = now + max(self.config.refit_min_s,
                                     cost_s / self.config.fit_cpu_share)
        corrector = Corrector([table])
        with self._lock:
            self._table, self._corrector = table, corrector
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
    def _current_poll_s(self) -> float:
        active = [s.poll_s for s in self._sources if not s.stopped]
        return max(active) if active else self.config.max_poll_s

    def _update_status(self) -> bool:
        active = [s for s in self._sources if not s.stopped]
        all_unreachable = not active or all(
            s.failures_in_row >= UNREACHABLE_POLLS for s in active)
        status = agent_status(self._table, now_local_ns=self.clock.now_ns(),
                              poll_s=self._current_poll_s(),
                              all_unreachable=bool(self._sources) and all_unreachable,
                              last_sample_local_ns=self.samples.newest_t_local_ns)
        changed = status != self._status
        self._status = status
        if self._server is not None:
            self._server.synchronised = self._serves_synchronised()
        return changed

    def _serves_synchronised(self) -> bool:
        return not self._sources or self._status == "synchronised"

    def _publish(self, force: bool = False) -> None:
        table = self._table
        if table is None:
            return
        self._generation += 1
        extra = dict(table.extra)
        check = self._check
        extra["agent"] = {"status": self._status, "poll_interval_s": self._current_poll_s(),
                          "sources": [s.source.name for s in self._sources],
                          "sources_agree": check.agree if check is not None else None,
                          "falsetickers": list(check.falsetickers) if check is not None else []}
        published = dataclasses.replace(table, status=self._status,
                                        generated_at_ns=self.clock.now_ns(),
                                        generation=self._generation, extra=extra)
        text = published.to_json(self._table_key)
        with self._lock:
            self._published, self._published_json = published, text
        self._last_publish = time.monotonic()
        now = time.monotonic()
        for state in self._stores:
            state.pending = published
            if force or now >= state.next_try:
                self._try_store(state, now)

    def _try_store(self, state: _StoreState, now: float) -> None:
        table = state.pending
        if table is None:
            return
        try:
            state.store.write(table)
        except (StoreError, OSError) as exc:
            state.failures += 1
            state.errors += 1
            delay = min(self.config.publish_backoff_max_s,
                        _BACKOFF_FIRST_S * 2 ** (state.failures - 1))
            state.next_try = now + delay
            log.warning("store %s: publish failed (retry in %.1f s): %s",
                        state.store.url, delay, exc)
            return
        state.pending = None
        state.failures = 0
        state.next_try = now
        self._publishes += 1

    # -- reading state ------------------------------------------------------------------------
    @property
    def source_names(self) -> list[str]:
        return [s.source.name for s in self._sources]

    @property
    def store_urls(self) -> list[str]:
        """The stores' URLs (passwords redacted)."""
        return [s.store.url for s in self._stores]

    @property
    def status(self) -> str:
        return self._status

    @property
    def table(self) -> CorrectionTable | None:
        """The last published table (with the agent's status)."""
        with self._lock:
            return self._published

    def snapshot(self) -> AgentSnapshot:
        """The state now (the HTTP thread calls this per request)."""
        now_local = self.clock.now_ns()
        with self._lock:
            table, table_json = self._published, self._published_json
        offset = self._offset_now(now_local)
        with self._lock:
            sources = tuple(SourceStatus(
                name=s.source.name, poll_s=s.poll_s, samples=s.samples, errors=dict(s.errors),
                reachable=s.failures_in_row < UNREACHABLE_POLLS and not s.stopped,
                stopped=s.stopped,
                last_offset_ns=s.last_sample.offset_ns if s.last_sample else None,
                last_bound_ns=s.last_sample.bound if s.last_sample else None,
                last_error=s.last_error, falseticker=s.falseticker,
                nts_failures=dict(s.nts_failures)) for s in self._sources)
            check = self._check
        current = table.current if table is not None else None
        return AgentSnapshot(
            node=self.node,
            status=self._status,
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
            publishes=self._publishes,
            publish_errors={s.store.url: s.errors for s in self._stores},
            loop_age_s=time.monotonic() - self._loop_mono,
            agreement=check.agreement if check is not None else None,
            falsetickers=check.falsetickers if check is not None else (),
            sources_agree=check.agree if check is not None else None,
        )
