"""A real 3-node Restate 1.7 cluster whose nodes have different clocks: clocksync's corrected
cross-node latencies against the truth (issue 12 §8).

What runs (all inside one network namespace of our own with only ``lo``: Restate checks for
releases at start and must have no route out):

* three ``restate-server`` nodes (npm package ``@restatedev/restate-server-linux-x64``,
  cached under ``~/.cache/clocksync-lab``), replication 2, 6 partitions, each exporting its
  spans over OTLP/HTTP to its own relay;
* the clock of each node: ``node-1`` true time, ``node-2`` +2.5 s and +30 ppm, ``node-3``
  −1.7 s and −25 ppm (``--equal-clocks``: all true time);
* one relay per node (:mod:`lab.restate.relay`): it records each span's ORIGINAL stamps (the
  truth) and rewrites the stamps with the node's simulated clock before they go on to the
  spans file (OTLP JSON lines) and, when available, the live collector;
* one clocksync agent per node measuring THAT node's simulated clock (``--clock sim:...``,
  the same clock text the relay uses) against a reference NTP server serving the system
  clock (a clocksync reference agent, ``--serve-port``), publishing its table to a
  directory store;
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

Analysis: ``clocksync latency SPANS --format otlp --preset restate --tables DIR`` over the
spans file (batch; in-process through ``clocksync.latency`` with the ``restate`` preset while
the CLI has no ``--preset``), joined with the relays' truth by request (the callee's
invocation id) and hop. Truth per request = ORIGINAL dst stamp − ORIGINAL src stamp: Restate
stamps ``invocation-start`` from a coarse clock, so the truth is "on the stamps", not the
true event times, and coverage asks whether ``[low, high]`` contains it. ``--live`` adds the
live collector (``clocksync collector run``) when this checkout has it.

Also reported: the distribution of (``invocation-start`` stamp − parent stamp) on the true
stamps, and the kernel's ``CLOCK_REALTIME_COARSE`` tick (how coarse Restate's clock is).

Run as root: ``python -m lab.restate_cluster [--invocations 300] [--seconds 30] [--json]``.
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
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np

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

__all__ = ["CLOCKS", "coarse_tick", "main", "requirements", "stamp_gaps"]

#: (name, ahead of true time (ns), rate (ppm)) of each node's simulated clock
CLOCKS: tuple[tuple[str, int, float], ...] = (
    ("node-1", 0, 0.0), ("node-2", 2_500_000_000, 30.0), ("node-3", -1_700_000_000, -25.0))
CLUSTER = "cslab"
REFERENCE_PORT = 11123
SERVICE_PORT = 9080
COLLECTOR_PORT = 4400
#: the hops that cross nodes in this service's traces
EXPECTED_HOPS = ("ingress->invocation-start", "invocation-attempt->invocation-start")


def requirements() -> tuple[Path, Path]:
    """``(restate-server, lab python)``, fetched and cached on first use; raises
    :class:`LabUnavailableError` with the reason when the lab cannot run here."""
    if os.geteuid() != 0:
        raise LabUnavailableError("needs root: creates a network namespace")
    if shutil.which("ip") is None:
        raise LabUnavailableError("needs ip (iproute2) on PATH")
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


def _driven(truth: Sequence[dict[str, Any]], from_ns: int) -> list[dict[str, Any]]:
    """The records of the invocations whose ingress span starts at or after ``from_ns`` (the
    driven ones, not the warm-up), callees included."""
    keep = {r["invocation_id"] for r in truth
            if _stage(r["name"]) == "ingress" and r["true_start_ns"] >= from_ns}
    by_id = {r["span_id"]: r for r in truth if r["span_id"]}
    for r in sorted(truth, key=lambda r: r["true_start_ns"]):  # callees: parent kept
        parent = by_id.get(r["parent_span_id"])
        if parent is not None and parent["invocation_id"] in keep:
            keep.add(r["invocation_id"])
    return [r for r in truth if r["invocation_id"] in keep]


def _stage(name: str) -> str:
    return name.split(" ", 1)[0]


# -- analysis -------------------------------------------------------------------------------

#: Stand-in for ``--preset restate`` while the CLI lacks it: the same stages, node and
#: resolution, each parent->child pair its own request (a parent's rule keys it by its span
#: id, ``invocation-start`` by its parent span id; docs/latency.md), so the hops are the
#: preset's ``ingress->invocation-start`` and ``invocation-attempt->invocation-start``.
PARENT_PAIR_MAP: dict[str, Any] = {
    "node": [{"attribute": "service.instance.id", "scope": "resource", "regex": "([^/]+)$"}],
    "stages": [
        {"stage": "ingress", "name_regex": "^ingress( |$)",
         "request_id": [{"field": "span_id"}]},
        {"stage": "invocation-attempt", "name_regex": "^invocation-attempt( |$)",
         "request_id": [{"field": "span_id"}]},
        {"stage": "invocation-start", "name_regex": "^invocation-start( |$)",
         "resolution_ns": 5_000_000, "request_id": [{"field": "parent_span_id"}]},
    ],
}


def _latency_cli(spans: Path, tables: Path, out: Path, *how: str
                 ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_clocksync("latency", str(spans), "--format", "otlp", *how,
                                     "--tables", str(tables), "--json", "--out", str(out)),
                          capture_output=True, text=True, cwd=REPO_ROOT,
                          env={**os.environ, **_env()}, check=False)


def batch_requests(spans: Path, tables: Path, out: Path) -> tuple[list[dict[str, Any]], str]:
    """Per-request hop rows of the spans file with the tables (``clocksync latency ... --out
    FILE.jsonl``): with ``--preset restate`` when the CLI has it, else with
    :data:`PARENT_PAIR_MAP` as ``--trace-map``; ``(rows, the command's options)``."""
    how: tuple[str, ...] = ("--preset", "restate")
    done = _latency_cli(spans, tables, out, *how)
    if done.returncode != 0 and "--preset" in done.stderr:
        trace_map = out.with_name("restate-parent-pairs.json")
        trace_map.write_text(json.dumps(PARENT_PAIR_MAP, indent=1))
        how = ("--trace-map", str(trace_map), "--stages",
               "ingress,invocation-attempt,invocation-start")
        done = _latency_cli(spans, tables, out, *how)
    if done.returncode != 0:
        raise RuntimeError(f"clocksync latency {' '.join(how)} failed ({done.returncode}): "
                           f"{done.stderr.strip()[-800:]}")
    rows = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    return rows, "clocksync latency SPANS --format otlp " + " ".join(
        Path(h).name if h.endswith(".json") else h for h in how)


def join_truth(rows: Sequence[dict[str, Any]], truth: Sequence[dict[str, Any]]
               ) -> list[dict[str, Any]]:
    """Each row with its truth: the child span is the ``dst`` stage span of the request (its
    invocation id, or the child of the parent span id the request is keyed by), its parent
    the span it names; truth = their ORIGINAL stamps' difference.
    Also checks that the rewritten stamps give the row's raw latency (the join is right)."""
    by_id = {r["span_id"]: r for r in truth if r["span_id"]}
    child: dict[tuple[str, str], dict[str, Any]] = {}
    for r in truth:
        if r["invocation_id"]:
            child.setdefault((r["invocation_id"], _stage(r["name"])), r)
    by_parent: dict[tuple[str, str], dict[str, Any]] = {}
    for r in truth:
        by_parent.setdefault((r["parent_span_id"], _stage(r["name"])), r)
    joined = []
    for row in rows:
        src_stage, _, dst_stage = str(row["hop"]).partition("->")
        request = str(row["request_id"])
        if request in by_id:  # a parent->child pair keyed by the parent's span id
            dst = by_parent.get((request, dst_stage))
        else:  # keyed by the callee's invocation id
            dst = child.get((request, dst_stage))
        src = by_id.get(dst["parent_span_id"]) if dst is not None else None
        if dst is None or src is None or _stage(src["name"]) != src_stage:
            joined.append({**row, "truth_ns": None})
            continue
        raw = dst["sim_start_ns"] - src["sim_start_ns"]
        joined.append({**row, "truth_ns": dst["true_start_ns"] - src["true_start_ns"],
                       "src_true_ns": src["true_start_ns"],
                       "join_ok": abs(raw - float(row["raw_latency_ns"])) <= 1})
    return joined


def summarize(joined: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in joined:
        groups[(row["hop"], row["src_node"], row["dst_node"])].append(row)
    out = []
    for (hop, src, dst), group in sorted(groups.items()):
        with_truth = [r for r in group if r.get("truth_ns") is not None]
        raw = np.asarray([float(r["raw_latency_ns"]) for r in group])
        lat = np.asarray([float(r["latency_ns"]) for r in group])
        half = np.asarray([(float(r["high_ns"]) - float(r["low_ns"])) / 2 for r in group])
        covered = sum(1 for r in with_truth
                      if float(r["low_ns"]) <= r["truth_ns"] <= float(r["high_ns"]))
        out.append({
            "hop": hop, "src_node": src, "dst_node": dst, "n": len(group),
            "raw_median_ns": float(np.median(raw)), "raw_negative": int((raw < 0).sum()),
            "corrected_median_ns": float(np.median(lat)),
            "bound_median_ns": float(np.median(half)),
            "truth_median_ns": (float(np.median([r["truth_ns"] for r in with_truth]))
                                if with_truth else None),
            "with_truth": len(with_truth), "covered": covered,
            "coverage": covered / len(with_truth) if with_truth else None,
            "join_mismatches": sum(1 for r in with_truth if not r.get("join_ok", True)),
        })
    return out


def _ms(ns: float | None) -> str:
    return "—" if ns is None else f"{ns / 1e6:+.3f}"


def format_table(result: dict[str, Any]) -> str:
    lines = [f"Restate {result['restate_version']} cluster, 3 nodes, replication 2; "
             f"{result['invocations_ok']}/{result['invocations']} invocations in "
             f"{result['drive_s']:.1f} s; analysis: {result['analysis']}",
             "clocks (ahead of true time, rate): " + ", ".join(
                 f"{c['node']} {c['ahead_ns'] / 1e9:+g} s {c['rate_ppm']:+g} ppm"
                 for c in result["clocks"]), "",
             f"{'hop':<38} {'src->dst':<15} {'n':>4} {'raw med ms':>12} {'neg':>4} "
             f"{'corrected med ± bound ms':>26} {'truth med ms':>13} {'coverage':>9}"]
    for r in result["rows"]:
        cov = "—" if r["coverage"] is None else f"{100 * r['coverage']:.0f} %"
        corrected = f"{_ms(r['corrected_median_ns'])} ± {r['bound_median_ns'] / 1e6:.3f}"
        lines.append(
            f"{r['hop']:<38} {r['src_node'][-1] + '->' + r['dst_node'][-1]:<15} {r['n']:>4} "
            f"{_ms(r['raw_median_ns']):>12} {r['raw_negative']:>4} "
            f"{corrected:>26} "
            f"{_ms(r['truth_median_ns']):>13} {cov:>9}")
    lines += ["", f"coverage over all cross-node requests: {result['coverage_cross']}",
              "truth = ORIGINAL dst stamp − ORIGINAL src stamp (relay records; on the stamps: "
              "invocation-start comes from a coarse clock)", "",
              "invocation-start stamp − parent stamp (true stamps, ms): " + "; ".join(
                  f"parent {k}: n={v['n']} min {_ms(v.get('min_ns'))} p1 {_ms(v.get('p1_ns'))} "
                  f"median {_ms(v.get('median_ns'))} max {_ms(v.get('max_ns'))}"
                  for k, v in result["stamp_gaps"].items()),
              f"CLOCK_REALTIME_COARSE: getres {result['coarse']['getres_ns']} ns, increments "
              f"seen (ns: count) {result['coarse']['increments_ns']} (longer ones: this "
              "process descheduled)"]
    if result.get("live"):
        lines.append(f"live collector: {result['live']}")
    return "\n".join(lines)


# -- the run inside the namespace -----------------------------------------------------------

def _collector_available() -> bool:
    done = subprocess.run(_clocksync("collector", "run", "--help"), capture_output=True,
                          cwd=REPO_ROOT, env={**os.environ, **_env()}, check=False)
    return done.returncode == 0


def start_collector(procs: Processes, tables: Path, data_dir: Path) -> str | None:
    """The live collector (``clocksync collector run``), when this checkout has it: its
    ``/v1/traces`` URL, else None."""
    if not _collector_available():
        return None
    procs.start("collector", _clocksync(
        "collector", "run", "--listen", f"127.0.0.1:{COLLECTOR_PORT}", "--store", str(tables),
        "--preset", "restate", "--window", "10s", "--step", "1s", "--data-dir", str(data_dir)),
        env=_env())
    base = f"http://127.0.0.1:{COLLECTOR_PORT}"
    wait_until(lambda: http_json(base + "/metrics", timeout_s=2)[0] == 200, 20, "collector",
               procs.check)
    return base + "/v1/traces"


def _live_summary() -> dict[str, Any]:
    base = f"http://127.0.0.1:{COLLECTOR_PORT}"
    status, report = http_json(base + "/report", timeout_s=10)
    metrics = http_json(base + "/metrics", timeout_s=10)[1]
    gauges = [line for line in str(metrics).splitlines()
              if line.startswith("clocksync_hop_latency_seconds{")]
    hops = report.get("hops", []) if isinstance(report, dict) else []
    return {"report_status": status, "hops": len(hops), "hop_latency_gauges": len(gauges)}


def run_inside(args: argparse.Namespace) -> dict[str, Any]:
    from clocksync.agent import parse_clock
    from lab.restate.relay import Relay, SpansFile, forward_to

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
    result: dict[str, Any] = {}
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
        live_url = start_collector(procs, tables, work / "collector") if args.live else None
        sinks = [spans] + ([forward_to(live_url)] if live_url else [])
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
        # spans leave in batches a few seconds later: wait until the relays stop receiving
        last, quiet = -1, 0
        while quiet < 4:
            time.sleep(1.0)
            now = sum(r.stats.spans for r in relays)
            quiet = quiet + 1 if now == last else 0
            last = now
        live = _live_summary() if live_url else None
        for node in nodes:  # a final table, published on stop, covers the whole run
            procs.stop(f"agent-{node.name}")
        rows, how = batch_requests(spans_path, tables, work / "requests.jsonl")
        records = [json.loads(line) for line in truth_path.read_text().splitlines() if line]
        joined = [r for r in join_truth(rows, records)
                  if r.get("truth_ns") is None or r["src_true_ns"] >= drive_from_ns]
        driven = _driven(records, drive_from_ns)
        summary = summarize(joined)
        cross = [r for r in joined if r["src_node"] != r["dst_node"]
                 and r.get("truth_ns") is not None]
        covered = sum(1 for r in cross if float(r["low_ns"]) <= r["truth_ns"]
                      <= float(r["high_ns"]))
        result = {
            "restate_version": binary.parent.parent.parent.name.removeprefix("restate-"),
            "invocations": args.invocations, "invocations_ok": done.ok,
            "invocation_errors": done.errors, "drive_s": done.seconds,
            "startup_s": ready_s, "analysis": how,
            "clocks": [{"node": n.name, "ahead_ns": n.ahead_ns, "rate_ppm": n.rate_ppm,
                        "clock": n.clock} for n in nodes],
            "spans": sum(r.stats.spans for r in relays),
            "relay_errors": {r.node: asdict(r.stats) for r in relays
                             if r.stats.errors or r.stats.sink_errors},
            "requests": len(joined), "requests_without_truth": sum(
                1 for r in joined if r.get("truth_ns") is None),
            "rows": summary,
            "cross_hops": sorted({r["hop"] for r in cross}),
            "cross_requests": len(cross), "cross_covered": covered,
            "coverage_cross": (f"{covered}/{len(cross)} = {100 * covered / len(cross):.1f} %"
                               if cross else "no cross-node request"),
            "stamp_gaps": stamp_gaps(driven), "coarse": coarse_tick(), "live": live,
            "workdir": str(work),
        }
        return result
    finally:
        for relay in relays:
            relay.stop()
        procs.stop_all()
        spans.close()
        truth.close()


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
        binary, python = requirements()
    except LabUnavailableError as exc:
        print(f"cannot run: {exc}", file=sys.stderr)
        return 3
    ns = f"csrestate{os.getpid()}"
    work = Path(tempfile.mkdtemp(prefix="csrestate_"))
    signal.signal(signal.SIGTERM, _raise_interrupt)  # clean up by PID on SIGTERM too
    inner: subprocess.Popen[bytes] | None = None
    try:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True)
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
                        help="also feed the live collector when this checkout has "
                             "'clocksync collector run' (default on)")
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
    complete = result["cross_requests"] > 0 and result["cross_covered"] == \
        result["cross_requests"]
    return 0 if complete else 1


if __name__ == "__main__":
    raise SystemExit(main())
