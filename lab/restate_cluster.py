"""A real 3-node Restate 1.7 cluster whose nodes have different clocks: clocksync's corrected
cross-node latencies against the truth.

What runs (all inside one network namespace of our own with only ``lo``: Restate checks for
releases at start and must have no route out):

* three ``restate-server`` nodes (npm package ``@restatedev/restate-server-linux-x64``,
  cached under ``~/.cache/clocksync-lab``), replication 2, 6 partitions, each exporting its
  spans over OTLP/HTTP to its own relay;
* the clock of each node: ``node-1`` true time, ``node-2`` +2.5 s and +30 ppm, ``node-3``
  −1.7 s and −25 ppm (``--equal-clocks``: all true time);
* one relay per node (:mod:`lab.restate.relay`): it records each span's ORIGINAL stamps (the
  truth) and rewrites the stamps with the node's simulated clock before they go on to the
  spans file (OTLP JSON lines) and the live collector;
* one clocksync agent per node measuring THAT node's simulated clock (``--clock sim:...``,
  the same clock text the relay uses) against a reference NTP server serving the system
  clock (a clocksync reference agent, ``--serve-port``), publishing its table to a
  directory store;
* (``--live``) the clocksync collector and our own Prometheus, both on loopback;
* a ``restate-sdk`` service (:mod:`lab.restate.service`, in the lab's own venv): ``Hop/call``
  calls the virtual object ``Counter/add`` on a per-invocation key, so calls cross partitions
  and nodes; registered with ``POST :admin/deployments``, driven through the three ingresses.

Clock choice: the per-node relay (option a), not a patched copy of the binary's
``__clock_gettime`` (option b). Restate is a static-PIE musl binary, so ``LD_PRELOAD`` and
faketime cannot reach its clock; patching the binary means binary surgery on a 225 MB
third-party executable per version, and would also skew Restate's own gossip, timers and
HLC (nodes > 1 s apart reject each other's gossip). The relay changes exactly what a
tracing pipeline sees — the span stamps — with a clock known to the nanosecond, keeps the
original stamps as ground truth, and needs nothing but the documented ``tracing-endpoint``.
What it does not reproduce: Restate's own time-dependent behaviour under skew.

Analysis, batch: ``clocksync latency SPANS --format otlp --preset restate --tables DIR
--out requests.jsonl`` over the spans file; each per-request row is joined with the relays'
records by its stamps (:mod:`lab.restate.analysis`). Truth = ORIGINAL dst stamp − ORIGINAL src
stamp, widened by the ``invocation-start`` stamp's resolution (5 ms: the true event lies in
``[t, t + 5 ms)``) and cut at 0 (a child span starts after its parent); a request is covered
when its ``[low, high]`` contains all of that.

Analysis, live (``--live``, the default): ``clocksync collector run --preset restate`` in the
namespace, fed by the relays, one window longer than the run; our own Prometheus scrapes it
with ``contrib/prometheus/clocksync-collector.rules.yml`` loaded. Heartbeat calls keep the
nodes' spans flowing until the collector's window has closed past the driven calls; then its
``/report`` and ``/metrics`` (one window) give, per cross-node hop and node pair, the P50/P90/
P99 intervals, which must contain the TRUE quantiles of the requests in that window (members
by ``src_ref_ns`` from the batch rows; their count must equal the window's). Prometheus' API
must show the target up and every rule loaded and healthy. ``--serve`` then keeps everything
running and bridges Prometheus and the collector to the host's loopback
(:class:`lab.restate.live.Bridge`).

Also reported: the distribution of (``invocation-start`` stamp − parent stamp) on the true
stamps, and the kernel's ``CLOCK_REALTIME_COARSE`` tick (how coarse Restate's clock is).

Run as root: ``python -m lab.restate_cluster [--invocations 300] [--seconds 30] [--json]
[--no-live] [--serve]``.
Processes are stopped by PID and the namespace deleted on exit, Ctrl-C and failure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np

from lab.restate.analysis import covered, join_truth, live_quantiles, metric_gauges, summarize
from lab.restate.cluster import (
    REPO_ROOT,
    LabUnavailableError,
    NodeSpec,
    Processes,
    drive,
    http_json,
    lab_python,
    node_config,
    register,
    restate_server,
    wait_until,
)
from lab.restate.live import (
    Bridge,
    LiveConfig,
    heartbeat,
    prometheus_available,
    prometheus_status,
    read_window,
    start_collector,
    start_prometheus,
)
from lab.restate.relay import Relay

__all__ = ["CLOCKS", "EXPECTED_HOPS", "coarse_tick", "main", "requirements", "stamp_gaps"]

#: (name, ahead of true time (ns), rate (ppm)) of each node's simulated clock
CLOCKS: tuple[tuple[str, int, float], ...] = (
    ("node-1", 0, 0.0), ("node-2", 2_500_000_000, 30.0), ("node-3", -1_700_000_000, -25.0))
CLUSTER = "cslab"
REFERENCE_PORT = 11123
SERVICE_PORT = 9080
#: the hops that cross nodes in this service's traces
EXPECTED_HOPS = ("ingress->invocation-start", "invocation-attempt->invocation-start")


def requirements(live: bool = True) -> tuple[Path, Path]:
    """``(restate-server, lab python)``, fetched and cached on first use; raises
    :class:`LabUnavailableError` with the reason when the lab cannot run here."""
    if os.geteuid() != 0:
        raise LabUnavailableError("needs root: creates a network namespace")
    if shutil.which("ip") is None:
        raise LabUnavailableError("needs ip (iproute2) on PATH")
    if live and not prometheus_available():
        raise LabUnavailableError("needs prometheus (the Debian package: tests/install.sh) "
                                  "for --live")
    return restate_server(), lab_python()


def _clocksync(*args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from clocksync.cli import main; sys.exit(main())",
            *args]


def _env() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH", "")
    return {"PYTHONPATH": str(REPO_ROOT) + (os.pathsep + path if path else "")}


# -- the measurements for the preset --------------------------------------------------------

def coarse_tick(seconds: float = 0.3) -> dict[str, Any]:
    """``CLOCK_REALTIME_COARSE``: its ``clock_getres`` and the increments seen reading it."""
    coarse = getattr(time, "CLOCK_REALTIME_COARSE", 5)  # 5 on Linux
    values = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        values.append(time.clock_gettime_ns(coarse))
    steps = np.diff(np.unique(np.asarray(values, dtype=np.int64)))
    kinds, counts = np.unique(steps, return_counts=True)
    return {"getres_ns": round(time.clock_getres(coarse) * 1e9),
            "increments_ns": {int(k): int(c) for k, c in zip(kinds, counts, strict=True)},
            "increment_mode_ns": int(kinds[np.argmax(counts)]) if kinds.size else None}


def _stats(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    arr = np.asarray(values, dtype=np.float64)
    return {"n": int(arr.size), "min_ns": float(arr.min()),
            "p1_ns": float(np.percentile(arr, 1)), "median_ns": float(np.median(arr)),
            "p99_ns": float(np.percentile(arr, 99)), "max_ns": float(arr.max())}


def stamp_gaps(truth: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """(``invocation-start`` stamp − its parent's stamp) on the TRUE stamps, by parent stage."""
    by_id = {r["span_id"]: r for r in truth if r["span_id"]}
    gaps: dict[str, list[float]] = defaultdict(list)
    for r in truth:
        if _stage(r["name"]) != "invocation-start":
            continue
        parent = by_id.get(r["parent_span_id"])
        if parent is not None:
            gaps[_stage(parent["name"])].append(r["true_start_ns"] - parent["true_start_ns"])
    return {stage: _stats(v) for stage, v in sorted(gaps.items())}


def _driven(truth: Sequence[dict[str, Any]], from_ns: int, to_ns: int) -> list[dict[str, Any]]:
    """The records of the invocations whose ingress span starts in ``[from_ns, to_ns)`` (the
    driven ones: not the warm-up, not the heartbeat), callees included."""
    keep = {r["invocation_id"] for r in truth
            if _stage(r["name"]) == "ingress" and from_ns <= r["true_start_ns"] < to_ns}
    by_id = {r["span_id"]: r for r in truth if r["span_id"]}
    for r in sorted(truth, key=lambda r: r["true_start_ns"]):  # callees: parent kept
        parent = by_id.get(r["parent_span_id"])
        if parent is not None and parent["invocation_id"] in keep:
            keep.add(r["invocation_id"])
    return [r for r in truth if r["invocation_id"] in keep]


def _stage(name: str) -> str:
    return name.split(" ", 1)[0]


# -- analysis -------------------------------------------------------------------------------

BATCH_COMMAND = "clocksync latency spans.jsonl --format otlp --preset restate --tables tables"


def batch_requests(spans: Path, tables: Path, out: Path) -> list[dict[str, Any]]:
    """Per-request hop rows of the spans file with the tables: ``clocksync latency SPANS
    --format otlp --preset restate --tables DIR --json --out FILE.jsonl``."""
    done = subprocess.run(_clocksync("latency", str(spans), "--format", "otlp", "--preset",
                                     "restate", "--tables", str(tables), "--json", "--out",
                                     str(out)),
                          capture_output=True, text=True, cwd=REPO_ROOT,
                          env={**os.environ, **_env()}, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"clocksync latency --preset restate failed ({done.returncode}): "
                           f"{done.stderr.strip()[-800:]}")
    return [json.loads(line) for line in out.read_text().splitlines() if line.strip()]


def _ms(ns: float | None, sign: bool = True) -> str:
    if ns is None or ns != ns:
        return "—"
    return f"{ns / 1e6:+.3f}" if sign else f"{ns / 1e6:.3f}"


def _pair(src: str, dst: str) -> str:
    return f"{src.removeprefix('node-')}->{dst.removeprefix('node-')}"


def _truth_text(lo: float | None, hi: float | None) -> str:
    if lo is None or hi is None:
        return "—"
    return _ms(lo) if lo == hi else f"{_ms(lo)}..{_ms(hi)}"


def format_batch(result: dict[str, Any]) -> list[str]:
    lines = [f"{'hop':<38} {'pair':<5} {'n':>4} {'raw med ms':>12} {'neg':>4} "
             f"{'corrected med ± bound ms':>25} {'clock ± µs':>10} {'truth med ms':>17} "
             f"{'coverage':>8}"]
    for r in result["rows"]:
        cov = "—" if r["coverage"] is None else f"{100 * r['coverage']:.0f} %"
        corrected = f"{_ms(r['corrected_median_ns'])} ± {_ms(r['bound_median_ns'], False)}"
        lines.append(
            f"{r['hop']:<38} {_pair(r['src_node'], r['dst_node']):<5} {r['n']:>4} "
            f"{_ms(r['raw_median_ns']):>12} {r['raw_negative']:>4} {corrected:>25} "
            f"{r['clock_bound_median_ns'] / 1e3:>10.1f} "
            f"{_truth_text(r['truth_lo_median_ns'], r['truth_hi_median_ns']):>17} {cov:>8}")
    return lines


def format_live(result: dict[str, Any]) -> list[str]:
    live = result["live"]
    lines = [f"live collector window {live['window']} ({live['window_requests']} requests, "
             f"late {live['late']}); per cross-node hop and pair: live interval (ms) / TRUE "
             "quantile (ms) of that window's requests",
             f"{'hop':<38} {'pair':<5} {'n':>4} {'P50 live':>15} {'P50 true':>15} "
             f"{'P90 live':>15} {'P90 true':>15} {'P99 live':>15} {'P99 true':>15} "
             f"{'contained':>9}"]
    for e in live["quantiles"]:
        cells = []
        for q in e["quantiles"]:
            cells.append(f"{_ms(q['low_ns'], False)}..{_ms(q['high_ns'], False)}")
            cells.append(_truth_text(q["true_lo_ns"], q["true_hi_ns"]).replace("+", ""))
        n = f"{e['n']}" if e["n"] == e["n_live"] else f"{e['n']}≠{e['n_live']}"
        lines.append(f"{e['hop']:<38} {_pair(e['src_node'], e['dst_node']):<5} {n:>4} "
                     + " ".join(f"{c:>15}" for c in cells)
                     + f" {'yes' if e['contained'] else 'NO':>9}")
    prom = live.get("prometheus") or {}
    if prom:
        target = (prom.get("targets") or [{}])[0]
        lines.append(f"prometheus: target {target.get('url')} {target.get('health')}; rules "
                     f"loaded {prom.get('rules_loaded')}/{prom.get('rules_expected')}, healthy "
                     f"{prom.get('rules_ok')}; clocksync_hop_latency_seconds series "
                     f"{prom.get('hop_latency_series')}" + (f"; {prom['error']}"
                                                           if prom.get("error") else ""))
    return lines


def format_table(result: dict[str, Any]) -> str:
    lines = [f"Restate {result['restate_version']} cluster, 3 nodes, replication 2; "
             f"{result['invocations_ok']}/{result['invocations']} invocations in "
             f"{result['drive_s']:.1f} s (+ warm-up and heartbeat calls); batch: "
             f"{BATCH_COMMAND}",
             "clocks (ahead of true time, rate): " + ", ".join(
                 f"{c['node']} {c['ahead_ns'] / 1e9:+g} s {c['rate_ppm']:+g} ppm"
                 for c in result["clocks"]), "", *format_batch(result), "",
             f"coverage: cross-node {result['coverage_cross']}; every request "
             f"{result['coverage_all']}",
             "truth = ORIGINAL dst stamp − ORIGINAL src stamp (relay records), widened by the "
             "invocation-start stamp's 5 ms resolution and cut at 0 (child after parent); "
             "covered = [low, high] contains all of it"]
    if result.get("live"):
        lines += ["", *format_live(result)]
    lines += ["", "invocation-start stamp − parent stamp (true stamps, driven calls, ms): "
              + "; ".join(
                  f"parent {k}: n={v['n']} min {_ms(v.get('min_ns'))} p1 {_ms(v.get('p1_ns'))} "
                  f"median {_ms(v.get('median_ns'))} max {_ms(v.get('max_ns'))}"
                  for k, v in result["stamp_gaps"].items()),
              f"CLOCK_REALTIME_COARSE: getres {result['coarse']['getres_ns']} ns, increments "
              f"seen (ns: count) {result['coarse']['increments_ns']} (longer ones: this "
              "process descheduled)"]
    return "\n".join(lines)


def _coverage_text(rows: Sequence[dict[str, Any]]) -> tuple[int, int, str]:
    known = [r for r in rows if r.get("truth_ns") is not None]
    n = sum(1 for r in known if covered(r))
    return n, len(known), (f"{n}/{len(known)} = {100 * n / len(known):.1f} %" if known
                           else "no request")


# -- the run inside the namespace -----------------------------------------------------------

def _wait_quiet(relays: Sequence[Relay], quiet_s: int = 4) -> None:
    """Until the relays have received no span for ``quiet_s`` seconds (the exporters flush
    in batches a few seconds after the calls)."""
    last, quiet = -1, 0
    while quiet < quiet_s:
        time.sleep(1.0)
        now = sum(r.stats.spans for r in relays)
        quiet = quiet + 1 if now == last else 0
        last = now


def _live_result(live: LiveConfig, joined: Sequence[dict[str, Any]], report: dict[str, Any],
                 metrics: str, prom: dict[str, Any] | None) -> dict[str, Any]:
    quantiles = live_quantiles(metric_gauges(metrics), report, joined)
    start, end = int(report["window_start_ns"]), int(report["window_end_ns"])
    return {
        "window": f"{live.window_s:g} s to {time.strftime('%H:%M:%S', time.gmtime(end / 1e9))}"
                  " UTC",
        "window_start_ns": start, "window_end_ns": end,
        "window_requests": report.get("requests"), "late": report.get("late"),
        "batch_requests_in_window": sum(1 for r in joined
                                        if start <= int(r["src_ref_ns"]) < end),
        "quantiles": quantiles,
        "all_contained": bool(quantiles) and all(e["contained"] for e in quantiles),
        "cross_hops": sorted({e["hop"] for e in quantiles}),
        "prometheus": prom,
    }


def run_inside(args: argparse.Namespace) -> dict[str, Any]:
    from clocksync.agent import parse_clock
    from lab.restate.relay import SpansFile, forward_to

    work = Path(args.workdir)
    binary, python = Path(args.restate_server), Path(args.lab_python)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    t0 = time.time_ns()
    nodes = [NodeSpec(name, i + 1, 0 if args.equal_clocks else ahead,
                      0.0 if args.equal_clocks else rate, t0)
             for i, (name, ahead, rate) in enumerate(CLOCKS)]
    tables, spans_path, truth_path = work / "tables", work / "spans.jsonl", work / "truth.jsonl"
    tables.mkdir(parents=True, exist_ok=True)
    procs = Processes(work / "logs")
    relays: list[Relay] = []
    spans = SpansFile(spans_path)
    truth = open(truth_path, "ab")  # noqa: SIM115 - closed below
    live = LiveConfig(window_s=args.window)
    beat_stop = threading.Event()
    beats: dict[str, int] = {}
    forward_retries: dict[str, int] = {}
    try:
        procs.start("reference", _clocksync(
            "agent", "run", "--node", "reference", "--serve-port", str(REFERENCE_PORT),
            "--http", "", "--data-dir", str(work / "reference")), env=_env())
        for node in nodes:
            procs.start(f"agent-{node.name}", _clocksync(
                "agent", "run", "--node", node.name, "--clock", node.clock,
                "--ntp-server", f"127.0.0.1:{REFERENCE_PORT}", "--store", str(tables),
                "--data-dir", str(work / f"agent-{node.name}"),
                "--http", f"127.0.0.1:{9460 + node.index}", "--min-poll-s", "0.25",
                "--max-poll-s", "1", "--refit-min-s", "1", "--log-level", "warning"),
                env=_env())
        # every span must come after its node's first sample: tables first, then Restate
        wait_until(lambda: all((tables / f"{n.name}.table.json").is_file() for n in nodes), 60,
                   "the agents' first tables", procs.check)
        sinks: list[Any] = [spans]
        if args.live:
            sinks.append(forward_to(start_collector(procs, _clocksync, _env(), tables,
                                                    work / "collector", live),
                                    retries=forward_retries))
            start_prometheus(procs, work, live)
        for node in nodes:
            relays.append(Relay(node.name, parse_clock(node.clock), truth, sinks,
                                port=node.relay_port).start())
        for node in nodes:
            base = work / node.name
            base.mkdir(exist_ok=True)
            (base / "restate.toml").write_text(node_config(node, nodes, CLUSTER))
            procs.start(node.name, [str(binary), "--config-file", str(base / "restate.toml"),
                                    "--base-dir", str(base / "data"), "--no-logo"],
                        env={"RESTATE_LOG_FORMAT": "compact"})
        procs.start("service", [str(python), "-m", "lab.restate.service", "--port",
                                str(SERVICE_PORT)], env=_env())
        started = time.monotonic()
        wait_until(lambda: http_json(f"http://127.0.0.1:{nodes[0].admin_port}/health",
                                     timeout_s=2)[0] == 200, 120, "restate admin", procs.check)

        def registered() -> bool:
            register(nodes[0].admin_port, SERVICE_PORT)
            return True

        wait_until(registered, 120, "service registration", procs.check, every_s=1.0)
        ports = [n.ingress_port for n in nodes]

        def warm() -> bool:
            return all(http_json(f"http://127.0.0.1:{p}/Hop/call", {"key": "warm"},
                                 timeout_s=10)[0] == 200 for p in ports)

        wait_until(warm, 120, "first invocation through every ingress", procs.check, 1.0)
        ready_s = time.monotonic() - started
        drive_from_ns = time.time_ns()  # the warm-up calls before this are left out
        done = drive(ports, args.invocations, args.seconds)
        drive_to_ns = time.time_ns()
        report: dict[str, Any] = {}
        metrics, prom = "", None
        live_wait_s = 0.0
        if args.live:
            # calls keep every node's spans flowing until the collector's window has closed
            # past the driven calls (watermark: slowest node's newest event − lateness)
            waited = time.monotonic()
            beat = heartbeat(ports, beat_stop, counts=beats)
            wait_until(lambda: int(http_json(live.collector + "/report", timeout_s=5)[1]
                                   .get("window_end_ns") or 0) > drive_to_ns,
                       60 + live.lateness_s, "the collector's window past the driven calls",
                       procs.check, every_s=0.5)
            if not args.serve:
                beat_stop.set()
                beat.join(15)
            live_wait_s = time.monotonic() - waited
            report, metrics = read_window(live)
            prom = prometheus_status(live)
        _wait_quiet(relays)
        if not args.serve:
            for node in nodes:  # a final table, published on stop, covers the whole run
                procs.stop(f"agent-{node.name}")
        rows = batch_requests(spans_path, tables, work / "requests.jsonl")
        records = [json.loads(line) for line in truth_path.read_text().splitlines() if line]
        joined = join_truth(rows, records)
        cross = [r for r in joined if r["src_node"] != r["dst_node"]]
        n_cross, k_cross, cross_text = _coverage_text(cross)
        n_all, k_all, all_text = _coverage_text(joined)
        result = {
            "restate_version": binary.parent.parent.parent.name.removeprefix("restate-"),
            "invocations": args.invocations, "invocations_ok": done.ok,
            "invocation_errors": done.errors, "drive_s": done.seconds,
            "heartbeat_calls": beats, "collector_post_retries": forward_retries,
            "startup_s": ready_s, "live_wait_s": live_wait_s,
            "analysis": BATCH_COMMAND,
            "clocks": [{"node": n.name, "ahead_ns": n.ahead_ns, "rate_ppm": n.rate_ppm,
                        "clock": n.clock} for n in nodes],
            "spans": sum(r.stats.spans for r in relays),
            "relay_errors": {r.node: asdict(r.stats) for r in relays
                             if r.stats.errors or r.stats.sink_errors},
            "requests": len(joined), "requests_without_truth": sum(
                1 for r in joined if r.get("truth_ns") is None),
            "rows": summarize(joined),
            "hops": sorted({r["hop"] for r in joined}),
            "cross_hops": sorted({r["hop"] for r in cross}),
            "cross_requests": k_cross, "cross_covered": n_cross, "coverage_cross": cross_text,
            "all_requests": k_all, "all_covered": n_all, "coverage_all": all_text,
            "stamp_gaps": stamp_gaps(_driven(records, drive_from_ns, drive_to_ns)),
            "coarse": coarse_tick(),
            "live": _live_result(live, joined, report, metrics, prom) if args.live else None,
            "workdir": str(work),
        }
        if args.serve:
            _serve(result, args, live, beat_stop)
        return result
    finally:
        beat_stop.set()
        for relay in relays:
            relay.stop()
        procs.stop_all()
        spans.close()
        truth.close()


def _serve(result: dict[str, Any], args: argparse.Namespace, live: LiveConfig,
           beat_stop: threading.Event) -> None:
    """Print the tables, then keep the cluster, agents, collector, Prometheus and the
    heartbeat calls running until SIGTERM or Ctrl-C."""
    print(json.dumps(result, indent=1, default=str) if args.json else format_table(result))
    print(f"\nserving: Prometheus {live.prometheus} and the collector {live.collector} inside "
          "the namespace (see the host URLs above); Ctrl-C stops everything", flush=True)
    while not beat_stop.wait(3600):
        pass


# -- outside: fetch, namespace, clean-up ----------------------------------------------------

def _raise_interrupt(_sig: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _ns_pids(ns: str) -> list[int]:
    done = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True,
                          check=False)
    return [int(p) for p in done.stdout.split()]


def _remove_namespace(ns: str) -> None:
    """Stop what is left in our namespace (by PID: only our processes run there), delete it."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = _ns_pids(ns)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 5
        while pids and _ns_pids(ns) and time.monotonic() < deadline:
            time.sleep(0.1)
    subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


def run_outside(args: argparse.Namespace, argv: Sequence[str]) -> int:
    try:
        binary, python = requirements(args.live)
    except LabUnavailableError as exc:
        print(f"cannot run: {exc}", file=sys.stderr)
        return 3
    ns = f"csrestate{os.getpid()}"
    work = Path(tempfile.mkdtemp(prefix="csrestate_"))
    signal.signal(signal.SIGTERM, _raise_interrupt)  # clean up by PID on SIGTERM too
    inner: subprocess.Popen[bytes] | None = None
    bridge: Bridge | None = None
    try:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True)
        if args.serve:
            routes = [(args.prometheus_host_port, LiveConfig().prometheus_port),
                      (args.collector_host_port, LiveConfig().collector_port)]
            bridge = Bridge(ns, routes).start()
            print(f"Prometheus: http://127.0.0.1:{args.prometheus_host_port}/  collector: "
                  f"http://127.0.0.1:{args.collector_host_port}/metrics and /report (host "
                  "loopback, bridged into the lab namespace; up once the tables print)",
                  flush=True)
        inner = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-m", "lab.restate_cluster",
             *argv, "--inside", "--workdir", str(work), "--restate-server", str(binary),
             "--lab-python", str(python)], cwd=REPO_ROOT, env={**os.environ, **_env()})
        return inner.wait()
    except KeyboardInterrupt:
        if inner is not None and inner.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(inner.pid, signal.SIGTERM)
            try:
                inner.wait(30)
            except subprocess.TimeoutExpired:
                os.kill(inner.pid, signal.SIGKILL)
                inner.wait(5)
        print("interrupted: processes stopped, namespace removed", file=sys.stderr)
        return 130
    finally:
        if bridge is not None:
            bridge.stop()
        _remove_namespace(ns)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m lab.restate_cluster", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--invocations", type=int, default=300,
                        help="Hop/call invocations to drive (default 300)")
    parser.add_argument("--seconds", type=float, default=30.0,
                        help="spread the invocations over this long (default 30)")
    parser.add_argument("--equal-clocks", action="store_true",
                        help="every node on true time (offsets and rates 0)")
    parser.add_argument("--live", action=argparse.BooleanOptionalAction, default=True,
                        help="also run the live collector and Prometheus in the namespace and "
                             "check the live quantile intervals against the truth "
                             "(default on)")
    parser.add_argument("--window", type=float, default=120.0,
                        help="the collector's window (s; default 120): longer than the run, "
                             "so that its final window holds every request")
    parser.add_argument("--serve", action="store_true",
                        help="after the checks keep everything running (with a few calls a "
                             "second) and bridge Prometheus and the collector to the host's "
                             "loopback, until Ctrl-C or SIGTERM")
    parser.add_argument("--prometheus-host-port", type=int, default=9390,
                        help="--serve: host loopback port of Prometheus (default 9390)")
    parser.add_argument("--collector-host-port", type=int, default=4390,
                        help="--serve: host loopback port of the collector (default 4390)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--restate-server", help=argparse.SUPPRESS)
    parser.add_argument("--lab-python", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.inside:
        return run_outside(args, argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        result = run_inside(args)
    except KeyboardInterrupt:
        return 130
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        print(f"lab failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=1, default=str) if args.json else format_table(result))
    return 0 if passed(result) else 1


def passed(result: dict[str, Any]) -> bool:
    """Every request covered (cross-node ones present), and with ``--live`` every live
    quantile interval contains the true quantile and Prometheus scrapes with the rules."""
    ok = bool(result["cross_requests"] > 0 and result["all_covered"] == result["all_requests"])
    live = result.get("live")
    if live:
        prom = live.get("prometheus") or {}
        ok = ok and bool(live["all_contained"]) and bool(prom.get("target_up")) \
            and bool(prom.get("rules_healthy"))
    return ok


if __name__ == "__main__":
    raise SystemExit(main())
