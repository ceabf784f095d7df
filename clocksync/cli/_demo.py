"""``clocksync demo``: the whole pipeline on an embedded default, with the hidden truth."""

from __future__ import annotations

import json
from dataclasses import asdict

import click

from .._model._units import format_ns, format_ns_column, text_table
from ._demorun import run_demo
from ._skew import render_skew_table

__all__ = ["demo"]


@click.command()
@click.option("--store", "store_dir", default=None, type=click.Path(file_okay=False),
              help="directory store for the tables (default: a new temporary directory)")
@click.option("--seed", default=1, show_default=True, help="random seed of the simulation")
@click.option("--duration", "duration_s", type=click.FloatRange(3.0, 50.0), default=15.0,
              show_default=True, help="seconds the agents run")
@click.option("--json", "as_json", is_flag=True, help="print the results as JSON")
def demo(store_dir: str | None, seed: int, duration_s: float, as_json: bool) -> None:
    """Run live agents on loopback: a reference agent serves NTP, three agents with
    simulated skewed clocks (one steps mid-run) measure it over real UDP, fit and publish
    their tables; then show the skew report beside the hidden truth and correct
    PP -> Bifrost latencies.

    No root, no network beyond 127.0.0.1, nothing touches the system clock.
    """
    result = run_demo(store_dir=store_dir, seed=seed, duration_s=duration_s)
    if as_json:
        payload = asdict(result)
        payload["report"] = [r.to_dict() for r in result.report]
        click.echo(json.dumps(payload))
        return
    click.echo(f"{len(result.truth)} agents with simulated clocks measured the reference "
               f"agent ({result.reference}) for {result.duration_s:g} s over loopback UDP: "
               f"{result.exchanges} NTP exchanges, {result.samples} samples (poll "
               f"{result.poll_s:g}..{2 * result.poll_s:g} s); tables in {result.store}\n")
    click.echo("Skew report at the end of the run (offset = reference - local):")
    click.echo(render_skew_table(result.report))
    click.echo("\nHidden truth at the same moment:")
    by_node = {r.node: r for r in result.report}
    errors = [by_node[t.node].offset_now_ns - t.offset_ns for t in result.truth]
    offsets = format_ns_column([t.offset_ns for t in result.truth], least=4)
    error_cells = format_ns_column(errors)
    rows = [[t.node, off, f"{t.skew_ppm:+.4f} ppm", cell,
             "inside" if abs(err) <= by_node[t.node].bound_now_ns else "OUTSIDE"]
            for t, off, cell, err in zip(result.truth, offsets, error_cells, errors,
                                         strict=True)]
    for line in text_table(["node", "true offset", "true skew", "error", "bound"], rows,
                           left=(0, 4)):
        click.echo(f"  {line}")
    click.echo("\nPP exit -> Bifrost arrival, per request:")
    for h in result.hops:
        click.echo(
            f"  {h.src} -> {h.dst}: {h.requests} requests; raw median "
            f"{format_ns(h.raw_median_ns)} ({h.raw_negative} negative); corrected median "
            f"{format_ns(h.corrected_median_ns)}, median bound ± {format_ns(h.median_bound_ns)}; "
            f"true median {format_ns(h.true_median_ns)}; truth inside the bound for "
            f"{h.covered}/{h.requests}, max error {format_ns(h.max_error_ns)}")
