"""Fault: the reference becomes unreachable, then comes back.

Two ways: the server hangs (its port still bound, nothing answers: every exchange times out)
and the server is gone (closed port: the kernel answers ICMP port unreachable, which the
NTP client's unconnected socket never sees, so it too times out). Either way the agent keeps
running, its status goes ``free_running`` (8 × the poll interval without a sample, or 3
failed polls in a row), the published bound grows in holdover at the documented rate, and
once the server is back the agent is synchronised again without a restart.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import numpy as np
import pytest

from clocksync import HOLDOVER, CorrectionTable, Corrector
from clocksync.agent import FREE_RUNNING_POLLS, Agent, AgentSnapshot
from clocksync.ntp import NtpServer

from ._agentrig import agent_config, black_hole, running, wait_for


def check_holdover_rate(table: CorrectionTable) -> list[float]:
    """The documented holdover growth (docs/model.md, _fit/_envelope.py), at 0..60 s past
    the last sample, on the published table itself: with ``W`` the wander bound, ``Δs`` the
    guaranteed slope range at the last sample and ``b0`` the bound there,
    ``b0 + W·δ²/2 <= bound(δ) <= b0 + Δs/2·δ + W·max(1 s, 1.25·δ)²/2`` (the wander term is
    replaced by chords over [0, 1 s], then [d, 1.25·d]) and ``bound`` never shrinks.
    Returns the bounds (ns)."""
    last = table.last_sample_local_ns
    assert last is not None
    cells = table.cells
    first = int(np.searchsorted(cells.start_ns, last, side="right")) - 1
    assert cells.flags[first] & HOLDOVER, "the cell after the last sample is not holdover"
    w = table.assumptions["max_wander_ppb_per_s"]  # ns/s per s
    ds = float(cells.shi[first] - cells.slo[first])
    delta_s = np.concatenate([[0.0], np.geomspace(0.01, 60.0, 200)])
    corrector = Corrector([table])
    _, bounds = corrector.correct(table.node, last + np.round(delta_s * 1e9).astype(np.int64))
    bounds = np.asarray(bounds, dtype=np.float64)
    b0 = float(bounds[0])
    assert np.all(np.diff(bounds) >= -1e-6), "the holdover bound shrank"
    low = b0 + w * delta_s**2 / 2 - 1.0  # 1 ns: rounding of the cell edges
    chord_s = np.maximum(1.0, 1.25 * delta_s)  # chords over [0, 1 s], then [d, 1.25·d]
    high = b0 + ds / 2 * delta_s + w * chord_s**2 / 2 + 1.0
    assert np.all(bounds >= low), "the bound grows slower than the wander term"
    assert np.all(bounds <= high), "the bound grows faster than documented"
    assert bounds[-1] > b0  # it does grow
    return [float(b) for b in bounds]


@pytest.mark.slow
@pytest.mark.parametrize("how", ["timeout", "refused"])
def test_reference_unreachable_then_back(tmp_path: Path, how: str) -> None:
    server = NtpServer(address="127.0.0.1", port=0).start()
    port = server.port
    agent = Agent(agent_config(tmp_path, ntp_servers=[f"127.0.0.1:{port}"]))
    seen: list[tuple[float, AgentSnapshot]] = []

    def watch(until: str, timeout_s: float = 20.0) -> None:
        def reached() -> bool:
            seen.append((time.monotonic(), agent.snapshot()))
            return seen[-1][1].status == until

        wait_for(reached, timeout_s, f"status {until}")

    try:
        with running(agent) as thread:
            wait_for(lambda: agent.status == "synchronised" and agent.samples.appended >= 10)
            server.stop()
            with black_hole(port) if how == "timeout" else _Nothing():
                refused = how == "refused" and _port_refuses(port)
                before = agent.samples.appended
                watch("free_running")
                # hold the outage until the last refit is published, and a bit longer
                wait_for(lambda: agent.table is not None and agent.table.status
                         == "free_running" and agent.table.sample_count
                         == min(agent.samples.appended, agent.config.window_samples))
                outage = agent.snapshot()
                time.sleep(0.5)
                later = agent.snapshot()
            assert thread.is_alive()
            assert agent.samples.appended == before  # no sample while unreachable
            server = NtpServer(address="127.0.0.1", port=port).start()
            watch("synchronised")
            wait_for(lambda: agent.samples.appended >= before + 3)
            assert thread.is_alive()  # recovered in the same run, no restart
            wait_for(lambda: _stored(tmp_path).status == "synchronised")
            back = _stored(tmp_path)
    finally:
        server.stop()

    # errors of the right kind were counted
    errors = outage.sources[0].errors
    if how == "refused":
        assert refused, "the closed port did not draw an ICMP port unreachable"
        # the client's socket is connected: the ICMP error fails the exchange at once
        assert errors.get("network", 0) >= 1 and errors.get("timeout", 0) == 0, errors
    else:
        assert errors.get("timeout", 0) >= 1, errors
    # never free-running early: only after 8 x poll or 3 failed polls in a row
    last_sample_ns = None
    for _, snap in seen:
        if snap.status != "free_running":
            continue
        table = snap.table
        assert table is not None and table.last_sample_local_ns is not None
        last_sample_ns = table.last_sample_local_ns
        age_s = (snap.now_local_ns - last_sample_ns) / 1e9
        poll_s = agent.config.min_poll_s  # no poll interval is shorter
        assert age_s > FREE_RUNNING_POLLS * poll_s or not snap.sources[0].reachable, \
            (age_s, poll_s)
    assert last_sample_ns is not None
    # the live bound keeps growing in holdover; the published one at the documented rate
    assert outage.bound_now_ns is not None and later.bound_now_ns is not None
    assert later.bound_now_ns > outage.bound_now_ns
    assert outage.table is not None and outage.table.status == "free_running"
    check_holdover_rate(outage.table)
    # the store got the free-running table, later the synchronised one, and at the end
    # the stopped agent's final table
    assert back.last_sample_local_ns is not None
    assert back.last_sample_local_ns > outage.table.last_sample_local_ns  # type: ignore[operator]
    assert _stored(tmp_path).status == "stopped"


def _stored(tmp_path: Path) -> CorrectionTable:
    return Corrector.from_store(str(tmp_path / "data" / "tables")).table("n1")


@pytest.mark.slow
def test_fresh_samples_keep_the_status_synchronised_between_refits(
        tmp_path: Path, ntp_server: NtpServer) -> None:
    """Refits are rate-limited (here every 4 s); the samples in between are fresh, so the
    status must not flap to free_running while the table's last fitted sample ages past
    8 × the poll interval (1.6 s)."""
    agent = Agent(agent_config(tmp_path, ntp_servers=[f"127.0.0.1:{ntp_server.port}"],
                               refit_min_s=4.0))
    statuses: list[str] = []
    with running(agent):
        wait_for(lambda: agent.status == "synchronised")
        fits = agent.snapshot().fits

        def refitted() -> bool:
            statuses.append(agent.status)
            return agent.snapshot().fits >= fits + 1

        wait_for(refitted, 15, "the next refit")
    assert len(statuses) > 50
    assert set(statuses) == {"synchronised"}, sorted(set(statuses))


@pytest.mark.slow
def test_no_exchange_is_logged_twice_after_a_chain_restart(tmp_path: Path) -> None:
    """Every (re)start of the interleaved chain — agent start, or the first reply after an
    outage — begins with a basic exchange; its interleaved completion must not become a
    second sample with the same local time (burst 1: every exchange is a sample)."""
    server = NtpServer(address="127.0.0.1", port=0).start()
    port = server.port
    agent = Agent(agent_config(tmp_path, ntp_servers=[f"127.0.0.1:{port}"], burst=1))
    try:
        with running(agent):
            wait_for(lambda: agent.samples.appended >= 6)
            server.stop()  # an outage breaks the chain
            wait_for(lambda: sum(agent.snapshot().sources[0].errors.values()) >= 2)
            had = agent.samples.appended
            server = NtpServer(address="127.0.0.1", port=port).start()
            wait_for(lambda: agent.samples.appended >= had + 6)
    finally:
        server.stop()
    times = [s.t_local_ns for s in agent.samples.recent(1e9, 1000)]
    assert len(set(times)) == len(times), "one exchange was logged twice"


def _port_refuses(port: int) -> bool:
    """True when a datagram to the port draws ICMP port unreachable (ECONNREFUSED on a
    connected socket): the fault is a closed port, not a silent one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("127.0.0.1", port))
        probe.settimeout(1.0)
        probe.send(b"\x23" + bytes(47))
        try:
            probe.recv(64)
        except ConnectionRefusedError:
            return True
        except TimeoutError:
            return False
    return False


class _Nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
