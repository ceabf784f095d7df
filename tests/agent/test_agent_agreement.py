"""Agreement between sources: the cross-check (pure) and the agent naming a lying NTP server
as a falseticker, in its snapshot, /metrics and /healthz, and keeping it out of the fit.

The servers are real NTP servers on loopback (``clocksync.ntp.NtpServer``); the liar serves a
simulated clock 5 ms ahead while claiming a tight bound (root delay and dispersion 0). All
other clocks are the one system clock: the true offset is 0."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from clocksync import Corrector, Sample, SimClock, SystemClock
from clocksync.agent import Agent, AgentHttpServer
from clocksync.agent._crosscheck import (  # tests the private module clocksync.agent._crosscheck
    cross_check,
    project,
)
from clocksync.ntp import NtpServer

from .test_agent_e2e import _config, _get, _wait, running

LIE_NS = 5_000_000.0  # the liar's clock is 5 ms ahead: measured offset +5 ms
NOW = 1_700_000_000_000_000_000


def _sample(offset_ns: float, bound_ns: float, t_local_ns: int = NOW) -> Sample:
    return Sample("n1", t_local_ns, offset_ns, 0.0, bound_ns)


# -- the cross-check, pure -----------------------------------------------------------------


def test_projection_widens_the_bound_by_max_skew_times_age() -> None:
    iv = project("a", _sample(100.0, 50.0, NOW - 2_000_000_000), NOW, max_skew_ppm=10.0)
    assert iv.offset_ns == 100.0
    assert iv.bound_ns == pytest.approx(50.0 + 10e-6 * 2e9)  # 20 µs grown over 2 s


def test_majority_names_the_liar_and_a_pair_names_nobody() -> None:
    truthful = [("a", _sample(0.0, 30_000.0), 1.0), ("b", _sample(10_000.0, 30_000.0), 1.0)]
    liar = ("liar", _sample(LIE_NS, 20_000.0), 1.0)
    check = cross_check([*truthful, liar], now_local_ns=NOW, max_skew_ppm=1000.0)
    assert check.agree is False and check.majority
    assert check.falsetickers == ("liar",)
    assert check.agreement is not None and check.agreement.low_ns <= 0 <= check.agreement.high_ns
    # two that disagree: no majority, so no falseticker can be named
    pair = cross_check([truthful[0], liar], now_local_ns=NOW, max_skew_ppm=1000.0)
    assert pair.agree is False and not pair.majority and pair.falsetickers == ()
    # one source: nothing to compare
    alone = cross_check(truthful[:1], now_local_ns=NOW, max_skew_ppm=1000.0)
    assert alone.agree is None and alone.falsetickers == ()


def test_only_fresh_samples_take_part_and_old_ones_are_widened() -> None:
    old = NOW - 10 * 1_000_000_000  # 10 s old with a 1 s poll: older than 8 polls
    latest = [("a", _sample(0.0, 30_000.0), 1.0), ("b", _sample(0.0, 30_000.0), 1.0),
              ("stale", _sample(LIE_NS, 1_000.0, old), 1.0)]
    check = cross_check(latest, now_local_ns=NOW, max_skew_ppm=1000.0)
    assert [iv.source for iv in check.intervals] == ["a", "b"] and check.agree
    # 4 s old (fresh): widened by 1000 ppm x 4 s = 4 ms, not enough to reach the 5 ms lie
    latest[2] = ("stale", _sample(LIE_NS, 1_000.0, NOW - 4_000_000_000), 1.0)
    check = cross_check(latest, now_local_ns=NOW, max_skew_ppm=1000.0)
    assert check.falsetickers == ("stale",)
    # 4.98 s old: 4.98 ms wider, its interval reaches the others': they agree again
    latest[2] = ("stale", _sample(LIE_NS, 1_000.0, NOW - 4_980_000_000), 1.0)
    assert cross_check(latest, now_local_ns=NOW, max_skew_ppm=1000.0).agree


# -- the agent with three real NTP servers, one lying ----------------------------------------


@pytest.fixture
def servers() -> Iterator[tuple[NtpServer, NtpServer, NtpServer]]:
    """Truthful, lying (5 ms ahead, tight claimed bound), truthful; on loopback."""
    ahead = SimClock(t0_ns=time.time_ns(), offset0_ns=-LIE_NS)  # local = system + 5 ms
    started = []
    try:
        for clock in (SystemClock(), ahead, SystemClock()):
            started.append(NtpServer(clock, address="127.0.0.1", port=0).start())
        yield started[0], started[1], started[2]
    finally:
        for server in started:
            server.stop()


def _metric(body: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    families = {f.name: f for f in text_string_to_metric_families(body)}
    return {tuple(sorted(s.labels.items())): s.value for s in families[name].samples}


def test_agent_names_the_lying_server_and_keeps_it_out_of_the_fit(
        tmp_path: Path, servers: tuple[NtpServer, NtpServer, NtpServer]) -> None:
    names = [f"ntp:127.0.0.1:{s.port}" for s in servers]
    liar = names[1]
    agent = Agent(_config(tmp_path, ntp_servers=[f"127.0.0.1:{s.port}" for s in servers],
                          max_poll_s=0.2))
    http = AgentHttpServer(agent.snapshot, "127.0.0.1", 0).start()
    try:
        with running(agent):
            _wait(lambda: agent.snapshot().sources[1].errors.get("falseticker", 0) >= 5
                  and agent.table is not None and agent.table.sample_count >= 12)
            snap = agent.snapshot()
            assert snap.falsetickers == (liar,) and snap.sources_agree is False
            assert snap.agreement is not None
            assert snap.agreement.low_ns <= 0 <= snap.agreement.high_ns  # holds the truth
            assert [s.falseticker for s in snap.sources] == [False, True, False]
            _, _, body = _get(http.url + "/metrics")
            flags = _metric(body, "clocksync_source_falseticker")
            assert flags == {(("node", "n1"), ("source", n)): float(n == liar) for n in names}
            assert _metric(body, "clocksync_sources_agree") == {(("node", "n1"),): 0.0}
            rejected = _metric(body, "clocksync_rejected_replies")
            key = (("node", "n1"), ("reason", "falseticker"), ("source", liar))
            assert rejected[key] >= 5
            status, _, text = _get(http.url + "/healthz")
            assert status == 200 and json.loads(text)["falsetickers"] == [liar]
            assert json.loads(text)["sources_agree"] is False

            # the published table (fitted without the liar's samples) holds the truth 0
            table = Corrector.from_store(str(tmp_path / "data" / "tables"))
            now = time.time_ns()
            ref, bound = table.correct("n1", now)
            assert abs(ref - now) <= bound < LIE_NS / 2
            assert agent.table is not None and agent.table.publisher is not None
            assert agent.table.publisher.falsetickers == (liar,)
            # none of the liar's samples entered the log: its first one, polled second in
            # the first round, met one other source and no majority (held as no_majority)
            assert not [s for s in agent.samples.recent(1e9, 10_000) if s.source == liar]

            # the liar starts telling the truth: it is a truechimer again
            servers[1].clock = SystemClock()
            _wait(lambda: agent.snapshot().sources_agree is True)
            assert agent.snapshot().falsetickers == ()
            _, _, body = _get(http.url + "/metrics")
            assert _metric(body, "clocksync_sources_agree") == {(("node", "n1"),): 1.0}
            _wait(lambda: any(s.source == liar for s in agent.samples.recent(1e9, 10_000)))
    finally:
        http.stop()
    # every sample the liar gave was either held back (with its reason) or, once honest, logged
    (_, told, _) = agent.snapshot().sources
    logged = [s for s in agent.samples.recent(1e9, 10_000) if s.source == liar]
    held = told.errors["falseticker"] + told.errors.get("no_majority", 0)
    assert told.samples == held + len(logged)
    assert all(abs(s.offset_ns) <= s.bound for s in logged)  # only its honest ones


def test_without_exclusion_the_liar_is_named_but_still_fitted(
        tmp_path: Path, servers: tuple[NtpServer, NtpServer, NtpServer]) -> None:
    liar = f"ntp:127.0.0.1:{servers[1].port}"
    agent = Agent(_config(tmp_path, ntp_servers=[f"127.0.0.1:{s.port}" for s in servers],
                          max_poll_s=0.2, exclude_falsetickers=False))
    with running(agent):
        _wait(lambda: len([s for s in agent.samples.recent(1e9, 10_000)
                           if s.source == liar]) >= 4)
    snap = agent.snapshot()
    assert snap.falsetickers == (liar,)
    assert "falseticker" not in snap.sources[1].errors
