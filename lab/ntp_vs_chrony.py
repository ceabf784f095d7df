"""Our NTP client beside a measure-only chronyd client, both against a chronyd server.

Topology per scenario (lab.netlab; all namespaces share one system clock, so the true
offset is exactly 0 and every measured offset is a measured error)::

    {prefix}a [chronyd server, local stratum 1] 10.200.x.1
         | direct veth, or via {prefix}r running the user-space delay bridge
    {prefix}b [our client + chronyd -x client, minpoll/maxpoll -2] 10.200.x.2

All clients poll every 0.25 s for ``--seconds``, each from its own source address (servers
keep interleaved-mode state per client address): ours in interleaved mode, in basic mode,
and interleaved with a min-delay burst of 3 exchanges per poll; chronyd in basic and in
``xleave`` mode. chronyd's raw offsets come from its
``measurements.log`` (only measurements that passed all its tests); its "bound" for the
coverage column is chrony's own distance ``peer delay/2 + peer dispersion + root delay/2 +
root dispersion``. Ours is the sample's ``bound_ns``.

Run as root: ``python -m lab.ntp_vs_chrony [--seconds S]``. Nothing touches the clock:
every chronyd runs with ``-x``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lab.netlab import BridgeParams, Topology, missing_requirements

__all__ = [
    "Scenario",
    "Stats",
    "chrony_client_conf",
    "chrony_server_conf",
    "chrony_workdir",
    "parse_measurements",
    "run_scenario",
]

POLL_S = 0.25  # chronyd minpoll -2


def chrony_workdir(prefix: str) -> Path:
    """A temp dir chronyd (which drops privileges to ``_chrony``) can write into."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    shutil.chown(path, "_chrony", "_chrony")
    path.chmod(0o770)
    return path


def chrony_server_conf(workdir: Path, *, allow: str, port: int = 123,
                       bind: str | None = None) -> Path:
    """Write a measure-only chronyd server config (``local stratum 1``); returns its path."""
    lines = ["local stratum 1", f"allow {allow}", f"port {port}", "cmdport 0",
             f"pidfile {workdir}/chronyd.pid", f"driftfile {workdir}/drift",
             f"logdir {workdir}"]
    if bind:
        lines.append(f"bindaddress {bind}")
    conf = workdir / "server.conf"
    conf.write_text("\n".join(lines) + "\n")
    return conf


def chrony_client_conf(workdir: Path, server: str, port: int = 123,
                       xleave: bool = False, source: str | None = None) -> Path:
    """Write a chronyd client config polling ``server`` every 0.25 s, logging measurements.

    ``noselect``: chronyd measures but never selects the source, so its (null-driver) clock
    model never absorbs the measured offset and ``measurements.log`` keeps raw offsets
    against the true (system) clock. Without it, ``-x`` chronyd logs offsets relative to its
    own corrected time: residuals that hide a constant bias.
    """
    opts = "iburst minpoll -2 maxpoll -2 noselect" + (" xleave" if xleave else "")
    lines = [f"server {server} port {port} {opts}", "port 0",
             *([f"bindacqaddress {source}"] if source else []),
             "cmdport 0", f"pidfile {workdir}/chronyd.pid", f"driftfile {workdir}/drift",
             f"logdir {workdir}", "log measurements"]
    conf = workdir / "client.conf"
    conf.write_text("\n".join(lines) + "\n")
    return conf


@dataclass(frozen=True, slots=True)
class Measured:
    """One offset (ns, reference - local as the tool reports it) with the tool's bound (ns)."""

    offset_ns: float
    bound_ns: float
    delay_ns: float = math.nan


