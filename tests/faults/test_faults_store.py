"""Fault: the table store is unreachable, then comes back.

Three real failures: a redis-server killed and restarted on the same port; a directory store
on a tmpfs remounted read-only (chmod would not stop root); the same tmpfs filled up to
ENOSPC. Throughout, the agent keeps measuring and logging samples locally (its sample log is
on another file system), retries the store with exponential backoff (0.5 s, 1 s, ... capped
at ``publish_backoff_max_s``), publishes its latest table once the store is back, and loses
no sample; a reader polling the store the whole time never sees a torn or invalid table, nor
a generation going backwards.
"""

from __future__ import annotations

import contextlib
import itertools
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from clocksync import open_store, read_samples
from clocksync.agent import Agent
from clocksync.ntp import NtpServer
from tests.agent.conftest import free_port, kill_pid, needs_redis, start_redis

from ._agentrig import RecordingStore, StoreReader, agent_config, running, tmpfs, wait_for

BACKOFF_MAX_S = 1.0
FIRST_BACKOFF_S = 0.5  # documented in docs/agent.md ("from 0.5 s")


class _Fault:
    """A store URL plus ``down()`` / ``up()`` for one kind of failure."""

    url: str

    def down(self) -> None: ...

    def up(self) -> None: ...


class _RedisFault(_Fault):
    def __init__(self, workdir: Path) -> None:
        needs_redis()
        self.workdir = workdir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0?prefix=csh5&ttl_s=60"
        self.pid: int | None = start_redis(self.port, workdir)

    def down(self) -> None:
        assert self.pid is not None
        kill_pid(self.pid)
        self.pid = None

    def up(self) -> None:
        self.pid = start_redis(self.port, self.workdir)

    def close(self) -> None:
        if self.pid is not None:
            kill_pid(self.pid)


class _TmpfsFault(_Fault):
    def __init__(self, path: Path, full: bool) -> None:
        self.fs = tmpfs(path)
        self.full = full
        self.url = str(path / "tables")

    def down(self) -> None:
        if self.full:
            self.fs.fill()
        else:
            self.fs.read_only(True)

    def up(self) -> None:
        if self.full:
            self.fs.free()
        else:
            self.fs.read_only(False)

    def close(self) -> None:
        self.fs.close()


@contextlib.contextmanager
def _fault(kind: str, tmp_path: Path) -> Iterator[_Fault]:
    fault: _RedisFault | _TmpfsFault
    if kind == "redis_killed":
        workdir = Path(tempfile.mkdtemp(prefix="csh5_redis_"))
        fault = _RedisFault(workdir)
    else:
        fault = _TmpfsFault(tmp_path / "storefs", full=kind == "disk_full")
    try:
        yield fault
    finally:
        fault.close()


@pytest.mark.slow
@pytest.mark.parametrize("kind", [
    "redis_killed",
    pytest.param("read_only", marks=pytest.mark.root),  # a tmpfs mount
    pytest.param("disk_full", marks=pytest.mark.root),
])
def test_store_unreachable_then_back(tmp_path: Path, ntp_server: NtpServer, kind: str) -> None:
    with _fault(kind, tmp_path) as fault:
        store = RecordingStore(open_store(fault.url))
        agent = Agent(agent_config(tmp_path, ntp_servers=[f"127.0.0.1:{ntp_server.port}"],
                                   publish_backoff_max_s=BACKOFF_MAX_S), stores=[store])
        try:
            with StoreReader(fault.url, "n1") as reader, running(agent) as thread:
                wait_for(lambda: any(a.ok for a in store.attempts), what="a first publish")
                fault.down()
                logged_before = agent.samples.appended
                wait_for(lambda: sum(not a.ok for a in store.attempts) >= 5
                         and agent.samples.appended >= logged_before + 10, 20,
                         "five failed publishes while still measuring and logging")
                fault.up()
                wait_for(lambda: store.attempts[-1].ok, 20, "a publish after the store is back")
                resumed = agent.samples.appended
                wait_for(lambda: agent.samples.appended >= resumed + 3)
                assert thread.is_alive()
            reader.check()
            final = open_store(fault.url).read_all()["n1"]
            files = [p.name for p in Path(fault.url).iterdir()] if kind != "redis_killed" \
                else ["n1.table.json"]
        finally:
            store.close()

    # the latest table reached the store once it was back (the stop publishes it last)
    assert agent.table is not None
    assert final.generation == agent.table.generation
    assert final.to_json() == agent.table.to_json()
    # the reader saw the outage and valid tables before and after it
    assert reader.generations and reader.generations[-1] >= store.attempts[0].generation
    if kind == "redis_killed":
        assert reader.unavailable > 0
    # the backoff schedule: after the k-th failure in a row, wait >= min(max, 0.5·2^(k-1))
    _check_backoff(store)
    snap = agent.snapshot()
    assert snap.publish_errors[store.url] == sum(not a.ok for a in store.attempts)
    # no sample lost: every sample taken is in the sample log on disk
    taken = snap.sources[0].samples
    assert taken == agent.samples.appended
    on_disk = sum(len(read_samples(p)) for p in agent.samples.segments)
    assert on_disk == taken
    assert files == ["n1.table.json"]  # a failed atomic write leaves no temporary file


@pytest.mark.slow
@pytest.mark.root  # a tmpfs mount
def test_sample_log_disk_full_then_freed(tmp_path: Path, ntp_server: NtpServer) -> None:
    """The sample log's own file system fills up (segments rotating every 10 samples):
    the agent keeps measuring and publishing, holds the samples in memory, and writes them
    all once space is back."""
    with tmpfs(tmp_path / "data", size_kb=512) as fs:
        agent = Agent(agent_config(tmp_path, ntp_servers=[f"127.0.0.1:{ntp_server.port}"],
                                   segment_samples=10, stores=[str(tmp_path / "tables")]))
        with running(agent) as thread:
            wait_for(lambda: len(agent.samples.segments) >= 1, what="a first segment")
            fs.fill()
            full_at = agent.samples.appended
            published = agent.table.generation if agent.table else 0
            wait_for(lambda: agent.samples.appended >= full_at + 25, 20, "25 samples")
            assert thread.is_alive()
            assert agent.table is not None and agent.table.generation > published
            fs.free()
            wait_for(lambda: _on_disk(agent) == agent.samples.appended, 20, "all on disk")
        taken = agent.snapshot().sources[0].samples
        assert taken == agent.samples.appended == _on_disk(agent)
        t_on_disk = [int(t) for p in agent.samples.segments for t in read_samples(p).t_local_ns]
        assert t_on_disk == sorted(t_on_disk) and len(set(t_on_disk)) == taken


def _on_disk(agent: Agent) -> int:
    try:
        return sum(len(read_samples(p)) for p in agent.samples.segments)
    except (OSError, ValueError):
        return -1


def _check_backoff(store: RecordingStore) -> None:
    attempts = store.attempts
    failures_in_row = 0
    checked = 0
    for prev, nxt in itertools.pairwise(attempts):
        failures_in_row = failures_in_row + 1 if not prev.ok else 0
        if prev.ok:
            continue
        delay_s = min(BACKOFF_MAX_S, FIRST_BACKOFF_S * 2 ** (failures_in_row - 1))
        gap_s = nxt.at_s - prev.at_s
        assert gap_s >= delay_s - 0.05, (
            f"retry {failures_in_row} came after {gap_s:.3f} s, backoff is {delay_s} s")
        checked += 1
    assert checked >= 4
    assert any(not a.ok and "n1" in a.error for a in attempts)  # the error names the node
