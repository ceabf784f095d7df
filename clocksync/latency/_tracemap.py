"""Trace maps: which span is which stage, on which node, for which request.

A :class:`StageRule` matches spans on any of: span name (shell pattern, exact, or regular
expression), service, span kind, span attributes, resource attributes, an event name. All
criteria given must hold. It takes the span's start, its end, or the time of one of its
events, and may declare the stamp's resolution (the true time lies in
``[t, t + resolution_ns)``).

The node and the request id each come from a fallback chain of :class:`FieldRef`: an
attribute (span, resource or either), or a span field (``trace_id``, ``span_id``,
``parent_span_id``, ``name``, ``service``, ``kind``), optionally cut by a regular expression.
A rule may take its request id from its own chain: pairing a parent span (request id
``span_id``) with its children (``parent_span_id``) turns each parent->child pair into a
request.

A map file is TOML (``.toml``) or JSON (anything else); docs/latency.md describes it.
"""

from __future__ import annotations

import functools
import json
import os
import re
import tomllib
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dc_field
from itertools import compress
from operator import attrgetter
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from .._io._tabular import Values, _all_text, _as_list
from .._model._errors import InputError
from ._schema import DEFAULT_STAGES
from ._spanbatch import SpanBatch, all_of, gather
from ._spans import SPAN_KINDS, Span, SpanError, kind_name

__all__ = [
    "SPAN_FIELDS",
    "AttributeMatch",
    "FieldRef",
    "StageRule",
    "TraceMapping",
    "batch_columns",
    "node_of",
    "span_rows",
]

#: Span fields a :class:`FieldRef` may name.
SPAN_FIELDS: tuple[str, ...] = ("trace_id", "span_id", "parent_span_id", "name", "service",
                                "kind")
Scope = Literal["any", "span", "resource"]
_INT64_MAX = (1 << 63) - 1


def _text(value: Any) -> str | None:
    """An attribute value as the text rules compare with (``None`` stays ``None``)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, sort_keys=True, default=str)


def _compile(pattern: str | None, what: str) -> re.Pattern[str] | None:
    if pattern is None:
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"{what}: bad regular expression {pattern!r} ({exc})") from None


@dataclass(frozen=True, slots=True)
class FieldRef:
    """Where a value (a node, a request id) comes from.

    Attributes:
        attribute: attribute name; or
        field: a span field, one of :data:`SPAN_FIELDS`.
        scope: for an attribute: ``"span"``, ``"resource"``, or ``"any"`` (span first).
        regex: if set, the value is cut to the first group of its first match (the whole
            match if the pattern has no group); no match means "not found, try the next".
    """

    attribute: str | None = None
    field: str | None = None
    scope: Scope = "any"
    regex: str | None = None
    _re: re.Pattern[str] | None = dc_field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if (self.attribute is None) == (self.field is None):
            raise ValueError("FieldRef: give exactly one of attribute or field")
        if self.field is not None and self.field not in SPAN_FIELDS:
            raise ValueError(f"FieldRef.field: expected one of {', '.join(SPAN_FIELDS)}, "
                             f"got {self.field!r}")
        if self.scope not in ("any", "span", "resource"):
            raise ValueError(f"FieldRef.scope: expected any, span or resource, got "
                             f"{self.scope!r}")
        object.__setattr__(self, "_re", _compile(self.regex, "FieldRef.regex"))

    def value(self, span: Span) -> str | None:
        """The value in ``span`` (``None``: absent, empty, or the regex did not match)."""
        raw: Any
        if self.field is not None:
            raw = getattr(span, self.field)
        elif self.scope == "span":
            raw = span.attributes.get(str(self.attribute))
        elif self.scope == "resource":
            raw = span.resource.get(str(self.attribute))
        else:
            raw = span.attribute(str(self.attribute))
        return self.cut(raw)

    def cut(self, raw: Any) -> str | None:
        """A raw value (an attribute's, a span field's) as this reference gives it: as text,
        cut by the regex; ``None`` when absent, empty or not matched."""
        text = _text(raw)
        if not text:
            return None
        if self._re is not None:
            match = self._re.search(text)
            if match is None:
                return None
            text = match.group(1) if match.re.groups else match.group(0)
        return text or None

    def describe(self) -> str:
        """Short text for reports: ``service.instance.id``, ``resource:host.name``,
        ``@trace_id``, with ``~/regex/`` when cut."""
        base = f"@{self.field}" if self.field else (
            str(self.attribute) if self.scope == "any" else f"{self.scope}:{self.attribute}")
        return base + (f" ~/{self.regex}/" if self.regex else "")


@dataclass(frozen=True, slots=True)
class AttributeMatch:
    """A condition on one attribute: it exists and equals ``equals`` (compared as text:
    ``true``/``false`` for booleans, decimal for numbers), or it matches ``regex``
    (``re.search``; ``""`` = exists). Give one of the two."""

    key: str
    equals: str | None = None
    regex: str | None = None
    _re: re.Pattern[str] | None = dc_field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if (self.equals is None) == (self.regex is None):
            raise ValueError(f"AttributeMatch {self.key!r}: give exactly one of equals or regex")
        object.__setattr__(self, "_re", _compile(self.regex, f"attribute {self.key!r}"))

    def holds(self, values: Mapping[str, Any]) -> bool:
        """Whether the condition holds for the attributes ``values``."""
        return self.test(values.get(self.key))

    def test(self, value: Any) -> bool:
        """Whether the condition holds for the attribute's value (``None``: absent)."""
        text = _text(value)
        if text is None:
            return False
        if self._re is not None:
            return self._re.search(text) is not None
        return text == self.equals

    def describe(self) -> str:
        return f"{self.key}={self.equals}" if self.equals is not None else \
            f"{self.key}~/{self.regex}/"


