"""Helpers for the fault tests (``test_faults_*``): a running in-process agent, a store that
records every publish attempt, a reader that polls a store the whole time, tmpfs mounts for
read-only and full disks, and a UDP black hole that swallows NTP requests.

Real components only: the stores wrapped here are the real directory and Redis stores; the
black hole is a real UDP socket bound on the server's port (the host is up, the daemon
hung: requests time out instead of drawing an ICMP port unreachable).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from clocksync import CorrectionTable, StoreError, TableStore, open_store
from clocksync.agent import Agent, AgentConfig
from lab.soak import Tmpfs

__all__ = [
    "FAST",
    "Attempt",
    "RecordingStore",
    "StoreReader",
    "agent_config",
    "black_hole",
    "needs_root",
    "running",
    "tmpfs",
    "wait_for",
]

#: a fast agent: polls every 0.1-0.2 s, refits at most every 0.3 s
FAST: dict[str, Any] = {"min_poll_s": 0.1, "max_poll_s": 0.2, "refit_min_s": 0.3,
                        "timeout_s": 0.2, "burst": 2, "burst_interval_s": 0.01,
                        "fit_cpu_share": 1.0, "window_samples": 200}


def agent_config(tmp_path: Path, **kw: Any) -> AgentConfig:
    """A fast, HTTP-less agent config of node ``n1`` with its data under ``tmp_path/data``."""
    return AgentConfig.defaults(**{"node": "n1", "data_dir": str(tmp_path / "data"),
                                   "http_listen": "", **FAST, **kw})


def wait_for(predicate: Callable[[], bool], timeout_s: float = 15.0, what: str = "") -> None:
    """Poll ``predicate`` every 20 ms; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"not reached in {timeout_s} s: {what or predicate}")
        time.sleep(0.02)


@contextlib.contextmanager
def running(agent: Agent) -> Iterator[threading.Thread]:
    """Run ``agent`` in a thread; stop it (SIGTERM path) and join at the end."""
    thread = threading.Thread(target=agent.run, daemon=True, name="agent")
    thread.start()
    try:
        yield thread
    finally:
        agent.request_stop()
        thread.join(15)
        assert not thread.is_alive(), "agent did not stop"


def needs_root(why: str) -> None:
    if os.geteuid() != 0:
        pytest.skip(f"needs root: {why}")


@dataclass(frozen=True, slots=True)
class Attempt:
    """One publish attempt: when (monotonic s), whether it succeeded, what was published."""

    at_s: float
    ok: bool
    generation: int
    status: str
    error: str


@dataclass
class RecordingStore:
    """A real store that also records every write attempt (time, outcome, generation)."""

    inner: TableStore
    attempts: list[Attempt] = field(default_factory=list)
    url: str = ""

    def __post_init__(self) -> None:
        self.url = self.inner.url

    def write(self, table: CorrectionTable) -> None:
        at = time.monotonic()
        try:
            self.inner.write(table)
        except (StoreError, OSError) as exc:
            self.attempts.append(Attempt(at, False, table.generation, table.status, str(exc)))
            raise
        self.attempts.append(Attempt(at, True, table.generation, table.status, ""))

    def read_all(self) -> dict[str, CorrectionTable]:
        return self.inner.read_all()

    def version(self) -> Any:
        return self.inner.version()

    def close(self) -> None:
        self.inner.close()


class StoreReader:
    """Reads a store over and over in a thread, as a corrector would, for the whole test.

    A read may fail with :class:`StoreError` while the store is down (counted in
    ``unavailable``); anything else — a table that does not parse or validate, a generation
    that goes backwards — is recorded in ``bad`` and fails :meth:`check`.
    """

    def __init__(self, url: str, node: str) -> None:
        self.url, self.node = url, node
        self.reads = 0
        self.unavailable = 0
        self.generations: list[int] = []
        self.bad: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="reader")

    def __enter__(self) -> StoreReader:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        store = open_store(self.url)
        try:
            while not self._stop.is_set():
                try:
                    tables = store.read_all()
                except StoreError:  # down or unreadable: not a torn table
                    self.unavailable += 1
                    time.sleep(0.01)
                    continue
                except Exception as exc:  # a SchemaError here would be a torn table
                    self.bad.append(f"{type(exc).__name__}: {exc}")
                    continue
                self.reads += 1
                table = tables.get(self.node)
                if table is not None:
                    if self.generations and table.generation < self.generations[-1]:
                        self.bad.append(f"generation went back: {self.generations[-1]} -> "
                                        f"{table.generation}")
                    self.generations.append(table.generation)
                time.sleep(0.002)
        finally:
            store.close()

    def check(self) -> None:
        assert not self.bad, self.bad[:5]
        assert self.reads > 0


@contextlib.contextmanager
def black_hole(port: int) -> Iterator[socket.socket]:
    """A UDP socket on 127.0.0.1:``port`` that never answers: requests time out."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        yield sock
    finally:
        sock.close()


def tmpfs(path: Path, size_kb: int = 256) -> Tmpfs:
    """A tiny tmpfs on ``path`` (:class:`lab.soak.Tmpfs`: read-only / full on demand);
    skips the test when not root — chmod does not stop root, so a real read-only or full
    file system is the only honest fault."""
    needs_root("mounting a tmpfs for a read-only or full file system")
    if shutil.which("mount") is None:
        pytest.skip("needs the mount program")
    return Tmpfs(path, size_kb)
