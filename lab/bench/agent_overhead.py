"""Agent overhead at a 1 s poll: CPU % of one core and RSS of a real ``clocksync agent run``,
measuring and as a reference.

The agent runs as its own process (the CLI), measuring our NTP server on loopback (served
from this process, so its CPU is not counted) with a fixed 1 s poll and the default burst of
4 exchanges. CPU = utime + stime + cutime + cstime (the last two: the sample log's reaped
Parquet children) from /proc/PID/stat over the measured span (after a warm-up that excludes
interpreter start and imports); RSS from /proc/PID/status. The runs:

* ``fresh``: an empty data dir — the history grows from zero during the run;
* ``full window``: the sample log is seeded with one hour of 1 s samples, so every refit
  fits the full default window (2000 samples; the costliest steady state). A full-window fit
  costs ~0.45 s, so the default ``fit_cpu_share`` (0.5 %) spaces refits ~90 s apart: this run
  is measured over ``--full-seconds`` (default 150) to include one;
* ``library``: the same fresh agent started from the library (``Agent`` + ``AgentHttpServer``)
  instead of the ``clocksync`` CLI, which imports every command module (scapy for PTP,
  scipy.stats for latency) — the difference is the CLI's import cost;
* ``lib, no pandas``: the same with pandas hidden. pyarrow would import pandas (~48 MB)
  whenever pandas is installed; the agent process no longer imports pyarrow (its Parquet
  work runs in a child), so this row should match ``library``;
* ``reference``: a reference agent (the CLI with no source, ``--serve-port``): it serves
  its clock over NTP and otherwise sleeps (the measuring agents of the other rows do not
  poll it; its figures are the idle loop's).

A baseline process (Python importing the agent package, then sleeping) is measured in the
same run; the table prints the agent's figures and the ratio to it. The issue's budget:
<= 1 % of one core and <= 80 MB RSS.

Usage: python -m lab.bench.agent_overhead [--seconds 60] [--warmup 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clocksync import Sample, write_samples
from clocksync.ntp import NtpServer

__all__ = ["main"]

TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Usage:
    cpu_s: float
    rss_mb: float
    peak_rss_mb: float


def _usage(pid: int) -> Usage:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # utime + stime, plus cutime + cstime: the sample log's Parquet children once reaped
    cpu_s = sum(int(f) for f in fields[11:15]) / TICKS
    status = dict(line.split(":", 1) for line in
                  Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return Usage(cpu_s, int(status["VmRSS"].split()[0]) / 1024,
                 int(status["VmHWM"].split()[0]) / 1024)


def _free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        for line in reply.read().decode().splitlines():
            if line.startswith(name + "{") or line.startswith(name + " "):
                return float(line.rsplit(" ", 1)[1])
    return float("nan")


def _seed(samples_dir: Path, node: str, hours: float = 1.0) -> int:
    """One hour of 1 s samples ending now (true offset 0, loopback-like bounds)."""
    n = int(hours * 3600)
    now = time.time_ns()
    rng = np.random.default_rng(7)
    t = now - (np.arange(n)[::-1] + 1) * 10**9
    samples = [Sample(node, int(ti), float(rng.normal(0, 300)), 40_000.0, bound_ns=3_000.0,
                      source="ntp:seed") for ti in t]
    samples_dir.mkdir(parents=True, exist_ok=True)
    for k, start in enumerate(range(0, n, 1000)):
        write_samples(samples[start:start + 1000], samples_dir / f"seg-{k + 1:08d}.parquet")
    return n


_LIBRARY_AGENT = """
import json, signal, sys
class HidePandas:  # as installed without the [bench]/[dev] extras
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "pandas":
            raise ImportError("pandas hidden by the bench")
if sys.argv[2:] == ["no-pandas"]:
    sys.meta_path.insert(0, HidePandas())
