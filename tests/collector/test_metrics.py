"""CollectorMetrics: the exposition's names and labels, histogram counts that add up, series
that vanish when replaced, and concurrent writers and scrapers."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from clocksync import Status
from clocksync.collector import (
    BUCKETS_PER_DECADE,
    BUCKETS_S,
    AlertKey,
    CollectorMetrics,
    QuantileRow,
)

HOP_LABELS = {"hop", "src_node", "dst_node"}


def samples(metrics: CollectorMetrics) -> list[Sample]:
    body, content_type = metrics.exposition()
    assert content_type.startswith("text/plain")
    return [s for family in text_string_to_metric_families(body.decode())
            for s in family.samples]


def families(metrics: CollectorMetrics) -> dict[str, str]:
    """Family name -> type."""
    return {f.name: f.type for f in text_string_to_metric_families(
        metrics.exposition()[0].decode())}


def values(metrics: CollectorMetrics, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples named ``name``: sorted label items -> value."""
    return {tuple(sorted(s.labels.items())): s.value for s in samples(metrics)
            if s.name == name}


def buckets(metrics: CollectorMetrics, side: str, key: tuple[str, str, str]
            ) -> tuple[list[float], list[float]]:
    """(le edges, cumulative counts) of one histogram series, in exposition order."""
    rows = [(float(s.labels["le"]), s.value) for s in samples(metrics)
            if s.name == f"clocksync_hop_latency_{side}_seconds_bucket"
            and (s.labels["hop"], s.labels["src_node"], s.labels["dst_node"]) == key]
    return [le for le, _ in rows], [v for _, v in rows]


def test_buckets_are_log_spaced_under_five_percent_from_1us_to_100s() -> None:
    edges = np.array(BUCKETS_S)
    assert (np.diff(edges) > 0).all()
    assert edges[0] <= 1e-6 and edges[-1] >= 100.0
    assert (edges[1:] / edges[:-1] <= 1.05).all()
    # decade edges are exact bucket edges, so `le="0.001"` etc. can be queried
    for decade in range(-6, 3):
        assert 10.0 ** decade in BUCKETS_S
    assert len(BUCKETS_S) == 8 * BUCKETS_PER_DECADE + 1


def fill(m: CollectorMetrics) -> None:
    """One of everything."""
    m.observe_hops("ingress", "n1", "n2", np.array([1e5, 2e5]), np.array([3e5, 4e5]), 0, 1)
    m.set_quantiles([QuantileRow("ingress", "n1", "n2", 0.99, 1e5, 4e5)])
    m.count_incomplete("bifrost_append")
    m.count_received("otlp_http", 10)
    m.count_rejected_items("otlp_http", 2)
    m.count_rejected_payload("events", "bad_json")
    m.count_evicted(3)
    m.count_late(4)
    m.count_uncorrectable("n3", 5)
    m.set_pending(6, 7000, 8000)
    m.set_watermark(1_700_000_000_123_456_789)
    m.set_tables([("n1", 12.5, "synchronised")])
    m.set_alerts([AlertKey("latency_p99", "ingress", "n1", "n2")])
    m.count_alert("latency_p99")


#: every family of the exposition: name -> (type, labels of its samples besides `le`)
EXPECTED = {
    "clocksync_hop_requests": ("counter", HOP_LABELS),
    "clocksync_hop_order_unknown_requests": ("counter", HOP_LABELS),
    "clocksync_hop_inconsistent_requests": ("counter", HOP_LABELS),
    "clocksync_hop_latency_low_seconds": ("histogram", HOP_LABELS),
    "clocksync_hop_latency_high_seconds": ("histogram", HOP_LABELS),
    "clocksync_hop_latency_seconds": ("gauge", HOP_LABELS | {"quantile", "side"}),
    "clocksync_collector_incomplete_requests": ("counter", {"missing_stage"}),
    "clocksync_collector_received_items": ("counter", {"endpoint"}),
    "clocksync_collector_rejected_items": ("counter", {"endpoint"}),
    "clocksync_collector_rejected_payloads": ("counter", {"endpoint", "reason"}),
    "clocksync_collector_uncorrectable_requests": ("counter", {"node"}),
    "clocksync_collector_evicted_requests": ("counter", set()),
    "clocksync_collector_late_requests": ("counter", set()),
    "clocksync_collector_pending_requests": ("gauge", set()),
    "clocksync_collector_pending_bytes": ("gauge", set()),
    "clocksync_collector_memory_budget_bytes": ("gauge", set()),
    "clocksync_collector_watermark_seconds": ("gauge", set()),
    "clocksync_collector_table_age_seconds": ("gauge", {"node"}),
    "clocksync_collector_table_status": ("gauge", {"node", "status"}),
    "clocksync_collector_alert_active": ("gauge", HOP_LABELS | {"kind"}),
    "clocksync_collector_alerts_fired": ("counter", {"kind"}),
}


