"""PTP sources of the agent: our own measure-only slave, or a local ptp4l.

* :class:`PtpSource` (``ptp:IFACE``) — :class:`ptp.PtpSlave` on one interface (UDPv4
  multicast or Ethernet, one domain). PTP is a stream the master pushes (Announce, Sync,
  Follow_Up every interval; Delay_Req answered at the master's rate), and the slave measures
  best when it follows it without gaps: BMCA qualification needs Announces in a row, the
  path-delay filter and the rate estimate need a steady series, and a Delay_Req must leave
  right after its Sync. So the slave runs in its own thread for the source's lifetime and
  keeps its exchanges; :meth:`PtpSource.poll` takes those completed since the last poll
  (waiting up to ``timeout_s`` for the first when there is none yet) and returns the one
  with the smallest bound. The agent loop stays single-threaded in everything it owns.
* :class:`Ptp4lSource` (``ptp4l:PATH``) — a ptp4l already running on this node, read through
  its management socket (``TIME_STATUS_NP`` + ``CURRENT_DATA_SET``, :class:`ptp.Ptp4lClient`):
  its latest measurement, nothing measured twice. Its bound (meanPathDelay + 50 ns) assumes
  no delay outlier on that Sync (see :mod:`ptp._pmc`).

Both map times through the agent's clock, so a :class:`~clocksync.SimClock` works like the
system clock. Rejected PTP messages are reported per poll, one ``PollResult.errors`` entry
per message, by reason (:attr:`ptp.PtpSlave.rejected`). Offsets: reference (master) -
local (ns); positive = the local clock is behind — the negative of ptp4l's master offset.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import deque

from ptp import PortConfig, Ptp4lClient, Ptp4lManagementError, PtpResult, PtpSlave, to_sample

from .._model._clock import Clock, SystemClock
from .._model._errors import InputError
from ._source import PollResult

__all__ = ["PTP_TRANSPORTS", "Ptp4lSource", "PtpSource"]

#: config transport names -> :func:`ptp._transport.open_transport` names
PTP_TRANSPORTS = {"udp4": "udp", "l2": "l2"}
#: the slave thread hands over its counters at least this often (s)
_CHUNK_S = 0.25
#: exchanges kept between two polls (4 per second for ~4 minutes)
_KEEP = 1024
#: ptp4l is asked again this often while its measurement is the one already returned (s)
_PTP4L_RETRY_S = 0.05


def _usable(result: PtpResult) -> bool:
    """Accepted by the delay filter and causal (its interval is not inverted)."""
    m = result.measurement
    return result.accepted and m.upper_ns >= m.lower_ns


def _new_rejections(now: dict[str, int], before: dict[str, int]) -> tuple[str, ...]:
    """One reason string per message rejected since ``before`` (counts only grow)."""
    out: list[str] = []
    for reason in sorted(now):
        out += [reason] * max(0, now[reason] - before.get(reason, 0))
    return tuple(out)


class PtpSource:
    """Our measure-only PTP slave on ``iface`` as an agent source (see the module docs).

    Args:
        iface: network interface facing the PTP master.
        node: this node's name.
        clock: this node's clock (kernel stamps are mapped through it).
        transport: ``"udp4"`` (224.0.1.129, ports 319/320) or ``"l2"`` (ethertype 0x88F7).
        domain: PTP domainNumber (0-255).
        timeout_s: how long a poll waits for an exchange when none completed since the last.
        max_skew_ppm: assumed bound on the local clock's frequency error (ppm), part of
            each exchange's bound (the agent passes its fit assumption).

    Raises:
        InputError: unknown transport, no such interface, or the sockets cannot be opened
            (ports 319/320 and packet sockets need root); the message names the interface.
    """

    def __init__(self, iface: str, *, node: str, clock: Clock | None = None,
                 transport: str = "udp4", domain: int = 0, timeout_s: float = 1.0,
                 max_skew_ppm: float | None = None) -> None:
        if transport not in PTP_TRANSPORTS:
            raise InputError(f"ptp_transport: one of {', '.join(PTP_TRANSPORTS)}, "
                             f"got {transport!r}")
        self.name = f"ptp:{iface}"
        self.iface = iface
        self.node = node
        self.timeout_s = timeout_s
        config = PortConfig(domain=domain) if max_skew_ppm is None else PortConfig(
            domain=domain, max_skew_ppm=max_skew_ppm)
        try:
            self._slave = PtpSlave(iface, config=config,
                                   clock=clock if clock is not None else SystemClock(),
                                   transport=PTP_TRANSPORTS[transport])
        except InputError as exc:
            raise InputError(f"ptp_interfaces: {exc}") from None
        except OSError as exc:
            raise InputError(f"ptp_interfaces: {iface}: cannot open PTP sockets "
                             f"({exc.strerror or exc}; ports 319/320 need root)") from None
        self._cond = threading.Condition()
        self._results: deque[PtpResult] = deque(maxlen=_KEEP)
        self._rejected: dict[str, int] = {}  # the slave's totals, handed over by the thread
        self._rejected_seen: dict[str, int] = {}  # totals at the last poll
        self._received = 0
        self._received_seen = 0
        self._by_kind: dict[str, int] = {}
        self._master = ""
        self._error = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"clocksync-{self.name}",
                                        daemon=True)
        self._thread.start()

    # -- the slave's thread -------------------------------------------------------------
    def _hand_over(self, result: PtpResult | None = None) -> None:
        slave = self._slave
        with self._cond:
            if result is not None:
                self._results.append(result)
                self._master = result.master
            self._rejected = slave.rejected
            self._received = slave.stats.received
            self._by_kind = dict(slave.stats.by_kind)
            self._cond.notify_all()

    def _run(self) -> None:
        backoff_s = 0.5
        while not self._stop.is_set():
            try:
                for result in self._slave.run(_CHUNK_S):
                    self._hand_over(result)
                    if self._stop.is_set():
                        break
                backoff_s = 0.5
            except OSError as exc:  # the interface went away, the sockets broke
                with self._cond:
                    self._error = f"{self.iface}: {exc}"
                self._stop.wait(backoff_s)
                backoff_s = min(30.0, backoff_s * 2)
            self._hand_over()

    # -- the agent's side ---------------------------------------------------------------
    def poll(self) -> PollResult:
        deadline = time.monotonic() + self.timeout_s
        with self._cond:
            while not self._results and (left := deadline - time.monotonic()) > 0:
                self._cond.wait(left)
            results = list(self._results)
            self._results.clear()
            rejected, received, error = dict(self._rejected), self._received, self._error
            by_kind, master = dict(self._by_kind), self._master
            self._error = ""
        errors = _new_rejections(rejected, self._rejected_seen)
        self._rejected_seen = rejected
        heard = received > self._received_seen
        self._received_seen = received
        usable = [r for r in results if _usable(r)]
        if usable:
            best = min(usable, key=lambda r: r.measurement.bound_ns)
            sample = to_sample(best, self.node, self.iface)
            return PollResult(dataclasses.replace(sample, source=self.name), errors,
                              message=f"{len(errors)} PTP messages rejected" if errors else "")
        if results:
            return PollResult(None, errors, reachable=True,
                              message=f"{len(results)} PTP exchanges with {master}, none usable "
                                      "(delay outliers or non-causal stamps)")
        seen = ", ".join(f"{k} {v}" for k, v in sorted(by_kind.items())) or "none"
        why = error or (f"no PTP exchange completed (messages seen so far: {seen}; "
                        f"rejected: {', '.join(sorted(set(errors))) or 'none'})")
        return PollResult(None, (*errors, "network" if error else "timeout"),
                          reachable=heard, message=why)

    def close(self) -> None:
        """Stop the slave's thread and close its sockets (idempotent)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(_CHUNK_S + 2.0)
        self._slave.close()


