"""A trace map reads a batch of spans as columns (:func:`batch_columns`). Whatever the batch
is made of (OTLP protobuf read a column at a time, or span records of any format), it gives
the rows that mapping each span on its own gives, in span order and, within a span, in rule
order; a span that cannot give a valid event gives no row and is named once."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from clocksync import InputError
from clocksync._io._tabular import _columns_to_table, _rows_to_table
from clocksync.latency import (
    EVENT_COLUMNS,
    AttributeMatch,
    FieldRef,
    StageRule,
    TraceMapping,
    _spanbatch,
    _traces,
    preset,
    span_rows,
)
from clocksync.latency._otlp import _pb_value, otlp_request_batch, otlp_request_spans
from clocksync.latency._spanbatch import SpanBatch, all_of, every, gather, hex_texts
from clocksync.latency._spans import SpanError
from clocksync.latency._traces import span_events

pb = pytest.importorskip("opentelemetry.proto.collector.trace.v1.trace_service_pb2",
                         reason="reading OTLP protobuf needs opentelemetry-proto")

T = 1_764_129_600_000_000_000
NAMES = ("ingress a", "invocation-start a", "invocation-end b", "other", "pp.exit x")


def _set(value_pb: Any, value: Any) -> None:
    if isinstance(value, bool):
        value_pb.bool_value = value
    elif isinstance(value, int):
        value_pb.int_value = value
    elif isinstance(value, list):
        for v in value:
            _set(value_pb.array_value.values.add(), v)
    else:
        value_pb.string_value = value


def _request(rng: random.Random, n_resources: int, n_spans: int) -> Any:
    """An export of several resources and scopes whose spans vary in everything a trace map
    reads: repeated and non-string attributes, events, missing values, bad spans."""
    req = pb.ExportTraceServiceRequest()
    for r in range(n_resources):
        rs = req.resource_spans.add()
        for key, value in (("service.instance.id", f"cl/node-{r % 3}"),
                           ("service.name", rng.choice(["svc", "other"])),
                           ("zone", rng.choice(["a", "b", ""]))):
            if value or rng.random() < 0.5:
                kv = rs.resource.attributes.add()
                kv.key = key
                _set(kv.value, value)
        for _ in range(rng.randint(1, 2)):
            ss = rs.scope_spans.add()
            for _ in range(rng.randint(0, n_spans)):
                sp = ss.spans.add()
                if rng.random() > 0.03:
                    sp.trace_id = rng.randbytes(16)
                sp.span_id = rng.randbytes(rng.choice([8, 8, 8, 3, 0]))  # (any length)
                if rng.random() < 0.7:
                    sp.parent_span_id = rng.randbytes(8)
                sp.name = rng.choice(NAMES)
                sp.kind = rng.choice([0, 1, 2, 3]) if rng.random() > 0.02 else 9
                sp.start_time_unix_nano = T + rng.randrange(10**9)
                sp.end_time_unix_nano = sp.start_time_unix_nano + rng.randrange(10**6)
                if rng.random() < 0.02:
                    sp.end_time_unix_nano = 2**63 + 5  # beyond int64
                attrs: list[tuple[str, Any]] = [("inv.id", f"inv_{rng.randrange(10**6)}"),
                         ("code", rng.choice([200, 500])), ("ok", rng.random() < 0.5),
                         ("tags", ["x", 1]),
                         ("node", rng.choice(["", "n-span"])), ("inv.id", "inv_last")]
                for key, value in rng.sample(attrs, rng.randint(0, len(attrs))):
                    kv = sp.attributes.add()
                    kv.key = key
                    _set(kv.value, value)
                for name in rng.sample(["appended", "sent", "appended"], rng.randint(0, 3)):
                    ev = sp.events.add()
                    ev.name, ev.time_unix_nano = name, sp.start_time_unix_nano + 7
    return req


def _mapping(pair_by: str) -> TraceMapping:
    return TraceMapping(
        rules=(StageRule("in", name_regex="^ingress( |$)", resolution_ns=1000),
               StageRule("start", span="invocation-start *"),
               StageRule("end", span="invocation-end *", at="end",
                         attributes=(AttributeMatch("code", "200"),)),
               StageRule("app", at="event:appended", resource=(AttributeMatch("zone",
                                                                              regex="^a$"),)),
               StageRule("any", kind="server", request_id=(FieldRef(field="span_id"),)),
               StageRule("ok", attributes=(AttributeMatch("ok", "true"),), event="sent")),
        node_keys=(FieldRef(attribute="node", scope="span"),
                   FieldRef(attribute="service.instance.id", scope="resource",
                            regex="([^/]+)$")),
        request_id_keys=(FieldRef(attribute="inv.id", regex="^inv_(.*)$"),),
        context_keys=("code", "tags", "service.name"),
        pair_by=pair_by)  # type: ignore[arg-type]


def _one_rule_mapping(pair_by: str) -> TraceMapping:
    """A mapping whose rules each admit names no other rule admits, some with criteria
    beyond the name (attributes, resource, events)."""
    return TraceMapping(
        rules=(StageRule("in", name_regex="^ingress( |$)", resolution_ns=1000),
               StageRule("start", span="invocation-start *",
                         attributes=(AttributeMatch("ok", "true"),)),
               StageRule("end", span="invocation-end *", at="end",
                         attributes=(AttributeMatch("code", "200"),)),
               StageRule("app", span="pp.exit *", at="event:appended",
                         resource=(AttributeMatch("zone", regex="^a$"),)),
               StageRule("other", name="other", event="sent")),
        node_keys=_mapping(pair_by).node_keys, request_id_keys=(FieldRef(attribute="inv.id"),),
        context_keys=("code",), pair_by=pair_by)  # type: ignore[arg-type]


def _one_by_one(spans: list[Any], mapping: TraceMapping) -> tuple[list[dict[str, Any]],
                                                                    list[tuple[str, str]]]:
    rows, bad = [], []
    for span in spans:
        try:
            rows.extend(span_rows(span, mapping))
        except SpanError as exc:
            bad.append((span.where, str(exc)))
    return rows, bad


@pytest.mark.parametrize("one_rule", [False, True])
@pytest.mark.parametrize("pair_by", ["request", "parent"])
@pytest.mark.parametrize("seed", range(6))
def test_a_batch_gives_the_rows_of_each_span_alone(seed: int, pair_by: str, one_rule: bool
                                                   ) -> None:
    rng = random.Random(seed)
    mapping = _one_rule_mapping(pair_by) if one_rule else _mapping(pair_by)
    req = _request(rng, rng.randint(1, 4), 60)
    batch, bad_spans = otlp_request_batch("body", req)
    items = list(otlp_request_spans("body", req))
    records = [s for _, s in items if not isinstance(s, str)]
    assert [why for _, why in bad_spans] == [s for _, s in items if isinstance(s, str)]
    assert len(batch) == len(records) and len(batch) + len(bad_spans) == sum(
        len(ss.spans) for rs in req.resource_spans for ss in rs.scope_spans)
    # the records a batch gives are the spans as read one at a time
    assert list(batch) == records
    rows, bad = _one_by_one(records, mapping)
    assert rows, "the request should give rows"
    expect = _rows_to_table(rows, ["?"] * len(rows), EVENT_COLUMNS, "spans")
    for spans in (batch, SpanBatch.of_spans(records), records):
        failed: list[Any] = []
        table = span_events(spans, mapping, failed)
        assert [(b.where, b.reason) for b in failed] == bad
        for name in expect.column_names:
            assert table.column(name).to_pylist() == expect.column(name).to_pylist(), name
        assert set(table.column_names) == set(expect.column_names)


@pytest.mark.parametrize("seed", range(3))
def test_read_as_a_map_the_attributes_are_those_of_the_generated_classes(seed: int) -> None:
    rng = random.Random(seed)
    req = _request(rng, 3, 40)
    batch, bad = otlp_request_batch("body", req)  # (read again with otlp_read_type)
    assert type(req) is pb.ExportTraceServiceRequest
    spans = [sp for rs in req.resource_spans for ss in rs.scope_spans for sp in ss.spans]
    kept = [sp for sp in spans if sp.trace_id and 0 <= sp.kind < 6]
    assert len(kept) == len(batch) and len(bad) == len(spans) - len(kept)
    for sp, record in zip(kept, batch, strict=True):
        want = {kv.key: _pb_value(kv.value) for kv in sp.attributes}  # a dict: last wins
        assert dict(record.attributes) == want
        assert record.span_id == sp.span_id.hex() and record.start_ns == sp.start_time_unix_nano
        assert record.events == tuple((e.name, e.time_unix_nano) for e in sp.events)
    for key in ("inv.id", "code", "ok", "tags", "node", "absent"):
        assert batch.attribute(key) == [r.attributes.get(key) for r in batch]


def test_an_attribute_repeated_in_a_span_gives_its_last_value() -> None:
    req = pb.ExportTraceServiceRequest()
    sp = req.resource_spans.add().scope_spans.add().spans.add()
    sp.trace_id, sp.name = b"\1" * 16, "s"
    for value in ("first", "", "last"):
        kv = sp.attributes.add()
        kv.key, kv.value.string_value = "k", value
    batch, _ = otlp_request_batch("body", req)
    assert batch.attribute("k") == ["last"] == [batch[0].attributes["k"]]
    assert batch.attribute("absent") == [None]


def test_without_a_node_a_span_gives_no_row_and_is_named_once() -> None:
    mapping = TraceMapping(rules=(StageRule("a"), StageRule("b")), node_keys=("nope",))
    records = list(SpanBatch.of_spans([]))
    assert records == []
    req = pb.ExportTraceServiceRequest()
    for k in range(3):
        sp = req.resource_spans.add().scope_spans.add().spans.add()
        sp.trace_id, sp.name, sp.start_time_unix_nano = bytes([k + 1]) * 16, "s", T
    batch, _ = otlp_request_batch("body", req)
    failed: list[Any] = []
    table = span_events(batch, mapping, failed)
    assert table.num_rows == 0 and table.column_names == ["request_id", "stage", "node", "ts_ns"]
    assert [(b.where, b.reason) for b in failed] == [("body", "no node attribute (tried nope)")] * 3


_RESTATE_BREAKS = ("none", "missing id", "empty id", "int id", "missing target", "int target",
                   "beyond int64", "no node", "mixed kinds", "one span")


def _restate_request(rng: random.Random, n_spans: int, brk: str) -> Any:
    """A Restate-like export: every span matched by the preset, every resource with a node,
    every span with a string invocation id and target; ``brk`` breaks one of these for
    one span (or resource)."""
    req = pb.ExportTraceServiceRequest()
    stages = ("ingress", "invocation-start", "invocation-attempt", "invocation-end")
    for r in range(2):
        rs = req.resource_spans.add()
        if not (brk == "no node" and r == 1):
            kv = rs.resource.attributes.add()
            kv.key, kv.value.string_value = "service.instance.id", f"cl/n{r}"
        ss = rs.scope_spans.add()
        for k in range(1 if brk == "one span" else n_spans):
            sp = ss.spans.add()
            sp.trace_id, sp.span_id = rng.randbytes(16), rng.randbytes(8)
            sp.parent_span_id = rng.randbytes(8) if k % 4 else b""
            sp.name, sp.kind = f"{stages[k % 4]} Greeter/greet", 2 if brk == "mixed kinds" \
                and k % 3 == 0 else 1
            sp.start_time_unix_nano = T + rng.randrange(10**9)
            if brk == "beyond int64" and (r, k) == (0, 5):
                sp.start_time_unix_nano = 2**63 + 1
            sp.end_time_unix_nano = sp.start_time_unix_nano + 5
            broken = r == 0 and k == 5
            for key, what in (("restate.invocation.id", "id"), ("restate.invocation.target",
                                                                 "target")):
                if broken and brk == f"missing {what}":
                    continue
                kv = sp.attributes.add()
                kv.key = key
                if broken and brk == f"int {what}":
                    kv.value.int_value = 7
                else:
                    kv.value.string_value = "" if broken and brk == f"empty {what}" \
                        else f"{what}_{k // 4}"
    return req


def _restate_mappings() -> list[TraceMapping]:
    base = preset("restate")
    return [base, TraceMapping(  # a span may give two rows, the second by its own chain
        rules=(*base.rules, StageRule("any", at="end", request_id=(FieldRef(field="span_id"),))),
        node_keys=base.node_keys, request_id_keys=base.request_id_keys,
        context_keys=base.context_keys, pair_by=base.pair_by)]


@pytest.mark.parametrize("brk", _RESTATE_BREAKS)
def test_a_batch_that_every_rule_reads_whole_gives_the_rows_of_each_span_alone(brk: str
                                                                               ) -> None:
    """The paths taken when every span has what the mapping reads (and when one does not)
    give the rows, column types and bad spans that mapping each span alone gives."""
    req = _restate_request(random.Random(brk), 12, brk)
    batch, bad_spans = otlp_request_batch("body", req)
    assert not bad_spans
    for mapping in _restate_mappings():
        rows, bad = _one_by_one(list(batch), mapping)
        expect = _rows_to_table(rows, ["?"] * len(rows), EVENT_COLUMNS, "spans")
        fresh, _ = otlp_request_batch("body", req)  # (a batch caches what it read)
        failed: list[Any] = []
        table = span_events(fresh, mapping, failed)
        assert [(b.where, b.reason) for b in failed] == bad
        assert set(table.column_names) == set(expect.column_names)
        for name in expect.column_names:
            assert table.column(name).to_pylist() == expect.column(name).to_pylist(), name
            assert table.schema.field(name).type == expect.schema.field(name).type, name
        assert bool(bad) == (brk in ("beyond int64", "no node"))


def test_spans_mapped_in_several_batches_give_the_table_of_one_batch(
        monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(7)
    req = _request(rng, 4, 60)
    records = [s for _, s in otlp_request_spans("body", req) if not isinstance(s, str)]
    for mapping in (_mapping("parent"), *_restate_mappings()):
        whole = span_events(records, mapping, [])
        monkeypatch.setattr(_traces, "_BATCH_SPANS", 7)
        parts = span_events(records, mapping, [])
        monkeypatch.undo()
        assert parts.schema == whole.schema and parts.equals(whole)


@pytest.mark.parametrize("case", ["clean", "null", "negative", "type"])
def test_arrays_given_as_columns_make_the_table_their_values_make(case: str) -> None:
    """An array in place of a column's values passes as it is only when converting its
    values would give it back; else its values take the general path (and its errors)."""
    n = 4
    values: dict[str, Any] = {
        "request_id": ["r0", "r1", "r2", "r3"], "stage": ["a", "b", "a", "b"],
        "node": ["n"] * n, "ts_ns": [5, 6, 7, 8], "extra": [1, None, 3, None]}
    if case == "null":
        values["node"] = ["n", None, "n", "n"]
    elif case == "negative":
        values["ts_ns"] = [5, -6, 7, 8]
    elif case == "type":
        values["stage"] = [1, 2, 1, 2]
    typed = {k: pa.array(v) for k, v in values.items()}
    where = [f"row {i}" for i in range(n)]
    outcomes = []
    for given in (values, typed):
        try:
            outcomes.append(_columns_to_table(given, lambda: where, EVENT_COLUMNS, "x"))
        except InputError as exc:
            outcomes.append(str(exc))
    if case in ("null", "negative"):
        assert isinstance(outcomes[0], str)
    else:
        assert outcomes[0].schema.field("stage").type == pa.string()
    assert outcomes[1] == outcomes[0] if isinstance(outcomes[0], str) else \
        outcomes[1].equals(outcomes[0])


@pytest.mark.parametrize("limit", [None, 8])
def test_ids_turned_into_hex_at_once_are_each_id_in_hex(limit: int | None,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Ids of any length (none too) give their hex, as an arrow string array, or a list when
    the text is longer than one array takes."""
    if limit is not None:
        monkeypatch.setattr(_spanbatch, "_HEX_BYTES", limit)
    rng = random.Random(3)
    for ids in ([], [b""], [rng.randbytes(rng.choice([0, 1, 8, 16])) for _ in range(50)]):
        got = hex_texts(ids)
        long = limit is not None and 2 * sum(map(len, ids)) >= limit
        assert isinstance(got, list) if long else got.type == pa.string()
        assert _listed(got) == [i.hex() for i in ids]