@dataclass(frozen=True, slots=True)
class StageRule:
    """Which spans give a stage, and which of their times.

    Every criterion given must hold:

    Attributes:
        stage: stage name it produces (e.g. ``pp_exit``).
        span: span name (Jaeger ``operationName``) as a shell pattern (``"*"``: any).
        at: ``"start"``, ``"end"``, or ``"event:NAME"`` (the first span event / Jaeger log /
            Zipkin annotation called NAME; a span without it gives no stage).
        name: the span name, exactly.
        name_regex: a regular expression the span name matches (``re.search``; anchor
            with ``^``/``$``).
        service: the service (``service.name``), exactly.
        kind: span kind, one of ``unspecified internal server client producer consumer``
            (OTLP names and numbers and Zipkin's upper case are accepted).
        attributes: conditions on span attributes.
        resource: conditions on resource attributes (Jaeger process tags, Zipkin endpoint).
        event: the span has an event of this name.
        resolution_ns: the true time of the picked stamp lies in ``[t, t + resolution_ns)``
            (e.g. a coarse clock); ``None``: the format's own resolution.
        request_id: this rule's own request-id chain (``None``: the mapping's).
    """

    stage: str
    span: str = "*"
    at: str = "start"
    name: str | None = None
    name_regex: str | None = None
    service: str | None = None
    kind: str | None = None
    attributes: tuple[AttributeMatch, ...] = ()
    resource: tuple[AttributeMatch, ...] = ()
    event: str | None = None
    resolution_ns: int | None = None
    request_id: tuple[FieldRef, ...] | None = None
    _name_re: re.Pattern[str] | None = dc_field(default=None, init=False, repr=False,
                                             compare=False)
    _glob: re.Pattern[str] | None = dc_field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        import fnmatch

        if not isinstance(self.stage, str) or not self.stage:
            raise ValueError("StageRule.stage: expected a non-empty stage name")
        if self.at not in ("start", "end") and not (
            self.at.startswith("event:") and len(self.at) > 6
        ):
            raise ValueError(f"StageRule.at: expected start, end or event:NAME, got {self.at!r}")
        if self.kind is not None:
            try:
                object.__setattr__(self, "kind", kind_name(self.kind))
            except SpanError as exc:
                raise ValueError(f"StageRule.kind: {exc}") from None
        if self.resolution_ns is not None and (
                isinstance(self.resolution_ns, bool) or not isinstance(self.resolution_ns, int)
                or self.resolution_ns < 1):
            raise ValueError(f"StageRule.resolution_ns: expected an integer >= 1, got "
                             f"{self.resolution_ns!r}")
        object.__setattr__(self, "_name_re", _compile(self.name_regex, "StageRule.name_regex"))
        if self.span != "*":
            object.__setattr__(self, "_glob", re.compile(fnmatch.translate(self.span)))

    def matches(self, span: Span) -> bool:
        """Whether every criterion of the rule holds for ``span`` and it has the stamp the
        rule takes (``at = "event:NAME"``: the event)."""
        return self._matches_name(span.name, span.kind,
                                  span.service if self.service is not None else "") \
            and self._matches_rest(span)

    def _matches_name(self, name: str, kind: str, service: str = "") -> bool:
        """The criteria on the span's name, kind and service (``service`` is only read when
        the rule names one)."""
        if self._glob is not None and not self._glob.match(name):
            return False
        if self.name is not None and name != self.name:
            return False
        if self._name_re is not None and not self._name_re.search(name):
            return False
        if self.service is not None and service != self.service:
            return False
        return self.kind is None or kind == self.kind

    def _matches_rest(self, span: Span) -> bool:
        """The other criteria: attributes, resource, events."""
        if not all(m.holds(span.attributes) for m in self.attributes):
            return False
        if not all(m.holds(span.resource) for m in self.resource):
            return False
        if self.event is not None and not any(n == self.event for n, _ in span.events):
            return False
        return self.at[:6] != "event:" or any(n == self.at[6:] for n, _ in span.events)

    def time_ns(self, span: Span) -> int | None:
        """The stamp this rule takes from ``span`` (``None``: the span lacks the event)."""
        if self.at == "start":
            return span.start_ns
        if self.at == "end":
            return span.end_ns
        wanted = self.at[6:]
        return next((t for n, t in span.events if n == wanted), None)

    def describe(self) -> str:
        """The rule's criteria, for reports: ``span 'pp.*', kind server -> start``."""
        parts = []
        if self.span != "*":
            parts.append(f"span '{self.span}'")
        if self.name is not None:
            parts.append(f"name '{self.name}'")
        if self.name_regex is not None:
            parts.append(f"name ~/{self.name_regex}/")
        if self.service is not None:
            parts.append(f"service '{self.service}'")
        if self.kind is not None:
            parts.append(f"kind {self.kind}")
        parts += [f"attribute {m.describe()}" for m in self.attributes]
        parts += [f"resource {m.describe()}" for m in self.resource]
        if self.event is not None:
            parts.append(f"event '{self.event}'")
        what = ", ".join(parts) or "any span"
        extra = f", resolution {self.resolution_ns} ns" if self.resolution_ns else ""
        return f"{what} -> {self.at}{extra}"