from clocksync.agent import Agent, AgentHttpServer, load_config, parse_listen
config = load_config(None, json.loads(sys.argv[1]))
agent = Agent(config)
http = AgentHttpServer(agent.snapshot, *parse_listen(config.http_listen)).start()
signal.signal(signal.SIGTERM, lambda *_: agent.request_stop())
agent.run()
http.stop()
"""


def _measure(cmd: list[str], seconds: float, warmup_s: float,
             http_port: int | None = None) -> tuple[Usage, Usage, dict[str, float]]:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(warmup_s)
        if proc.poll() is not None:
            raise SystemExit(f"process exited early: {' '.join(cmd)}")
        start = _usage(proc.pid)
        extra: dict[str, float] = {}
        if http_port is not None:
            extra["samples_start"] = _metric(http_port, "clocksync_samples_total")
            extra["fits_start"] = _metric(http_port, "clocksync_fits_total")
        time.sleep(seconds)
        end = _usage(proc.pid)
        if http_port is not None:
            extra["samples"] = _metric(http_port, "clocksync_samples_total")
            extra["fits"] = _metric(http_port, "clocksync_fits_total")
        return start, end, extra
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--full-seconds", type=float, default=150.0)
    args = parser.parse_args()

    rows: list[tuple[str, float, Usage, dict[str, float]]] = []
    base_cmd = [sys.executable, "-c", "import clocksync.agent, clocksync.cli, time; "
                "time.sleep(1e6)"]
    b0, b1, _ = _measure(base_cmd, args.seconds, args.warmup)
    baseline = Usage(b1.cpu_s - b0.cpu_s, b1.rss_mb, b1.peak_rss_mb)
    with NtpServer(address="127.0.0.1", port=0) as server:
        runs = (("fresh", False, False, args.seconds),
                ("full window", True, False, args.full_seconds),
                ("library", False, True, args.seconds),
                ("lib, no pandas", False, True, args.seconds),
                ("reference", False, False, args.seconds))
        for label, seed, library, seconds in runs:
            work = Path(tempfile.mkdtemp(prefix="csbench_agent_"))
            try:
                if seed:
                    _seed(work / "samples", "bench")
                port = _free_port()
                options = {"node": "bench", "ntp_servers": [f"127.0.0.1:{server.port}"],
                           "min_poll_s": 1.0, "max_poll_s": 1.0, "data_dir": str(work),
                           "http_listen": f"127.0.0.1:{port}"}
                cmd = ([sys.executable, "-c", _LIBRARY_AGENT, json.dumps(options),
                        *(["no-pandas"] if "pandas" in label else [])] if library
                       else [sys.executable, "-c", "from clocksync.cli import main; main()",
                             "agent", "run", "--node", "bench", "--ntp-server",
                             f"127.0.0.1:{server.port}", "--min-poll-s", "1", "--max-poll-s",
                             "1", "--data-dir", str(work), "--http", f"127.0.0.1:{port}",
                             "--log-level", "error"])
                if label == "reference":
                    cmd = [sys.executable, "-c", "from clocksync.cli import main; main()",
                           "agent", "run", "--node", "ref", "--serve-port",
                           str(_free_port(socket.SOCK_DGRAM)), "--data-dir", str(work),
                           "--http", f"127.0.0.1:{port}", "--log-level", "error"]
                start, end, extra = _measure(cmd, seconds, args.warmup, port)
                rows.append((label, seconds,
                             Usage(end.cpu_s - start.cpu_s, end.rss_mb, end.peak_rss_mb),
                             extra))
            finally:
                shutil.rmtree(work, ignore_errors=True)

    print(f"agent overhead at a 1 s poll (burst 4), measured after a {args.warmup:g} s "
          f"warm-up; CPU time resolution ±{1 / TICKS:.2f} s")
    print(f"{'run':<15} {'span s':>6} {'CPU s':>7} {'CPU % core':>11} {'RSS MB':>8} {'peak MB':>8} "
          f"{'samples':>8} {'fits':>5}  {'CPU x base':>10} {'RSS x base':>10}")
    print(f"{'baseline':<15} {args.seconds:>6.0f} {baseline.cpu_s:>7.2f} "
          f"{100 * baseline.cpu_s / args.seconds:>11.3f} {baseline.rss_mb:>8.1f} "
          f"{baseline.peak_rss_mb:>8.1f} {'':>8} {'':>5}  {1.0:>10.2f} {1.0:>10.2f}")
    for label, seconds, use, extra in rows:
        samples = extra.get("samples", float("nan")) - extra.get("samples_start", 0.0)
        fits = extra.get("fits", float("nan")) - extra.get("fits_start", 0.0)
        cpu_ratio = use.cpu_s / baseline.cpu_s if baseline.cpu_s > 0 else float("nan")
        print(f"{label:<15} {seconds:>6.0f} {use.cpu_s:>7.2f} {100 * use.cpu_s / seconds:>11.3f} "
              f"{use.rss_mb:>8.1f} {use.peak_rss_mb:>8.1f} {samples:>8.0f} {fits:>5.0f}  "
              f"{cpu_ratio:>10.1f} {use.rss_mb / baseline.rss_mb:>10.2f}")


if __name__ == "__main__":
    main()