def test_exposition_has_exactly_the_documented_names_types_and_labels() -> None:
    m = CollectorMetrics()
    fill(m)
    assert families(m) == {name: kind for name, (kind, _) in EXPECTED.items()}
    seen: dict[str, set[str]] = {}
    for s in samples(m):
        name = s.name
        for suffix in ("_total", "_bucket", "_sum", "_count"):
            if name.removesuffix(suffix) in EXPECTED:
                name = name.removesuffix(suffix)
        seen.setdefault(name, set()).update(set(s.labels) - {"le"})
    assert seen == {name: labels for name, (_, labels) in EXPECTED.items()}
    names = {s.name for s in samples(m)}
    assert {"clocksync_hop_requests_total", "clocksync_hop_latency_low_seconds_bucket",
            "clocksync_hop_latency_high_seconds_sum", "clocksync_collector_alerts_fired_total",
            "clocksync_hop_latency_seconds"} <= names
    assert not any(n.endswith("_created") for n in names)


def test_the_documented_names_are_in_the_doc() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "collector-metrics.md").read_text()
    missing = [name for name, (kind, _) in EXPECTED.items()
               if (name + "_total" if kind == "counter" else name) not in doc]
    assert missing == []


def test_scalar_collector_metrics_have_their_values() -> None:
    m = CollectorMetrics()
    fill(m)
    one = {s.name: s.value for s in samples(m) if not s.labels}
    assert one == {"clocksync_collector_evicted_requests_total": 3.0,
                   "clocksync_collector_late_requests_total": 4.0,
                   "clocksync_collector_pending_requests": 6.0,
                   "clocksync_collector_pending_bytes": 7000.0,
                   "clocksync_collector_memory_budget_bytes": 8000.0,
                   "clocksync_collector_watermark_seconds": pytest.approx(1_700_000_000.123456)}
    assert values(m, "clocksync_collector_table_age_seconds") == {(("node", "n1"),): 12.5}
    assert values(m, "clocksync_collector_uncorrectable_requests_total") == {
        (("node", "n3"),): 5.0}


def reference_cumulative(values_ns: Iterable[float]) -> list[float]:
    """Cumulative bucket counts by the definition: values <= each edge, then all (+Inf)."""
    v = np.concatenate([np.asarray(x, dtype=float) for x in values_ns]) / 1e9
    return [float((v <= edge).sum()) for edge in BUCKETS_S] + [float(len(v))]


def test_histogram_counts_and_sums_add_up_over_batches() -> None:
    rng = np.random.default_rng(7)
    m = CollectorMetrics()
    lows, highs = [], []
    unknown = inconsistent = 0
    for size in (1, 1000, 0, 5000):
        true = rng.lognormal(np.log(2e6), 1.5, size)  # ns, spans many buckets
        low = true - rng.uniform(0, 3e6, size)  # some <= 0: order unknown
        high = true + rng.uniform(0, 3e6, size)
        u, i = int((low <= 0).sum()), min(size, 3)
        m.observe_hops("ingress", "n1", "n2", low, high, order_unknown=u, inconsistent=i)
        lows.append(low)
        highs.append(high)
        unknown += u
        inconsistent += i
    n = sum(len(x) for x in lows)
    key = ("ingress", "n1", "n2")
    for side, data in (("low", lows), ("high", highs)):
        les, counts = buckets(m, side, key)
        assert les == [*BUCKETS_S, math.inf]
        assert counts == reference_cumulative(data)
        total = values(m, f"clocksync_hop_latency_{side}_seconds_sum")
        assert list(total.values()) == [pytest.approx(np.concatenate(data).sum() / 1e9)]
        assert list(values(m, f"clocksync_hop_latency_{side}_seconds_count").values()) == [n]
    labels = (("dst_node", "n2"), ("hop", "ingress"), ("src_node", "n1"))
    assert values(m, "clocksync_hop_requests_total") == {labels: n}
    assert values(m, "clocksync_hop_order_unknown_requests_total") == {labels: unknown}
    assert values(m, "clocksync_hop_inconsistent_requests_total") == {labels: inconsistent}
    assert unknown > 0  # the first bucket really held lows <= 0


