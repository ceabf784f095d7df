"""``clocksync traces inspect``: what trace files hold (services, span names, kinds,
attributes, events) and which rule of a trace map each kind of span matches; a thin layer
over :func:`clocksync.latency.inspect_traces`."""

from __future__ import annotations

import json
from collections.abc import Sequence

import click

from .._model._errors import InputError
from ..latency import AttributeStats, TraceMapping, TraceSummary, inspect_traces

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
@click.option("--trace-map", type=click.Path(dir_okay=False),
              help="Trace map (TOML or JSON) to try on the spans (default: span events "
                   "named like the stages).")
@click.option("--format", "fmt", default="auto", show_default=True,
              type=click.Choice(["auto", "otlp", "jaeger", "zipkin"]),
              help="Trace format (auto: detected from the content).")
@click.option("--skip-bad", is_flag=True, help="Skip (and count) malformed spans.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable summary on stdout.")
def inspect(files: tuple[str, ...], trace_map: str | None, fmt: str, skip_bad: bool,
            as_json: bool) -> None:
    """Services, span names, kinds, attributes and events of FILES, and which rule of the
    trace map each kind of span matches: how to write a map in a minute."""
    mapping = TraceMapping.load(trace_map) if trace_map else None
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
