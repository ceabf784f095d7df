"""``clocksync latency``: PP->Bifrost hop latencies with guaranteed bounds, percentiles and
alerts (a thin layer over :func:`clocksync.latency.analyze`)."""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import click

from .._model._errors import InputError
from .._model._tablekey import TableKey
from .._model._units import format_ns_column, parse_duration_s
from ..latency import (
    DEFAULT_STAGES,
    AdaptiveSampler,
    AlertConfig,
    CausalAssumptions,
    Events,
    LatencyReport,
    SamplingConfig,
    TraceMapping,
    analyze,
    hops_of,
    input_format,
    inspect_traces,
    read_inputs,
    write_events,
    write_latencies,
)
from ._latencytext import bad_lines, hop_lines, summary_lines
from ._options import exit_for_load_errors, load_store, table_key_option, trace_map_options
from ._scheduler import (
    check_options,
    dask_summary,
    parse_scheduler,
    render_dask,
    scheduler_client,
)

__all__ = ["latency", "render"]

_PROGRESS_BYTES = 64 * 1024 * 1024


def _no_hugepage_advice() -> bool | None:
    """Stop numpy from advising transparent huge pages for its large arrays, for this
    one-shot process, unless ``NUMPY_MADVISE_HUGEPAGE`` says otherwise; returns the previous
    setting (``None``: left alone). Where the kernel compacts memory for such advice on a page
    fault (THP ``defrag`` ``madvise``, common on servers) a cold run of 1 M requests spent
    1.2–2.2 s of system time in the faults of its fresh arrays against 0.6 s without the
    advice (CLI wall 3.1–3.6 s -> 2.4–2.6 s, docs/latency.md); a long-lived process that reuses its
    memory gains from huge pages and keeps numpy's default."""
    if "NUMPY_MADVISE_HUGEPAGE" in os.environ:
        return None
    import numpy as np

    core = getattr(np, "_core", None) or getattr(np, "core", None)
    setter = getattr(getattr(core, "multiarray", None), "_set_madvise_hugepage", None)
    return bool(setter(False)) if callable(setter) else None


