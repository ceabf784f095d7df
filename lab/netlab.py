"""Network-namespace topologies and a user-space delay bridge, for lab scripts and root tests.

All namespaces share one system clock, so the true offset between any two of them is exactly
0: every offset a tool measures across them is its error. The kernel here has no ``netem``,
so delay, jitter and asymmetry come from a user-space bridge (LAB-NOTES.md): a "router"
namespace holds two veth ends with an ``AF_PACKET`` socket on each, and every frame waits in
a per-direction queue until its release time has passed::

    direct:   [ns a] veth ───────────────────────────── veth [ns b]
    bridged:  [ns a] veth ── veth [ns r: bridge] veth ── veth [ns b]

Use :class:`Topology` as a context manager: namespaces it creates and processes it starts
(:meth:`Topology.spawn`) are removed and stopped by PID on exit, also on failure. Run as
root. ``python -m lab.netlab bridge IF_A IF_B [--delay-ab-us ...]`` is the bridge itself.
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import os
import random
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

__all__ = [
    "BridgeParams",
    "Topology",
    "missing_requirements",
    "run_bridge",
    "stop_process",
]

REPO_ROOT = Path(__file__).resolve().parents[1]
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


def missing_requirements(*tools: str) -> str | None:
    """Why a namespace lab cannot run here (``None`` when it can)."""
    if os.geteuid() != 0:
        return "needs root: creates network namespaces"
    for tool in ("ip", "ethtool", *tools):
        if shutil.which(tool) is None:
            return f"needs {tool} on PATH"
    return None


def _run(*argv: str) -> None:
    subprocess.run(list(argv), check=True, capture_output=True, text=True)


def stop_process(proc: subprocess.Popen[bytes], timeout_s: float = 3.0) -> None:
    """Stop a process we started: SIGTERM, then SIGKILL after ``timeout_s``, by its PID."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout_s)


@dataclass(frozen=True, slots=True)
class BridgeParams:
    """One-way delays of the bridge (µs). Jitter is uniform in ``[0, jitter_us)``, added per
    frame; frames never overtake each other within one direction.

    Attributes:
        delay_ab_us: added delay a -> b (µs), on top of the bridge's own ~100 µs.
        delay_ba_us: added delay b -> a (µs); ``delay_ab_us != delay_ba_us`` is asymmetry,
            which shifts NTP/PTP offsets by half the difference.
        jitter_us: width of the uniform random extra delay (µs), per direction.
        seed: random seed of the jitter.
    """

    delay_ab_us: float = 0.0
    delay_ba_us: float = 0.0
    jitter_us: float = 0.0
    seed: int = 1

    def argv(self) -> list[str]:
        return ["--delay-ab-us", str(self.delay_ab_us), "--delay-ba-us", str(self.delay_ba_us),
                "--jitter-us", str(self.jitter_us), "--seed", str(self.seed)]


@dataclass
class Topology:
    """Namespaces ``{prefix}a`` and ``{prefix}b`` joined directly or through ``{prefix}r``.

    Args:
        prefix: namespace/interface name prefix (keep it <= 9 characters; distinct per user).
        subnet: first three octets of the /24 used, e.g. ``"10.200.3"``; a gets ``.1``, b ``.2``.
        bridge: ``None`` for a direct veth, else the parameters of the delay bridge.
    """

    prefix: str
    subnet: str
    bridge: BridgeParams | None = None
    _netns: list[str] = field(default_factory=list)
    _procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def ns_a(self) -> str:
        return f"{self.prefix}a"

    @property
    def ns_b(self) -> str:
        return f"{self.prefix}b"

    @property
    def ns_r(self) -> str:
        return f"{self.prefix}r"

    @property
    def ip_a(self) -> str:
        return f"{self.subnet}.1"

    @property
    def ip_b(self) -> str:
        return f"{self.subnet}.2"

    def __enter__(self) -> Topology:
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _add_ns(self, name: str) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            _run("ip", "netns", "del", name)  # left over by a killed run of ours
        _run("ip", "netns", "add", name)
        self._netns.append(name)
        _run("ip", "-n", name, "link", "set", "lo", "up")
        self.exec(name, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")

    def _veth(self, ns1: str, if1: str, ns2: str, if2: str) -> None:
        _run("ip", "link", "add", if1, "netns", ns1, "type", "veth", "peer", "name", if2,
             "netns", ns2)
        for ns, dev in ((ns1, if1), (ns2, if2)):
            self.exec(ns, "ethtool", "-K", dev, "tx", "off", "tso", "off", "gso", "off",
                      "gro", "off")
            _run("ip", "-n", ns, "link", "set", dev, "up")

    def _build(self) -> None:
        self._add_ns(self.ns_a)
        self._add_ns(self.ns_b)
        if self.bridge is None:
            self._veth(self.ns_a, self.if_a, self.ns_b, self.if_b)
        else:
            self._add_ns(self.ns_r)
            self._veth(self.ns_a, self.if_a, self.ns_r, f"{self.prefix}ra")
            self._veth(self.ns_r, f"{self.prefix}rb", self.ns_b, self.if_b)
            self.spawn(self.ns_r, [sys.executable, "-m", "lab.netlab", "bridge",
                                   f"{self.prefix}ra", f"{self.prefix}rb", *self.bridge.argv()],
                       stdout=subprocess.DEVNULL)
        _run("ip", "-n", self.ns_a, "addr", "add", f"{self.ip_a}/24", "dev", self.if_a)
        _run("ip", "-n", self.ns_b, "addr", "add", f"{self.ip_b}/24", "dev", self.if_b)
        self._wait_reachable()

    @property
    def if_a(self) -> str:
        return f"{self.prefix}va"

    @property
    def if_b(self) -> str:
        return f"{self.prefix}vb"

    def _wait_reachable(self, timeout_s: float = 5.0) -> None:
        """Resolve ARP both ways with a UDP datagram (there is no ``ping`` here)."""
        code = ("import socket,time\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
                "for _ in range(10):\n s.sendto(b'x',(%r,9)); time.sleep(0.01)\n")
        deadline = time.monotonic() + timeout_s
        for ns, ip in ((self.ns_a, self.ip_b), (self.ns_b, self.ip_a)):
            left = max(0.1, deadline - time.monotonic())
            subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", code % ip],
                           check=False, capture_output=True, timeout=left + 2)

    def add_address(self, ns: str, address: str) -> None:
        """Give namespace ``ns`` (``ns_a`` or ``ns_b``) one more address in the subnet."""
        dev = self.if_a if ns == self.ns_a else self.if_b
        _run("ip", "-n", ns, "addr", "add", f"{address}/24", "dev", dev)

    def exec(self, ns: str, *argv: str, check: bool = True,
             timeout_s: float | None = 60) -> subprocess.CompletedProcess[str]:
        """Run a command inside namespace ``ns`` and wait for it."""
        return subprocess.run(["ip", "netns", "exec", ns, *argv], check=check,
                              capture_output=True, text=True, timeout=timeout_s,
                              cwd=REPO_ROOT)

    def spawn(self, ns: str, argv: Sequence[str], **popen: object) -> subprocess.Popen[bytes]:
        """Start a process inside ``ns``; it is stopped by PID when the topology closes."""
        proc: subprocess.Popen[bytes] = subprocess.Popen(  # type: ignore[call-overload]
            ["ip", "netns", "exec", ns, *argv], cwd=REPO_ROOT, **popen)
        self._procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], timeout_s: float = 3.0) -> None:
        """Stop one process we started: SIGTERM, then SIGKILL, by its PID."""
        stop_process(proc, timeout_s)

    def close(self) -> None:
        """Stop our processes, then delete our namespaces (their veths go with them)."""
        for proc in reversed(self._procs):
            with contextlib.suppress(Exception):
                self.stop(proc)
        self._procs.clear()
        for ns in reversed(self._netns):
            with contextlib.suppress(subprocess.CalledProcessError):
                _run("ip", "netns", "del", ns)
        self._netns.clear()


