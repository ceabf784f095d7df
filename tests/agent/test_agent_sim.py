"""The agent's scheduling in simulated time: no sleeping, every wait counted.

:class:`clocksync.agent.SimTime` is the agent's node clock, timer and sleeper at once; its
``sleep`` advances the simulated time by the wait asked for. Sources are in-memory
(:class:`clocksync.agent.MemorySource`) answering at the simulated time, so hours of the
loop (polls, backoff, refits, republishing, status, health, the final ``stopped`` table)
run in well under a second. Real sockets and servers are exercised in test_agent_e2e.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from clocksync import Corrector, MemoryStore, Sample, Status, skew_rows
from clocksync.agent import (
    REPUBLISH_S,
    UNREACHABLE_POLLS,
    Agent,
    AgentConfig,
    MemorySource,
    PollResult,
    SimTime,
)

BOUND_NS = 10_000.0


def _config(tmp_path: Path, **kw: object) -> AgentConfig:
    return AgentConfig.defaults(**{"node": "n1", "data_dir": str(tmp_path / "data"),
                                   "http_listen": "", **kw})


def _sampler(sim: SimTime, name: str, seed: int = 0) -> Callable[[], PollResult]:
    """Samples at the simulated time: true offset 0, noise well inside the bound."""
    rng = np.random.default_rng(seed)

    def poll() -> PollResult:
        sim.advance(0.01)  # an exchange takes a while
        return PollResult(Sample("n1", sim.now_ns(), float(rng.normal(0.0, 1_000.0)),
                                 40_000.0, bound_ns=BOUND_NS, source=name))

    return poll


def _agent(tmp_path: Path, sim: SimTime, sources: list[MemorySource], store: MemoryStore,
           **kw: object) -> Agent:
    return Agent(_config(tmp_path, **kw), clock=sim, timer=sim, sleeper=sim,
                 sources=list(sources), stores=[store])


def _drive(agent: Agent, sim: SimTime, seconds: float) -> None:
    """The loop of :meth:`Agent.run` for ``seconds`` of simulated time."""
    end = sim.monotonic() + seconds
    while sim.monotonic() < end:
        sim.sleep(agent.step())


class _PollLog(MemorySource):
    """A MemorySource that records the simulated time of every poll."""

    def __init__(self, sim: SimTime, name: str, script: list[PollResult] | None = None,
                 then: PollResult | Callable[[], PollResult] | None = None) -> None:
        super().__init__(name, script or [], then)
        self.sim = sim
        self.at: list[float] = []

    def poll(self) -> PollResult:
        self.at.append(self.sim.monotonic())
        return super().poll()


def test_failed_polls_back_off_up_to_max_poll(tmp_path: Path) -> None:
    sim = SimTime()
    source = _PollLog(sim, "ntp:down:123")  # every poll times out
    agent = _agent(tmp_path, sim, [source], MemoryStore(), min_poll_s=1.0, max_poll_s=64.0)
    _drive(agent, sim, 600.0)
    gaps = np.diff(source.at)
    # 2, 4, 8, 16, 32 s, then max_poll_s: one factor of 2 per failure in a row
    assert gaps[:5] == pytest.approx([2.0, 4.0, 8.0, 16.0, 32.0], abs=1e-6)
    assert gaps[5:] == pytest.approx([64.0] * len(gaps[5:]), abs=1e-6)
    assert len(source.at) < 15  # 600 s at the 1 s minimum would be 600 polls
    snap = agent.snapshot()
    assert snap.sources[0].poll_s == 64.0 and not snap.sources[0].reachable
    assert snap.status == "unknown"
    assert not snap.healthy and snap.health_reason == "no usable sample yet"


def test_a_sample_ends_the_backoff(tmp_path: Path) -> None:
    sim = SimTime()
    down = PollResult(None, ("timeout",), reachable=False, message="no reply")
    source = _PollLog(sim, "ntp:flaky:123", [down] * 4, _sampler(sim, "ntp:flaky:123"))
    agent = _agent(tmp_path, sim, [source], MemoryStore(), min_poll_s=1.0, max_poll_s=64.0)
    _drive(agent, sim, 60.0)
    gaps = np.diff(source.at)
    assert gaps[:4] == pytest.approx([2.0, 4.0, 8.0, 16.0], abs=1e-6)
    # the 5th poll answered: the young model polls at min_poll_s again
    assert gaps[4:8] == pytest.approx([1.0] * 4, abs=0.02)
    assert agent.status == Status.SYNCHRONISED


def test_a_reference_agent_sleeps_and_serves(tmp_path: Path) -> None:
    """No sources, no table: nothing is due but the status check once a second. Before,
    the republish time of a table never published stayed in the past: every wait was 0."""
    sim = SimTime()
    store = MemoryStore()
    agent = _agent(tmp_path, sim, [], store)
    _drive(agent, sim, 3_600.0)
    assert sim.waits and min(sim.waits) > 0.5
    assert len(sim.waits) <= 3_601  # one wake per second at most
    assert agent.status == Status.SERVING
    snap = agent.snapshot()
    assert snap.healthy and snap.status == "serving"
    assert store.read_all() == {}  # nothing to publish


def test_a_stopped_source_is_never_polled_again(tmp_path: Path) -> None:
    sim = SimTime()
    deny = PollResult(None, ("kod_deny",), reachable=True, stop=True, message="KoD DENY")
    source = _PollLog(sim, "ntp:deny:123", [deny])
    agent = _agent(tmp_path, sim, [source], MemoryStore())
    _drive(agent, sim, 3_600.0)
    assert len(source.at) == 1
    assert min(sim.waits) > 0.5  # and the loop sleeps
    assert agent.snapshot().sources[0].stopped


def test_measuring_agent_publishes_refits_republishes_and_stops(tmp_path: Path) -> None:
    sim = SimTime()
    live = True

    def poll() -> PollResult:
        if live:
            return sampler()
        return PollResult(None, ("timeout",), reachable=False, message="no reply")

    sampler = _sampler(sim, "ntp:a:123")
    source = _PollLog(sim, "ntp:a:123", then=poll)
    store = MemoryStore()
    writes: list[tuple[float, str, int]] = []
    write = store.write

    def recording_write(table):  # type: ignore[no-untyped-def]
        writes.append((sim.monotonic(), table.status, table.generation))
        write(table)

    store.write = recording_write  # type: ignore[method-assign]
    agent = _agent(tmp_path, sim, [source], store, min_poll_s=1.0, max_poll_s=16.0,
                   refit_min_s=10.0, window_samples=200)
    assert not agent.snapshot().healthy  # no usable sample yet
    _drive(agent, sim, 900.0)
    assert agent.status == Status.SYNCHRONISED and agent.snapshot().healthy
    assert max(sim.waits) <= 1.0 + 1e-9 and min(sim.waits) >= 0.0
    fits = agent.snapshot().fits
    assert 10 <= fits <= 900 / 10 + 1  # rate-limited by refit_min_s
    # polls slowed down to max_poll_s once the model was tight
    assert np.diff(source.at)[-10:] == pytest.approx([16.0] * 10, abs=0.05)
    # every publish carries the publisher block; republished at least every REPUBLISH_S
    table = agent.table
    assert table is not None and table.publisher is not None
    assert table.publisher.poll_interval_s == 16.0
    assert table.publisher.sources == ("ntp:a:123",)
    assert table.publisher.republish_s == REPUBLISH_S
    times = [t for t, _, _ in writes]
    assert max(np.diff(times)) <= REPUBLISH_S + 1.0
    assert [g for _, _, g in writes] == sorted(g for _, _, g in writes)

    # the source goes silent: free-running after UNREACHABLE_POLLS failures, bound grows
    live = False
    polls = len(source.at)
    _drive(agent, sim, 200.0)
    assert len(source.at) - polls >= UNREACHABLE_POLLS
    first = agent.snapshot()
    assert first.status == "free_running" and first.healthy  # holdover still covers now
    assert writes[-1][1] == "free_running"  # a status change is published
    _drive(agent, sim, 60.0)
    later = agent.snapshot()
    assert first.bound_now_ns is not None and later.bound_now_ns is not None
    assert later.bound_now_ns > first.bound_now_ns
    assert later.offset_now_ns is not None and abs(later.offset_now_ns) <= later.bound_now_ns

    # shut down: a final table marked stopped; its last sample is older than 8 polls, so
    # a reader shows it free-running (test_run_stops... shows a fresh one read "stopped")
    agent.shutdown()
    assert writes[-1][1] == "stopped"
    assert agent.status == Status.STOPPED and not agent.snapshot().healthy
    (row,) = skew_rows(Corrector(store.read_all()), sim.now_ns())
    assert row.status == "free_running"
    assert source.closed


def test_past_the_holdover_horizon_health_fails(tmp_path: Path) -> None:
    sim = SimTime()
    sampler = _sampler(sim, "ntp:a:123")

    def poll() -> PollResult:  # answers for 20 s, then never again
        if sim.monotonic() < 20.0:
            return sampler()
        return PollResult(None, ("timeout",), reachable=False, message="no reply")

    agent = _agent(tmp_path, sim, [MemorySource("ntp:a:123", then=poll)], MemoryStore(),
                   refit_min_s=1.0, fit={"holdover_horizon_s": 30.0})
    _drive(agent, sim, 25.0)
    assert agent.snapshot().healthy
    _drive(agent, sim, 60.0)  # 65 s past the last sample: the table's cells end at 50 s
    snap = agent.snapshot()
    assert snap.status == "free_running" and snap.bound_now_ns is None
    assert not snap.healthy and "holdover horizon" in snap.health_reason


def test_run_stops_on_request_and_publishes_stopped(tmp_path: Path) -> None:
    """:meth:`Agent.run` itself in simulated time: a sleeper that asks it to stop after
    two simulated minutes, as SIGTERM would."""
    store = MemoryStore()

    class StopLater(SimTime):
        def sleep(self, seconds: float) -> None:
            super().sleep(seconds)
            if self.monotonic() >= 120.0:
                agent.request_stop()

    sim = StopLater()
    agent = _agent(tmp_path, sim, [MemorySource("ntp:a:123", then=_sampler(sim, "ntp:a:123"))],
                   store, refit_min_s=5.0)
    agent.run()
    table = store.read_all()["n1"]
    assert table.status == "stopped" and table.sample_count >= 10
    assert 120.0 <= sim.monotonic() < 122.0
    (row,) = skew_rows(Corrector([table]), sim.now_ns())
    assert row.status == "stopped"  # at once, not after a staleness timeout
    assert min(sim.waits) >= 0.0 and max(sim.waits) <= 1.0 + 1e-9