def _ref(item: str | FieldRef) -> FieldRef:
    return item if isinstance(item, FieldRef) else FieldRef(attribute=item)


@dataclass(frozen=True, slots=True)
class TraceMapping:
    """How spans map to stage events.

    Attributes:
        rules: stage rules; a span may feed several stages.
        node_keys: the node's fallback chain: attribute names (span, then resource) or
            :class:`FieldRef`; the first present value is the node.
        request_id_key: span/resource attribute holding the request id (legacy single key;
            ``request_id_keys`` takes precedence).
        request_id_keys: the request id's fallback chain; the trace id when none is present.
        context_keys: attributes copied into context columns of the events.
        pair_by: ``"request"``: a request's stages form the stage chain (hops between
            consecutive stages); ``"parent"``: every span matched by a rule is paired with
            its parent span (same trace, ``span_id == parent_span_id``) when that one is
            matched too, giving the hop ``"<parent stage>-><child stage>"`` whose request id
            is the child's. Events then carry ``span_id`` and ``parent_span_id``.
    """

    rules: tuple[StageRule, ...] = dc_field(
        default_factory=lambda: tuple(StageRule(s, "*", f"event:{s}") for s in DEFAULT_STAGES)
    )
    node_keys: tuple[str | FieldRef, ...] = (
        "service.instance.id", "host.name", "hostname", "service.name", "host.ip")
    request_id_key: str | None = None
    request_id_keys: tuple[str | FieldRef, ...] = ()
    context_keys: tuple[str, ...] = ()
    pair_by: Literal["request", "parent"] = "request"
    _nodes: tuple[FieldRef, ...] = dc_field(default=(), init=False, repr=False, compare=False)
    _requests: tuple[FieldRef, ...] = dc_field(default=(), init=False, repr=False,
                                               compare=False)

    def __post_init__(self) -> None:
        if self.pair_by not in ("request", "parent"):
            raise ValueError(f"TraceMapping.pair_by: expected request or parent, got "
                             f"{self.pair_by!r}")
        keys = self.request_id_keys or ((self.request_id_key,) if self.request_id_key else ())
        object.__setattr__(self, "_nodes", tuple(_ref(k) for k in self.node_keys))
        object.__setattr__(self, "_requests", tuple(_ref(k) for k in keys))

    @property
    def node_chain(self) -> tuple[FieldRef, ...]:
        """The node's fallback chain."""
        return self._nodes

    @property
    def request_chain(self) -> tuple[FieldRef, ...]:
        """The request id's fallback chain (the trace id after it)."""
        return self._requests

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TraceMapping:
        """Load a map file: TOML when the name ends in ``.toml``, else JSON."""
        name = str(path)
        try:
            if name.lower().endswith(".toml"):
                with open(name, "rb") as handle:
                    obj: Any = tomllib.load(handle)
            else:
                with open(name, encoding="utf-8") as handle:
                    obj = json.load(handle)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise InputError(f"{name}: cannot read trace map ({exc})") from None
        return cls.from_dict(obj, name)

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> TraceMapping:
        """Load a map file (JSON, or TOML by its ``.toml`` name): see :meth:`load`."""
        return cls.load(path)

    @classmethod
    def from_dict(cls, obj: Any, source: str = "trace map") -> TraceMapping:
        """A mapping from a parsed map file; :class:`InputError` naming ``source`` and the
        key for anything wrong (unknown keys too, so a typo is not silently ignored)."""
        if not isinstance(obj, dict):
            raise InputError(f"{source}: expected an object/table at the top level")
        _known(obj, _TOP_KEYS, source)
        stages = _one_of(obj, ("stages", "stage"), source)
        if not isinstance(stages, list) or not stages:
            raise InputError(f"{source}: field 'stages' must be a non-empty list of rules")
        rules = tuple(_rule(r, f"{source}: stages[{i}]") for i, r in enumerate(stages))
        default = cls()
        node = _one_of(obj, ("node", "node_keys"), source)
        rid = _one_of(obj, ("request_id", "request_id_key"), source)
        context = _one_of(obj, ("context", "context_keys"), source)
        if context is not None and (not isinstance(context, list)
                                    or not all(isinstance(c, str) for c in context)):
            raise InputError(f"{source}: field 'context' must be a list of attribute names")
        pair_by = obj.get("pair_by", "request")
        if pair_by not in ("request", "parent"):
            raise InputError(f"{source}: field 'pair_by' must be 'request' or 'parent', got "
                             f"{pair_by!r}")
        return cls(
            rules=rules, pair_by=pair_by,
            node_keys=default.node_keys if node is None else _refs(node, f"{source}: node"),
            request_id_key=rid if isinstance(rid, str) and rid else None,
            request_id_keys=() if rid is None or isinstance(rid, str)
            else _refs(rid, f"{source}: request_id"),
            context_keys=tuple(context or ()),
        )


