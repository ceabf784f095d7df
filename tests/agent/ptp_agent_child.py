"""Child of tests/agent/test_agent_ptp.py: an agent run inside a network namespace.

``python -m tests.agent.ptp_agent_child OPTIONS_JSON --seconds S --samples N [--liar-ns X]``
runs an :class:`~clocksync.agent.Agent` with those options until every source has given
``N`` samples, a table is published and its status is synchronised (or ``S`` seconds
passed), stops it (flush, refit, publish) and prints one JSON object: the snapshot's
sources, status, agreement, the samples it logged, and the /metrics text its collector
renders.

With ``--liar-ns X`` it also serves NTP on this namespace's loopback twice — the system
clock, and a clock ``X`` ns ahead — and adds both servers as sources (the agent's PTP
source then has an honest and a lying NTP source to be cross-checked with).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import threading
import time
from collections.abc import Sequence

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest

from clocksync import SimClock
from clocksync.agent import Agent, AgentCollector, load_config
from clocksync.ntp import NtpServer


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.agent.ptp_agent_child")
    parser.add_argument("options")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--liar-ns", type=float, default=0.0)
    args = parser.parse_args(argv)
    options = json.loads(args.options)
    servers = []
    if args.liar_ns:
        ahead = SimClock(t0_ns=time.time_ns(), offset0_ns=-args.liar_ns)
        servers = [NtpServer(port=0).start(), NtpServer(ahead, port=0).start()]
        options["ntp_servers"] = [f"127.0.0.1:{s.port}" for s in servers]
    try:
        return _run(options, args.seconds, args.samples)
    finally:
        for server in servers:
            server.stop()


def _run(options: dict[str, object], seconds: float, samples: int) -> int:
    agent = Agent(load_config(None, options))
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if (agent.table is not None and agent.status == "synchronised"
                and all(s.samples >= samples for s in agent.snapshot().sources)):
            break
        time.sleep(0.1)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AgentCollector(agent.snapshot))
    metrics = generate_latest(registry).decode()
    status = agent.status  # before stopping: the loop still runs
    judged = agent.snapshot()
    agent.request_stop()
    thread.join(10)
    snap = agent.snapshot()
    print(json.dumps({
        "status": status,
        "sources": [dataclasses.asdict(s) for s in snap.sources],
        "falsetickers": list(judged.falsetickers),
        "sources_agree": judged.sources_agree,
        "samples": [dataclasses.asdict(s) for s in agent.samples.recent(1e9, 100_000)],
        "metrics": metrics,
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