class Ptp4lSource:
    """A local ptp4l's latest measurement, read over its management socket.

    Args:
        uds_path: ptp4l's ``uds_address`` (default ``/var/run/ptp4l``).
        node: this node's name.
        clock: this node's clock; ptp4l measures the system clock, so the sample is shifted
            by the clock's own offset from it (like every other source).
        timeout_s: a poll waits up to this long for an answer and for a measurement newer
            than the one it returned last.
    """

    def __init__(self, uds_path: str, *, node: str, clock: Clock | None = None,
                 timeout_s: float = 1.0) -> None:
        self.name = f"ptp4l:{uds_path}"
        self.node = node
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.timeout_s = timeout_s
        self._client = Ptp4lClient(uds_path, timeout_s=timeout_s)
        self._last_ingress_ns: int | None = None

    def poll(self) -> PollResult:
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                sample = self._client.sample(self.node)
            except Ptp4lManagementError as exc:
                return PollResult(None, ("ptp4l",), reachable=False, message=str(exc))
            if sample is None:
                return PollResult(None, ("unsynchronised",), message="ptp4l has no "
                                  "grandmaster or has not measured a path delay yet")
            if sample.t_local_ns != self._last_ingress_ns:
                break
            if time.monotonic() + _PTP4L_RETRY_S > deadline:
                return PollResult(None, ("stale",), message="ptp4l has no measurement newer "
                                  "than the last one returned")
            time.sleep(_PTP4L_RETRY_S)
        ingress_ns = sample.t_local_ns  # system time of the Sync's arrival
        self._last_ingress_ns = ingress_ns
        local_ns = self.clock.read_ns(ingress_ns)
        return PollResult(dataclasses.replace(
            sample, t_local_ns=local_ns, offset_ns=sample.offset_ns + float(ingress_ns - local_ns),
            source=self.name))

    def close(self) -> None:
        self._client.close()
