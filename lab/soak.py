"""Soak: a real agent at a fast poll, a fault every interval, RSS and open fds must stay flat.

``clocksync agent run`` runs as its own process (poll 0.2 s, burst 2) against an NTP server
process on 127.0.0.1, publishing to a Redis store (a real redis-server) and to a directory
store on a 16 MB tmpfs (root only). Its refit window (``--window-samples``, default 200)
fills during the warm-up: until then memory grows with the window, by design. It refits
(and so publishes) at least three times while a fault is held: ``refit_min_s`` is a ninth of
the fault interval (at most 10 s), ``fit_cpu_share`` 5 %. Every
``--fault-every-s`` (default 60 s) one fault is injected, in rotation, and held for a third
of the interval:

* ``server_killed``   NTP server SIGKILLed, restarted on the same port (timeouts/ICMP);
* ``store_killed``    redis-server SIGKILLed, restarted on the same port;
* ``server_stopped``  NTP server SIGSTOPped, then SIGCONT (a hung daemon: timeouts);
* ``disk_full``       the directory store's tmpfs filled up to ENOSPC, then freed;
* ``store_read_only`` the directory store's tmpfs remounted read-only, then read-write.

(A local clock step needs the agent in-process with a SimClock: it is covered by
``tests/faults/test_faults_clockstep.py``, not here.) Faults that need root or redis-server
are skipped with a note when unavailable.

Every ``--probe-every-s`` the agent's RSS (``/proc/PID/status`` VmRSS), open file
descriptors (``/proc/PID/fd``) and threads are read, then its ``/healthz``. The report
prints them at the start, at each interval and at the end, their slope after the warm-up
(the first interval), and checks: the agent never died; the fd count at the end equals the
one after warm-up; RSS grew less than ``--max-rss-growth-mb`` after warm-up; every server
fault drove the status to ``free_running`` and the agent recovered to ``synchronised``;
publishing failed during store faults and never between them; SIGTERM exits 0 and every sample the
agent took is in its sample log on disk. Exit status 1 when a check fails.

Usage: python -m lab.soak [--minutes 10] [--fault-every-s 60] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client.parser import text_string_to_metric_families

__all__ = ["Probe", "SoakResult", "Tmpfs", "main", "render", "run_soak"]

ROOT = Path(__file__).resolve().parents[1]
_SERVE_NTP = ("import signal, sys\n"
              "from clocksync.ntp import NtpServer\n"
              "NtpServer(address='127.0.0.1', port=int(sys.argv[1])).start()\n"
              "signal.pause()\n")


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Tmpfs:
    """A tiny tmpfs mounted on ``path`` (needs root): remount read-only / read-write, fill
    it to ENOSPC and free it. :meth:`close` unmounts (lazily, so open files cannot block)."""

    def __init__(self, path: Path, size_kb: int = 256) -> None:
        if os.geteuid() != 0:
            raise PermissionError("mounting a tmpfs needs root")
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self._run("mount", "-t", "tmpfs", "-o", f"size={size_kb}k,mode=0755", "tmpfs",
                  str(path))
        self._filler = path / ".filler"

    @staticmethod
    def _run(*args: str) -> None:
        subprocess.run(args, check=True, capture_output=True, timeout=10)

    def read_only(self, on: bool) -> None:
        self._run("mount", "-o", f"remount,{'ro' if on else 'rw'}", str(self.path))

    def fill(self) -> None:
        """Write until the file system is full (ENOSPC)."""
        with open(self._filler, "ab", buffering=0) as handle:
            for size in (65_536, 4_096, 512):
                with contextlib.suppress(OSError):
                    while True:
                        handle.write(b"\0" * size)

    def free(self) -> None:
        self._filler.unlink(missing_ok=True)

    def close(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run("umount", "-l", str(self.path))

    def __enter__(self) -> Tmpfs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    """Kill a child we started (by its PID, via the Popen) and reap it."""
    if proc is not None and proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGCONT)
        proc.kill()
        proc.wait(10)


def _wait_until(ready: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(Exception):  # not answering yet
            if ready():
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not ready after {timeout_s} s")
        time.sleep(0.05)


class NtpServerProcess:
    """Our NTP server in its own process (so it can be SIGKILLed and SIGSTOPped)."""

    def __init__(self) -> None:
        self.port = free_port(socket.SOCK_DGRAM)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        from clocksync.ntp import NtpClient

        self.proc = subprocess.Popen([sys.executable, "-c", _SERVE_NTP, str(self.port)],
                                     cwd=ROOT)
        with NtpClient("127.0.0.1", self.port, timeout_s=0.2, interleaved=False) as client:
            _wait_until(lambda: client.exchange() is not None, 20, "NTP server")

    def kill(self) -> None:
        _stop(self.proc)
        self.proc = None

    def pause(self, on: bool) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP if on else signal.SIGCONT)


class RedisProcess:
    """A redis-server in the foreground (no persistence) on a free loopback port."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def answers() -> bool:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")

        _wait_until(answers, 10, "redis-server")

    def kill(self) -> None:
        _stop(self.proc)
        self.proc = None