_TOP_KEYS = {"stages", "stage", "node", "node_keys", "request_id", "request_id_key",
             "context", "context_keys", "pair_by"}
_RULE_KEYS = {"stage", "span", "at", "name", "name_regex", "service", "kind", "attributes",
              "resource", "event", "resolution_ns", "request_id"}


def _known(obj: dict[str, Any], keys: set[str], where: str) -> None:
    unknown = sorted(set(obj) - keys)
    if unknown:
        raise InputError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))} "
                         f"(known: {', '.join(sorted(keys))})")


def _one_of(obj: dict[str, Any], names: tuple[str, str], where: str) -> Any:
    if names[0] in obj and names[1] in obj:
        raise InputError(f"{where}: give '{names[0]}' or '{names[1]}', not both")
    return obj.get(names[0], obj.get(names[1]))


def _refs(value: Any, where: str) -> tuple[FieldRef, ...]:
    items = value if isinstance(value, list) else [value]
    out = []
    for i, item in enumerate(items):
        try:
            if isinstance(item, str) and item:
                out.append(FieldRef(attribute=item))
            elif isinstance(item, dict):
                _known(item, {"attribute", "field", "scope", "regex"}, f"{where}[{i}]")
                out.append(FieldRef(attribute=item.get("attribute"), field=item.get("field"),
                                    scope=item.get("scope", "any"), regex=item.get("regex")))
            else:
                raise ValueError("expected an attribute name or {attribute|field, scope, regex}")
        except (TypeError, ValueError) as exc:
            raise InputError(f"{where}[{i}]: {exc}") from None
    if not out:
        raise InputError(f"{where}: expected at least one key")
    return tuple(out)


def _matches(value: Any, where: str) -> tuple[AttributeMatch, ...]:
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise InputError(f"{where}: expected a table/object of attribute conditions")
    out = []
    for key, cond in value.items():
        try:
            if isinstance(cond, dict):
                _known(cond, {"regex", "equals"}, f"{where}.{key}")
                out.append(AttributeMatch(key, equals=None if cond.get("equals") is None
                                          else _text(cond["equals"]), regex=cond.get("regex")))
            else:
                out.append(AttributeMatch(key, equals=_text(cond)))
        except (TypeError, ValueError) as exc:
            raise InputError(f"{where}.{key}: {exc}") from None
    return tuple(out)


def _rule(obj: Any, where: str) -> StageRule:
    if not isinstance(obj, dict):
        raise InputError(f"{where}: expected a rule object/table")
    _known(obj, _RULE_KEYS, where)
    if not isinstance(obj.get("stage"), str) or not obj["stage"]:
        raise InputError(f"{where}: field 'stage' must be a stage name")
    for key in ("span", "at", "name", "name_regex", "service", "event"):
        if key in obj and not isinstance(obj[key], str):
            raise InputError(f"{where}: field '{key}' must be a string")
    kind = obj.get("kind")
    if kind is not None and kind not in SPAN_KINDS:
        try:
            kind = kind_name(kind)
        except SpanError as exc:
            raise InputError(f"{where}: field 'kind': {exc}") from None
    try:
        return StageRule(
            stage=obj["stage"], span=obj.get("span", "*"), at=obj.get("at", "start"),
            name=obj.get("name"), name_regex=obj.get("name_regex"),
            service=obj.get("service"), kind=kind,
            attributes=_matches(obj.get("attributes"), f"{where}.attributes"),
            resource=_matches(obj.get("resource"), f"{where}.resource"),
            event=obj.get("event"), resolution_ns=obj.get("resolution_ns"),
            request_id=None if obj.get("request_id") is None
            else _refs(obj["request_id"], f"{where}.request_id"))
    except (TypeError, ValueError) as exc:
        raise InputError(f"{where}: {exc}") from None


def node_of(span: Span, mapping: TraceMapping) -> tuple[str, FieldRef] | None:
    """The span's node and the key that gave it, or ``None``."""
    for ref in mapping.node_chain:
        value = ref.value(span)
        if value is not None:
            return value, ref
    return None


