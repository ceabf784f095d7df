"""Throughput, delay and memory of the live collector (``clocksync collector run``) on one
core, against the targets of issue 12 §7 and against the batch pipeline on the same spans.

    python -m lab.bench.collector_throughput [--duration S] [--quick] [--conns N]
        [--event-conns N] [--repeat N]
        [--skip spans,events,rss,batch]

The collector runs as its own process (the CLI), pinned to one CPU; this process is the
load generator, pinned to another. Request bodies are made and gzip-compressed before any
timing (Restate-shaped OTLP protobuf on 3 simulated nodes, batches of 512 spans; JSONL stage
events of the default chain), as copies of one simulated template whose ids are rewritten
and whose stamps are shifted per copy, so every span and request is distinct. Several
keep-alive connections (``http.client``) post them.

Phases, each with a fresh collector (``--window 2s --lateness 1s``):

1. *throughput* (spans, then events): post as fast as the collector answers for
   ``--duration`` s. Accepted items/s is the collector's own received counter (``/metrics``)
   over the posting time; the engine keeps up when its watermark reaches the last posted
   stamp soon after the posting stops (``drain``), so items / (posting + drain) is the rate
   the whole collector sustains. Collector CPU is its utime+stime (``/proc``).
2. *delay*: post at the target rate, replaying the simulated time in real time; every
   ``MARKER_S`` a *marker* request (a one-hop request on a node ``mk`` of its own, with the
   current simulated time) is posted, and ``/metrics`` is scraped every ``SCRAPE_S``: a
   marker's delay is from its POST's answer to the scrape where
   ``clocksync_hop_requests_total{src_node="mk"}`` first counts it (target: window + 2 s),
   over the markers posted while the data flows on for a step and the lateness after them.
3. *RSS*: 1 M stage events of 1 M requests that lack every other stage (so all stay pending;
   ``--request-timeout 1h``, a budget that evicts nothing): the collector's ``VmRSS`` once its
   ``pending`` gauge reads 1 M (target: 500 MB).
4. *batch*: ``clocksync latency SPANS --format otlp --preset restate`` on the first
   ``--batch-spans`` spans of phase 1 (one size-prefixed protobuf file), in a process on the
   collector's CPU: spans/s from its CPU time, and the live collector's sustained spans/s as
   a ratio to it.

With ``--repeat N`` phases 1 and 2 run N times (spans, events, spans, ...; bodies made
once), and the report gives per measure the median, the range and the runs that meet its
target, and the runs that meet every target of phases 1 and 2: the same code's figures
move by a third from run to run on a shared machine.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import os
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from clocksync import DirectoryStore, SimClock, fit_table
from clocksync.latency import simulate_requests
from clocksync.testing import LinkModel, otlp_protobuf, simulate_restate, simulate_samples
from lab.bench._baseline import REPO

T0 = 1_764_129_600_000_000_000
#: simulated time of the first data (ns); tables cover [T0, T0 + _TABLE_S]
START = T0 + 20 * 10**9
_TABLE_S = 600.0
#: issue 12 §7
TARGET_SPANS = 100_000.0
TARGET_EVENTS = 500_000.0
TARGET_RSS_MB = 500.0
TARGET_PENDING = 1_000_000
WINDOW_S, LATENESS_S = 2.0, 1.0
#: how often the bench reads /metrics while it waits for data to show (s): the resolution of
#: the delay and drain times (a scrape is 3-6 ms of the collector's core)
SCRAPE_S = 0.25
#: how often a delay marker is posted (s): the marker node's newest stamp holds the
#: watermark back by up to this much (a node that sends all the time does not)
MARKER_S = 0.1
CLI = [sys.executable, "-c", "from clocksync.cli import main; main()"]
_AR4, _AR8 = np.arange(4), np.arange(8)


def _clocks() -> dict[str, SimClock]:
    """Three nodes (ms offsets: a body's stamps are near its simulated time) and ``mk``,
    the node of the delay markers."""
    return {"n1": SimClock(t0_ns=T0, offset0_ns=0.0, skew_ppm=5.0, seed=1),
            "n2": SimClock(t0_ns=T0, offset0_ns=3e6, skew_ppm=35.0, seed=2),
            "n3": SimClock(t0_ns=T0, offset0_ns=-2e6, skew_ppm=-25.0, seed=3),
            "mk": SimClock(t0_ns=T0, offset0_ns=1e6, skew_ppm=10.0, seed=4)}


# --- load: pre-encoded bodies --------------------------------------------------------------


@dataclass
class Body:
    """One request body, gzip-compressed, with its item count and simulated time (ns, the
    newest stamp in it)."""

    data: bytes
    items: int
    sim_ns: int


@dataclass
class _SpanTemplate:
    """One protobuf body of the template and where each span's rewritable fields are."""

    body: bytes
    trace: np.ndarray  # offsets of the 16-byte trace ids
    ids: np.ndarray  # offsets of the 8-byte span and parent span ids
    stamps: np.ndarray  # offsets of the fixed64 start and end stamps
    inv: np.ndarray  # offsets of the last 4 characters of the invocation ids
    sim_ns: int
    items: int
    rate: float  # its node's clock: local ns per reference ns (1 + skew)


def _restate_templates(n_invocations: int, rate: float, batch: int,
                       rng: np.random.Generator) -> tuple[list[_SpanTemplate], int]:
    """Protobuf bodies of ``n_invocations`` simulated Restate invocations on n1..n3 (spans
    per node in stamp order, ``batch`` a body, bodies in time order) spread so that they
    come at ``rate`` spans/s of simulated time; and that time span (ns)."""
    clocks = {k: v for k, v in _clocks().items() if k != "mk"}
    duration_s = n_invocations * 5.5 / rate  # ~5.5 spans per invocation
    docs, _ = simulate_restate(clocks, n_invocations, START, duration_s, rng)
    by_node: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
    for doc in docs:
        rs = doc["resourceSpans"][0]
        node = rs["resource"]["attributes"][0]["value"]["stringValue"]
        by_node.setdefault(node, (rs["resource"], []))[1].extend(rs["scopeSpans"][0]["spans"])
    out = []
    for node, (resource, spans) in by_node.items():
        spans.sort(key=lambda s: int(s["startTimeUnixNano"]))
        rate = _local_rate(clocks[node.rsplit("/", 1)[-1]])
        for at in range(0, len(spans), batch):
            part = spans[at:at + batch]
            body = otlp_protobuf({"resourceSpans": [{"resource": resource, "scopeSpans": [
                {"scope": {"name": "services"}, "spans": part}]}]})
            out.append(_locate(body, part, rate))
    out.sort(key=lambda t: t.sim_ns)
    return out, round(duration_s * 1e9)


def _local_rate(clock: SimClock) -> float:
    """Local ns per reference ns of ``clock`` (a constant skew: the bench's clocks do not
    wander), so that a copy of the load shifted by ``s`` reference ns moves each node's
    stamps by ``s · rate`` and stays what that node's clock would stamp."""
    if clock.wander_ppb_per_s or clock.steps:
        raise ValueError("the bench shifts stamps by a constant rate: no wander, no steps")
    return 1.0 + clock.skew_ppm * 1e-6


def _locate(body: bytes, spans: list[dict[str, Any]], rate: float) -> _SpanTemplate:
    """Where each span's ids, stamps and invocation id lie in its serialized body (fields
    are serialized in field-number order, so a forward search finds them)."""
    trace, ids, stamps, inv = [], [], [], []
    pos = 0
    for s in spans:
        t = body.index(bytes.fromhex(s["traceId"]), pos)
        trace.append(t)
        at = body.index(bytes.fromhex(s["spanId"]), t + 16)
        ids.append(at)
        if s["parentSpanId"]:
            at = body.index(bytes.fromhex(s["parentSpanId"]), at + 8)
            ids.append(at)
        start = int(s["startTimeUnixNano"])
        at = body.index(struct.pack("<Q", start), at + 8)
        stamps.append(at)
        at = body.index(struct.pack("<Q", int(s["endTimeUnixNano"])), at + 8)
        stamps.append(at)
        value = next(a["value"]["stringValue"] for a in s["attributes"]
                     if a["key"] == "restate.invocation.id").encode()
        at = body.index(value, at + 8)
        inv.append(at + len(value) - 4)
        pos = at + len(value)
    newest = max(int(s["endTimeUnixNano"]) for s in spans)
    return _SpanTemplate(body, np.array(trace), np.array(ids), np.array(stamps),
                         np.array(inv), newest, len(spans), rate)


def _patched(t: _SpanTemplate, copy: int, shift_ns: int) -> bytes:
    """Copy ``copy`` of a template body: ids XOR-ed with the copy number (parent links
    stay), invocation ids ending in it (hex), stamps shifted by ``shift_ns`` of reference
    time (its node's local ns: ``shift_ns · rate``)."""
    a = np.frombuffer(t.body, np.uint8).copy()
    key = np.frombuffer(struct.pack("<I", copy + 1), np.uint8)
    a[t.trace[:, None] + 12 + _AR4] ^= key
    a[t.ids[:, None] + 4 + _AR4] ^= key
    at = t.stamps[:, None] + _AR8
    stamps = a[at].view("<u8") + np.uint64(round(shift_ns * t.rate))
    a[at] = stamps.view(np.uint8).reshape(-1, 8)
    a[t.inv[:, None] + _AR4] = np.frombuffer(f"{copy:04x}".encode(), np.uint8)
    return a.tobytes()


def span_bodies(templates: list[_SpanTemplate], period_ns: int, n_items: int,
                offset_ns: int = 0, first_copy: int = 0) -> list[Body]:
    """At least ``n_items`` spans: copies ``first_copy``... of the template, one after
    another in time."""
    out: list[Body] = []
    total, copy = 0, first_copy
    while total < n_items:
        shift = offset_ns + (copy - first_copy) * period_ns
        for t in templates:
            out.append(Body(gzip.compress(_patched(t, copy, shift), 1), t.items,
                            t.sim_ns + shift))
            total += t.items
        copy += 1
    return out


def event_bodies(n_items: int, rate: float, batch: int, rng: np.random.Generator,
                 offset_ns: int = 0, tag: str = "") -> list[Body]:
    """At least ``n_items`` stage events (default chain) as JSONL bodies of ``batch`` lines,
    in stamp order, ``rate`` events per s of simulated time."""
    clocks = {k: v for k, v in _clocks().items() if k != "mk"}
    routes = [(a, b) for a in clocks for b in clocks if a != b]
    n_tpl = min(200_000, max(1, n_items // 4))
    period_ns = round(n_tpl * 4 / rate * 1e9)
    table, _ = simulate_requests(clocks, routes, n_tpl, START + offset_ns, period_ns / 1e9, rng)
    table = table.sort_by("ts_ns")
    rates = {k: _local_rate(c) for k, c in clocks.items()}
    rate = np.array([rates[n] for n in table.column("node").to_pylist()])
    out: list[Body] = []
    copy, total = 0, 0
    while total < n_items:  # copy k: k periods of reference time later, on each node's clock
        ts = pc.add(table.column("ts_ns"), pa.array(np.round(copy * period_ns * rate)
                                                    .astype(np.int64)))
        rid = pc.binary_join_element_wise(f"{tag}c{copy}-", table.column("request_id"), "")
        lines = pc.binary_join_element_wise(
            '{"request_id":"', rid, '","stage":"', table.column("stage"), '","node":"',
            table.column("node"), '","ts_ns":', pc.cast(ts, pa.string()), "}", "")
        text = lines.to_pylist()
        stamps = ts.to_numpy()
        for at in range(0, len(text), batch):
            part = text[at:at + batch]
            out.append(Body(gzip.compress(("\n".join(part) + "\n").encode(), 1), len(part),
                            int(stamps[at:at + batch].max())))
        total += len(text)
        copy += 1
    return out


def span_marker(i: int, sim_ns: int) -> bytes:
    """A one-hop Restate trace on node ``mk`` (ingress -> invocation-start) at ``sim_ns``."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    local = int(_clocks()["mk"].local_ns(sim_ns))
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    kv = rs.resource.attributes.add()
    kv.key, kv.value.string_value = "service.instance.id", "sim/mk"
    ss = rs.scope_spans.add()
    trace = struct.pack(">QQ", 0xFEED, i)
    for n, (name, span_id, parent, at) in enumerate((
            ("ingress Greeter/greet", 1, 0, local),
            ("invocation-start Greeter/greet", 2, 1, local + 100_000))):
        sp = ss.spans.add()
        sp.trace_id = trace
        sp.span_id = struct.pack(">Q", (i << 8) | span_id)
        if parent:
            sp.parent_span_id = struct.pack(">Q", (i << 8) | parent)
        sp.name, sp.kind = name, 1
        sp.start_time_unix_nano, sp.end_time_unix_nano = at, at + 1000
        a = sp.attributes.add()
        a.key, a.value.string_value = "restate.invocation.id", f"inv_marker{i}_{n}"
    return gzip.compress(request.SerializeToString(), 1)


def event_marker(i: int, sim_ns: int) -> bytes:
    """One request of the default chain, every stage on node ``mk``, at ``sim_ns``."""
    from clocksync.latency import DEFAULT_STAGES

    local = int(_clocks()["mk"].local_ns(sim_ns))
    lines = [f'{{"request_id":"marker-{i}","stage":"{s}","node":"mk","ts_ns":{local + k * 50_000}}}'
             for k, s in enumerate(DEFAULT_STAGES)]
    return gzip.compress(("\n".join(lines) + "\n").encode(), 1)


# --- the collector process -----------------------------------------------------------------


def _log(phase: str) -> Path:
    """The collector's stderr of a phase (kept after the run)."""
    return Path(tempfile.gettempdir()) / f"collector_throughput_{phase}.log"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Collector:
    """``clocksync collector run`` in its own process, pinned to ``cpu``."""

    def __init__(self, store: Path, cpu: int, extra: Sequence[str], log: Path) -> None:
        self.port = _free_port()
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self._log = log.open("w")
        self.proc = subprocess.Popen(
            [*CLI, "collector", "run", "--listen", f"127.0.0.1:{self.port}", "--store",
             str(store), "--window", f"{WINDOW_S:g}s", "--lateness", f"{LATENESS_S:g}s",
             "--log-level", "warning", *extra],
            cwd=store.parent, env=env, stderr=self._log, stdout=self._log,
            preexec_fn=lambda: os.sched_setaffinity(0, {cpu}))
        deadline = time.monotonic() + 60
        while True:
            try:
                self.get("/healthz")
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"the collector did not start (see {log})") from None
                time.sleep(0.1)

    def get(self, path: str) -> bytes:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("GET", path)
            return conn.getresponse().read()
        finally:
            conn.close()

    def samples(self, prefix: str, contains: str = "") -> tuple[float, float]:
        """When ``/metrics`` answered (``perf_counter``), and the sum of the samples whose
        line starts with ``prefix`` (a name and what follows it) and holds ``contains``. Only
        those lines are read: parsing all ~19,000 lines takes this process long enough, with
        its posting threads busy, to show up in the delays and drain times it measures."""
        body = self.get("/metrics")
        at = time.perf_counter()
        total = 0.0
        for line in body.decode().splitlines():
            if line.startswith(prefix) and contains in line:
                total += float(line.rsplit(" ", 1)[1])
        return at, total

    def metrics(self) -> dict[str, float]:
        """``name{labels}`` -> value of every sample, plus sums by metric name."""
        from prometheus_client.parser import text_string_to_metric_families

        out: dict[str, float] = {}
        for family in text_string_to_metric_families(self.get("/metrics").decode()):
            for s in family.samples:
                labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
                out[f"{s.name}{{{labels}}}"] = s.value
                out[s.name] = out.get(s.name, 0.0) + s.value
        return out

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def status_kb(self, key: str) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        return 0

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


# --- posting -------------------------------------------------------------------------------


@dataclass
class Sent:
    """What the posting threads did."""

    items: int = 0
    bodies: int = 0
    status: dict[int, int] = field(default_factory=dict)
    newest_ns: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def post_all(port: int, path: str, ctype: str, bodies: list[Body], conns: int,
             duration_s: float, paced: bool = False) -> tuple[Sent, float]:
    """Post ``bodies`` in order over ``conns`` keep-alive connections, for at most
    ``duration_s``; ``paced``: body ``i`` not before its simulated time (relative to the
    first body's) has passed. Returns what was sent and the posting time (s)."""
    sent = Sent()
    nxt = iter(range(len(bodies)))
    take = threading.Lock()
    t0 = time.perf_counter()
    sim0 = bodies[0].sim_ns if bodies else 0
    headers = {"Content-Type": ctype, "Content-Encoding": "gzip"}

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while True:
            with take:
                i = next(nxt, None)
            if i is None:
                break
            body = bodies[i]
            if paced:
                wait = (body.sim_ns - sim0) / 1e9 - (time.perf_counter() - t0)
                if wait > 0:
                    time.sleep(wait)
            if time.perf_counter() - t0 > duration_s:
                break
            conn.request("POST", path, body.data, headers)
            response = conn.getresponse()
            response.read()
            with sent.lock:
                sent.status[response.status] = sent.status.get(response.status, 0) + 1
                if response.status == 200:
                    sent.items += body.items
                    sent.bodies += 1
                    sent.newest_ns = max(sent.newest_ns, body.sim_ns)
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(conns)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return sent, time.perf_counter() - t0


@dataclass
class Throughput:
    what: str
    accepted: int
    post_s: float
    drain_s: float
    cpu_s: float
    status: dict[int, int]
    pending_max: float
    steps: float

    @property
    def accepted_rate(self) -> float:
        return self.accepted / self.post_s

    @property
    def sustained_rate(self) -> float:
        return self.accepted / (self.post_s + self.drain_s)


def throughput(col: Collector, what: str, path: str, ctype: str, bodies: list[Body],
               conns: int, duration_s: float) -> Throughput:
    """Post as fast as the collector answers; then wait for its watermark to reach the last
    posted stamp (the engine has taken everything in)."""
    before = col.metrics()
    cpu0 = col.cpu_s()
    samples: list[float] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.5):
            samples.append(col.metrics().get("clocksync_collector_pending_requests", 0.0))

    watcher = threading.Thread(target=watch)
    watcher.start()
    sent, post_s = post_all(col.port, path, ctype, bodies, conns, duration_s)
    t_end = time.perf_counter()
    goal = (sent.newest_ns - LATENESS_S * 1e9) / 1e9 - 0.5
    drain_s = float("nan")
    while time.perf_counter() - t_end < 60:
        at, watermark_s = col.samples("clocksync_collector_watermark_seconds ")
        if watermark_s >= goal:
            drain_s = at - t_end
            break
        time.sleep(SCRAPE_S)
    cpu = col.cpu_s() - cpu0
    stop.set()
    watcher.join()
    after = col.metrics()
    accepted = round(after["clocksync_collector_received_items_total"]
                     - before.get("clocksync_collector_received_items_total", 0.0))
    print(f"  {what}: {accepted:,} accepted in {post_s:.1f} s, drained in {drain_s:.1f} s",
          flush=True)
    return Throughput(what, accepted, post_s, drain_s, cpu, sent.status,
                      max(samples, default=0.0),
                      after.get("clocksync_hop_requests_total", 0.0))


def delay(col: Collector, path: str, ctype: str, bodies: list[Body], conns: int,
          marker: Callable[[int, int], bytes]) -> tuple[list[float], Sent, float]:
    """Replay ``bodies`` in real time with a marker every ``MARKER_S``; each marker's delay
    (s) from its POST's answer to the first ``/metrics`` scrape that counts it, for the
    markers whose step can close while the data still flows (``window + lateness + 1 s``
    before it ends: after that the watermark waits for the silent nodes' idle timeout)."""
    stop = threading.Event()
    posted: list[float] = []  # answer time of marker i
    seen: list[tuple[float, float]] = []  # (scrape time, markers counted)
    sim0 = bodies[0].sim_ns
    t0 = time.perf_counter()

    def markers() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", col.port, timeout=120)
        headers = {"Content-Type": ctype, "Content-Encoding": "gzip"}
        i = 0
        while not stop.wait(MARKER_S):
            sim = sim0 + round((time.perf_counter() - t0) * 1e9)
            conn.request("POST", path, marker(i, sim), headers)
            conn.getresponse().read()
            posted.append(time.perf_counter())
            i += 1
        conn.close()

    def scrape() -> None:
        while not stop.is_set() or (posted and (not seen or seen[-1][1] < len(posted))
                                    and time.perf_counter() - posted[-1] < 30):
            seen.append(col.samples("clocksync_hop_requests_total{", 'src_node="mk"'))
            time.sleep(SCRAPE_S)

    threads = [threading.Thread(target=markers), threading.Thread(target=scrape)]
    for th in threads:
        th.start()
    span_s = (bodies[-1].sim_ns - sim0) / 1e9
    sent, post_s = post_all(col.port, path, ctype, bodies, conns, 1.5 * span_s + 1.0,
                            paced=True)
    # markers go on past the load for a window + lateness: their steps then close on time
    time.sleep(WINDOW_S + LATENESS_S + 1.0)
    stop.set()
    for th in threads:
        th.join()
    delays = []
    for i, at in enumerate(posted):
        when = next((t for t, n in seen if n >= i + 1), None)
        if when is not None and at < t0 + post_s - (WINDOW_S + LATENESS_S + 1.0):
            delays.append(when - at)
    return delays, sent, post_s


# --- batch ---------------------------------------------------------------------------------

#: ``clocksync latency`` in-process on one CPU; prints its CPU and wall seconds.
#: argv: spans.pb tables_dir out.parquet cpu
_BATCH = """
import os, sys, time
os.sched_setaffinity(0, {int(sys.argv[4])})
import pyarrow as pa
pa.set_cpu_count(1)
pa.set_io_thread_count(1)
from clocksync.cli import main
import clocksync.cli._latency  # imports out of the timing
sys.argv = ["clocksync", "latency", sys.argv[1], "--format", "otlp", "--preset", "restate",
            "--tables", sys.argv[2], "--out", sys.argv[3], "--window", "2s", "--json"]
w, c = time.perf_counter(), time.process_time()
try:
    main()
except SystemExit as exc:
    if exc.code:
        raise
print("BATCH", time.process_time() - c, time.perf_counter() - w, file=sys.stderr)
"""


def batch_rate(spans_file: Path, tables: Path, out: Path, cpu: int) -> tuple[float, float]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-c", _BATCH, str(spans_file), str(tables),
                          str(out), str(cpu)], env=env, capture_output=True, text=True,
                         check=True)
    line = next(x for x in run.stderr.splitlines() if x.startswith("BATCH"))
    cpu_s, wall_s = map(float, line.split()[1:])
    return cpu_s, wall_s


