"""``clocksync skew report``: per node offset now ± bound, skew, residual, age, status."""

from __future__ import annotations

import json
import time

import click

from .._corrector import Corrector
from .._report import SkewRow, skew_rows
from .._units import format_duration_s, format_ns

__all__ = ["render_skew_table", "skew"]


def render_skew_table(rows: list[SkewRow]) -> str:
    """Plain-text table of skew rows (offset = reference - local; skew > 0 = runs fast)."""
    header = (f"{'node':<14} {'offset now ± bound':>26} {'skew ppm':>18} {'resid rms':>11} "
              f"{'samples':>8} {'age':>9} {'status':<13} reference")
    lines = [header, "-" * len(header)]
    for r in rows:
        skew = (f"{r.skew_ppm:+.3f} ± {r.sigma_skew_ppm:.3f}"
                if r.sigma_skew_ppm == r.sigma_skew_ppm and r.sigma_skew_ppm != float("inf")
                else f"{r.skew_ppm:+.3f}")
        lines.append(
            f"{r.node:<14} {format_ns(r.offset_now_ns, r.bound_now_ns):>26} {skew:>18} "
            f"{format_ns(r.residual_rms_ns):>11} {r.samples:>8} "
            f"{format_duration_s(r.last_sample_age_s):>9} {r.status:<13} {r.reference}")
    return "\n".join(lines)


@click.group()
def skew() -> None:
    """Skew of every node against the reference."""


@skew.command("report")
@click.option("--store", "store", default="tables", show_default=True,
              help="table store: a directory, file://DIR or redis://host:port/db")
@click.option("--json", "as_json", is_flag=True, help="one JSON document instead of a table")
@click.option("--watch", type=click.FloatRange(min=0.1), default=None,
              help="refresh every N seconds until interrupted")
@click.option("--at-ns", type=click.IntRange(min=0), default=None,
              help="evaluate at this local time (ns) instead of now")
def report(store: str, as_json: bool, watch: float | None, at_ns: int | None) -> None:
    """Offset now ± guaranteed bound, skew (statistical), residual rms, samples, last
    sample age and status, per node."""
    corrector = Corrector.from_store(store)
    while True:
        now = at_ns if at_ns is not None else time.time_ns()
        rows = skew_rows(corrector, now)
        if as_json:
            click.echo(json.dumps({"store": store, "now_ns": now,
                                   "nodes": [r.to_dict() for r in rows]}))
        else:
            click.echo(render_skew_table(rows))
        if watch is None:
            return
        time.sleep(watch)
        corrector.refresh()
        if not as_json:
            click.echo()