@dataclass(frozen=True, slots=True)
class Fault:
    """One fault of the rotation: inject with ``down``, repair with ``up``."""

    name: str
    down: Callable[[], None]
    up: Callable[[], None]
    kind: str  # "server" or "store"


@dataclass(frozen=True, slots=True)
class Probe:
    """The agent at one instant: seconds since start, RSS (kB), open fds, threads, and
    its /healthz status and sample count (None when it did not answer)."""

    t_s: float
    rss_kb: int
    fds: int
    threads: int
    status: str | None
    samples: int | None
    fault: str


@dataclass
class SoakResult:
    """Probes, fault events and the checks of one soak run."""

    duration_s: float
    fault_every_s: float
    warmup_s: float
    window_samples: int
    faults: list[str]
    skipped_faults: list[str]
    probes: list[Probe] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, bool] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(self.checks.values())


def _proc_figures(pid: int) -> tuple[int, int, int]:
    """(VmRSS kB, open fds, threads) of a live process, from /proc."""
    rss = threads = 0
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    return rss, len(os.listdir(f"/proc/{pid}/fd")), threads


def _get(url: str) -> str | None:
    """The body (also of an error reply: /healthz answers 503 with its JSON), or None."""
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return str(reply.read().decode())
    except urllib.error.HTTPError as exc:
        with exc:
            return str(exc.read().decode())
    except OSError:
        return None


def _metric_sum(body: str | None, name: str) -> float:
    if body is None:
        return float("nan")
    return sum(s.value for f in text_string_to_metric_families(body) for s in f.samples
               if s.name == name)


@contextlib.contextmanager
def _rig(workdir: Path, notes: list[str]) -> Iterator[tuple[NtpServerProcess,
                                                            RedisProcess | None,
                                                            Tmpfs | None]]:
    server = NtpServerProcess()
    redis: RedisProcess | None = None
    fs: Tmpfs | None = None
    try:
        server.start()
        if shutil.which("redis-server"):
            redis = RedisProcess(workdir)
            redis.start()
        else:
            notes.append("store_killed: skipped (no redis-server on PATH)")
        try:
            fs = Tmpfs(workdir / "storefs", size_kb=16_384)  # a full-window table: ~350 kB
        except (PermissionError, OSError, subprocess.CalledProcessError) as exc:
            notes.append(f"disk_full, store_read_only: skipped ({exc})")
        yield server, redis, fs
    finally:
        server.kill()
        if redis is not None:
            redis.kill()
        if fs is not None:
            fs.close()


def _faults(server: NtpServerProcess, redis: RedisProcess | None,
            fs: Tmpfs | None) -> list[Fault]:
    faults = [Fault("server_killed", server.kill, server.start, "server")]
    if redis is not None:
        faults.append(Fault("store_killed", redis.kill, redis.start, "store"))
    faults.append(Fault("server_stopped", lambda: server.pause(True),
                        lambda: server.pause(False), "server"))
    if fs is not None:
        faults.append(Fault("disk_full", fs.fill, fs.free, "store"))
        faults.append(Fault("store_read_only", lambda: fs.read_only(True),
                            lambda: fs.read_only(False), "store"))
    return faults