def test_bounds_at_and_beyond_the_ends_land_in_the_end_buckets() -> None:
    m = CollectorMetrics()
    low = np.array([-1e9, 0.0, 1e3, 1e3 + 1e-3, 100e9, 101e9])  # ns
    high = np.array([1e3, 1e3, 1e3, 2e3, 100e9, math.inf])
    m.observe_hops("h", "a", "b", low, high)
    _, low_counts = buckets(m, "low", ("h", "a", "b"))
    _, high_counts = buckets(m, "high", ("h", "a", "b"))
    assert low_counts[0] == 3  # <= 0 and exactly 1 µs: the first bucket (le="1e-06")
    assert low_counts[1] == 4  # just above 1 µs: the next one
    assert low_counts[-2] == 5 and low_counts[-1] == 6  # 100 s is in le="100.0", 101 s: +Inf
    assert high_counts[0] == 3 and high_counts[-2] == 5 and high_counts[-1] == 6
    finite = high[np.isfinite(high)].sum() / 1e9  # +inf is counted, not summed
    assert list(values(m, "clocksync_hop_latency_high_seconds_sum").values()) == [
        pytest.approx(finite)]


def test_values_at_and_next_to_every_edge_count_in_the_right_bucket() -> None:
    """A value v (ns) counts under ``le`` when v <= le·1e9: exactly, at every edge."""
    edges_ns = np.array(BUCKETS_S) * 1e9
    v = np.concatenate([edges_ns, np.nextafter(edges_ns, np.inf),
                        np.nextafter(edges_ns, -np.inf), [-np.inf, np.inf]])
    m = CollectorMetrics()
    m.observe_hops("h", "a", "b", v, np.full(len(v), np.inf))
    _, counts = buckets(m, "low", ("h", "a", "b"))
    assert counts == [float((v <= e).sum()) for e in edges_ns] + [float(len(v))]
    assert np.diff(counts[:-1]).tolist() == [3.0] * (len(BUCKETS_S) - 1)


def test_series_are_per_hop_and_node_pair() -> None:
    m = CollectorMetrics()
    m.observe_hops("h1", "a", "b", np.array([1e6]), np.array([2e6]))
    m.observe_hops("h1", "b", "a", np.array([1e6, 1e6]), np.array([2e6, 2e6]))
    m.observe_hops("h2", "a", "b", np.array([1e6, 1e6, 1e6]), np.array([2e6, 2e6, 2e6]))
    got = {(dict(k)["hop"], dict(k)["src_node"], dict(k)["dst_node"]): v
           for k, v in values(m, "clocksync_hop_requests_total").items()}
    assert got == {("h1", "a", "b"): 1, ("h1", "b", "a"): 2, ("h2", "a", "b"): 3}


@pytest.mark.parametrize(("low", "high", "unknown", "inconsistent"), [
    ([1.0, 2.0], [3.0], 0, 0),  # lengths differ
    ([1.0, math.nan], [3.0, 4.0], 0, 0),  # NaN
    ([5.0], [3.0], 0, 0),  # low above high
    ([1.0], [3.0], 2, 0),  # more order-unknown requests than requests
    ([1.0], [3.0], 0, -1),
])
def test_bad_batches_are_refused_and_change_nothing(
        low: list[float], high: list[float], unknown: int, inconsistent: int) -> None:
    m = CollectorMetrics()
    with pytest.raises(ValueError):
        m.observe_hops("h", "a", "b", np.array(low), np.array(high), unknown, inconsistent)
    assert values(m, "clocksync_hop_requests_total") == {}