class RuleMemo:
    """What :func:`batch_columns` may remember across batches of one mapping: which rules a
    span's name, kind and service admit (spans share a few names); the rules' stages and
    resolutions as arrays (a row's is its rule's)."""

    __slots__ = ("_admitted", "_mapping", "coarse_ns", "resolutions", "rest", "stages",
                 "uses_service")

    def __init__(self, mapping: TraceMapping) -> None:
        self._mapping = mapping
        self._admitted: dict[tuple[str, ...], tuple[int, ...]] = {}
        self.uses_service = any(r.service is not None for r in mapping.rules)
        #: the rules with criteria beyond the name, kind and service (attributes, resource,
        #: events)
        self.rest = tuple(k for k, r in enumerate(mapping.rules) if r.attributes or r.resource
                          or r.event is not None or r.at[:6] == "event:")
        #: per rule: its stage; its resolution (null: 1 ns), and as a number (0: 1 ns)
        self.stages = pa.array([r.stage for r in mapping.rules], pa.string())
        coarse = [r.resolution_ns if (r.resolution_ns or 1) > 1 else None
                  for r in mapping.rules]
        self.resolutions = pa.array(coarse, pa.int64())
        self.coarse_ns = np.array([v or 0 for v in coarse], np.int64)

    @classmethod
    def of(cls, mapping: TraceMapping) -> RuleMemo:
        """The memo of ``mapping``, kept across calls (for the last few mappings)."""
        memo = _MEMOS.get(id(mapping))
        if memo is None or memo._mapping is not mapping:
            if len(_MEMOS) >= 16:
                _MEMOS.clear()
            memo = _MEMOS[id(mapping)] = cls(mapping)
        return memo

    def admitted(self, key: tuple[str, ...]) -> tuple[int, ...]:
        """Positions of the rules whose name, kind and service criteria ``(name, kind,
        service)`` meets; ``(name, kind)`` when no rule names a service."""
        got = self._admitted.get(key)
        if got is None:
            if len(self._admitted) > 4096:
                self._admitted.clear()
            got = tuple(k for k, r in enumerate(self._mapping.rules) if r._matches_name(*key))
            self._admitted[key] = got
        return got


_MEMOS: dict[int, RuleMemo] = {}  # by id of the mapping (the memo holds it)


def _field_values(batch: SpanBatch, name: str) -> Sequence[Any]:
    if name == "service":
        return batch.service()
    values: Sequence[Any] = getattr(batch, name)  # (a field of SPAN_FIELDS)
    return values


def _texts(values: list[Any]) -> bool:
    """Whether every value is a non-empty ``str`` (what :meth:`FieldRef.cut` without a
    regex gives unchanged)."""
    return _all_text(values) and all(values)


def _raw_values(batch: SpanBatch, ref: FieldRef, at: np.ndarray) -> list[Any]:
    """What ``ref`` reads of the spans ``at``, before :meth:`FieldRef.cut`."""
    if ref.field is not None:
        return gather(_field_values(batch, ref.field), at)
    key = str(ref.attribute)
    if ref.scope == "resource":
        return batch.resource_values(key)[at].tolist()  # type: ignore[no-any-return]
    mine = gather(batch.attribute(key), at)
    if ref.scope == "span" or None not in mine:
        return mine
    res = batch.resource_values(key)[at].tolist()
    return [r if v is None else v for v, r in zip(mine, res, strict=True)]


def _cut_values(ref: FieldRef, raw: list[Any]) -> list[str | None]:
    """:meth:`FieldRef.cut` of every value (``raw`` itself when that changes none)."""
    if ref.regex is None:  # text as it is: no call per value for the common case
        if _texts(raw):
            return raw
        return [(v or None) if type(v) is str else ref.cut(v) for v in raw]
    return [ref.cut(v) for v in raw]


def _resource_cut(batch: SpanBatch, ref: FieldRef) -> list[str | None]:
    """What ``ref`` (a resource attribute) gives for each resource of the batch."""
    return _cut_values(ref, [r.get(str(ref.attribute)) for r in batch.resources])


def _ref_values(batch: SpanBatch, ref: FieldRef, at: np.ndarray) -> list[str | None]:
    """What ``ref`` gives for each span ``at`` (``None`` where nothing); a new list."""
    if ref.field is None and ref.scope == "resource":  # once per resource
        return gather(_resource_cut(batch, ref), batch.resource_code[at])
    return _cut_values(ref, _raw_values(batch, ref, at))


def _chain_values(batch: SpanBatch, chain: Sequence[FieldRef], at: np.ndarray
                  ) -> list[str | None]:
    """The first value of the fallback ``chain`` each span ``at`` has (``None`` where
    none); a new list."""
    out: list[str | None] = [None] * len(at)
    todo = np.arange(len(at))  # the positions of ``out`` still without a value
    for ref in chain:
        got = _ref_values(batch, ref, at[todo])
        if len(todo) == len(out):
            out = got
        else:
            for k, value in zip(compress(todo.tolist(), got), compress(got, got),
                                strict=True):
                out[k] = value
        if all(got):  # (a value is a non-empty str or None)
            break
        todo = todo[~np.fromiter(map(bool, got), bool, len(got))]
    return out


