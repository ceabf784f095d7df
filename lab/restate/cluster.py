"""Pieces of the Restate lab: the server binary and the service's venv (cached), node configs,
processes stopped by PID, readiness waits, registration and the invocation driver.

Everything that talks to a Restate node runs inside the lab's network namespace (only ``lo``);
only :func:`restate_server` and :func:`lab_python` reach out, to the npm registry and PyPI,
before the namespace exists, and cache what they fetch under :data:`CACHE`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.netlab import stop_process

__all__ = [
    "CACHE",
    "RESTATE_VERSION",
    "DriveResult",
    "LabUnavailableError",
    "NodeSpec",
    "Processes",
    "drive",
    "http_json",
    "lab_python",
    "node_config",
    "register",
    "restate_server",
    "wait_until",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("CLOCKSYNC_LAB_CACHE", Path.home() / ".cache" / "clocksync-lab"))
RESTATE_VERSION = "1.7.12"
_SERVER_PACKAGE = "@restatedev/restate-server-linux-x64"
_SERVICE_PACKAGES = ("restate-sdk", "hypercorn")


class LabUnavailableError(RuntimeError):
    """The lab cannot run here (not root, a registry unreachable, a tool missing): the reason
    is the message; tests skip with it."""


def _tail(text: str | bytes | None, lines: int = 6) -> str:
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return " | ".join((text or "").strip().splitlines()[-lines:])


def restate_server(version: str = RESTATE_VERSION) -> Path:
    """The ``restate-server`` binary, from ``npm pack`` of the npm package (cached: the tarball
    and its unpacked copy stay under :data:`CACHE`)."""
    home = CACHE / f"restate-{version}"
    binary = home / "package" / "bin" / "restate-server"
    if binary.is_file():
        return binary
    if shutil.which("npm") is None:
        raise LabUnavailableError("needs npm on PATH to fetch the Restate server "
                             f"({_SERVER_PACKAGE}@{version})")
    CACHE.mkdir(parents=True, exist_ok=True)
    tarball = CACHE / f"restatedev-restate-server-linux-x64-{version}.tgz"
    if not tarball.is_file():
        try:
            done = subprocess.run(["npm", "pack", f"{_SERVER_PACKAGE}@{version}"], cwd=CACHE,
                                  capture_output=True, text=True, timeout=300, check=False)
        except subprocess.TimeoutExpired:
            raise LabUnavailableError(f"npm registry unreachable: npm pack {_SERVER_PACKAGE}@"
                                 f"{version} timed out") from None
        if done.returncode != 0 or not tarball.is_file():
            raise LabUnavailableError(f"npm registry unreachable: npm pack {_SERVER_PACKAGE}@"
                                 f"{version} failed: {_tail(done.stderr)}")
    partial = home.with_name(home.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    subprocess.run(["tar", "xzf", str(tarball), "-C", str(partial)], check=True)
    shutil.rmtree(home, ignore_errors=True)
    partial.rename(home)
    return binary


def lab_python() -> Path:
    """A Python with ``restate-sdk`` and ``hypercorn`` (the lab's own venv under :data:`CACHE`,
    made and filled from PyPI on first use; never clocksync's environment)."""
    venv = CACHE / "venv"
    python = venv / "bin" / "python"
    probe = [str(python), "-c", "import restate, hypercorn"]
    if python.is_file() and subprocess.run(probe, capture_output=True, check=False).returncode == 0:
        return python
    CACHE.mkdir(parents=True, exist_ok=True)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(venv)], check=True, capture_output=True)
    try:
        done = subprocess.run([str(python), "-m", "pip", "install", "-q", *_SERVICE_PACKAGES],
                              capture_output=True, text=True, timeout=600, check=False)
    except subprocess.TimeoutExpired:
        raise LabUnavailableError("PyPI unreachable: pip install restate-sdk hypercorn timed "
                             "out") from None
    if done.returncode != 0:
        raise LabUnavailableError(f"PyPI unreachable: pip install restate-sdk hypercorn failed: "
                             f"{_tail(done.stderr)}")
    return python


@dataclass(frozen=True)
class NodeSpec:
    """One Restate node: its name, ports (inside the namespace) and simulated clock.

    ``ahead_ns``/``rate_ppm``: the node's clock reads ``t + ahead_ns + rate_ppm·1e-6·(t - t0)``
    at true time ``t``; its ``clock`` text is the agent's ``sim:`` option for that clock (the
    option's ``offset_ns`` is reference - local, so ``-ahead_ns``).
    """

    name: str
    index: int
    ahead_ns: int
    rate_ppm: float
    t0_ns: int

    @property
    def fabric_port(self) -> int:
        return 5122 + self.index

    @property
    def ingress_port(self) -> int:
        return 8080 + self.index

    @property
    def admin_port(self) -> int:
        return 9070 + self.index

    @property
    def relay_port(self) -> int:
        return 4318 + self.index

    @property
    def clock(self) -> str:
        return (f"sim:offset_ns={-self.ahead_ns},skew_ppm={self.rate_ppm:g},"
                f"t0_ns={self.t0_ns}")


