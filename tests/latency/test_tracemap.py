"""Stage rules match on each criterion (name exact/glob/regex, service, kind, span and
resource attributes, event name), pick start/end/event times, carry resolution_ns; nodes and
request ids come from fallback chains; map files (TOML and JSON) load or fail naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from clocksync import InputError
from clocksync.latency import (
    AttributeMatch,
    FieldRef,
    Span,
    StageRule,
    TraceMapping,
    node_of,
    span_rows,
)

T = 1_764_129_600_000_000_000


def span(name: str = "get /api", kind: str = "server", service: str = "backend",
         attrs: dict[str, object] | None = None, res: dict[str, object] | None = None,
         events: tuple[tuple[str, int], ...] = (("appended", T + 50),)) -> Span:
    return Span("f:1", "ab" * 16, "0000000000000002", "0000000000000001", name, kind, T,
                T + 100, attrs if attrs is not None else {"http.method": "GET", "code": 200,
                                                         "ok": True},
                {"service.name": service, "service.instance.id": "cluster/node-7",
                 **(res or {})}, events)


@pytest.mark.parametrize(("rule", "hit"), [
    (StageRule("s"), True),
    (StageRule("s", span="get *"), True),
    (StageRule("s", span="post *"), False),
    (StageRule("s", name="get /api"), True),
    (StageRule("s", name="get"), False),
    (StageRule("s", name_regex=r"^get\b"), True),
    (StageRule("s", name_regex=r"^post"), False),
    (StageRule("s", service="backend"), True),
    (StageRule("s", service="frontend"), False),
    (StageRule("s", kind="server"), True),
    (StageRule("s", kind="SPAN_KIND_SERVER"), True),
    (StageRule("s", kind="CLIENT"), False),
    (StageRule("s", attributes=(AttributeMatch("http.method", "GET"),)), True),
    (StageRule("s", attributes=(AttributeMatch("code", "200"),
                                AttributeMatch("ok", "true"))), True),
    (StageRule("s", attributes=(AttributeMatch("http.method", "POST"),)), False),
    (StageRule("s", attributes=(AttributeMatch("http.method", regex="^(GET|HEAD)$"),)), True),
    (StageRule("s", attributes=(AttributeMatch("missing", regex=""),)), False),
    (StageRule("s", attributes=(AttributeMatch("service.name", "backend"),)), False),
    (StageRule("s", resource=(AttributeMatch("service.name", "backend"),)), True),
    (StageRule("s", resource=(AttributeMatch("service.instance.id", regex="/node-7$"),)), True),
    (StageRule("s", resource=(AttributeMatch("http.method", "GET"),)), False),
    (StageRule("s", event="appended"), True),
    (StageRule("s", event="committed"), False),
    (StageRule("s", kind="server", service="backend", name="get /api", event="appended"), True),
    (StageRule("s", kind="server", service="frontend", name="get /api"), False),
])
def test_rule_criteria(rule: StageRule, hit: bool) -> None:
    assert rule.matches(span()) is hit


def test_times_and_resolution() -> None:
    mapping = TraceMapping(rules=(
        StageRule("a", at="start"), StageRule("b", at="end", resolution_ns=1_000_000),
        StageRule("c", at="event:appended"), StageRule("d", at="event:missing")))
    rows = span_rows(span(), mapping)
    got = {r["stage"]: (r["ts_ns"], r.get("resolution_ns")) for r in rows}
    assert got == {"a": (T, None), "b": (T + 100, 1_000_000), "c": (T + 50, None)}
    # a µs format's own resolution is kept when a rule asks for less
    coarse = Span("f:1", "t", "", "", "x", "server", T, T, {}, {"service.name": "n"}, (),
                  resolution_ns=1000)
    row = span_rows(coarse, TraceMapping(rules=(StageRule("a", resolution_ns=10),)))[0]
    assert row["resolution_ns"] == 1000


def test_node_and_request_chains() -> None:
    cut = FieldRef(attribute="service.instance.id", scope="resource", regex="([^/]+)$")
    mapping = TraceMapping(rules=(StageRule("a"),), node_keys=("k8s.node.name", cut),
                           request_id_keys=("restate.invocation.id", FieldRef(field="span_id")))
    row = span_rows(span(), mapping)[0]
    assert (row["node"], row["request_id"]) == ("node-7", "0000000000000002")
    assert node_of(span(attrs={"k8s.node.name": "k1"}), mapping) == (
        "k1", FieldRef(attribute="k8s.node.name"))
    row = span_rows(span(attrs={"restate.invocation.id": "inv"}), mapping)[0]
    assert row["request_id"] == "inv"
    # a span-scoped key ignores resource attributes; no request key at all: the trace id
    scoped = TraceMapping(rules=(StageRule("a"),),
                          node_keys=(FieldRef(attribute="service.name", scope="span"),
                                     FieldRef(field="service")))
    row = span_rows(span(), scoped)[0]
    assert (row["node"], row["request_id"]) == ("backend", "ab" * 16)
    nowhere = TraceMapping(rules=(StageRule("a"),), node_keys=("nope",))
    with pytest.raises(Exception, match=r"no node attribute \(tried nope\)"):
        span_rows(span(), nowhere)
    # a rule's own chain: pair a parent with its children
    pair = TraceMapping(rules=(StageRule("child", request_id=(FieldRef(field="parent_span_id"),)),))
    assert span_rows(span(), pair)[0]["request_id"] == "0000000000000001"


def test_rule_validation() -> None:
    with pytest.raises(ValueError, match=r"StageRule\.at"):
        StageRule("x", at="middle")
    with pytest.raises(ValueError, match=r"StageRule\.kind"):
        StageRule("x", kind="sideways")
    with pytest.raises(ValueError, match="bad regular expression"):
        StageRule("x", name_regex="(")
    with pytest.raises(ValueError, match="resolution_ns"):
        StageRule("x", resolution_ns=0)
    with pytest.raises(ValueError, match="exactly one of attribute or field"):
        FieldRef()
    with pytest.raises(ValueError, match=r"FieldRef\.field"):
        FieldRef(field="color")


TOML = '''
node = ["k8s.node.name",
        {attribute = "service.instance.id", scope = "resource", regex = "([^/]+)$"}]
request_id = ["restate.invocation.id", {field = "trace_id"}]
context = ["code"]

[[stages]]
stage = "server_recv"
kind = "SERVER"
service = "backend"
name_regex = "^get "
attributes = {"http.method" = "GET", code = 200}
resource = {"service.instance.id" = {regex = "node-"}}
event = "appended"
at = "event:appended"
resolution_ns = 1000
request_id = [{field = "span_id"}]
'''


def test_toml_map_file(tmp_path: Path) -> None:
    path = tmp_path / "map.toml"
    path.write_text(TOML)
    mapping = TraceMapping.load(path)
    rule = mapping.rules[0]
    assert rule.kind == "server" and rule.resolution_ns == 1000
    assert rule.attributes == (AttributeMatch("http.method", "GET"), AttributeMatch("code", "200"))
    row = span_rows(span(), mapping)[0]
    assert row == {"request_id": "0000000000000002", "stage": "server_recv", "node": "node-7",
                   "ts_ns": T + 50, "trace_id": "ab" * 16, "resolution_ns": 1000, "code": 200}


@pytest.mark.parametrize(("text", "match"), [
    ('{"stages": [{"stage": "a", "spam": 1}]}', r"stages\[0\]: unknown key\(s\) 'spam'"),
    ('{"stages": [], "node": ["x"]}', "non-empty list of rules"),
    ('{"stages": [{"stage": "a"}], "nodes": ["x"]}', r"unknown key\(s\) 'nodes'"),
    ('{"stages": [{"stage": "a", "kind": "up"}]}', r"stages\[0\]: field 'kind'"),
    ('{"stages": [{"stage": "a", "name_regex": "("}]}', r"stages\[0\]: .*regular expression"),
    ('{"stages": [{"stage": "a"}], "node": [{"field": "color"}]}', r"node\[0\]: FieldRef"),
    ('{"stages": [{"stage": "a", "attributes": {"k": {"rx": "a"}}}]}', r"attributes\.k"),
    ('{"stages": [{"stage": "a"}], "node": ["a"], "node_keys": ["b"]}', "not both"),
    ("{not json", "cannot read trace map"),
])
def test_bad_map_files_name_the_key(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "map.json"
    path.write_text(text)
    with pytest.raises(InputError, match=match) as info:
        TraceMapping.load(path)
    assert str(info.value).startswith(str(path))


def test_the_documented_maps_load(tmp_path: Path) -> None:
    """Every TOML map in docs/latency.md loads and does what its comments say."""
    import re

    doc = (Path(__file__).parents[2] / "docs" / "latency.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", doc, flags=re.S)
    assert len(blocks) >= 2
    for i, block in enumerate(blocks):
        path = tmp_path / f"doc{i}.toml"
        path.write_text(block)
        assert TraceMapping.load(path).rules
    restate = TraceMapping.load(tmp_path / "doc1.toml")
    assert node_of(span(), restate) == ("node-7", restate.node_chain[0])