def _admitted(batch: SpanBatch, memo: RuleMemo
              ) -> tuple[np.ndarray, list[tuple[int, tuple[int, ...]]]]:
    """Per span, the first span of its name, kind (and service); per such first span, the
    rules those admit."""
    n = len(batch)
    first: dict[Any, int] = {}  # per (name, kind[, service]), or name, its first span
    if not memo.uses_service and n and batch.kind.count(batch.kind[0]) == n:  # one kind
        codes = np.fromiter(map(first.setdefault, batch.name, range(n)), np.int64, n)
        kind = batch.kind[0]
        return codes, [(k, memo.admitted((name, kind))) for name, k in first.items()]
    keys: Iterator[tuple[str, ...]] = zip(batch.name, batch.kind, batch.service(),
                                          strict=True) \
        if memo.uses_service else zip(batch.name, batch.kind, strict=True)
    codes = np.fromiter(map(first.setdefault, keys, range(n)), np.int64, n)
    return codes, [(k, memo.admitted(key)) for key, k in first.items()]


def _with_rules(codes: np.ndarray, admitted: list[tuple[int, tuple[int, ...]]],
                n_rules: int) -> list[np.ndarray]:
    """Per rule, the spans (ascending indices) whose name, kind and service it admits
    (:func:`_admitted`)."""
    parts: list[list[np.ndarray]] = [[] for _ in range(n_rules)]
    for k, rules in admitted:
        if rules:
            at = np.flatnonzero(codes == k) if len(admitted) > 1 else np.arange(len(codes))
            for r in rules:
                parts[r].append(at)
    return [np.sort(np.concatenate(p)) if len(p) > 1 else p[0] if p
            else np.zeros(0, np.int64) for p in parts]


def _rest_holds(rule: StageRule, batch: SpanBatch, at: np.ndarray) -> np.ndarray:
    """Which spans ``at`` meet the rule's other criteria: attributes, resource, events."""
    ok = np.ones(len(at), dtype=bool)
    for m in rule.attributes:
        ok &= np.fromiter(map(m.test, gather(batch.attribute(m.key), at)), bool, len(at))
    for m in rule.resource:
        ok &= np.fromiter(map(m.test, batch.resource_values(m.key)[at]), bool, len(at))
    for wanted in ([rule.event] if rule.event is not None else []) + (
            [rule.at[6:]] if rule.at[:6] == "event:" else []):
        ok &= np.fromiter((any(name == wanted for name, _ in evs)
                           for evs in gather(batch.events(), at)), bool, len(at))
    return ok


def _stamps(rule: StageRule, batch: SpanBatch, at: np.ndarray) -> list[int]:
    """The stamp the rule takes from each span ``at`` (which have it)."""
    if rule.at == "start":
        return gather(batch.start_ns, at)
    if rule.at == "end":
        return gather(batch.end_ns, at)
    wanted = rule.at[6:]
    return [next(t for name, t in evs if name == wanted) for evs in gather(batch.events(), at)]


def _request_ids(batch: SpanBatch, chain: Sequence[FieldRef], at: np.ndarray
                 ) -> list[str | None]:
    """The request id of each span ``at``: the first value of ``chain``, else the trace
    id."""
    rid = _chain_values(batch, chain, at)
    if all(rid):
        return rid
    return [v or t for v, t in zip(rid, gather(batch.trace_id, at), strict=True)]


def _rows(batch: SpanBatch, rules: Sequence[StageRule], memo: RuleMemo
          ) -> tuple[np.ndarray, np.ndarray]:
    """The rows the rules give: each row's span and rule, by span and, within a span, by
    rule."""
    codes, admitted = _admitted(batch, memo)
    if all(len(rs) <= 1 for _, rs in admitted):
        return _one_rule_rows(batch, rules, memo, codes, admitted)
    spans_of: list[np.ndarray] = []
    rule_of: list[int] = []
    for r, (rule, at) in enumerate(zip(rules, _with_rules(codes, admitted, len(rules)),
                                       strict=True)):
        if len(at) and r in memo.rest:
            at = at[_rest_holds(rule, batch, at)]
        if len(at):
            spans_of.append(at)
            rule_of.append(r)
    if not spans_of:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    span_at = np.concatenate(spans_of)
    rule_at = np.repeat(np.array(rule_of, np.int64), [len(at) for at in spans_of])
    if len(spans_of) > 1:  # (rules came in order)
        order = np.argsort(span_at, kind="stable")
        span_at, rule_at = span_at[order], rule_at[order]
    return span_at, rule_at