def run_soak(duration_s: float = 600.0, fault_every_s: float = 60.0,
             probe_every_s: float = 2.0, poll_s: float = 0.2, window_samples: int = 200,
             max_rss_growth_mb: float = 5.0, log: Callable[[str], None] | None = None
             ) -> SoakResult:
    """Run the soak (see the module docstring) and return its figures and checks.

    ``window_samples`` should fill during the warm-up (about 4 samples/s at a 0.2 s poll):
    until the window is full, memory grows with it by design.
    """
    say = log or (lambda text: None)
    workdir = Path(tempfile.mkdtemp(prefix="csh5_soak_"))
    notes: list[str] = []
    try:
        with _rig(workdir, notes) as (server, redis, fs):
            faults = _faults(server, redis, fs)
            result = SoakResult(duration_s, fault_every_s, min(fault_every_s, duration_s),
                                window_samples, [f.name for f in faults], notes)
            stores = [str(workdir / "storefs" / "tables")] if fs else []
            if redis is not None:
                stores.append(f"redis://127.0.0.1:{redis.port}/0?prefix=soak&ttl_s=120")
            if not stores:
                stores = [str(workdir / "tables")]
            _run_agent(result, workdir, server, faults, stores, probe_every_s, poll_s,
                       window_samples, max_rss_growth_mb, say)
            return result
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _run_agent(result: SoakResult, workdir: Path, server: NtpServerProcess,
               faults: list[Fault], stores: list[str], probe_every_s: float, poll_s: float,
               window_samples: int, max_rss_growth_mb: float,
               say: Callable[[str], None]) -> None:
    http_port = free_port()
    data = workdir / "data"
    args = [sys.executable, "-c", "from clocksync.cli import main; main()", "agent", "run",
            "--node", "soak", "--ntp-server", f"127.0.0.1:{server.port}",
            "--data-dir", str(data), "--http", f"127.0.0.1:{http_port}",
            "--min-poll-s", str(poll_s), "--max-poll-s", str(poll_s), "--burst", "2",
            "--timeout-s", "0.2", "--publish-backoff-max-s", "5",
            "--window-samples", str(window_samples), "--log-level", "error",
            # refit (and so publish) at least 3 times while a fault is held
            "--refit-min-s", f"{min(10.0, result.fault_every_s / 9):g}",
            "--fit-cpu-share", "0.05"]
    for store in stores:
        args += ["--store", store]
    stderr_path = workdir / "agent.stderr"
    with open(stderr_path, "wb") as stderr:
        agent = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=stderr, cwd=ROOT)
    base = f"http://127.0.0.1:{http_port}"
    active: Fault | None = None
    hold_s = result.fault_every_s / 3
    try:
        _wait_until(lambda: _get(base + "/healthz") is not None, 30, "agent HTTP")
        start = time.monotonic()
        next_probe, next_fault, fault_index, repair_at = start, start + result.fault_every_s, 0, 0.0
        while (now := time.monotonic()) < start + result.duration_s:
            if agent.poll() is not None:
                break
            if active is None and now >= next_fault and now + hold_s < start + \
                    result.duration_s:
                active = faults[fault_index % len(faults)]
                fault_index += 1
                errors = _metric_sum(_get(base + "/metrics"), "clocksync_publish_errors_total")
                active.down()
                repair_at = now + hold_s
                next_fault += result.fault_every_s
                result.events.append({"t_s": round(now - start, 1), "fault": active.name,
                                      "kind": active.kind, "statuses": [],
                                      "publish_errors_before": errors})
                say(f"{now - start:6.1f} s  inject {active.name}")
            if active is not None and now >= repair_at:
                active.up()
                event = result.events[-1]
                event["publish_errors_after"] = _metric_sum(
                    _get(base + "/metrics"), "clocksync_publish_errors_total")
                event["repaired_t_s"] = round(now - start, 1)
                say(f"{now - start:6.1f} s  repair {active.name}")
                active = None
            if now >= next_probe:
                probe = _probe(agent.pid, base, now - start, active.name if active else "")
                result.probes.append(probe)
                if active is not None and probe.status is not None:
                    result.events[-1]["statuses"].append(probe.status)
                elif result.events and probe.status is not None:
                    result.events[-1].setdefault("after", []).append(probe.status)
                next_probe += probe_every_s
            time.sleep(0.02)
        alive = agent.poll() is None
        final_probe = _probe(agent.pid, base, time.monotonic() - start, "") if alive else None
        agent.send_signal(signal.SIGTERM)
        code = agent.wait(30)
    finally:
        if active is not None:
            active.up()
        _stop(agent)
    stderr_text = stderr_path.read_text(errors="replace")
    _summarise(result, alive, final_probe, code, stderr_text, data, max_rss_growth_mb)