def parse_measurements(path: Path) -> list[Measured]:
    """Raw measurements from chrony's ``measurements.log`` that passed every test.

    Columns: date time IP L St 123 567 ABCD LP RP Score Offset PeerDel PeerDisp RootDel
    RootDisp Refid [MTxRx]; offsets and delays in seconds.
    """
    out: list[Measured] = []
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        cols = line.split()
        if len(cols) < 16 or not cols[0][:4].isdigit():
            continue
        if set(cols[5] + cols[6] + cols[7]) != {"1"}:
            continue
        offset, peer_del, peer_disp, root_del, root_disp = (float(c) for c in cols[11:16])
        bound = peer_del / 2 + peer_disp + root_del / 2 + root_disp
        out.append(Measured(offset * 1e9, bound * 1e9, peer_del * 1e9))
    return out


@dataclass(frozen=True, slots=True)
class Stats:
    """Error statistics against a true offset of 0."""

    samples: int
    rms_ns: float
    max_abs_ns: float
    coverage: float
    median_bound_ns: float
    mean_ns: float
    median_delay_ns: float

    @classmethod
    def of(cls, rows: Sequence[Measured]) -> Stats:
        if not rows:
            nan = math.nan
            return cls(0, nan, nan, nan, nan, nan, nan)
        offs = [r.offset_ns for r in rows]
        return cls(
            samples=len(rows),
            rms_ns=math.sqrt(sum(o * o for o in offs) / len(offs)),
            max_abs_ns=max(abs(o) for o in offs),
            coverage=sum(abs(r.offset_ns) <= r.bound_ns for r in rows) / len(rows),
            median_bound_ns=statistics.median(r.bound_ns for r in rows),
            mean_ns=statistics.fmean(offs),
            median_delay_ns=statistics.median(r.delay_ns for r in rows),
        )


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    subnet: str
    bridge: BridgeParams | None


SCENARIOS = (
    Scenario("direct veth", "10.200.3", None),
    Scenario("bridge 200µs±100µs", "10.200.13", BridgeParams(200, 200, 100)),
    Scenario("bridge asym +1ms a->b", "10.200.13", BridgeParams(1000, 0, 50)),
)


def _worker(server: str, port: int, seconds: float, interleaved: bool,
            source: str | None, burst: int) -> int:
    """Inside the client namespace: every POLL_S one exchange (or the min-delay sample of a
    burst of ``burst`` exchanges 2 ms apart); one JSON line per sample."""
    from clocksync.ntp import NtpClient, NtpRejectError, NtpTimeoutError

    end = time.monotonic() + seconds
    with NtpClient(server, port, node="lab", timeout_s=0.5, interleaved=interleaved,
                   source_address=source) as client:
        next_t = time.monotonic()
        while time.monotonic() < end:
            try:
                s = (client.exchange().sample if burst <= 1
                     else client.burst(burst, interval_s=0.002).best.sample)
                print(json.dumps({"offset_ns": s.offset_ns, "delay_ns": s.delay_ns,
                                  "bound_ns": s.bound}), flush=True)
            except (NtpRejectError, NtpTimeoutError, OSError) as exc:
                print(json.dumps({"error": str(exc)}), flush=True)
            next_t += POLL_S
            time.sleep(max(0.0, next_t - time.monotonic()))
    return 0


