"""What trace files hold and what a trace map makes of them: the record behind ``clocksync
traces inspect`` and behind the error when spans were read but no request was formed.

:func:`inspect_traces` reads the files and counts services, span names, kinds, attributes
(with a few example values), event names, nodes; groups spans by (service, name, kind) and
says which rule each group matches, which stages it gives and why a matching span gives no
event (no node, no such event). :meth:`TraceSummary.explain` turns that into the message of
an empty result.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ._schema import BadRecord
from ._spans import Span, SpanError
from ._tracemap import TraceMapping, node_of, span_rows
from ._traces import TraceFile, TraceFormat, read_spans

__all__ = ["AttributeStats", "RuleStats", "SpanGroup", "TraceSummary", "inspect_traces"]

_EXAMPLES = 3


@dataclass(frozen=True, slots=True)
class AttributeStats:
    """One attribute key: spans carrying it, distinct values, the first few values."""

    key: str
    spans: int
    distinct: int
    examples: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SpanGroup:
    """Spans sharing (service, name, kind), and what the map makes of them.

    Attributes:
        stages: stages the group's spans give (rule order).
        nodes: nodes the map's node chain finds (``""``: none).
        problems: why matching spans gave no event (``no node attribute ...``), counted.
    """

    service: str
    name: str
    kind: str
    spans: int
    stages: tuple[str, ...]
    nodes: tuple[str, ...]
    problems: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class RuleStats:
    """One rule: what it asks for, the spans it matched, the events it formed."""

    index: int
    stage: str
    criteria: str
    spans: int
    events: int


@dataclass(frozen=True, slots=True)
class TraceSummary:
    """What :func:`inspect_traces` saw."""

    files: tuple[TraceFile, ...]
    spans: int
    bad: tuple[BadRecord, ...]
    services: tuple[tuple[str, int], ...]
    names: tuple[tuple[str, int], ...]
    kinds: tuple[tuple[str, int], ...]
    span_attributes: tuple[AttributeStats, ...]
    resource_attributes: tuple[AttributeStats, ...]
    events: tuple[tuple[str, int], ...]
    nodes: tuple[tuple[str, int], ...]
    node_keys: tuple[str, ...]
    groups: tuple[SpanGroup, ...]
    rules: tuple[RuleStats, ...]
    unmatched: int
    stage_events: tuple[tuple[str, int], ...]
    default_map: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready content (``clocksync traces inspect --json``)."""
        def attrs(items: Iterable[AttributeStats]) -> dict[str, Any]:
            return {a.key: {"spans": a.spans, "distinct": a.distinct,
                            "examples": list(a.examples)} for a in items}

        return {
            "files": [{"path": f.path, "format": f.format, "detected": f.detected,
                       "shapes": list(f.shapes), "spans": len(f.spans),
                       "malformed": len(f.bad)} for f in self.files],
            "spans": self.spans,
            "malformed": [{"where": b.where, "reason": b.reason} for b in self.bad],
            "services": dict(self.services),
            "span_names": dict(self.names),
            "kinds": dict(self.kinds),
            "span_attributes": attrs(self.span_attributes),
            "resource_attributes": attrs(self.resource_attributes),
            "events": dict(self.events),
            "nodes": dict(self.nodes),
            "node_keys": list(self.node_keys),
            "groups": [{"service": g.service, "name": g.name, "kind": g.kind, "spans": g.spans,
                        "stages": list(g.stages), "nodes": list(g.nodes),
                        "problems": dict(g.problems)} for g in self.groups],
            "rules": [{"index": r.index, "stage": r.stage, "criteria": r.criteria,
                       "spans": r.spans, "events": r.events} for r in self.rules],
            "unmatched_spans": self.unmatched,
            "stage_events": dict(self.stage_events),
            "default_map": self.default_map,
        }

    def explain(self, chain: Sequence[str]) -> str:
        """Why no request was formed: what was read, what the map expected, what it made."""
        def top(items: Sequence[tuple[str, int]], n: int = 8) -> str:
            shown = ", ".join(f"{k or '(empty)'} ({v})" for k, v in items[:n])
            return shown + (f", ... {len(items) - n} more" if len(items) > n else "") \
                if items else "none"

        made = dict(self.stage_events)
        lines = [
            f"no request formed: read {self.spans} spans from "
            + "; ".join(f.describe() for f in self.files),
            f"  services: {top(self.services)}",
            f"  span names: {top(self.names)}",
            f"  kinds: {top(self.kinds)}; event names: {top(self.events)}",
            f"  the stage chain needs: {', '.join(chain)}",
            "  the default trace map (no --trace-map: span events named like the stages) "
            "expects:" if self.default_map else "  the trace map expects:",
        ]
        for r in self.rules:
            lines.append(f"    [{r.index}] {r.stage} <- {r.criteria}: {r.spans} spans "
                         f"matched, {r.events} events")
        missing = [s for s in chain if not made.get(s)]
        lines.append(f"  events formed: {top(self.stage_events)}; stages with no event: "
                     f"{', '.join(missing) or 'none'}")
        problems: Counter[str] = Counter()
        for g in self.groups:
            for reason, n in g.problems:
                problems[reason] += n
        for reason, n in problems.most_common(3):
            lines.append(f"  {n} matching spans gave no event: {reason}")
        if self.bad:
            lines.append(f"  {len(self.bad)} malformed records skipped (first: {self.bad[0]})")
        lines.append("  `clocksync traces inspect FILE --trace-map MAP` shows which rule each "
                     "span matches; --allow-empty accepts an empty result")
        return "\n".join(lines)