def _probe(pid: int, base: str, t_s: float, fault: str) -> Probe:
    rss, fds, threads = _proc_figures(pid)  # before the HTTP request adds a socket
    body = _get(base + "/healthz")
    health = json.loads(body) if body else {}
    return Probe(round(t_s, 1), rss, fds, threads, health.get("status"),
                 health.get("samples"), fault)


def _summarise(result: SoakResult, alive: bool, final: Probe | None, code: int,
               stderr_text: str, data: Path, max_rss_growth_mb: float) -> None:
    from clocksync import read_samples
    from clocksync.agent import segment_files

    if final is not None:
        result.probes.append(final)
    probes = result.probes
    warm = [p for p in probes if p.t_s >= result.warmup_s] or probes[-1:]
    t = np.array([p.t_s for p in warm])
    rss_mb = np.array([p.rss_kb / 1024 for p in warm])
    fds = np.array([p.fds for p in warm])
    slope = float(np.polyfit(t / 60, rss_mb, 1)[0]) if len(warm) >= 3 else float("nan")
    fd_slope = float(np.polyfit(t / 60, fds, 1)[0]) if len(warm) >= 3 else float("nan")
    # the fd count when nothing was broken: the last probe before the first fault
    steady = [p for p in probes if p.t_s < result.warmup_s and not p.fault] or probes[:1]
    stopped = re.search(r"stopped, status (\w+), (\d+) new samples", stderr_text)
    taken = int(stopped.group(2)) if stopped else -1
    on_disk = sum(len(read_samples(p)) for p in segment_files(data / "samples"))
    between = [later["publish_errors_before"] - earlier.get("publish_errors_after", 0)
               for earlier, later in itertools.pairwise(result.events)]
    result.summary = {
        "rss_start_mb": round(probes[0].rss_kb / 1024, 1),
        "rss_warm_mb": round(float(rss_mb[0]), 1),
        "rss_end_mb": round(float(rss_mb[-1]), 1),
        "rss_growth_after_warmup_mb": round(float(rss_mb[-1] - rss_mb[0]), 2),
        "rss_slope_mb_per_min": round(slope, 3),
        "fds_start": probes[0].fds, "fds_warm": steady[-1].fds,
        "fds_end": int(fds[-1]), "fds_min": int(fds.min()), "fds_max": int(fds.max()),
        "fd_slope_per_min": round(fd_slope, 3),
        "samples_end": final.samples if final else None,
        "status_end": final.status if final else None,
        "samples_taken": taken, "samples_on_disk": on_disk, "exit_code": code,
        "tracebacks": stderr_text.count("Traceback"),
        "publish_errors_between_faults": between,
    }
    server_events = [e for e in result.events if e["kind"] == "server"]
    store_events = [e for e in result.events if e["kind"] == "store"]
    result.checks = {
        "agent alive to the end": alive,
        "fds at the end == after warm-up": final is not None and final.fds == steady[-1].fds,
        f"RSS growth after warm-up < {max_rss_growth_mb:g} MB":
            float(rss_mb[-1] - rss_mb[0]) < max_rss_growth_mb,
        "server faults -> free_running": bool(server_events) and all(
            "free_running" in e["statuses"] for e in server_events),
        "store faults -> publish errors": all(
            e.get("publish_errors_after", 0) > e["publish_errors_before"]
            for e in store_events),
        "no publish errors between faults": all(n <= 1 for n in between),
        "synchronised at the end": final is not None and final.status == "synchronised",
        "SIGTERM -> exit 0": code == 0,
        "no sample lost (taken == on disk)": taken == on_disk and taken > 0,
        "no traceback": result.summary["tracebacks"] == 0,
    }