def _one_rule_rows(batch: SpanBatch, rules: Sequence[StageRule], memo: RuleMemo,
                   codes: np.ndarray, admitted: list[tuple[int, tuple[int, ...]]]
                   ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_rows` when each span's name, kind and service admit one rule at most: a row
    per span, looked up by its first span's rule."""
    rule_of = np.full(len(codes), -1, np.int64)  # per first span, its rule
    for k, rs in admitted:
        if rs:
            rule_of[k] = rs[0]
    rule_of = rule_of[codes]
    span_at = np.flatnonzero(rule_of >= 0)
    rule_at = rule_of[span_at]
    keep: np.ndarray | None = None
    for r in memo.rest:
        rows = np.flatnonzero(rule_at == r)
        if len(rows):
            ok = _rest_holds(rules[r], batch, span_at[rows])
            if not ok.all():
                if keep is None:
                    keep = np.ones(len(span_at), bool)
                keep[rows[~ok]] = False
    if keep is not None:
        span_at, rule_at = span_at[keep], rule_at[keep]
    return span_at, rule_at


def _rule_groups(rules: Sequence[StageRule], rule_at: np.ndarray, present: list[int],
                 key: Callable[[StageRule], Hashable]) -> list[tuple[StageRule, np.ndarray | None]]:
    """The rows grouped by what their rules (``present``: the rules of some row, in order)
    share (``key`` of a rule): per group, one of its rules and its rows (``None``: all
    rows)."""
    groups: dict[Hashable, list[int]] = {}
    for r in present:
        groups.setdefault(key(rules[r]), []).append(r)
    if len(groups) == 1:
        return [(rules[int(rule_at[0])], None)]
    return [(rules[rs[0]], np.flatnonzero(np.isin(rule_at, rs))) for rs in groups.values()]


def _joined(n: int, parts: list[tuple[np.ndarray | None, list[Any]]]) -> list[Any]:
    """The values of ``n`` rows given in parts: ``(rows, their values)`` (``None``: all
    rows)."""
    if len(parts) == 1 and parts[0][0] is None:
        return parts[0][1]
    out: list[Any] = [None] * n
    for rows, values in parts:
        for row, value in zip(np.asarray(rows).tolist(), values, strict=True):
            out[row] = value
    return out


def _per_span(read: Callable[[np.ndarray], list[Any]], span_at: np.ndarray) -> list[Any]:
    """``read`` of the spans of rows ``span_at`` (ascending), read once per span."""
    first = np.ones(len(span_at), dtype=bool)
    np.not_equal(span_at[1:], span_at[:-1], out=first[1:])
    if first.all():
        return read(span_at)
    return gather(read(span_at[first]), np.cumsum(first) - 1)


def _row_stamps(batch: SpanBatch, rules: Sequence[StageRule], span_at: np.ndarray,
                rule_at: np.ndarray, present: list[int]) -> list[int]:
    """Each row's stamp, as its rule takes it."""
    return _joined(len(span_at), [
        (rows, _stamps(rule, batch, span_at if rows is None else span_at[rows]))
        for rule, rows in _rule_groups(rules, rule_at, present, attrgetter("at"))])


def _row_request_ids(batch: SpanBatch, mapping: TraceMapping, span_at: np.ndarray,
                     rule_at: np.ndarray, present: list[int]) -> list[str]:
    """Each row's request id, from its rule's chain (else the mapping's), else the trace
    id."""
    parts: list[tuple[np.ndarray | None, list[Any]]] = []
    for rule, rows in _rule_groups(mapping.rules, rule_at, present,
                                   attrgetter("request_id")):
        chain = mapping.request_chain if rule.request_id is None else rule.request_id
        parts.append((rows, _per_span(functools.partial(_request_ids, batch, chain),
                                      span_at if rows is None else span_at[rows])))
    return _joined(len(span_at), parts)


def _resolutions(batch: SpanBatch, memo: RuleMemo, rule_at: np.ndarray,
                 span_at: np.ndarray) -> Values | None:
    """Each row's stamp resolution (``None`` where 1 ns); ``None`` when every row's is."""
    if batch.resolution_ns.count(1) == len(batch):  # the spans' own: 1 ns
        res = memo.coarse_ns[rule_at]
        return pa.array(res, mask=res == 0) if res.any() else None
    res = np.maximum(np.asarray(memo.resolutions.fill_null(1))[rule_at],
                     np.asarray(gather(batch.resolution_ns, span_at), np.int64))
    if not (res > 1).any():
        return None
    return [int(v) if v > 1 else None for v in res.tolist()]


def _row_nodes(batch: SpanBatch, chain: Sequence[FieldRef], span_at: np.ndarray
               ) -> tuple[Values, np.ndarray | None]:
    """The node of each row's span (``span_at``, ascending), read once per span (once per
    resource when ``chain`` reads resource attributes only), and which rows have none
    (``None``: every row has one)."""
    if all(ref.field is None and ref.scope == "resource" for ref in chain):
        per: list[str | None] = [None] * len(batch.resources)
        for ref in chain:
            per = [v or got for v, got in zip(per, _resource_cut(batch, ref), strict=True)]
        if len(per) == 1 and type(per[0]) is str:  # (one resource)
            return pa.repeat(pa.scalar(per[0], pa.string()), len(span_at)), None
        if set(map(type, per)) <= {str, type(None)}:
            codes = batch.resource_code[span_at]
            missing = [k for k, v in enumerate(per) if v is None]
            return (pa.array(per, pa.string()).take(codes),
                    np.isin(codes, missing) if missing else None)
    node = _per_span(functools.partial(_chain_values, batch, chain), span_at)
    return node, None if all(node) else ~np.fromiter(map(bool, node), bool, len(node))


def batch_columns(batch: SpanBatch, mapping: TraceMapping, memo: RuleMemo
                  ) -> tuple[dict[str, Values], np.ndarray, list[tuple[int, str]]]:
    """The stage events of a batch of spans as columns (``request_id, stage, node, ts_ns,
    trace_id``; ``span_id, parent_span_id`` when pairing by parent; ``resolution_ns`` when a
    stamp is coarser than 1 ns; the context keys; each a list, or an array already of the
    table's type), ordered by span and, within a span, by rule; the span each row comes
    from; and ``(span, what is wrong)`` for each span a rule matches but that gives no valid
    event (no node, a stamp beyond int64), which then gives no row at all. ``memo`` belongs
    to ``mapping``."""
    rules = mapping.rules
    span_at, rule_at = _rows(batch, rules, memo)
    if not len(span_at):
        return {}, span_at, []
    span_at = all_of(span_at, len(batch))
    present = np.flatnonzero(np.bincount(rule_at, minlength=len(rules))).tolist()
    ts_list = _row_stamps(batch, rules, span_at, rule_at, present)
    rid_all = _row_request_ids(batch, mapping, span_at, rule_at, present)
    node, no_node = _row_nodes(batch, mapping.node_chain, span_at)
    bad = _bad_spans(mapping, span_at, rule_at, no_node, ts_list)
    if bad:
        keep = np.flatnonzero(~np.isin(span_at, np.fromiter((b for b, _ in bad), np.int64,
                                                            len(bad))))
        span_at, rule_at = span_at[keep], rule_at[keep]
        rid_all, ts_list = gather(rid_all, keep), gather(ts_list, keep)
        node = node.take(keep) if isinstance(node, pa.Array) else gather(node, keep)
    cols: dict[str, Values] = {
        "request_id": pa.array(rid_all, pa.string()) if _all_text(rid_all) else rid_all,
        "stage": memo.stages.take(rule_at), "node": node,
        "ts_ns": ts_list, "trace_id": batch.ids("trace_id", span_at)}
    if mapping.pair_by == "parent":
        cols["span_id"] = batch.ids("span_id", span_at)
        cols["parent_span_id"] = batch.ids("parent_span_id", span_at)
    res = _resolutions(batch, memo, rule_at, span_at)
    if res is not None:
        cols["resolution_ns"] = res
    for key in mapping.context_keys:
        cols[key] = _raw_values(batch, FieldRef(attribute=key), span_at)
    return cols, span_at, bad


def _bad_spans(mapping: TraceMapping, span_at: np.ndarray, rule_at: np.ndarray,
               no_node: np.ndarray | None, ts_list: list[int]) -> list[tuple[int, str]]:
    """``(span, what is wrong)`` for each span with a row that has no node (``no_node``:
    those rows, ``None``: none) or a stamp beyond int64, named by its first such row (in
    rule order)."""
    stamps_ok = not ts_list or max(ts_list) <= _INT64_MAX
    if no_node is None and stamps_ok:
        return []
    n = len(span_at)
    too_big = np.zeros(n, bool) if stamps_ok else np.fromiter(
        (t > _INT64_MAX for t in ts_list), bool, n)
    wrong = too_big if no_node is None else no_node | too_big
    bad: list[tuple[int, str]] = []
    for row in np.flatnonzero(wrong).tolist():
        span = int(span_at[row])
        if bad and bad[-1][0] == span:
            continue
        if too_big[row]:
            stage = mapping.rules[int(rule_at[row])].stage
            bad.append((span, f"timestamp {ts_list[row]} ns of stage {stage} is beyond int64"))
        else:
            tried = ", ".join(r.describe() for r in mapping.node_chain)
            bad.append((span, f"no node attribute (tried {tried})"))
    return bad


def span_rows(span: Span, mapping: TraceMapping) -> list[dict[str, Any]]:
    """The stage events one span yields (empty when no rule matches); :class:`SpanError`
    when a rule matches but the span has no node or its stamp is beyond int64."""
    got, at, bad = batch_columns(SpanBatch.of_spans([span]), mapping, RuleMemo(mapping))
    if bad:
        raise SpanError(bad[0][1])
    cols = {k: _as_list(v) for k, v in got.items()}
    return [{k: v[i] for k, v in cols.items() if k != "resolution_ns" or v[i] is not None}
            for i in range(len(at))]