def run_bridge(if_a: str, if_b: str, params: BridgeParams,
               stop_after_s: float | None = None) -> None:
    """Forward every frame between ``if_a`` and ``if_b`` after the configured delays.

    Runs until SIGTERM/SIGINT (or ``stop_after_s``). Frames that the kernel shows us as
    outgoing (our own sends) are skipped.
    """
    rng = random.Random(params.seed)
    socks: dict[str, socket.socket] = {}
    for name in (if_a, if_b):
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        s.bind((name, ETH_P_ALL))
        s.setblocking(False)
        socks[name] = s
    peer = {if_a: if_b, if_b: if_a}
    delay_ns = {if_a: int(params.delay_ab_us * 1e3), if_b: int(params.delay_ba_us * 1e3)}
    jitter_ns = params.jitter_us * 1e3
    last_release = {if_a: 0, if_b: 0}
    queue: list[tuple[int, int, str, bytes]] = []
    seq = 0
    running = True

    def _stop(_sig: int, _frame: object) -> None:
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    end = None if stop_after_s is None else time.monotonic() + stop_after_s
    fds = {s.fileno(): name for name, s in socks.items()}
    while running and (end is None or time.monotonic() < end):
        now = time.monotonic_ns()
        while queue and queue[0][0] <= now:
            _, _, out, frame = heapq.heappop(queue)
            with contextlib.suppress(OSError):
                socks[out].send(frame)
        wait_s = 0.2 if not queue else max(0.0, (queue[0][0] - time.monotonic_ns()) / 1e9)
        if wait_s > 0.0002:
            ready, _, _ = select.select(list(fds), [], [], wait_s - 0.0001)
        else:
            ready, _, _ = select.select(list(fds), [], [], 0)
        for fd in ready:
            name = fds[fd]
            while True:
                try:
                    frame, addr = socks[name].recvfrom(65535)
                except (BlockingIOError, InterruptedError):
                    break
                if addr[2] == PACKET_OUTGOING:
                    continue
                arrive = time.monotonic_ns()
                release = arrive + delay_ns[name] + int(rng.random() * jitter_ns)
                release = max(release, last_release[name])
                last_release[name] = release
                out = peer[name]
                seq += 1
                heapq.heappush(queue, (release, seq, out, frame))
    for s in socks.values():
        s.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.netlab")
    sub = parser.add_subparsers(dest="command", required=True)
    br = sub.add_parser("bridge", help="run the delay bridge between two interfaces")
    br.add_argument("if_a")
    br.add_argument("if_b")
    br.add_argument("--delay-ab-us", type=float, default=0.0)
    br.add_argument("--delay-ba-us", type=float, default=0.0)
    br.add_argument("--jitter-us", type=float, default=0.0)
    br.add_argument("--seed", type=int, default=1)
    br.add_argument("--seconds", type=float, default=None)
    args = parser.parse_args(argv)
    params = BridgeParams(args.delay_ab_us, args.delay_ba_us, args.jitter_us, args.seed)
    run_bridge(args.if_a, args.if_b, params, args.seconds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