def render(result: SoakResult) -> str:
    """The report: probes at the start, each interval and the end; slopes; checks."""
    lines = [f"soak: {result.duration_s:g} s, a fault every {result.fault_every_s:g} s "
             f"(held {result.fault_every_s / 3:.0f} s) in rotation: {', '.join(result.faults)}; "
             f"refit window {result.window_samples} samples"]
    lines += [f"  note: {n}" for n in result.skipped_faults]
    lines.append("")
    lines.append(f"{'t s':>7} {'RSS MB':>8} {'fds':>5} {'thr':>4} {'samples':>8}  "
                 f"{'status':<13} fault in the interval before")
    picks: list[Probe] = []
    probes = result.probes
    for k in range(int(result.duration_s // result.fault_every_s) + 1):
        edge = k * result.fault_every_s
        before = [p for p in probes if p.t_s <= edge + 1e-9]
        pick = before[-1] if before else probes[0]
        if pick not in picks:
            picks.append(pick)
    if probes and probes[-1] not in picks:
        picks.append(probes[-1])
    for p in picks:
        window = [e["fault"] for e in result.events
                  if p.t_s - result.fault_every_s < e["t_s"] <= p.t_s]
        lines.append(f"{p.t_s:7.1f} {p.rss_kb / 1024:8.1f} {p.fds:5d} {p.threads:4d} "
                     f"{p.samples if p.samples is not None else '-':>8}  "
                     f"{p.status or '-':<13} {', '.join(window)}")
    lines.append("")
    lines.append("fault events (statuses seen while held -> after repair):")
    for e in result.events:
        seen = sorted(set(e["statuses"]))
        after = e.get("after", [])
        lines.append(f"  {e['t_s']:7.1f} s {e['fault']:<16} {','.join(seen) or '-':<28} -> "
                     f"{after[-1] if after else '-':<13} publish errors "
                     f"{e['publish_errors_before']:g} -> {e.get('publish_errors_after', 0):g}")
    s = result.summary
    lines.append("")
    lines.append(f"RSS: start {s['rss_start_mb']} MB, after warm-up ({result.warmup_s:g} s) "
                 f"{s['rss_warm_mb']} MB, end {s['rss_end_mb']} MB; growth after warm-up "
                 f"{s['rss_growth_after_warmup_mb']:+} MB, slope "
                 f"{s['rss_slope_mb_per_min']:+} MB/min (least squares, "
                 f"{result.probes[1].t_s - result.probes[0].t_s if len(result.probes) > 1 else 0:g}"
                 f" s probes; RSS resolution 4 kB)")
    lines.append(f"fds: start {s['fds_start']}, after warm-up {s['fds_warm']}, end "
                 f"{s['fds_end']} (min {s['fds_min']}, max {s['fds_max']} during faults), "
                 f"slope {s['fd_slope_per_min']:+} /min")
    lines.append(f"samples: {s['samples_taken']} taken, {s['samples_on_disk']} on disk; "
                 f"exit code {s['exit_code']}")
    lines.append("")
    for name, ok in result.checks.items():
        lines.append(f"  [{'ok' if ok else 'FAIL'}] {name}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="run length (default 10)")
    parser.add_argument("--fault-every-s", type=float, default=60.0,
                        help="one fault per this many seconds, held a third of it (default 60)")
    parser.add_argument("--probe-every-s", type=float, default=2.0,
                        help="read RSS, fds and /healthz this often (default 2)")
    parser.add_argument("--poll-s", type=float, default=0.2, help="agent poll (default 0.2)")
    parser.add_argument("--window-samples", type=int, default=200,
                        help="agent's refit window; fills during the warm-up (default 200)")
    parser.add_argument("--max-rss-growth-mb", type=float, default=5.0,
                        help="allowed RSS growth after warm-up (default 5)")
    parser.add_argument("--json", action="store_true", help="print a JSON object")
    args = parser.parse_args(argv)
    result = run_soak(args.minutes * 60, args.fault_every_s, args.probe_every_s, args.poll_s,
                      args.window_samples, args.max_rss_growth_mb,
                      log=None if args.json else lambda t: print(t, file=sys.stderr))
    if args.json:
        print(json.dumps({"duration_s": result.duration_s,
                          "fault_every_s": result.fault_every_s, "faults": result.faults,
                          "notes": result.skipped_faults,
                          "probes": [asdict(p) for p in result.probes],
                          "events": result.events, "summary": result.summary,
                          "checks": result.checks, "ok": result.ok}))
    else:
        print(render(result))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