def node_config(node: NodeSpec, nodes: Sequence[NodeSpec], cluster: str,
                partitions: int = 6) -> str:
    """The node's TOML config: all roles, replication 2, TCP on 127.0.0.1, spans to its
    relay, telemetry off (the namespace has no route out anyway), small RocksDB memory."""
    fabric = ", ".join(f'"http://127.0.0.1:{n.fabric_port}"' for n in nodes)
    return "\n".join([
        f'node-name = "{node.name}"',
        f'cluster-name = "{cluster}"',
        f"auto-provision = {'true' if node.index == 1 else 'false'}",
        f"default-num-partitions = {partitions}",
        "default-replication = 2",
        "disable-telemetry = true",
        'listen-mode = "tcp"',
        f'bind-address = "127.0.0.1:{node.fabric_port}"',
        f'advertised-address = "http://127.0.0.1:{node.fabric_port}"',
        f'tracing-endpoint = "otlp+http://127.0.0.1:{node.relay_port}/v1/traces"',
        'rocksdb-total-memory-size = "256.0 MiB"',
        'log-filter = "warn,restate=info"',
        "log-disable-ansi-codes = true",
        "",
        "[metadata-client]",
        f"addresses = [{fabric}]",
        "",
        "[ingress]",
        f'bind-address = "127.0.0.1:{node.ingress_port}"',
        "",
        "[admin]",
        f'bind-address = "127.0.0.1:{node.admin_port}"',
        "disable-web-ui = true",
        "",
    ])


@dataclass
class Processes:
    """Processes the lab started, stopped by PID (SIGTERM, then SIGKILL) in reverse order."""

    logs: Path
    procs: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def start(self, name: str, argv: Sequence[str], env: dict[str, str] | None = None
              ) -> subprocess.Popen[bytes]:
        self.logs.mkdir(parents=True, exist_ok=True)
        with open(self.logs / f"{name}.log", "wb") as log:
            proc = subprocess.Popen(list(argv), stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, cwd=REPO_ROOT,
                                    env={**os.environ, **(env or {})})
        self.procs.append((name, proc))
        return proc

    def check(self) -> None:
        """Raise if a process we started has exited (naming it, with its log's tail)."""
        for name, proc in self.procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}: "
                                   f"{self.tail(name)}")

    def tail(self, name: str, lines: int = 8) -> str:
        path = self.logs / f"{name}.log"
        return _tail(path.read_text(errors="replace") if path.exists() else "", lines)

    def stop(self, name: str, timeout_s: float = 10.0) -> int | None:
        for label, proc in self.procs:
            if label == name:
                stop_process(proc, timeout_s)
                return proc.returncode
        return None

    def stop_all(self, timeout_s: float = 5.0) -> None:
        """SIGTERM to every process still running (newest first), then wait for them all
        together, SIGKILL for any left after ``timeout_s`` (stopped one at a time, the last
        Restate node, its peers gone, waited out the whole timeout)."""
        running = [proc for _, proc in reversed(self.procs) if proc.poll() is None]
        for proc in running:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for proc in running:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout_s)


def wait_until(ready: Callable[[], bool], timeout_s: float, what: str,
               check: Callable[[], None] | None = None, every_s: float = 0.25) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if ready():
                return
        except Exception:  # not up yet
            pass
        if check is not None:
            check()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not ready after {timeout_s:g} s")
        time.sleep(every_s)


def http_json(url: str, body: Any = None, timeout_s: float = 10.0) -> tuple[int, Any]:
    """GET (``body`` None) or POST JSON; ``(status, decoded body or text)``."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="GET" if body is None else "POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as reply:
            status, text = reply.status, reply.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        with exc:
            status, text = exc.code, exc.read().decode(errors="replace")
    try:
        return status, json.loads(text) if text else None
    except json.JSONDecodeError:
        return status, text


def register(admin_port: int, service_port: int) -> None:
    """Register the service deployment (raises with Restate's answer unless 200/201)."""
    status, answer = http_json(f"http://127.0.0.1:{admin_port}/deployments",
                               {"uri": f"http://127.0.0.1:{service_port}"}, timeout_s=30)
    if status not in (200, 201):
        raise RuntimeError(f"registration failed: HTTP {status}: {answer}")


@dataclass
class DriveResult:
    ok: int = 0
    failed: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def drive(ingress_ports: Sequence[int], invocations: int, seconds: float,
          concurrency: int = 8) -> DriveResult:
    """``invocations`` calls of ``Hop/call`` spread evenly over ``seconds``, round-robin over
    the nodes' ingresses, each on its own key (so over all partitions)."""
    result = DriveResult()
    start = time.monotonic()
    gap = seconds / max(1, invocations)

    def one(i: int) -> None:
        delay = start + i * gap - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        port = ingress_ports[i % len(ingress_ports)]
        try:
            status, answer = http_json(f"http://127.0.0.1:{port}/Hop/call",
                                       {"key": f"k{i}", "amount": 1}, timeout_s=30)
            reason = "" if status == 200 else f"HTTP {status}: {str(answer)[:80]}"
        except OSError as exc:
            reason = type(exc).__name__
        if reason:
            result.failed += 1
            result.errors[reason] = result.errors.get(reason, 0) + 1
        else:
            result.ok += 1

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(one, range(invocations)))
    result.seconds = time.monotonic() - start
    return result
