"""``clocksync skew report``: per node offset now ± bound, skew, residual, age, status."""

from __future__ import annotations

import json
import math
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click
import numpy as np

from .._corrector import Corrector
from .._fit import SampleArrays
from .._io._atomic import atomic_path
from .._io._samplefile import read_samples
from .._model._errors import InputError
from .._model._table import LineEstimate
from .._model._tablekey import TableKey
from .._model._units import format_duration_column, format_ns_column, text_table
from .._report import SkewRow, skew_rows
from ..latency import plain_axes
from ._options import (
    allow_empty_option,
    exit_for_load_errors,
    load_store,
    report_load_errors,
    strict_option,
    table_key_option,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["load_sample_history", "plot_skew", "render_skew_table", "skew"]

_SAMPLE_SUFFIXES = (".parquet", ".pq", ".csv", ".jsonl", ".ndjson")


def render_skew_table(rows: list[SkewRow]) -> str:
    """Plain-text table of skew rows (offset = reference - local; skew > 0 = runs fast).

    Each column has one unit for all its rows and is right-aligned under its header; skew
    is in ppm with four decimals (1 ppb reads ``0.0010``), ± its statistical 1σ.
    """
    offsets = format_ns_column([r.offset_now_ns for r in rows], [r.bound_now_ns for r in rows])
    resid = format_ns_column([r.residual_rms_ns for r in rows])
    ages = format_duration_column([r.last_sample_age_s for r in rows])
    cells = []
    for r, offset, rms, age in zip(rows, offsets, resid, ages, strict=True):
        if r.skew_ppm != r.skew_ppm:
            skew = "n/a"
        elif math.isfinite(r.sigma_skew_ppm):
            skew = f"{r.skew_ppm:+.4f} ± {r.sigma_skew_ppm:.4f} ppm"
        else:
            skew = f"{r.skew_ppm:+.4f} ppm"
        cells.append([r.node, offset, skew, rms, str(r.samples), age, r.status, r.reference])
    header = ["node", "offset now ± bound", "skew (1σ)", "resid rms", "samples", "age",
              "status", "reference"]
    return "\n".join(text_table(header, cells, left=(0, 6, 7)))


def load_sample_history(paths: tuple[str, ...]) -> dict[str, SampleArrays]:
    """Samples per node from sample files and directories (e.g. agents' ``DATA/samples``
    logs: every ``*.parquet``/``.csv``/``.jsonl`` inside). Unreadable files raise."""
    files: list[Path] = []
    for item in paths:
        path = Path(item)
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix in _SAMPLE_SUFFIXES)
        elif path.is_file():
            files.append(path)
        else:
            raise InputError(f"{item}: no such sample file or directory")
    columns: dict[str, list[SampleArrays]] = {}
    for file in files:
        arr = read_samples(file)
        for node in arr.nodes():
            columns.setdefault(node, []).append(arr.for_node(node))
    out: dict[str, SampleArrays] = {}
    for node, parts in columns.items():
        out[node] = SampleArrays(*(np.concatenate([getattr(p, f) for p in parts])
                                   for f in ("node", "t_local_ns", "offset_ns", "delay_ns",
                                             "bound_ns", "source")))
    return out