def test_counters_add_refuse_negative_steps_and_n0_declares_a_series() -> None:
    m = CollectorMetrics()
    m.count_rejected_payload("otlp_http", "too_large", 0)
    m.count_received("events", 0)
    assert values(m, "clocksync_collector_rejected_payloads_total") == {
        (("endpoint", "otlp_http"), ("reason", "too_large")): 0.0}
    m.count_rejected_payload("otlp_http", "too_large")
    m.count_rejected_payload("otlp_http", "too_large", 2)
    m.count_received("events", 5)
    m.count_received("events", 6)
    m.count_incomplete("a")
    m.count_incomplete("a", 4)
    assert values(m, "clocksync_collector_rejected_payloads_total") == {
        (("endpoint", "otlp_http"), ("reason", "too_large")): 3.0}
    assert values(m, "clocksync_collector_received_items_total") == {
        (("endpoint", "events"),): 11.0}
    assert values(m, "clocksync_collector_incomplete_requests_total") == {
        (("missing_stage", "a"),): 5.0}
    for call in (lambda: m.count_evicted(-1), lambda: m.count_late(-1),
                 lambda: m.count_received("events", -1), lambda: m.count_alert("x", -1)):
        with pytest.raises(ValueError):
            call()
    assert values(m, "clocksync_collector_received_items_total") == {
        (("endpoint", "events"),): 11.0}


def test_set_quantiles_replaces_every_series() -> None:
    m = CollectorMetrics()
    m.set_quantiles([QuantileRow("h", "a", "b", q, 1e6 * q, 2e6 * q) for q in (0.5, 0.9, 0.99)]
                    + [QuantileRow("h", "b", "a", 0.5, 1e3, 2e3)])
    got = values(m, "clocksync_hop_latency_seconds")
    assert len(got) == 8
    first = dict(hop="h", src_node="a", dst_node="b", quantile="0.99")
    assert got[tuple(sorted({**first, "side": "low"}.items()))] == pytest.approx(0.99e-3)
    assert got[tuple(sorted({**first, "side": "high"}.items()))] == pytest.approx(1.98e-3)
    m.set_quantiles([QuantileRow("h", "b", "a", 0.9, 5e3, 6e3)])
    assert values(m, "clocksync_hop_latency_seconds") == {
        tuple(sorted(dict(hop="h", src_node="b", dst_node="a", quantile="0.9",
                          side=side).items())): value
        for side, value in (("low", 5e-6), ("high", 6e-6))}
    m.set_quantiles([])
    assert values(m, "clocksync_hop_latency_seconds") == {}


def test_table_status_is_one_for_the_current_status_only_and_replaced() -> None:
    m = CollectorMetrics()
    m.set_tables([("n1", 1.0, "synchronised"), ("n2", 99.0, "free_running")])
    status = values(m, "clocksync_collector_table_status")
    assert len(status) == 2 * len(Status)
    on = {dict(k)["node"]: dict(k)["status"] for k, v in status.items() if v == 1.0}
    assert on == {"n1": "synchronised", "n2": "free_running"}
    m.set_tables([("n2", 3.0, "something_new")])  # an unforeseen status still shows
    status = values(m, "clocksync_collector_table_status")
    assert {dict(k)["node"] for k in status} == {"n2"}
    assert [dict(k)["status"] for k, v in status.items() if v == 1.0] == ["something_new"]
    assert values(m, "clocksync_collector_table_age_seconds") == {(("node", "n2"),): 3.0}


def test_alerts_active_are_replaced_and_fired_ones_counted() -> None:
    m = CollectorMetrics()
    a = AlertKey("latency_p99", "ingress", "n1", "n2")
    b = AlertKey("clock_status", src_node="n3")
    m.set_alerts([a, b, a])
    m.count_alert("latency_p99")
    m.count_alert("clock_status")
    active = values(m, "clocksync_collector_alert_active")
    assert sorted(dict(k)["kind"] for k in active) == ["clock_status", "latency_p99"]
    assert set(active.values()) == {1.0}
    m.set_alerts([b])
    m.count_alert("clock_status")
    assert [dict(k)["kind"] for k in values(m, "clocksync_collector_alert_active")] == [
        "clock_status"]
    assert values(m, "clocksync_collector_alerts_fired_total") == {
        (("kind", "clock_status"),): 2.0, (("kind", "latency_p99"),): 1.0}


def test_a_given_registry_is_used_and_names_cannot_be_registered_twice() -> None:
    registry = CollectorRegistry()
    m = CollectorMetrics(registry)
    assert m.registry is registry
    m.count_evicted(1)
    assert registry.get_sample_value("clocksync_collector_evicted_requests_total") == 1.0
    with pytest.raises(ValueError, match="Duplicated"):
        CollectorMetrics(registry)


