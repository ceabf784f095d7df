"""Child of tests/agent/test_agent_ptp.py: an agent run inside a network namespace.

``python -m tests.agent.ptp_agent_child OPTIONS_JSON --seconds S --samples N`` runs an
:class:`~clocksync.agent.Agent` with those options until its published table holds ``N``
samples and its status is synchronised (or ``S`` seconds passed), stops it (flush, refit,
publish) and prints one JSON object: the snapshot's sources, status, the samples it logged,
and the /metrics text its collector renders.
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

from clocksync.agent import Agent, AgentCollector, load_config


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.agent.ptp_agent_child")
    parser.add_argument("options")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--samples", type=int, default=8)
    args = parser.parse_args(argv)
    agent = Agent(load_config(None, json.loads(args.options)))
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        table = agent.table
        if (table is not None and table.sample_count >= args.samples
                and agent.status == "synchronised"):
            break
        time.sleep(0.1)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AgentCollector(agent.snapshot))
    metrics = generate_latest(registry).decode()
    status = agent.status  # before stopping: the loop still runs
    agent.request_stop()
    thread.join(10)
    snap = agent.snapshot()
    print(json.dumps({
        "status": status,
        "sources": [dataclasses.asdict(s) for s in snap.sources],
        "samples": [dataclasses.asdict(s) for s in agent.samples.recent(1e9, 100_000)],
        "metrics": metrics,
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
