"""``clocksync ptp ...``: measure against a PTP master (thin layer over :mod:`ptp`)."""

from __future__ import annotations

import json

import click

from ptp import PortConfig, PtpSlave, result_line, result_record, summarize

__all__ = ["ptp"]


@click.group()
def ptp() -> None:
    """PTP (IEEE 1588) measurements (measure only; the system clock is never touched)."""


@ptp.command()
@click.argument("iface")
@click.option(
    "--domain",
    default=0,
    show_default=True,
    type=click.IntRange(0, 255),
    help="PTP domainNumber to listen to.",
)
@click.option(
    "--seconds",
    "seconds",
    default=10.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="How long to listen (s).",
)
@click.option(
    "--max-skew-ppm",
    default=PortConfig().max_skew_ppm,
    show_default=True,
    type=click.FloatRange(min=0.0),
    help="Assumed bound on this clock's frequency error (ppm), part of each bound.",
)
@click.option(
    "--transport",
    type=click.Choice(["udp", "l2"]),
    default="udp",
    show_default=True,
    help="UDPv4 multicast (ports 319/320) or Ethernet (ethertype 0x88F7).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def probe(
    iface: str, domain: int, seconds: float, max_skew_ppm: float, transport: str, as_json: bool
) -> None:
    """Measure this host's clock against the best PTP master on IFACE (E2E delay).

    Listens on 224.0.1.129 ports 319/320 (or ethertype 0x88F7 with --transport l2) beside
    any running ptp4l, picks the master by the BMCA, sends its own Delay_Reqs and prints
    one line per exchange (offset ± bound, path delay), then a summary. Offset = master -
    local (ns); positive means the local clock is behind; ptp4l's "master offset" is the
    negative. Kernel software timestamps are used. Exits non-zero when no exchange
    completes. Needs root.
    """
    config = PortConfig(domain=domain, max_skew_ppm=max_skew_ppm)
    results = []
    try:
        slave = PtpSlave(iface, config=config, transport=transport)
    except PermissionError as exc:
        raise click.ClickException(f"{iface}: cannot open PTP sockets: {exc}") from None
    with slave:
        for result in slave.run(seconds):
            results.append(result)
            click.echo(json.dumps(result_record(result)) if as_json else result_line(result))
    summary = summarize(results)
    if summary is None:
        seen = ", ".join(f"{k} {v}" for k, v in sorted(slave.stats.by_kind.items())) or "none"
        raise click.ClickException(
            f"{iface}: no PTP exchange completed in {seconds:g} s (domain {domain};"
            f" messages seen: {seen})"
        )
    if as_json:
        click.echo(json.dumps(summary.record()))
    else:
        for line in summary.lines():
            click.echo(line)