def test_concurrent_writers_and_scrapers_see_whole_batches() -> None:
    m = CollectorMetrics()
    writers, batches, size = 4, 50, 200
    low, high = np.full(size, 1e6), np.full(size, 2e6)
    errors: list[BaseException] = []
    done = threading.Event()
    scrapes = 0

    def write(w: int) -> None:
        try:
            for _ in range(batches):
                m.observe_hops("h", f"n{w % 2}", "dst", low, high, order_unknown=1)
                m.count_received("otlp_http", size)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    def scrape() -> None:
        nonlocal scrapes
        try:
            while not done.is_set():
                ss = samples(m)
                counts = {s.labels["src_node"]: s.value for s in ss
                          if s.name == "clocksync_hop_requests_total"}
                hist = {s.labels["src_node"]: s.value for s in ss
                        if s.name == "clocksync_hop_latency_high_seconds_count"}
                assert counts == hist  # the families of one scrape agree
                assert all(v % size == 0 for v in counts.values())  # no torn batch
                scrapes += 1
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    reader = threading.Thread(target=scrape)
    reader.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    reader.join()
    assert errors == []
    assert scrapes > 0
    total = sum(values(m, "clocksync_hop_requests_total").values())
    assert total == writers * batches * size
    assert sum(values(m, "clocksync_hop_order_unknown_requests_total").values()) == \
        writers * batches
    assert values(m, "clocksync_collector_received_items_total") == {
        (("endpoint", "otlp_http"),): writers * batches * size}


def _by_family(text: bytes) -> dict[str, str]:
    """An exposition's lines by family name (the families' order aside)."""
    out: dict[str, str] = {}
    name = ""
    for line in text.decode().splitlines(keepends=True):
        if line.startswith("# HELP "):
            name = line.split()[2]
        out[name] = out.get(name, "") + line
    return out


def test_exposition_writes_what_prometheus_client_writes_for_the_registry() -> None:
    from prometheus_client.exposition import generate_latest

    m = CollectorMetrics()
    rng = np.random.default_rng(5)
    names = [("a->b", "n1", "n2"), ('we"ird\\hop\nname', "n-é", "n1"), ("a->b", "n1", "n1")]
    for k, (hop, src, dst) in enumerate(names):
        low = rng.lognormal(-7, 2, 2000 * (k + 1)) - 1e-5
        m.observe_hops(hop, src, dst, low * 1e9, (low + rng.random(len(low)) * 1e-3) * 1e9)
    big = np.full(20_000_000, 2e6)  # counts past 1e7 print in Go's exponent form
    m.observe_hops("big", "n1", "n2", big, big)
    m.count_received("/v1/traces", 7)

    fast, slow = _by_family(m.exposition()[0]), _by_family(generate_latest(m.registry))
    assert fast == slow
    assert "clocksync_hop_latency_low_seconds" in fast and 'le="+Inf"' in fast[
        "clocksync_hop_latency_high_seconds"]
    assert 'dst_node="n2",hop="big",le="+Inf",src_node="n1"} 2e+07' in fast[
        "clocksync_hop_latency_low_seconds"]


def test_a_scrape_after_new_hops_shows_them_and_the_unchanged_series_as_before() -> None:
    """A scrape keeps each histogram series' text for the next one while its count stays
    the same: the next scrape must still write exactly what prometheus-client writes."""
    from prometheus_client.exposition import generate_latest

    m = CollectorMetrics()
    rng = np.random.default_rng(6)
    for hop in ("a->b", "b->c", "c->d"):
        low = rng.lognormal(13, 1, 500)
        m.observe_hops(hop, "n1", "n2", low, low * 1.5)
    first = m.exposition()[0]
    assert _by_family(first) == _by_family(generate_latest(m.registry))
    low = np.full(3, 4e6)
    m.observe_hops("b->c", "n1", "n2", low, low)  # one series changes, two stay
    m.observe_hops("d->e", "n2", "n1", low, low)  # and one is new
    second = m.exposition()[0]
    assert _by_family(second) == _by_family(generate_latest(m.registry)) != _by_family(first)
    assert 'clocksync_hop_latency_low_seconds_count{dst_node="n2",hop="b->c",src_node="n1"} ' \
        '503.0' in second.decode()
    assert m.exposition()[0] == second