def test_a_batch_gives_ids_of_some_spans_as_their_ids_read_one_at_a_time() -> None:
    req = _request(random.Random(5), 3, 40)
    records = [s for _, s in otlp_request_spans("body", req) if not isinstance(s, str)]
    for at in (np.arange(len(records)), np.array([2, 0, 0, 5]), np.zeros(0, np.int64)):
        batch, _ = otlp_request_batch("body", req)
        for name in ("trace_id", "span_id", "parent_span_id"):
            want = [getattr(records[i], name) for i in at]
            got = batch.ids(name, at)
            assert (got.to_pylist() if isinstance(got, pa.Array) else got) == want
            assert getattr(batch, name) == [getattr(r, name) for r in records]
            assert _listed(batch.ids(name, at)) == want  # (after the list was made too)


def _listed(values: Any) -> list[Any]:
    return values.to_pylist() if isinstance(values, pa.Array) else list(values)


def test_every_index_in_order_is_known_as_such_and_no_other() -> None:
    values = list("abcde")
    whole = all_of(np.arange(5), 5)
    assert every(whole, 5) and all_of(np.arange(5), 5) is whole and not whole.flags.writeable
    for at in (np.array([0, 1, 1, 3, 4]), np.array([0, 2, 4]), np.arange(4), whole[1:],
               whole[::-1], np.array([0, 0, 2, 2, 4])):
        assert all_of(at, 5) is at and not every(at, 5)
        assert gather(values, at) == [values[i] for i in at]
    assert gather(values, whole) == values and not every(whole, 4)
