"""Our measure-only PTP slave beside a ptp4l slave, both against a ptp4l master.

Topology (all namespaces share one system clock, so the true offset is exactly 0 and every
measured offset is a measured error)::

    csptp_m<tag> [ptp4l master, free_running 1] 10.200.4.1
         | veth (direct)
    csptp_s<tag> [our slave + ptp4l -s, free_running 1] 10.200.4.2

Run as root: ``python -m lab.ptp_vs_ptp4l [--seconds S]``. Prints, for ours and ptp4l's:
offset rms, max |error|, mean path delay, and (ours) the share of samples whose bound holds
the truth. Nothing here sets the clock: every ptp4l runs with ``free_running 1``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ptp._ptp4l import MASTER_OPTIONS, SLAVE_OPTIONS, config_text

__all__ = ["PtpLab", "missing_requirements"]

MASTER_IP = "10.200.4.1"
SLAVE_IP = "10.200.4.2"


def missing_requirements() -> str | None:
    """Why the lab cannot run here (``None`` when it can)."""
    if os.geteuid() != 0:
        return "needs root: creates network namespaces"
    for tool in ("ip", "ptp4l"):
        if shutil.which(tool) is None:
            return f"needs {tool} on PATH"
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@dataclass
class PtpLab:
    """Two namespaces joined by a veth; processes started in them are stopped on exit.

    Use as a context manager; everything it creates is removed on exit, also on failure.
    """

    tag: str = field(default_factory=lambda: f"{os.getpid() % 100000}")
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="csptp_")))
    _procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _netns: list[str] = field(default_factory=list)

    @property
    def master_ns(self) -> str:
        return f"csptp_m{self.tag}"

    @property
    def slave_ns(self) -> str:
        return f"csptp_s{self.tag}"

    @property
    def master_if(self) -> str:
        return f"csptpm{self.tag}"

    @property
    def slave_if(self) -> str:
        return f"csptps{self.tag}"

    def __enter__(self) -> PtpLab:
        try:
            self._create()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _create(self) -> None:
        for ns in (self.master_ns, self.slave_ns):
            _ip("netns", "add", ns)
            self._netns.append(ns)
        _ip("link", "add", self.master_if, "type", "veth", "peer", "name", self.slave_if)
        for ns, dev, addr in (
            (self.master_ns, self.master_if, MASTER_IP),
            (self.slave_ns, self.slave_if, SLAVE_IP),
        ):
            _ip("link", "set", dev, "netns", ns)
            _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
            _ip("-n", ns, "link", "set", "lo", "up")

    def start(self, ns: str, argv: Sequence[str], log_name: str) -> subprocess.Popen[bytes]:
        """Start ``argv`` inside namespace ``ns``, output to ``workdir/log_name``."""
        log = open(self.workdir / log_name, "wb")  # noqa: SIM115 - owned by the process
        try:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", ns, *argv], stdout=log, stderr=subprocess.STDOUT
            )
        finally:
            log.close()
        self._procs.append(proc)
        return proc

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

    def start_ptp4l(self, role: str) -> subprocess.Popen[bytes]:
        """A ptp4l ``master`` (in the master ns) or ``slave`` (``-s``, in the slave ns)."""
        master = role == "master"
        ns, dev = (self.master_ns, self.master_if) if master else (self.slave_ns, self.slave_if)
        options = MASTER_OPTIONS if master else SLAVE_OPTIONS
        cfg = self.workdir / f"{role}.cfg"
        cfg.write_text(config_text(str(self.workdir / f"{role}.sock"), options))
        argv = ["ptp4l", "-i", dev, "-S", "-4", "-m", "-f", str(cfg)]
        if not master:
            argv.append("-s")
        return self.start(ns, argv, f"ptp4l-{role}.log")

    def start_master(self, timeout_s: float = 10.0) -> None:
        """Start the ptp4l master and wait until it has taken the master role."""
        self.start_ptp4l("master")
        if not self.wait_for("ptp4l-master.log", "assuming the grand master role", timeout_s):
            raise RuntimeError(f"ptp4l master not ready: {self.log('ptp4l-master.log')[-500:]}")

    @staticmethod
    def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
        """Stop one process we started (by its PID), escalating to SIGKILL."""
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=3)

    def close(self) -> None:
        """Stop every process, delete namespaces (the veth goes with them) and the workdir."""
        for proc in reversed(self._procs):
            self.stop(proc)
        self._procs.clear()
        for ns in reversed(self._netns):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        self._netns.clear()
        shutil.rmtree(self.workdir, ignore_errors=True)


@contextlib.contextmanager
def _lab() -> Iterator[PtpLab]:
    with PtpLab() as lab:
        yield lab
