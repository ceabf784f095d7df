"""``clocksync ntp ...``: probe an NTP server (thin layer over :mod:`clocksync.ntp`)."""

from __future__ import annotations

import json

import click

from .._model._units import format_ns
from ..ntp import (
    NtpMeasurement,
    iter_probe,
    measurement_record,
    summarize,
)

__all__ = ["ntp"]


@click.group()
def ntp() -> None:
    """NTP measurements (measure only; the system clock is never touched)."""


def _line(i: int, m: NtpMeasurement) -> str:
    s = m.sample
    return (f"#{i} offset {format_ns(s.offset_ns, s.bound)}  delay {format_ns(s.delay_ns)}"
            f"  stratum {s.stratum}  ref {m.reference_id}  stamps {m.tx_kind}/{m.rx_kind}"
            f"{'  interleaved' if m.interleaved else ''}"
            f"{'  nts' if s.source.startswith('nts:') else ''}"
            f"  [offset_ns={s.offset_ns:.1f} delay_ns={s.delay_ns:.1f} bound_ns={s.bound:.1f}]")


@ntp.command()
@click.argument("server")
@click.option("--count", "-c", default=4, show_default=True, type=click.IntRange(min=1),
              help="Number of exchanges.")
@click.option("--interval", "interval_s", default=1.0, show_default=True,
              type=click.FloatRange(min=0.0), help="Seconds between exchanges.")
@click.option("--timeout", "timeout_s", default=1.0, show_default=True,
              type=click.FloatRange(min=0.001), help="Seconds to wait for each reply.")
@click.option("--basic", is_flag=True,
              help="Basic mode only (default: ask for interleaved mode from the 2nd exchange).")
@click.option("--nts", is_flag=True,
              help="Authenticate with NTS (RFC 8915): PORT is then the NTS-KE port "
                   "(default 4460) and the NTP server and port come from NTS-KE.")
@click.option("--nts-ca-file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="PEM file of CA certificates to trust for NTS-KE (default: the "
                   "system trust store).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def probe(server: str, count: int, interval_s: float, timeout_s: float, basic: bool,
          nts: bool, nts_ca_file: str | None, as_json: bool) -> None:
    """Measure this host's clock offset against SERVER[:PORT] (default port 123; with
    --nts, the NTS-KE port, default 4460).

    Prints one line per exchange (offset, delay, bound — ns — stratum, reference id), then a
    summary: the minimum-delay exchange, the median offset and the intersection of all
    bounds. Offset = server time - local time; positive means the local clock is behind.
    In interleaved mode (servers that support it: chronyd, clocksync) each line from the
    second on describes the previous exchange, completed with the server's exact send time.
    With --nts every exchange is authenticated; a failed NTS-KE (TLS, certificate, records)
    ends the probe, and there is never a fallback to unauthenticated NTP.
    Exits non-zero on an unresolvable host, a Kiss-o'-Death, a failed NTS-KE, or when no
    exchange succeeds.
    """
    if nts_ca_file is not None and not nts:
        raise click.UsageError("--nts-ca-file needs --nts")
    measurements: list[NtpMeasurement] = []
    failures = 0
    for i, result in enumerate(
        iter_probe(server, count=count, interval_s=interval_s, timeout_s=timeout_s,
                   interleaved=not basic, nts=nts, nts_ca_file=nts_ca_file),
        start=1,
    ):
        if isinstance(result, NtpMeasurement):
            measurements.append(result)
            if as_json:
                click.echo(json.dumps({"exchange": i, **measurement_record(result)}))
            else:
                click.echo(_line(i, result))
        else:
            failures += 1
            if as_json:
                click.echo(json.dumps({"exchange": i, "error": str(result)}))
            click.echo(f"#{i} failed: {result}", err=True)
    if not measurements:
        raise click.ClickException(f"{server}: no successful exchange out of {count}")
    summary = summarize(measurements, failures)
    if as_json:
        click.echo(json.dumps(summary.record()))
    else:
        for line in summary.lines():
            click.echo(line)