def plot_skew(corrector: Corrector, now_ns: int, path: str | os.PathLike[str],
              history: dict[str, SampleArrays] | None = None,
              span_s: float = 3_600.0) -> Figure:
    """PNG, one panel per node: sample offsets with their bounds (from ``history``), the
    fitted line of the newest segment, and the guaranteed bound band, over local time.
    Axes show plain numbers (no offset notation). Returns the drawn figure."""
    try:
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - depends on the install
        raise InputError("--plot needs matplotlib: pip install 'clocksync[plot]'") from None
    nodes = corrector.nodes
    fig = Figure(figsize=(13, 2.8 * max(1, len(nodes))))
    axes = fig.subplots(max(1, len(nodes)), 2, squeeze=False)
    for (ax, rax), node in zip(axes, nodes, strict=False):
        table = corrector.table(node)
        line = table.current
        first = table.segments[0].first_sample_local_ns if table.segments else now_ns
        start = max(first, now_ns - int(span_s * 1e9))

        def trend(t_ns: np.ndarray, line: LineEstimate | None = line) -> np.ndarray:
            if line is None:
                return np.zeros(len(t_ns))
            return line.offset_ns - line.skew_ppm * 1e3 * (t_ns - line.anchor_local_ns) / 1e9

        samples = (history or {}).get(node)
        if samples is not None and len(samples):
            keep = samples.t_local_ns >= start
            ts = samples.t_local_ns[keep]
            for axis, base in ((ax, 0.0), (rax, trend(ts))):
                axis.errorbar((ts - now_ns) / 1e9, (samples.offset_ns[keep] - base) / 1e3,
                              yerr=samples.bound_ns[keep] / 1e3, fmt=".", ms=3,
                              color="tab:gray", elinewidth=0.5, alpha=0.6,
                              label="samples ± bound")
        grid = np.linspace(start, max(now_ns, start + 1), 400).astype(np.int64)
        ref, bound = corrector.correct(node, grid, on_invalid="inf")
        ok = np.isfinite(bound)
        x = (grid - now_ns) / 1e9
        off = (ref - grid).astype(np.float64)
        for axis, base in ((ax, np.zeros(len(grid))), (rax, trend(grid))):
            axis.fill_between(x[ok], (off - base - bound)[ok] / 1e3,
                              (off - base + bound)[ok] / 1e3, color="tab:blue", alpha=0.2,
                              label="guaranteed bound")
        if line is not None:
            lx = np.array([max(start, table.segments[-1].first_sample_local_ns), now_ns],
                          dtype=np.int64)
            ax.plot((lx - now_ns) / 1e9, trend(lx) / 1e3, color="tab:red", lw=1.2,
                    label=f"fit: skew {line.skew_ppm:+.3f} ppm")
            rax.axhline(0.0, color="tab:red", lw=1.0, label="fitted line")
        ax.set_title(f"{node}  ({table.status}, reference {table.reference or '?'})",
                     fontsize=9)
        rax.set_title(f"{node}: minus the fitted line", fontsize=9)
        ax.set_ylabel("offset (µs)\nref − local")
        rax.set_ylabel("residual (µs)")
        ax.legend(fontsize=7, loc="best")
        rax.legend(fontsize=7, loc="best")
        plain_axes(ax)
        plain_axes(rax)
    for axis in axes[-1]:
        axis.set_xlabel("local time relative to now (s)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return fig


@click.group()
def skew() -> None:
    """Skew of every node against the reference."""


@skew.command("report")
@click.option("--store", "store", default="tables", show_default=True,
              help="table store: a directory, file://DIR or redis://host:port/db")
@click.option("--json", "as_json", is_flag=True, help="one JSON document instead of a table")
@click.option("--watch", type=click.FloatRange(min=0.1), default=None,
              help="refresh every N seconds, each refresh stamped with the UTC time, until "
                   "Ctrl-C (exit 0)")
@click.option("--at-ns", type=click.IntRange(min=0), default=None,
              help="evaluate at this local time (ns) instead of now")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
              help="also write a PNG: offset history, fitted line and bound band per node")
@click.option("--samples", "sample_paths", multiple=True, type=click.Path(exists=True),
              help="sample files or directories (an agent's DATA/samples log) for --plot; "
                   "repeatable")
@click.option("--plot-span", "plot_span_s", type=click.FloatRange(min=1.0), default=3_600.0,
              show_default=True, help="seconds of history in the plot")
@table_key_option
@strict_option
@allow_empty_option
def report(store: str, as_json: bool, watch: float | None, at_ns: int | None,
           plot_path: str | None, sample_paths: tuple[str, ...], plot_span_s: float,
           table_key: TableKey | None, strict_tables: bool, allow_empty: bool) -> None:
    """Offset now ± guaranteed bound, skew (statistical), residual rms, samples, last
    sample age and status, per node. --store also takes agents' URLs:
    http://host:9465,http://host2:9465.

    A table that cannot be read is reported on stderr by node and reason and the others are
    shown; the exit status is then 2 (--strict: exit 1 at the first such table)."""
    if sample_paths and plot_path is None:
        raise click.UsageError("--samples is only used with --plot")
    try:
        history = load_sample_history(sample_paths) if sample_paths else None
        corrector = load_store(store, table_key, strict_tables, allow_empty)
        while True:
            now = at_ns if at_ns is not None else time.time_ns()
            rows = skew_rows(corrector, now)
            if plot_path is not None:
                plot_skew(corrector, now, plot_path, history, plot_span_s)
            stamp = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
            if as_json:
                doc: dict[str, object] = {"store": store, "now_ns": now}
                if watch is not None:
                    doc["refreshed_at"] = stamp
                doc["nodes"] = [r.to_dict() for r in rows]
                doc["load_errors"] = corrector.load_errors
                click.echo(json.dumps(doc))
            else:
                if watch is not None:
                    click.echo(f"{stamp}  (every {watch:g} s; Ctrl-C stops)")
                click.echo(render_skew_table(rows))
            if watch is None:
                exit_for_load_errors(corrector)
                return
            time.sleep(watch)
            if corrector.refresh():
                report_load_errors(corrector)
            if not as_json:
                click.echo()
    except KeyboardInterrupt:  # Ctrl-C ends --watch: a normal, quiet exit
        if watch is None:
            raise
        return
