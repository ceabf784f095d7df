"""Our measure-only PTP slave beside a ptp4l slave, both against a ptp4l master.

Topologies (``lab.netlab``; all namespaces share one system clock, so the true offset is
exactly 0 and every measured offset is a measured error)::

    direct:   [csptpNNNNa: ptp4l master] veth ───────────── veth [csptpNNNNb: ours + ptp4l -s]
    bridged:  [...a: ptp4l master] veth ── [...r: user-space delay bridge] ── veth [...b: ...]

Run as root: ``python -m lab.ptp_vs_ptp4l [--seconds S] [--no-bridge]``. Prints, for ours
and ptp4l's: offset rms, max |error|, mean error, median path delay, median bound and the
share of samples whose bound holds the truth. ptp4l's per-Sync measurements are read from
its management socket (``TIME_STATUS_NP``; its bound, meanPathDelay, is the one
:class:`ptp.Ptp4lClient` gives, which assumes no delay outlier on that Sync).
Every ptp4l runs with ``free_running 1``: nothing here ever adjusts a clock.

``python -m lab.ptp_vs_ptp4l ours IFACE --seconds S [--offset-ns X --skew-ppm Y]`` is the
child run inside the slave namespace: our slave on a (simulated) clock, one JSON line per
exchange with the true offset of that clock (``truth_ns``).
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
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clocksync import ClockSyncError, Sample
from lab.netlab import BridgeParams, Topology
from lab.netlab import missing_requirements as _netlab_missing
from ptp import MASTER_OPTIONS, SLAVE_OPTIONS, Ptp4lClient, config_text

__all__ = ["Ptp4lPoller", "PtpLab", "Stats", "compare", "missing_requirements", "run_ours", "stats"]

DIRECT_SUBNET = "10.200.4"
BRIDGED_SUBNET = "10.200.14"


def missing_requirements() -> str | None:
    """Why the lab cannot run here (``None`` when it can)."""
    return _netlab_missing("ptp4l")


@dataclass
class PtpLab:
    """A :class:`lab.netlab.Topology` (master side ``a``, slave side ``b``) plus log files.

    Use as a context manager; every process and namespace is removed on exit, also on
    failure. ``tag`` keeps concurrent runs apart (names ``csptp<tag>a``/``b``/``r``).
    """

    bridge: BridgeParams | None = None
    tag: str = field(default_factory=lambda: f"{os.getpid() % 10000:04d}")
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="csptp_")))
    topo: Topology = field(init=False)

    def __post_init__(self) -> None:
        subnet = DIRECT_SUBNET if self.bridge is None else BRIDGED_SUBNET
        self.topo = Topology(prefix=f"csptp{self.tag}", subnet=subnet, bridge=self.bridge)

    @property
    def master_ns(self) -> str:
        return self.topo.ns_a

    @property
    def slave_ns(self) -> str:
        return self.topo.ns_b

    @property
    def master_if(self) -> str:
        return self.topo.if_a

    @property
    def slave_if(self) -> str:
        return self.topo.if_b

    def __enter__(self) -> PtpLab:
        try:
            self.topo.__enter__()
        except BaseException:
            shutil.rmtree(self.workdir, ignore_errors=True)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop every process, delete the namespaces and the work directory."""
        self.topo.close()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def start(self, ns: str, argv: Sequence[str], log_name: str) -> subprocess.Popen[bytes]:
        """Start ``argv`` in namespace ``ns`` with its output in ``workdir/log_name``."""
        with open(self.workdir / log_name, "wb") as log:
            return self.topo.spawn(ns, argv, stdout=log, stderr=subprocess.STDOUT)

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        """Stop one process started here (by PID)."""
        self.topo.stop(proc)

    def log(self, log_name: str) -> str:
        """The output so far of the process logging to ``log_name``."""
        path = self.workdir / log_name
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_for(self, log_name: str, text: str, timeout_s: float) -> bool:
        """Wait until ``text`` appears in the log (``False`` on timeout)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if text in self.log(log_name):
                return True
            time.sleep(0.05)
        return False

    def start_ptp4l(self, role: str, transport: str = "udp") -> subprocess.Popen[bytes]:
        """A ptp4l ``master`` (side a) or ``slave`` (``-s``, side b), ``free_running 1``,
        over UDPv4 (``-4``) or Ethernet (``transport="l2"``, ``-2``)."""
        master = role == "master"
        ns, dev = (self.master_ns, self.master_if) if master else (self.slave_ns, self.slave_if)
        cfg = self.workdir / f"{role}.cfg"
        options = MASTER_OPTIONS if master else SLAVE_OPTIONS
        cfg.write_text(config_text(str(self.workdir / f"{role}.sock"), options))
        net = "-2" if transport == "l2" else "-4"
        argv = ["ptp4l", "-i", dev, "-S", net, "-m", "-f", str(cfg)]
        return self.start(ns, [*argv, *([] if master else ["-s"])], f"ptp4l-{role}.log")

    def start_master(self, timeout_s: float = 10.0, transport: str = "udp") -> None:
        """Start the ptp4l master and wait until it has taken the master role."""
        self.start_ptp4l("master", transport)
        if not self.wait_for("ptp4l-master.log", "assuming the grand master role", timeout_s):
            raise RuntimeError(f"ptp4l master not ready: {self.log('ptp4l-master.log')[-500:]}")

    def run_ours(
        self, seconds: float, offset_ns: float = 0.0, skew_ppm: float = 0.0,
        transport: str = "udp",
    ) -> list[dict[str, Any]]:  # fmt: skip
        """Run our slave in the slave namespace for ``seconds``; its JSON records."""
        argv = [sys.executable, "-m", "lab.ptp_vs_ptp4l", "ours", self.slave_if,
                "--seconds", str(seconds), "--offset-ns", str(offset_ns),
                "--skew-ppm", str(skew_ppm), "--transport", transport]  # fmt: skip
        done = self.topo.exec(self.slave_ns, *argv, check=False, timeout_s=seconds + 60)
        if done.returncode != 0:
            raise RuntimeError(f"our slave failed ({done.returncode}): {done.stderr[-2000:]}")
        return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def run_ours(
    iface: str, seconds: float, offset_ns: float, skew_ppm: float, transport: str = "udp"
) -> None:
    """Child process: our slave on a simulated clock, JSON lines with ``truth_ns``."""
    from clocksync import SimClock
    from ptp import PtpSlave, result_record

    clock = SimClock(t0_ns=time.time_ns(), offset0_ns=offset_ns, skew_ppm=skew_ppm)

    def truth(t_local_ns: int) -> float:
        t_sys = t_local_ns  # invert local = sys - offset(sys) by fixed point iteration
        for _ in range(3):
            t_sys = t_local_ns + round(float(clock.offset_ns(t_sys)))
        return float(clock.offset_ns(t_sys))

    with PtpSlave(iface, clock=clock, transport=transport) as slave:
        for r in slave.run(seconds):
            rec = result_record(r)
            rec["truth_ns"] = truth(r.measurement.t_local_ns)
            print(json.dumps(rec), flush=True)


@dataclass(frozen=True, slots=True)
class Stats:
    """Error statistics of one tool in one run (ns; error = measured - true offset)."""

    who: str
    n: int
    rms_ns: float
    max_abs_ns: float
    mean_ns: float
    path_delay_ns: float
    bound_median_ns: float = math.nan
    coverage: float = math.nan  # share of all samples (outliers too) with |error| <= bound

    def row(self, topology: str) -> str:
        cov = "n/a" if math.isnan(self.coverage) else f"{100 * self.coverage:.1f}%"
        bound = "n/a" if math.isnan(self.bound_median_ns) else f"{self.bound_median_ns:.0f}"
        return (f"| {topology:8} | {self.who:6} | {self.n:4d} | {self.rms_ns:9.0f} | "
                f"{self.max_abs_ns:9.0f} | {self.mean_ns:8.0f} | {self.path_delay_ns:10.0f} | "
                f"{bound:>8} | {cov:>8} |")  # fmt: skip


HEADER = (
    "| topology | who    |    n | rms (ns)  | max|e| ns | mean ns  | path delay "
    "| bound md | coverage |\n"
    "|----------|--------|------|-----------|-----------|----------|------------"
    "|----------|----------|"
)


def stats(who: str, errors: Sequence[float], delays: Sequence[float],
          bounds: Sequence[float] = (), covered: Sequence[bool] = ()) -> Stats:  # fmt: skip
    """Summary of measured-minus-true offsets ``errors`` (ns); ``covered`` says for every
    sample (outliers included) whether its bound held the truth."""
    if not errors:
        return Stats(who, 0, math.nan, math.nan, math.nan, math.nan)
    cov = sum(covered) / len(covered) if covered else math.nan
    return Stats(
        who=who,
        n=len(errors),
        rms_ns=math.sqrt(sum(e * e for e in errors) / len(errors)),
        max_abs_ns=max(abs(e) for e in errors),
        mean_ns=statistics.fmean(errors),
        path_delay_ns=float(statistics.median(delays)),
        bound_median_ns=float(statistics.median(bounds)) if bounds else math.nan,
        coverage=cov,
    )


def compare(
    seconds: float, bridge: BridgeParams | None = None, offset_ns: float = 0.0,
    skew_ppm: float = 0.0, with_ptp4l: bool = True, transport: str = "udp",
) -> tuple[Stats, Stats | None]:  # fmt: skip
    """One run: master, (ptp4l slave,) our slave for ``seconds``; stats of both."""
    with PtpLab(bridge=bridge) as lab:
        if with_ptp4l:
            lab.start_ptp4l("slave", transport)
        lab.start_master(transport=transport)
        poller = Ptp4lPoller(str(lab.workdir / "slave.sock")) if with_ptp4l else None
        try:
            records = lab.run_ours(seconds, offset_ns, skew_ppm, transport)
        finally:
            theirs_samples = poller.stop() if poller is not None else []
    ours = [r for r in records if r["accepted"]]
    mine = stats(
        "ours",
        [r["offset_ns"] - r["truth_ns"] for r in ours],
        [r["mean_path_delay_ns"] for r in ours],
        [r["bound_ns"] for r in ours],
        [abs(r["offset_ns"] - r["truth_ns"]) <= r["bound_ns"] for r in records],
    )
    if not with_ptp4l:
        return mine, None
    theirs_samples = theirs_samples[1:]  # before ptp4l's path delay has settled
    theirs = stats(
        "ptp4l",
        [s.offset_ns for s in theirs_samples],
        [s.delay_ns / 2 for s in theirs_samples],
        [s.bound for s in theirs_samples],
        [abs(s.offset_ns) <= s.bound for s in theirs_samples],
    )
    return mine, theirs


class Ptp4lPoller:
    """Collects ptp4l's per-Sync measurements (``TIME_STATUS_NP`` over its UDS) in a thread.

    ptp4l with ``free_running 1`` logs one line per second; its management socket has every
    Sync's offset, so both tools are compared on all their measurements.
    """

    def __init__(self, uds_path: str, period_s: float = 0.05) -> None:
        self._uds_path = uds_path
        self._period_s = period_s
        self._stop = threading.Event()
        self._samples: dict[int, Sample] = {}
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        client: Ptp4lClient | None = None
        while not self._stop.wait(self._period_s):
            try:
                client = client or Ptp4lClient(self._uds_path, timeout_s=0.5)
                sample = client.sample("ptp4l")
            except (ClockSyncError, OSError):
                continue  # ptp4l not up yet
            if sample is not None:
                self._samples.setdefault(sample.t_local_ns, sample)
        if client is not None:
            client.close()

    def stop(self) -> list[Sample]:
        """Stop polling; the distinct measurements in time order."""
        self._stop.set()
        self._thread.join(timeout=5)
        return [self._samples[k] for k in sorted(self._samples)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.ptp_vs_ptp4l")
    sub = parser.add_subparsers(dest="command")
    child = sub.add_parser("ours", help="(internal) run our slave inside the namespace")
    child.add_argument("iface")
    child.add_argument("--seconds", type=float, default=10.0)
    child.add_argument("--offset-ns", type=float, default=0.0)
    child.add_argument("--skew-ppm", type=float, default=0.0)
    child.add_argument("--transport", choices=["udp", "l2"], default="udp")
    parser.add_argument("--seconds", type=float, default=20.0, help="per run (s)")
    parser.add_argument("--no-bridge", action="store_true", help="direct veth only")
    args = parser.parse_args(argv)
    if args.command == "ours":
        run_ours(args.iface, args.seconds, args.offset_ns, args.skew_ppm, args.transport)
        return 0
    reason = missing_requirements()
    if reason is not None:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    runs: list[tuple[str, BridgeParams | None, float, float, str]] = [
        ("direct", None, 0.0, 0.0, "udp"),
        ("skewed", None, 2_000_000.0, 100.0, "udp"),  # our node on a SimClock: +2 ms, 100 ppm
        ("l2", None, 0.0, 0.0, "l2"),
    ]
    if not args.no_bridge:
        runs.append(("bridge", BridgeParams(jitter_us=20.0), 0.0, 0.0, "udp"))
        runs.append(("asym", BridgeParams(delay_ab_us=200.0, jitter_us=20.0), 0.0, 0.0, "udp"))
    print(f"# ours vs ptp4l, {args.seconds:g} s per run; error = measured - true offset (ns)")
    print(HEADER)
    for name, bridge, off, skew, transport in runs:
        mine, theirs = compare(args.seconds, bridge, off, skew, transport=transport)
        print(mine.row(name))
        if theirs is not None and name != "skewed":  # ptp4l's clock is not the simulated one
            print(theirs.row(name))
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
