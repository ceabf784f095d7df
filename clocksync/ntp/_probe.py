"""``ntp probe``: parse a target, run exchanges, summarise them (human units via ``_units``).

The CLI only calls into here; everything here returns records or strings.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass

from .._model._clock import Clock
from .._model._errors import InputError
from .._model._units import format_ns
from ._client import NtpClient, NtpMeasurement
from ._errors import KissOfDeathError, NtpAddressError, NtpRejectError, NtpTimeoutError
from ._nts import NtsClient
from ._ntske import DEFAULT_KE_PORT

__all__ = [
    "ProbeSummary",
    "iter_probe",
    "measurement_record",
    "parse_target",
    "probe",
    "summarize",
]

DEFAULT_PORT = 123


def parse_target(target: str, default_port: int = DEFAULT_PORT) -> tuple[str, int]:
    """``HOST``, ``HOST:PORT``, ``[V6]`` or ``[V6]:PORT`` to ``(host, port)``.

    Raises:
        NtpAddressError: empty host or a port that is not an integer in 1..65535.
    """
    text = target.strip()
    port_text: str | None = None
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise NtpAddressError(f"server {target!r}: expected [IPV6] or [IPV6]:PORT")
        port_text = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host = text  # a bare name, IPv4 or unbracketed IPv6 address
    if not host:
        raise NtpAddressError(f"server {target!r}: empty host")
    if port_text is None:
        return host, default_port
    try:
        port = int(port_text)
    except ValueError:
        raise NtpAddressError(f"server {target!r}: port {port_text!r} is not a number") from None
    if not 0 < port < 65536:
        raise NtpAddressError(f"server {target!r}: port {port} is not in 1..65535")
    return host, port


def measurement_record(m: NtpMeasurement) -> dict[str, object]:
    """A JSON-ready record of one exchange (ns integers/floats, stamp kinds, reference)."""
    s = m.sample
    return {
        "t_local_ns": s.t_local_ns,
        "offset_ns": s.offset_ns,
        "delay_ns": s.delay_ns,
        "bound_ns": s.bound,
        "stratum": s.stratum,
        "reference_id": m.reference_id,
        "root_delay_ns": s.root_delay_ns,
        "root_dispersion_ns": s.root_dispersion_ns,
        "tx_stamp": m.tx_kind.value,
        "rx_stamp": m.rx_kind.value,
        "interleaved": m.interleaved,
        "source": s.source,
    }


@dataclass(frozen=True, slots=True)
class ProbeSummary:
    """What a probe found.

    Attributes:
        count: successful exchanges.
        failures: failed exchanges.
        best: the minimum-delay exchange (its offset and bound are the probe's answer).
        median_offset_ns: median of all offsets (ns), for comparison.
        low_ns, high_ns: intersection of every exchange's interval ``offset ± bound``; if
            the intervals do not all overlap, ``None`` (some bound was wrong).
        measurements: every successful exchange, in order.
    """

    count: int
    failures: int
    best: NtpMeasurement
    median_offset_ns: float
    low_ns: float | None
    high_ns: float | None
    measurements: tuple[NtpMeasurement, ...] = ()

    def record(self) -> dict[str, object]:
        return {
            "summary": True,
            "count": self.count,
            "failures": self.failures,
            "best": measurement_record(self.best),
            "median_offset_ns": self.median_offset_ns,
            "intersection_low_ns": self.low_ns,
            "intersection_high_ns": self.high_ns,
        }

    def lines(self) -> list[str]:
        b = self.best.sample
        out = [
            f"exchanges: {self.count} ok, {self.failures} failed",
            f"min-delay offset: {format_ns(b.offset_ns, b.bound)} "
            f"(delay {format_ns(b.delay_ns)}, stratum {b.stratum}, "
            f"ref {self.best.reference_id})",
            f"median offset: {format_ns(self.median_offset_ns)}",
        ]
        if self.low_ns is not None and self.high_ns is not None:
            mid = (self.low_ns + self.high_ns) / 2
            out.append(f"all bounds agree: offset in {format_ns(mid, self.high_ns - mid)}")
        else:
            out.append("WARNING: the exchanges' bounds do not all overlap")
        return out


def summarize(measurements: list[NtpMeasurement], failures: int = 0) -> ProbeSummary:
    """Summary of successful exchanges.

    Raises:
        InputError: no measurements.
    """
    if not measurements:
        raise InputError("summarize: no successful exchange to summarise")
    best = min(measurements, key=lambda m: m.sample.delay_ns)
    low = max(m.sample.offset_ns - m.sample.bound for m in measurements)
    high = min(m.sample.offset_ns + m.sample.bound for m in measurements)
    return ProbeSummary(
        count=len(measurements),
        failures=failures,
        best=best,
        median_offset_ns=statistics.median(m.sample.offset_ns for m in measurements),
        low_ns=low if low <= high else None,
        high_ns=high if low <= high else None,
        measurements=tuple(measurements),
    )


def iter_probe(
    target: str,
    *,
    count: int = 4,
    interval_s: float = 1.0,
    timeout_s: float = 1.0,
    clock: Clock | None = None,
    node: str = "local",
    interleaved: bool = True,
    nts: bool = False,
    nts_ca_file: str | None = None,
) -> Iterator[NtpMeasurement | NtpTimeoutError | NtpRejectError | OSError]:
    """Run ``count`` exchanges against ``HOST[:PORT]``; yield each measurement or failure.

    With ``interleaved`` (default) the client asks for interleaved mode from the second
    exchange on (see :class:`~clocksync.ntp.NtpClient`). With ``nts``, ``PORT`` is the
    NTS-KE port (default 4460) and every exchange is NTS-authenticated
    (:class:`~clocksync.ntp.NtsClient`, trusting ``nts_ca_file`` or the system store).

    Raises:
        NtpAddressError: bad or unresolvable target.
        KissOfDeathError: the server sent a Kiss-o'-Death (the probe stops).
        NtsKeyExchangeError: NTS-KE failed (the probe stops).
    """
    if count < 1:
        raise InputError(f"count: must be >= 1, got {count}")
    if interval_s < 0:
        raise InputError(f"interval: must be >= 0, got {interval_s}")
    host, port = parse_target(target, DEFAULT_KE_PORT if nts else DEFAULT_PORT)
    client: NtpClient | NtsClient
    if nts:
        client = NtsClient(host, port, ca_file=nts_ca_file, node=node, clock=clock,
                           timeout_s=timeout_s, interleaved=interleaved)
    else:
        client = NtpClient(host, port, node=node, clock=clock, timeout_s=timeout_s,
                           interleaved=interleaved)
    with client:
        for i in range(count):
            if i:
                time.sleep(interval_s)
            try:
                yield client.exchange()
            except KissOfDeathError:
                raise
            except (NtpTimeoutError, NtpRejectError, OSError) as exc:
                yield exc


def probe(
    target: str,
    *,
    count: int = 4,
    interval_s: float = 1.0,
    timeout_s: float = 1.0,
    clock: Clock | None = None,
    node: str = "local",
    interleaved: bool = True,
    nts: bool = False,
    nts_ca_file: str | None = None,
) -> ProbeSummary:
    """Probe ``HOST[:PORT]`` ``count`` times and summarise (library form of ``ntp probe``).

    Raises:
        NtpAddressError: bad or unresolvable target.
        KissOfDeathError: the server sent a Kiss-o'-Death.
        NtsKeyExchangeError: NTS-KE failed (with ``nts``).
        NtpTimeoutError, NtpRejectError, OSError: no exchange succeeded (the last error).
    """
    measurements: list[NtpMeasurement] = []
    failures: list[Exception] = []
    for result in iter_probe(target, count=count, interval_s=interval_s, timeout_s=timeout_s,
                             clock=clock, node=node, interleaved=interleaved, nts=nts,
                             nts_ca_file=nts_ca_file):
        if isinstance(result, NtpMeasurement):
            measurements.append(result)
        else:
            failures.append(result)
    if not measurements:
        raise failures[-1]
    return summarize(measurements, len(failures))