def run_scenario(sc: Scenario, seconds: float, prefix: str = "csntpl") -> dict[str, Stats]:
    """Run all clients side by side in one topology; statistics per tool."""
    dirs = {name: chrony_workdir(f"csntp_{name}_") for name in ("srv", "basic", "xleave")}
    try:
        with Topology(prefix, sc.subnet, bridge=sc.bridge) as topo:
            conf = chrony_server_conf(dirs["srv"], allow="10.200.0.0/16")
            quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
            topo.spawn(topo.ns_a, ["chronyd", "-x", "-d", "-f", str(conf)], **quiet)
            # one source address per client: servers keep interleaved state per address
            source = {key: f"{sc.subnet}.{3 + i}" for i, key in enumerate(
                ("ours xleave", "ours basic", "ours burst", "chronyd xleave",
                 "chronyd basic"))}
            for address in source.values():
                topo.add_address(topo.ns_b, address)
            time.sleep(0.5)
            chronies = [
                topo.spawn(topo.ns_b, ["chronyd", "-x", "-d", "-f", str(
                    chrony_client_conf(dirs[name], topo.ip_a, xleave=name == "xleave",
                                       source=source[f"chronyd {name}"]))],
                    **quiet)
                for name in ("basic", "xleave")
            ]
            ours = {
                mode: topo.spawn(topo.ns_b, [sys.executable, "-m", "lab.ntp_vs_chrony",
                                             "worker", topo.ip_a, "--seconds", str(seconds),
                                             "--source", source[f"ours {mode}"],
                                             *(["--basic"] if mode == "basic" else []),
                                             *(["--burst", "3"] if mode == "burst" else [])],
                                 stdout=subprocess.PIPE)
                for mode in ("xleave", "basic", "burst")
            }
            outs = {mode: proc.communicate(timeout=seconds + 30)[0]
                    for mode, proc in ours.items()}
            for proc in chronies:
                topo.stop(proc)
        result: dict[str, Stats] = {}
        for mode, label in (("xleave", "clocksync xleave"), ("basic", "clocksync basic"),
                            ("burst", "clocksync burst3")):
            rows = [json.loads(line) for line in outs[mode].decode().splitlines() if line]
            result[label] = Stats.of([Measured(r["offset_ns"], r["bound_ns"], r["delay_ns"])
                                      for r in rows if "offset_ns" in r])
        for name in ("xleave", "basic"):
            result[f"chronyd {name}"] = Stats.of(
                parse_measurements(dirs[name] / "measurements.log"))
        return result
    finally:
        for path in dirs.values():
            shutil.rmtree(path, ignore_errors=True)


def _us(ns: float) -> str:
    return "-" if math.isnan(ns) else f"{ns / 1e3:.2f}"


def format_table(results: list[tuple[str, str, Stats]]) -> str:
    head = (f"{'scenario':<24} {'tool':<16} {'samples':>7} {'rms µs':>9} {'mean µs':>9} "
            f"{'max|err| µs':>11} {'coverage':>8} {'med bound µs':>12} {'med delay µs':>12}")
    lines = [head, "-" * len(head)]
    for scenario, tool, st in results:
        cov = "-" if math.isnan(st.coverage) else f"{st.coverage * 100:.1f}%"
        lines.append(f"{scenario:<24} {tool:<16} {st.samples:>7} {_us(st.rms_ns):>9} "
                     f"{_us(st.mean_ns):>9} {_us(st.max_abs_ns):>11} {cov:>8} "
                     f"{_us(st.median_bound_ns):>12} {_us(st.median_delay_ns):>12}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.ntp_vs_chrony", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    worker = sub.add_parser("worker", help=argparse.SUPPRESS)
    worker.add_argument("server")
    worker.add_argument("--port", type=int, default=123)
    worker.add_argument("--seconds", type=float, default=10.0)
    worker.add_argument("--basic", action="store_true", help="no interleaved mode")
    worker.add_argument("--source", default=None, help="local address to send from")
    worker.add_argument("--burst", type=int, default=1, help="exchanges per poll (min delay)")
    parser.add_argument("--seconds", type=float, default=25.0,
                        help="measurement time per scenario (default 25; 3 scenarios)")
    parser.add_argument("--scenario", action="append", default=None,
                        help="run only scenarios whose name starts with this (repeatable)")
    args = parser.parse_args(argv)
    if args.command == "worker":
        return _worker(args.server, args.port, args.seconds, not args.basic, args.source,
                       args.burst)
    why = missing_requirements("chronyd")
    if why:
        print(f"cannot run: {why}", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        return 2
    results: list[tuple[str, str, Stats]] = []
    for sc in SCENARIOS:
        if args.scenario and not any(sc.name.startswith(p) for p in args.scenario):
            continue
        for tool, st in run_scenario(sc, args.seconds).items():
            results.append((sc.name, tool, st))
    print(format_table(results))
    print("true offset is 0 (one shared system clock); coverage = share of samples with "
          "|offset| <= the tool's bound (chronyd: its delay/2 + dispersion)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