def _parsed(parse: Callable[[str], Any]) -> Callable[[click.Context, click.Parameter,
                                                      str | None], Any]:
    """A click callback that parses a value with ``parse`` (its ValueError: a bad parameter)."""
    def callback(_ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
        if value is None:
            return None
        try:
            return parse(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param=param) from None
    return callback


_duration = _parsed(parse_duration_s)
_scheduler = _parsed(parse_scheduler)


def _clean(value: Any) -> Any:
    """JSON-safe: non-finite floats become ``null``."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _when(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"


def _inputs(paths: tuple[str, ...], fmt: str) -> list[dict[str, Any]]:
    """Each input with the format it is read as and how that was chosen."""
    if fmt != "auto":
        return [{"path": p, "format": fmt, "chosen": "named by --format"} for p in paths]
    return [{"path": p, "format": input_format(p), "chosen": "detected from the content"}
            for p in paths]


def _empty_message(inputs: list[dict[str, Any]], fmt: str, mapping: TraceMapping | None,
                   chain: tuple[str, ...], data: Events, report: LatencyReport) -> str:
    """Why no request was formed, naming what was read and what was expected."""
    traces = [i["path"] for i in inputs if i["format"] != "events"]
    events = [i["path"] for i in inputs if i["format"] == "events"]
    parts = []
    if traces:
        kind = None if fmt == "auto" else fmt
        parts.append(inspect_traces(traces, mapping, kind, skip_bad=True)  # type: ignore[arg-type]
                     .explain(chain))
    if events or not traces:
        table = data.table
        stages: dict[str, int] = {}
        if table.num_rows and "stage" in table.column_names:
            for stage in table.column("stage").to_pylist():
                stages[stage] = stages.get(stage, 0) + 1
        seen = ", ".join(f"{k} ({v})" for k, v in sorted(stages.items())) or "none"
        parts.append(f"no request formed: {data.records} input records"
                     f" ({len(data.bad)} malformed) from {', '.join(events or traces)}; "
                     f"stage events: {seen}; the stage chain needs: {', '.join(chain)} "
                     "(a hop needs both its stages in one request)"
                     + (f"; first malformed: {data.bad[0]}" if data.bad else ""))
    r = report.result
    counts = [f"{n} {what}" for n, what in (
        (r.requests, "request ids seen"),
        (r.incomplete, "lacking a stage of the chain (" + ", ".join(
            f"{s}: {n}" for s, n in r.missing_stages.items()) + ")"),
        (r.unknown_stage, "events of stages outside the chain (" + ", ".join(
            f"{s!r}: {n}" for s, n in r.unknown_stages.items()) + ")"),
        (r.uncorrectable, "requests with no guaranteed correction (skipped)")) if n]
    if counts:
        parts.append("  pipeline: " + ", ".join(counts))
    return "\n".join(parts)


def render(report: LatencyReport, inputs: list[dict[str, Any]] | None = None) -> str:
    """The readable report: hops table with P50/P90/P99/max ± bounds, counts, alerts."""
    r = report.result
    lines = [
        f"clocksync latency: {r.requests} requests, {report.records} input records"
        f" ({len(report.bad)} malformed, skipped), window {report.window_s:g} s",
    ]
    lines += [f"  input {i['path']}: {i['format']} ({i['chosen']})" for i in inputs or ()]
    lines += bad_lines(report.bad)
    notes = []
    if r.incomplete:
        notes.append(f"{r.incomplete} requests lack some stage: " + ", ".join(
            f"{n} lack stage {s}" for s, n in r.missing_stages.items()))
    if r.duplicates:
        notes.append(f"{r.duplicates} duplicate stage events ignored (first kept; e.g. "
                     f"{', '.join(r.duplicate_examples[:3])})")
    if r.unknown_stage:
        notes.append(f"{r.unknown_stage} events with stages outside the chain ignored: "
                     + ", ".join(f"{n} events with unknown stage {s!r}"
                                 for s, n in r.unknown_stages.items()))
    if r.uncorrectable:
        notes.append(f"{r.uncorrectable} requests skipped: no guaranteed correction "
                     f"({', '.join(f'{n}: {c} events' for n, c in r.uncorrectable_nodes.items())})")
    lines += [f"  note: {n}" for n in notes]
    lines.append("")
    order = [h.hop for h in r.hops]
    lines += summary_lines(report.summary.to_pylist(), order)
    lines.append("")
    lines += hop_lines(r.hops)
    if r.pair_windows:
        counts: dict[str, int] = {}
        for pw in r.pair_windows:
            counts[pw.status] = counts.get(pw.status, 0) + 1
        lines.append("causal windows: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
    lines.append("")
    if not report.alerts:
        lines.append("alerts: none")
    else:
        lines.append(f"alerts: {len(report.alerts)}")
        for a in report.alerts:
            when = (f"{_when(a.window_start_ns)} +{(a.window_end_ns - a.window_start_ns) / 1e9:g}s"
                    if a.window_end_ns else "whole input")
            lines.append(f"  [{a.kind}] {when}: {a.message}")
            cells = format_ns_column([(w.low_ns + w.high_ns) / 2 for w in a.worst],
                                     [(w.high_ns - w.low_ns) / 2 for w in a.worst])
            ids = max((len(str(w.request_id)) for w in a.worst), default=0) + 1
            width = max((len(c) for c in cells), default=0)
            for w, cell in zip(a.worst, cells, strict=True):
                attrs = ", ".join(f"{k}={v}" for k, v in w.attributes)
                lines.append(f"      {str(w.request_id) + ':':<{ids}} {cell:>{width}}"
                             + (f"  ({attrs})" if attrs else ""))
    return "\n".join(lines)


@click.command("latency")
@click.argument("events", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--tables", "tables_dir", type=click.Path(file_okay=False),
              help="Directory store of correction tables.")
@click.option("--store", "store_url", help="Table store URL (DIR, file://DIR, redis://...).")
@click.option("--out", type=click.Path(dir_okay=False),
              help="Write the per-request hop table (.parquet, .csv or .jsonl).")
@click.option("--save-events", type=click.Path(dir_okay=False),
              help="Also store the events read (after --skip-bad, before sampling); as "
                   "FILE.parquet in the compact layout (zstd, delta timestamps, whole "
                   "requests per row group), which later runs read fastest.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable report on stdout.")
@click.option("--window", "window_s", default="10s", show_default=True, callback=_duration,
              help="Sliding window for percentiles and alerts.")
@click.option("--step", "step_s", default=None, callback=_duration,
              help="Window step (default: the window; must divide it).")
@click.option("--skip-bad", is_flag=True,
              help="Skip (and count) malformed records and uncorrectable requests.")
@click.option("--plot", type=click.Path(dir_okay=False), help="Write a PNG plot.")
@click.option("--format", "fmt", default="auto", show_default=True,
              type=click.Choice(["auto", "events", "otlp", "jaeger", "zipkin"]),
              help="Input format (auto: by file name and content).")
@trace_map_options
@click.option("--allow-empty", is_flag=True,
              help="Exit 0 even when no request could be formed, or the table store holds no "
                   "table (default: an error that names what was read and what the map "
                   "expected).")
@click.option("--stages", default=None,
              help="Comma-separated stage chain, in order (default: the --trace-map's "
                   f"stages in the order of its rules, else {','.join(DEFAULT_STAGES)}); "
                   "the report lists hops in this order, end-to-end last.")
@click.option("--min-wire-delay", "min_wire_s", default="0ns", show_default=True,
              callback=_duration, help="Least true one-way message delay (causal bound).")
@click.option("--causal-window", "causal_window_s", default="1s", show_default=True,
              callback=_duration, help="Window over which clock drift is modelled linear.")
@click.option("--no-causal", is_flag=True, help="Tables only, no causal tightening.")
@click.option("--k-mad", type=click.FloatRange(0, None), default=AlertConfig().k_mad,
              show_default=True, help="P99 alert: MADs above the baseline median.")
@click.option("--max-clock-bound", "max_clock_bound_s", default="1ms", show_default=True,
              callback=_duration, help="Clock alert when a node's bound exceeds this.")
@click.option("--strict", is_flag=True,
              help="Fail (exit 1) when causality contradicts the tables, instead of flagging, "
                   "or when a table cannot be read, instead of reporting it and going on "
                   "with the other nodes (exit 2).")
@click.option("--sample-budget", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Sample requests down to about this many events per second (slow "
                   "outliers always kept; percentiles weighted).")
@click.option("--scheduler", default=None, callback=_scheduler,
              help="Compute on Dask: local:N (a cluster of N worker processes on 127.0.0.1 "
                   "for this run) or tcp://HOST:PORT (a running scheduler). Percentiles "
                   "from merged sketches (see --sketch-accuracy); no windows or alerts. "
                   "Needs clocksync[dask].")
@click.option("--sketch-accuracy", type=click.FloatRange(0, 0.5, min_open=True,
                                                         max_open=True),
              default=0.01, show_default=True,
              help="With --scheduler: the sketches' relative accuracy α (each end of an "
                   "interval at most a factor (1+α)/(1-α) wider than one process's).")
@table_key_option
def latency(events: tuple[str, ...], tables_dir: str | None, store_url: str | None,
            out: str | None, save_events: str | None, as_json: bool, window_s: float,
            step_s: float | None,
            skip_bad: bool, plot: str | None, fmt: str, trace_map: TraceMapping | None,
            preset: TraceMapping | None,
            allow_empty: bool, stages: str | None,
            min_wire_s: float, causal_window_s: float, no_causal: bool, k_mad: float,
            max_clock_bound_s: float, strict: bool, sample_budget: float | None,
            scheduler: str | None, sketch_accuracy: float,
            table_key: TableKey | None) -> None:
    """Hop latencies of EVENTS (events files or OTLP/Jaeger/Zipkin traces) with bounds.

    A table that cannot be read is reported on stderr by node and reason and the other
    nodes are analysed; the exit status is then 2 (--strict: exit 1 at once)."""
    _no_hugepage_advice()
    if (tables_dir is None) == (store_url is None):
        raise click.UsageError("give exactly one of --tables DIR or --store URL")
    if scheduler is not None:
        check_options(**{"--out": out, "--plot": plot, "--strict": strict})
    mapping = trace_map or preset
    if stages is not None:
        chain = tuple(s.strip() for s in stages.split(",") if s.strip())
    elif mapping is not None:
        chain = tuple(dict.fromkeys(rule.stage for rule in mapping.rules))
    else:
        chain = DEFAULT_STAGES
    try:
        hops_of(chain)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--stages") from None
    win_ns, step_ns = round(window_s * 1e9), round((step_s or window_s) * 1e9)
    if win_ns <= 0 or step_ns <= 0 or win_ns % step_ns:
        raise click.BadParameter("the window must be a positive multiple of the step",
                                 param_hint="--window/--step")
    url = tables_dir if tables_dir is not None else str(store_url)
    if tables_dir is not None and not os.path.isdir(tables_dir):
        raise InputError(f"{tables_dir}: no such table directory")
    corrector = load_store(url, table_key, strict, allow_empty)
    inputs = _inputs(events, fmt)
    big = sum(os.path.getsize(p) for p in events if os.path.isfile(p)) > _PROGRESS_BYTES
    if big and not as_json and sys.stderr.isatty():
        with click.progressbar(events, label="reading", file=sys.stderr) as bar:
            parts = [read_inputs([p], fmt, mapping, skip_bad) for p in bar]  # type: ignore[arg-type]
        from ..latency import concat_events

        data = concat_events(parts)
    else:
        data = read_inputs(events, fmt, mapping, skip_bad)  # type: ignore[arg-type]
    if save_events:
        write_events(data.table, save_events)
    sampling: dict[str, Any] | None = None
    if sample_budget is not None:
        batch = AdaptiveSampler(SamplingConfig(budget_events_per_s=sample_budget)).sample(
            data.table)
        sampling = {"budget_events_per_s": sample_budget, "probability": batch.probability,
                    "requests_seen": batch.requests_seen, "requests_kept": batch.requests_kept,
                    "outliers_kept": batch.outliers_kept}
        data = Events(batch.events, data.bad, data.records)
    causal = None if no_causal else CausalAssumptions(
        min_wire_delay_ns=min_wire_s * 1e9, window_s=causal_window_s)
    if scheduler is not None:
        with scheduler_client(scheduler) as client:
            result = dask_summary(client, data, [corrector.table(n) for n in corrector.nodes],
                                  chain, causal, skip_bad, sketch_accuracy)
        if as_json:
            doc = {"records": data.records, "bad_records": [str(b) for b in data.bad],
                   "requests": result.requests,
                   "hops": [{k: getattr(h, k) for k in h.__slots__} for h in result.hops],
                   "summary": result.summary.to_pylist(), "window_s": None,
                   "windows": None, "alerts": None,
                   "dask": {"scheduler": scheduler, "workers": result.workers,
                            "partitions": result.partitions,
                            "sketch_accuracy": result.accuracy}}
            if sampling is not None:
                doc["sampling"] = sampling
            click.echo(json.dumps(_clean(doc), indent=1, default=str))
        else:
            click.echo(render_dask(result, scheduler, data.records, data.bad))
        exit_for_load_errors(corrector)
        return
    report = analyze(data, corrector, stages=chain, window_s=window_s, step_s=step_s,
                     causal=causal, skip_bad=skip_bad, strict=strict,
                     alert_config=AlertConfig(k_mad=k_mad,
                                              max_clock_bound_ns=max_clock_bound_s * 1e9))
    if report.result.table.num_rows == 0 and not allow_empty:
        raise click.ClickException(_empty_message(inputs, fmt, mapping, chain, data, report))
    if out:
        write_latencies(report.result.table, out)
    if plot:
        from ..latency import plot_report

        plot_report(report.result.table, report.windows, plot,
                    order=[h.hop for h in report.result.hops])
    if as_json:
        doc = report.to_dict()
        doc["inputs"] = inputs
        doc["load_errors"] = corrector.load_errors
        if sampling is not None:
            doc["sampling"] = sampling
        click.echo(json.dumps(_clean(doc), indent=1, default=str))
    else:
        if sampling is not None:
            click.echo(f"sampled: kept {sampling['requests_kept']} of "
                       f"{sampling['requests_seen']} requests (p = {sampling['probability']:.3g},"
                       f" {sampling['outliers_kept']} slow outliers always kept); "
                       "percentiles weighted")
        click.echo(render(report, inputs))
    exit_for_load_errors(corrector)
