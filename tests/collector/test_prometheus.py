"""The Prometheus rules and the Grafana dashboard of the collector's metrics, against a real
Prometheus (the Debian package ``prometheus``: ``prometheus`` and ``promtool``).

A loopback HTTP endpoint serves a :class:`CollectorMetrics` that a feeder thread fills with
known batches; our own Prometheus instance (never the system service) scrapes it every second
with the rules loaded. Through its HTTP API: the target is up, every rule is healthy, the
recorded quantile bounds bracket the true quantiles of the data, the alerts that the data
should raise are raised (and only for the node pairs that should raise them), and every
PromQL expression of the dashboard evaluates to a non-empty result.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from clocksync.collector import AlertKey, CollectorMetrics, QuantileRow
from tests.agent.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "contrib" / "prometheus" / "clocksync-collector.rules.yml"
DASHBOARD = ROOT / "contrib" / "grafana" / "clocksync-collector.json"
PROMETHEUS, PROMTOOL = shutil.which("prometheus"), shutil.which("promtool")
needs_prometheus = pytest.mark.skipif(
    PROMETHEUS is None or PROMTOOL is None,
    reason="needs the Debian package prometheus (prometheus, promtool): tests/install.sh")
JOB = "clocksync-collector"
#: what the dashboard's variables stand for when its queries are run here
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h",
                     "$job": ".*", "$hop": ".*", "$src_node": ".*", "$dst_node": ".*"}
RECORDED = "hop_pair:clocksync_hop_latency_seconds:histogram_quantile_rate5m"
QUANTILES = (0.5, 0.9, 0.99)


# -- static checks (no server) -----------------------------------------------------------


def rule_groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = yaml.safe_load(RULES.read_text())["groups"]
    return groups


def dashboard() -> dict[str, Any]:
    board: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return board


def dashboard_exprs() -> list[str]:
    return [t["expr"] for p in dashboard()["panels"] for t in p.get("targets", ())]


def substitute(expr: str) -> str:
    for name, value in sorted(GRAFANA_VARIABLES.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace(name, value).replace("${" + name[1:] + "}", value)
    assert "$" not in expr, expr
    return expr


def exposed_names() -> set[str]:
    """Every sample name a filled CollectorMetrics exposes."""
    from prometheus_client.parser import text_string_to_metric_families

    m = CollectorMetrics()
    Feeder(m).feed_once()
    return {s.name for f in text_string_to_metric_families(m.exposition()[0].decode())
            for s in f.samples}


def test_rules_and_dashboard_name_only_metrics_that_exist() -> None:
    """A renamed metric cannot leave a rule or a panel querying nothing."""
    recorded = {r["record"] for g in rule_groups() for r in g["rules"] if "record" in r}
    texts = [r["expr"] for g in rule_groups() for r in g["rules"]] + dashboard_exprs() + [
        v["definition"] for v in dashboard()["templating"]["list"] if "definition" in v]
    names = {n for t in texts for n in re.findall(r"\b(?:\w+:)?clocksync_\w+(?::\w+)?", t)}
    assert names  # the pattern finds names at all
    assert sorted(names - exposed_names() - recorded) == []


def test_alerts_have_for_severity_and_annotations() -> None:
    alerts = [r for g in rule_groups() for r in g["rules"] if "alert" in r]
    assert len(alerts) >= 10
    for rule in alerts:
        assert rule["alert"].startswith("Clocksync"), rule
        assert "for" in rule and rule["labels"]["severity"] in ("info", "warning", "critical")
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_dashboard_is_grafana_json_on_a_prometheus_datasource_variable() -> None:
    board = dashboard()
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert {"job", "hop", "src_node", "dst_node"} <= set(variables)
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for p in board["panels"]:
        if p["type"] != "row":
            assert p["datasource"]["uid"] == "${datasource}" and p["targets"], p["title"]
    assert isinstance(board["schemaVersion"], int) and board["uid"]


@needs_prometheus
def test_promtool_checks_the_rules() -> None:
    assert PROMTOOL is not None
    out = subprocess.run([PROMTOOL, "check", "rules", str(RULES)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    count = sum(len(g["rules"]) for g in rule_groups())
    assert f"SUCCESS: {count} rules found" in out.stdout


# -- the live test -------------------------------------------------------------------------


@dataclass(frozen=True)
class Pair:
    """One hop and node pair's batch: every feed observes exactly these requests again, so
    whatever whole number of batches a rate() window holds, its quantiles are this batch's
    (the ⌈q·k·n⌉-th smallest of k copies is the ⌈q·n⌉-th smallest of one)."""

    key: tuple[str, str, str]
    true_ns: np.ndarray[Any, np.dtype[np.float64]]
    low_ns: np.ndarray[Any, np.dtype[np.float64]]
    high_ns: np.ndarray[Any, np.dtype[np.float64]]
    inconsistent: int

    def quantile(self, which: str, q: float) -> float:
        """The ⌈q·n⌉-th smallest of ``which`` (true, low, high), in seconds."""
        values = np.sort(getattr(self, f"{which}_ns"))
        return float(values[math.ceil(q * len(values)) - 1]) / 1e9


def make_pairs() -> tuple[Pair, Pair]:
    rng = np.random.default_rng(12)
    n = 2000
    # fast: ~2 ms, the bounds 20 % (+50 µs) around it, so short ones' lows are <= 0
    fast = rng.lognormal(np.log(2e6), 0.8, n)
    # slow: 0.6-2 s, P99 lower bound ~1.6 s: above the 0.5 s alert threshold
    slow = rng.uniform(0.6e9, 2e9, n)
    return (Pair(("ingress", "n1", "n2"), fast, 0.8 * fast - 5e5, 1.2 * fast + 5e5, 0),
            Pair(("ingress", "n2", "n1"), slow, 0.8 * slow, 1.2 * slow, 1))


class Feeder:
    """Fills a CollectorMetrics as an engine would, one batch per pair and feed."""

    def __init__(self, metrics: CollectorMetrics) -> None:
        self.metrics = metrics
        self.pairs = make_pairs()

    def feed_once(self) -> None:
        m = self.metrics
        for p in self.pairs:
            m.observe_hops(*p.key, p.low_ns, p.high_ns,
                           order_unknown=int((p.low_ns <= 0).sum()),
                           inconsistent=p.inconsistent)
        m.set_quantiles([QuantileRow(*p.key, q, p.quantile("low", q) * 1e9,
                                     p.quantile("high", q) * 1e9)
                         for p in self.pairs for q in QUANTILES])
        m.count_received("otlp_http", 4000)
        m.count_rejected_items("otlp_http", 1)
        m.count_rejected_payload("otlp_http", "too_large")
        m.count_incomplete("bifrost_append", 2)
        m.count_evicted(1)
        m.count_late(100)  # 2.5 % of the requests: over the 1 % of the alert
        m.count_uncorrectable("n3", 1)
        m.set_pending(100, 50_000, 1_000_000)
        m.set_watermark(time.time_ns() - 5_000_000_000)
        m.set_tables([("n1", 2.0, "synchronised"), ("n2", 3.0, "synchronised"),
                      ("n3", 900.0, "free_running")])
        m.set_alerts([AlertKey("latency_p99", "ingress", "n2", "n1")])
        m.count_alert("latency_p99")


@pytest.fixture
def endpoint() -> Iterator[tuple[str, Feeder]]:
    """``host:port`` of a /metrics endpoint, and the feeder (running) behind it."""
    feeder = Feeder(CollectorMetrics())

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body, content_type = feeder.metrics.exposition()
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    stop = threading.Event()

    def feed() -> None:
        while not stop.wait(0.1):
            feeder.feed_once()

    feeding = threading.Thread(target=feed, daemon=True)
    feeder.feed_once()
    feeding.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", feeder
    finally:
        stop.set()
        feeding.join()
        server.shutdown()
        server.server_close()


class Prometheus:
    """Our own Prometheus process, its API on a loopback port."""

    def __init__(self, tmp: Path, target: str) -> None:
        assert PROMETHEUS is not None
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s",
                       "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": [target]}]}],
        }
        (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.port = free_port()
        self.log = tmp / "prometheus.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [PROMETHEUS, "--config.file", str(tmp / "prometheus.yml"),
                 "--storage.tsdb.path", str(tmp / "data"),
                 "--web.listen-address", f"127.0.0.1:{self.port}"],
                stdout=log, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def get(self, path: str, **params: str) -> Any:
        url = f"http://127.0.0.1:{self.port}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=10) as reply:
            body = json.loads(reply.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.get("/api/v1/query", query=expr)
        assert data["resultType"] == "vector", (expr, data)
        result: list[dict[str, Any]] = data["result"]
        return result

    def wait_for(self, what: str, check: Callable[[], Any], timeout_s: float = 60.0) -> Any:
        """Poll ``check`` until it returns something truthy (errors count as not yet)."""
        deadline = time.monotonic() + timeout_s
        last: Any = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"prometheus exited {self.process.returncode}:\n"
                            f"{self.log.read_text()[-3000:]}")
            try:
                last = check()
                if last:
                    return last
            except (OSError, AssertionError, KeyError) as e:
                last = e
            time.sleep(0.2)
        pytest.fail(f"{what}: not within {timeout_s} s (last: {last!r})\n"
                    f"{self.log.read_text()[-3000:]}")


@pytest.fixture
def prometheus(tmp_path: Path, endpoint: tuple[str, Feeder]) -> Iterator[Prometheus]:
    prom = Prometheus(tmp_path, endpoint[0])
    try:
        prom.wait_for("prometheus ready", lambda: prom.get("/api/v1/status/buildinfo"))
        yield prom
    finally:
        prom.stop()


def by_labels(result: list[dict[str, Any]], *labels: str) -> dict[tuple[str, ...], float]:
    return {tuple(r["metric"].get(k, "") for k in labels): float(r["value"][1]) for r in result}


@pytest.mark.slow
@needs_prometheus
def test_real_prometheus_scrapes_records_alerts_and_runs_the_dashboard(
        prometheus: Prometheus, endpoint: tuple[str, Feeder]) -> None:
    started = time.monotonic()
    prom, pairs = prometheus, endpoint[1].pairs

    def target_up() -> bool:
        targets = prom.get("/api/v1/targets")["activeTargets"]
        return len(targets) == 1 and targets[0]["health"] == "up" \
            and targets[0]["labels"]["job"] == JOB

    prom.wait_for("the collector's target up", target_up)

    rules = [r for g in prom.get("/api/v1/rules")["groups"] for r in g["rules"]]
    assert len(rules) == sum(len(g["rules"]) for g in rule_groups())

    def all_healthy() -> bool:
        rules = [r for g in prom.get("/api/v1/rules")["groups"] for r in g["rules"]]
        bad = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
        assert bad == [], bad
        return all(r["health"] == "ok" for r in rules)

    prom.wait_for("every rule evaluated and healthy", all_healthy)

    # -- the recorded quantile bounds bracket the data's true quantiles ----------------------
    def recorded() -> dict[tuple[str, ...], float] | None:
        got = by_labels(prom.query(RECORDED), "hop", "src_node", "dst_node", "quantile",
                        "side")
        strict = by_labels(prom.query(RECORDED + "_strict"), "hop", "src_node", "dst_node",
                           "quantile", "side")
        want = len(pairs) * len(QUANTILES) * 2
        if len(got) == len(strict) == want and all(
                math.isfinite(v) for v in [*got.values(), *strict.values()]):
            return {**got, **{(*k, "strict"): v for k, v in strict.items()}}
        return None

    values = prom.wait_for("the recorded quantiles", recorded)
    for p in pairs:
        for q in QUANTILES:
            low, high = values[(*p.key, f"{q:g}", "low")], values[(*p.key, f"{q:g}", "high")]
            true_q, low_q, high_q = (p.quantile(w, q) for w in ("true", "low", "high"))
            where = f"{p.key} P{q * 100:g}"
            assert low <= true_q <= high, (where, low, true_q, high)
            # each side is within one bucket (< 5 %) of the quantile of its own bounds ...
            assert low_q / 1.05 <= low <= low_q * 1.05, (where, low, low_q)
            assert high_q / 1.05 <= high <= high_q * 1.05, (where, high, high_q)
            # ... and the strict rule gives up that bucket to be a bound without caveat
            strict_low = values[(*p.key, f"{q:g}", "low", "strict")]
            strict_high = values[(*p.key, f"{q:g}", "high", "strict")]
            assert 0 <= strict_low <= low_q and strict_low <= low, (where, strict_low, low_q)
            assert strict_high >= high_q and strict_high >= high, (where, strict_high, high_q)

    def merged() -> dict[tuple[str, ...], float] | None:
        got = by_labels(prom.query(RECORDED.replace("hop_pair:", "hop:")), "hop", "quantile",
                        "side")
        want = {("ingress", f"{q:g}", s) for q in QUANTILES for s in ("low", "high")}
        return got if set(got) == want and all(map(math.isfinite, got.values())) else None

    per_hop = prom.wait_for("the quantiles of every node pair merged", merged)
    for q in QUANTILES:
        assert per_hop[("ingress", f"{q:g}", "low")] <= per_hop[("ingress", f"{q:g}", "high")]

    # -- alerts: raised where the data says so, and only there ------------------------------
    slow = pairs[1].key  # the fast pair (pairs[0]) must raise none of them
    expected = {
        ("ClocksyncHopP99LowerBoundHigh", slow), ("ClocksyncHopInconsistent", slow),
        ("ClocksyncCollectorAlert", ("ingress", "n2", "n1")),
        ("ClocksyncTableStale", "n3"), ("ClocksyncTableNotSynchronised", "n3"),
        ("ClocksyncCollectorUncorrectable", "n3"),
        ("ClocksyncCollectorRejectingPayloads", "otlp_http"),
        ("ClocksyncCollectorRejectingItems", "otlp_http"),
        ("ClocksyncCollectorEvicting", ""), ("ClocksyncCollectorLate", ""),
    }

    def about(labels: dict[str, str]) -> tuple[str, str, str] | str:
        if "hop" in labels:
            return labels["hop"], labels["src_node"], labels["dst_node"]
        return labels.get("node", labels.get("endpoint", ""))

    def raised() -> set[tuple[str, Any]]:
        alerts = prom.get("/api/v1/alerts")["alerts"]
        got = {(a["labels"]["alertname"], about(a["labels"])) for a in alerts
               if a["state"] in ("pending", "firing")}
        assert expected <= got, f"missing {sorted(expected - got, key=str)}"
        return got

    got = prom.wait_for("the expected alerts pending", raised)
    assert got == expected  # not the fast pair's P99 or consistency, not Down, NearBudget...

    # -- every dashboard query evaluates, with data; so do its variables --------------------
    def dashboard_runs() -> list[str]:
        empty = [e for e in dashboard_exprs() if not prom.query(substitute(e))]
        assert empty == [], empty
        return dashboard_exprs()

    assert len(prom.wait_for("every dashboard query with data", dashboard_runs)) >= 20
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] != "query":
            continue
        found = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["definition"])
        assert found, variable["definition"]
        selector, label = substitute(found.group(1)), found.group(2)
        assert prom.get(f"/api/v1/label/{label}/values", **{"match[]": selector}), variable
    print(f"real Prometheus test: {time.monotonic() - started:.1f} s after startup")
