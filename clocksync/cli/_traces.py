"""``clocksync traces inspect``: what trace files hold (services, span names, kinds,
attributes, events) and which rule of a trace map each kind of span matches; a thin layer
over :func:`clocksync.latency.inspect_traces`.

``clocksync traces correct``: a trace file with each span's corrected start and bound added
as attributes, for tracing UIs; a thin layer over :func:`clocksync.latency.correct_trace_file`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import click

from .._model._errors import InputError
from .._model._tablekey import TableKey
from ..latency import (
    AttributeStats,
    TraceMapping,
    TraceSummary,
    correct_trace_file,
    inspect_traces,
)
from ._options import (
    exit_for_load_errors,
    load_store,
    strict_option,
    table_key_option,
    trace_map_options,
)

__all__ = ["render_summary", "traces"]


def _counts(title: str, items: Sequence[tuple[str, int]], limit: int = 20) -> list[str]:
    lines = [f"{title} ({len(items)}):"]
    width = max((len(k or "(empty)") for k, _ in items[:limit]), default=0)
    lines += [f"  {k or '(empty)':<{width}}  {n:>7}" for k, n in items[:limit]]
    if len(items) > limit:
        lines.append(f"  ... {len(items) - limit} more")
    return lines


def _attrs(title: str, items: Sequence[AttributeStats], limit: int = 30) -> list[str]:
    lines = [f"{title} ({len(items)}):"]
    width = max((len(a.key) for a in items[:limit]), default=0)
    for a in items[:limit]:
        more = ", ..." if a.distinct > len(a.examples) else ""
        examples = ", ".join(repr(v) if len(v) <= 40 else repr(v[:37] + "...")
                             for v in a.examples)
        lines.append(f"  {a.key:<{width}}  {a.spans:>7} spans, {a.distinct:>5} values: "
                     f"{examples}{more}")
    if len(items) > limit:
        lines.append(f"  ... {len(items) - limit} more")
    return lines


def render_summary(summary: TraceSummary) -> str:
    """The readable inspection: files, counts, attributes, rules, span groups."""
    lines = [f"clocksync traces inspect: {summary.spans} spans, {len(summary.bad)} malformed"
             " (skipped)"]
    lines += [f"  {f.describe()}" for f in summary.files]
    lines += [f"  skipped {b}" for b in summary.bad[:10]]
    lines.append("")
    lines += _counts("services", summary.services)
    lines += _counts("span names", summary.names)
    lines += _counts("kinds", summary.kinds)
    lines += _counts("event names", summary.events)
    lines += _attrs("span attributes", summary.span_attributes)
    lines += _attrs("resource attributes", summary.resource_attributes)
    lines += _counts(f"nodes (from {', '.join(summary.node_keys)})", summary.nodes)
    lines.append("")
    lines.append("rules:")
    for r in summary.rules:
        lines.append(f"  [{r.index}] {r.stage} <- {r.criteria}: {r.spans} spans matched, "
                     f"{r.events} events")
    lines.append("")
    head = f"{'service':<20} {'span name':<32} {'kind':<11} {'spans':>7}  stages (node)"
    lines += ["span groups, and what the map makes of them:", head, "-" * len(head)]
    for g in summary.groups:
        stages = ", ".join(g.stages) or "-"
        nodes = ", ".join(n or "(no node)" for n in g.nodes[:3])
        if len(g.nodes) > 3:
            nodes += f", ... {len(g.nodes) - 3} more"
        lines.append(f"{g.service or '(none)':<20} {g.name or '(empty)':<32} {g.kind:<11} "
                     f"{g.spans:>7}  {stages} ({nodes})")
        for reason, n in g.problems:
            lines.append(f"{'':<20}   ! {n} spans: {reason}")
    lines.append("")
    lines.append("stage events formed: "
                 + (", ".join(f"{s} {n}" for s, n in summary.stage_events) or "none")
                 + f"; spans matching no rule: {summary.unmatched}")
    return "\n".join(lines)


@click.group("traces")
def traces() -> None:
    """Look into trace files (OTLP, Jaeger, Zipkin) before mapping them to stages."""


@traces.command("inspect")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@trace_map_options
@click.option("--format", "fmt", default="auto", show_default=True,
              type=click.Choice(["auto", "otlp", "jaeger", "zipkin"]),
              help="Trace format (auto: detected from the content).")
@click.option("--skip-bad", is_flag=True, help="Skip (and count) malformed spans.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable summary on stdout.")
def inspect(files: tuple[str, ...], trace_map: TraceMapping | None,
            preset: TraceMapping | None, fmt: str, skip_bad: bool, as_json: bool) -> None:
    """Services, span names, kinds, attributes and events of FILES, and which rule of the
    trace map (default: span events named like the stages) each kind of span matches: how
    to write a map in a minute."""
    mapping = trace_map or preset
    summary = inspect_traces(files, mapping, None if fmt == "auto" else fmt,  # type: ignore[arg-type]
                             skip_bad)
    if summary.spans == 0:
        skipped = f" ({len(summary.bad)} malformed, first: {summary.bad[0]})" \
            if summary.bad else ""
        raise InputError(f"{', '.join(files)}: no spans found{skipped}; there is nothing to "
                         "inspect")
    if as_json:
        click.echo(json.dumps(summary.to_dict(), indent=1, default=str))
    else:
        click.echo(render_summary(summary))


@traces.command("correct")
@click.argument("path", metavar="IN", type=click.Path(dir_okay=False))
@click.option("--tables", "tables", required=True, metavar="DIR|URL",
              help="Correction tables: a directory store or a store URL (file://, redis://, "
                   "agent URLs).")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False),
              help="Corrected copy to write (same format; written atomically, not at all "
                   "on bad input).")
@click.option("--format", "fmt", default="auto", show_default=True,
              type=click.Choice(["auto", "otlp", "jaeger", "zipkin"]),
              help="Trace format (auto: detected from the content).")
@trace_map_options
@click.option("--skip-bad", is_flag=True,
              help="Skip (count, and copy as they are) malformed records.")
@table_key_option
@strict_option
def correct(path: str, tables: str, out: str, fmt: str, trace_map: TraceMapping | None,
            preset: TraceMapping | None, skip_bad: bool, table_key: TableKey | None,
            strict_tables: bool) -> None:
    """Write OUT: the trace file IN with clocksync.node, clocksync.start_ref_ns and
    clocksync.start_bound_ns (the corrected start and its bound, ns) added to every span
    with a node; spans the tables cannot correct get clocksync.status = "uncorrectable"
    and clocksync.reason. The timestamps themselves are unchanged. The trace map's node
    chain names each span's node (default: service.instance.id, host.name, hostname,
    service.name, host.ip)."""
    mapping = trace_map or preset
    corrector = load_store(tables, table_key, strict_tables, allow_empty=False)
    result = correct_trace_file(path, out, corrector, mapping,
                                None if fmt == "auto" else fmt,  # type: ignore[arg-type]
                                skip_bad)
    click.echo(f"clocksync traces correct: {result.describe()}")
    for bad in result.bad[:10]:
        click.echo(f"  skipped {bad}", err=True)
    exit_for_load_errors(corrector)