# --- main ----------------------------------------------------------------------------------


def _tables(store_dir: Path, rng: np.random.Generator) -> None:
    store = DirectoryStore(store_dir)
    for name, clock in _clocks().items():
        store.write(fit_table(simulate_samples(clock, name, T0, _TABLE_S, 1.0, LinkModel(), rng)))


def _fmt_rate(x: float) -> str:
    return "-" if not np.isfinite(x) else f"{x:,.0f}"


@dataclass(frozen=True)
class Row:
    """One measure of the report: its value, its target (``None``: none; a minimum unless
    ``most``) and its decimals (-1: a rate, with thousands separators)."""

    measure: str
    value: float
    target: float | None = None
    most: bool = False
    digits: int = 2

    def text(self, x: float) -> str:
        if np.isinf(x):
            return "never"
        return _fmt_rate(x) if self.digits < 0 else f"{x:.{self.digits}f}"

    def met(self) -> bool:
        """Whether the value meets the target (no target: met)."""
        if self.target is None:
            return True
        return self.value <= self.target if self.most else self.value >= self.target


def _print_rows(rows: list[Row]) -> None:
    print(f"\n{'measure':<46} {'value':>14} {'target':>12} {'ratio':>7}")
    for r in rows:
        target = "" if r.target is None else r.text(r.target)
        ratio = "" if r.target is None or np.isinf(r.value) else f"{r.value / r.target:.2f}"
        print(f"{r.measure:<46} {r.text(r.value):>14} {target:>12} {ratio:>7}")