def _attr_stats(spans: Sequence[Span], resource: bool) -> tuple[AttributeStats, ...]:
    count: Counter[str] = Counter()
    values: dict[str, dict[str, None]] = {}
    for span in spans:
        for key, value in (span.resource if resource else span.attributes).items():
            count[key] += 1
            seen = values.setdefault(key, {})
            if len(seen) <= 100:
                seen[str(value)] = None
    return tuple(AttributeStats(k, n, len(values[k]), tuple(list(values[k])[:_EXAMPLES]))
                 for k, n in sorted(count.items(), key=lambda kv: (-kv[1], kv[0])))


def _ranked(counter: Counter[str]) -> tuple[tuple[str, int], ...]:
    return tuple(sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])))


def inspect_traces(
    paths: Iterable[str | os.PathLike[str]],
    mapping: TraceMapping | None = None,
    fmt: TraceFormat | None = None,
    skip_bad: bool = False,
) -> TraceSummary:
    """Read the trace files and summarise them against ``mapping`` (default: the default
    map, span events named like the stages)."""
    rules = mapping or TraceMapping()
    files = tuple(read_spans(p, fmt, skip_bad) for p in paths)
    spans = [s for f in files for s in f.spans]
    services: Counter[str] = Counter(s.service for s in spans)
    names: Counter[str] = Counter(s.name for s in spans)
    kinds: Counter[str] = Counter(s.kind for s in spans)
    events: Counter[str] = Counter(n for s in spans for n, _ in s.events)
    nodes: Counter[str] = Counter()
    rule_spans = [0] * len(rules.rules)
    rule_events = [0] * len(rules.rules)
    stage_events: Counter[str] = Counter()
    groups: dict[tuple[str, str, str], dict[str, Any]] = {}
    unmatched = 0
    for span in spans:
        node = node_of(span, rules)
        nodes[node[0] if node else ""] += 1
        group = groups.setdefault((span.service, span.name, span.kind), {
            "spans": 0, "stages": {}, "nodes": {}, "problems": Counter()})
        group["spans"] += 1
        group["nodes"][node[0] if node else ""] = None
        matched = [i for i, r in enumerate(rules.rules) if r.matches(span)]
        if not matched:
            unmatched += 1
        for i in matched:
            rule_spans[i] += 1
        try:
            rows = span_rows(span, rules)
        except SpanError as exc:
            group["problems"][str(exc)] += 1
            continue
        formed = {row["stage"] for row in rows}
        for i in matched:
            rule = rules.rules[i]
            if rule.stage in formed:
                rule_events[i] += 1
                group["stages"][rule.stage] = None
        for row in rows:
            stage_events[row["stage"]] += 1
    return TraceSummary(
        files=files, spans=len(spans), bad=tuple(b for f in files for b in f.bad),
        services=_ranked(services), names=_ranked(names), kinds=_ranked(kinds),
        span_attributes=_attr_stats(spans, False), resource_attributes=_attr_stats(spans, True),
        events=_ranked(events), nodes=_ranked(nodes),
        node_keys=tuple(r.describe() for r in rules.node_chain),
        groups=tuple(
            SpanGroup(svc, name, kind, g["spans"], tuple(g["stages"]), tuple(g["nodes"]),
                      tuple(g["problems"].most_common()))
            for (svc, name, kind), g in sorted(groups.items(), key=lambda kv: -kv[1]["spans"])),
        rules=tuple(RuleStats(i, r.stage, r.describe(), rule_spans[i], rule_events[i])
                    for i, r in enumerate(rules.rules)),
        unmatched=unmatched, stage_events=_ranked(stage_events), default_map=mapping is None)