def _print_runs(runs: list[list[Row]]) -> None:
    """Per measure of the repeated phases: median, range and the runs meeting its target;
    then the runs meeting every target."""
    print(f"\n{'measure (' + str(len(runs)) + ' runs)':<46} {'median':>10} {'range':>21}"
          f" {'target':>10} {'met':>5}")
    for k, first in enumerate(runs[0]):
        values = np.array([run[k].value for run in runs])
        target = "" if first.target is None else first.text(first.target)
        met = "" if first.target is None else f"{sum(run[k].met() for run in runs)}"
        span = f"{first.text(values.min())}–{first.text(values.max())}"
        print(f"{first.measure:<46} {first.text(float(np.median(values))):>10} {span:>21}"
              f" {target:>10} {met:>5}")
    every = sum(all(r.met() for r in run) for run in runs)
    print(f"runs meeting every target above: {every} of {len(runs)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=20.0,
                        help="seconds of sustained posting per throughput phase")
    parser.add_argument("--delay-duration", type=float, default=10.0,
                        help="seconds of paced posting in the delay phases")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: a few seconds per phase, 100k pending")
    parser.add_argument("--conns", type=int, default=4,
                        help="keep-alive connections posting spans")
    parser.add_argument("--event-conns", type=int, default=12,
                        help="keep-alive connections posting events (the collector answers a "
                        "4096-event body in tens of ms while its engine works: 4 connections "
                        "leave it a third idle)")
    parser.add_argument("--span-batch", type=int, default=512)
    parser.add_argument("--event-batch", type=int, default=4096)
    parser.add_argument("--span-rate", type=float, default=TARGET_SPANS,
                        help="spans/s of the delay phase (and the simulated density)")
    parser.add_argument("--event-rate", type=float, default=TARGET_EVENTS,
                        help="events/s of the delay phase (and the simulated density)")
    parser.add_argument("--pending", type=int, default=TARGET_PENDING)
    parser.add_argument("--batch-spans", type=int, default=200_000,
                        help="spans of the batch comparison (the first ones posted)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs of the throughput and delay phases (each on a fresh "
                        "collector; spans and events alternating)")
    parser.add_argument("--skip", default="", help="phases to skip: spans,events,rss,batch")
    parser.add_argument("--collector-flag", action="append", default=[], metavar="FLAG",
                        help="extra flag for every collector (repeatable), e.g. "
                        "--collector-flag=--decoders=4")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat: at least 1")
    if args.quick:
        args.duration, args.delay_duration = 3.0, 6.0
        args.pending = min(args.pending, 100_000)
        args.batch_spans = min(args.batch_spans, 20_000)
    skip = set(filter(None, args.skip.split(",")))
    cpus = sorted(os.sched_getaffinity(0))
    col_cpu, gen_cpu = (cpus[1], cpus[0]) if len(cpus) > 1 else (cpus[0], cpus[0])
    os.sched_setaffinity(0, {gen_cpu})
    rng = np.random.default_rng(12)
    rows: list[Row] = []  # the measures of phases 3 and 4
    runs: list[list[Row]] = [[] for _ in range(args.repeat)]  # phases 1 and 2, per run
    notes: list[str] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        store = tmp / "tables"
        _tables(store, rng)
        print(f"collector on cpu {col_cpu}, load generator on cpu {gen_cpu}; window"
              f" {WINDOW_S:g} s, lateness {LATENESS_S:g} s; {args.conns} connections for spans,"
              f" {args.event_conns} for events;"
              f" {args.duration:g} s sustained")
        span_load = event_load = None
        if "spans" not in skip:
            w = time.perf_counter()
            n_inv = 2_000 if args.quick else 18_000
            templates, period = _restate_templates(n_inv, args.span_rate, args.span_batch, rng)
            want = int(args.span_rate * 1.5 * args.duration)
            bodies = span_bodies(templates, period, want)
            paced = span_bodies(templates, period, int(args.span_rate * args.delay_duration),
                                offset_ns=bodies[-1].sim_ns - START + 10**9,
                                first_copy=len(bodies) // len(templates) + 1)
            span_load = (bodies, paced)
            n_spans = sum(b.items for b in bodies)
            print(f"spans: {n_spans:,} in {len(bodies)} bodies of <= {args.span_batch}"
                  f" ({sum(len(b.data) for b in bodies) / n_spans:.0f} B/span gzip),"
                  f" made in {time.perf_counter() - w:.0f} s")
        if "events" not in skip:
            w = time.perf_counter()
            want = int(args.event_rate * 1.5 * args.duration)
            bodies = event_bodies(want, args.event_rate, args.event_batch, rng)
            paced = event_bodies(int(args.event_rate * args.delay_duration), args.event_rate,
                                 args.event_batch, rng,
                                 offset_ns=bodies[-1].sim_ns - START + 10**9, tag="d")
            event_load = (bodies, paced)
            n_ev = sum(b.items for b in bodies)
            print(f"events: {n_ev:,} in {len(bodies)} bodies of <= {args.event_batch}"
                  f" ({sum(len(b.data) for b in bodies) / n_ev:.0f} B/event gzip),"
                  f" made in {time.perf_counter() - w:.0f} s")
        live_spans = np.nan
        for run in runs:
            if span_load is not None:
                flags = ["--preset", "restate", *args.collector_flag]
                tp = _live(run, notes, Collector(store, col_cpu, flags, _log("spans")),
                           "spans", "/v1/traces", "application/x-protobuf", *span_load,
                           args.conns, args.duration, span_marker, TARGET_SPANS)
                if np.isnan(live_spans):
                    live_spans = tp.sustained_rate
            if event_load is not None:
                col = Collector(store, col_cpu, args.collector_flag, _log("events"))
                _live(run, notes, col, "events", "/v1/events", "application/x-ndjson",
                      *event_load, args.event_conns, args.duration, event_marker,
                      TARGET_EVENTS)
        if span_load is not None and "batch" not in skip:
            spans_file = tmp / "spans.pb"
            sample = span_load[0][:args.batch_spans // args.span_batch]
            with spans_file.open("wb") as out:
                for b in sample:
                    data = gzip.decompress(b.data)
                    out.write(len(data).to_bytes(4, "big") + data)
            n_batch = sum(b.items for b in sample)
            cpu_s, wall_s = batch_rate(spans_file, store, tmp / "hops.parquet", col_cpu)
            rate = n_batch / cpu_s
            rows.append(Row("batch `clocksync latency` spans/s (cpu)", rate, digits=-1))
            rows.append(Row("live / batch spans/s (first run)", live_spans / rate))
            notes.append(f"batch: {n_batch:,} spans in {cpu_s:.2f} s cpu ({wall_s:.2f} s"
                         " wall), read + map + hops + percentiles + alerts")
        if "rss" not in skip:
            _rss(rows, notes, store, col_cpu, args)
    if len(runs) == 1:
        _print_rows(runs[0] + rows)
    else:
        _print_runs(runs)
        if rows:
            _print_rows(rows)
    print()
    for note in notes:
        print(note)


def _live(rows: list[Row], notes: list[str], col: Collector, what: str,
          path: str, ctype: str, bodies: list[Body], paced: list[Body], conns: int,
          duration_s: float, marker: Callable[[int, int], bytes], target: float
          ) -> Throughput:
    """The throughput and delay phases on a fresh collector ``col`` (closed after), into
    the report."""
    try:
        tp = throughput(col, what, path, ctype, bodies, conns, duration_s)
        delays, sent, post_s = delay(col, path, ctype, paced, conns, marker)
    finally:
        col.close()
    _report(rows, notes, tp, target, what)
    _delay_rows(rows, notes, what, delays, sent, post_s)
    return tp


def _report(rows: list[Row], notes: list[str], tp: Throughput,
            target: float, what: str) -> None:
    rows.append(Row(f"{what}/s accepted (POST time)", tp.accepted_rate, target, digits=-1))
    rows.append(Row(f"{what}/s sustained (POST + drain)", tp.sustained_rate, target,
                    digits=-1))
    rows.append(Row(f"{what}: collector cpu µs per item", tp.cpu_s / tp.accepted * 1e6,
                    1e6 / target, most=True, digits=1))
    notes.append(f"{what} throughput: {tp.accepted:,} accepted in {tp.post_s:.1f} s of posting,"
                 f" engine drained {tp.drain_s:.1f} s after; collector cpu {tp.cpu_s:.1f} s"
                 f" ({tp.cpu_s / (tp.post_s + tp.drain_s):.0%} of its core); answers"
                 f" {tp.status}; max pending {tp.pending_max:,.0f}; hops published"
                 f" {tp.steps:,.0f}")


def _delay_rows(rows: list[Row], notes: list[str], what: str,
                delays: list[float], sent: Sent, post_s: float) -> None:
    target = WINDOW_S + 2.0
    rate = sent.items / post_s if post_s else 0.0
    worst = max(delays) if delays else np.inf  # (no marker counted: never)
    rows.append(Row(f"{what}: receipt -> metric delay, max s", worst, target, most=True))
    rows.append(Row(f"{what}: receipt -> metric delay, median s",
                    float(np.median(delays)) if delays else np.inf))
    notes.append(f"{what} delay: {len(delays)} markers at {rate:,.0f} {what}/s paced"
                 f" (answers {sent.status}); scrape every {SCRAPE_S:g} s")


def _rss(rows: list[Row], notes: list[str], store: Path, cpu: int,
         args: argparse.Namespace) -> None:
    n = args.pending
    ids = pa.array(np.arange(n).astype(str)).cast(pa.string())
    nodes = pa.array(np.array(["n1", "n2", "n3"])[np.arange(n) % 3])
    ts = pa.array(START + np.arange(n, dtype=np.int64) * 10_000)
    lines = pc.binary_join_element_wise(
        '{"request_id":"p', ids, '","stage":"pp_enqueue","node":"', nodes, '","ts_ns":',
        pc.cast(ts, pa.string()), "}", "").to_pylist()
    bodies = [Body(gzip.compress(("\n".join(lines[i:i + 8192]) + "\n").encode(), 1),
                   len(lines[i:i + 8192]), 0) for i in range(0, n, 8192)]
    col = Collector(store, cpu, ["--request-timeout", "1h", "--memory-budget",
                                 str(16 << 30)], _log("rss"))
    try:
        base = col.status_kb("VmRSS")
        sent, _ = post_all(col.port, "/v1/events", "application/x-ndjson", bodies,
                           args.event_conns, np.inf)
        deadline = time.monotonic() + 120
        pending = 0.0
        while time.monotonic() < deadline:
            m = col.metrics()
            pending = m.get("clocksync_collector_pending_requests", 0.0)
            if pending >= n:
                break
            time.sleep(0.2)
        time.sleep(1.0)
        rss, hwm = col.status_kb("VmRSS") / 1024, col.status_kb("VmHWM") / 1024
        estimate = col.metrics().get("clocksync_collector_pending_bytes", 0.0) / 2**20
    finally:
        col.close()
    rows.append(Row(f"RSS MB, {pending:,.0f} requests pending", rss,
                    TARGET_RSS_MB * n / TARGET_PENDING, most=True, digits=0))
    notes.append(f"RSS: {n:,} single-event requests posted ({sent.status}); idle collector"
                 f" {base / 1024:.0f} MB, with them {rss:.0f} MB (peak {hwm:.0f} MB);"
                 f" the engine's own estimate of pending + window bytes {estimate:.0f} MiB")


if __name__ == "__main__":
    main()
