"""Across network namespaces (root): chronyd in one, ``clocksync ntp probe`` in the other.

All namespaces share one system clock, so the true offset is 0: every bound must hold 0.
Namespaces are prefixed ``csntpt``; subnets 10.200.3.0/24 (direct) and 10.200.13.0/24 (via
the user-space delay bridge in a router namespace).
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from lab.netlab import BridgeParams, Topology, missing_requirements
from lab.ntp_vs_chrony import chrony_server_conf, chrony_workdir

pytestmark = [pytest.mark.root, pytest.mark.slow]


@pytest.fixture(autouse=True)
def _requirements() -> None:
    why = missing_requirements("chronyd")
    if why:
        pytest.skip(why)


@contextmanager
def _chronyd_lab(subnet: str, bridge: BridgeParams | None) -> Iterator[Topology]:
    workdir = chrony_workdir("csntp_nstest_")
    try:
        with Topology("csntpt", subnet, bridge=bridge) as topo:
            conf = chrony_server_conf(workdir, allow="10.200.0.0/16")
            topo.spawn(topo.ns_a, ["chronyd", "-x", "-d", "-f", str(conf)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            _wait_listening(topo, topo.ns_a, 123)
            yield topo
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _wait_listening(topo: Topology, ns: str, port: int, deadline_s: float = 20.0) -> None:
    """Wait until a UDP socket in ``ns`` is bound to ``port`` (chronyd is serving)."""
    deadline = time.monotonic() + deadline_s
    while f":{port} " not in topo.exec(ns, "ss", "-Huln", check=False).stdout + " ":
        if time.monotonic() > deadline:
            pytest.fail(f"chronyd did not bind UDP port {port} in {ns} within {deadline_s} s")
        time.sleep(0.05)


def _probe(topo: Topology, count: int) -> list[dict[str, Any]]:
    code = "from clocksync.cli import main; main()"
    run = topo.exec(topo.ns_b, sys.executable, "-c", code, "ntp", "probe", topo.ip_a,
                    "--count", str(count), "--interval", "0.05", "--json", check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    rows = [json.loads(line) for line in run.stdout.splitlines()]
    return [r for r in rows if "offset_ns" in r]


def test_direct_veth_every_bound_holds_zero() -> None:
    with _chronyd_lab("10.200.3", None) as topo:
        rows = _probe(topo, 12)
    assert len(rows) == 12
    for r in rows:
        assert abs(r["offset_ns"]) <= r["bound_ns"]
        assert r["tx_stamp"] == "kernel" and r["rx_stamp"] == "kernel"
        assert r["delay_ns"] < 1_000_000  # a veth: well under a millisecond


def test_asymmetric_bridge_shifts_offset_but_bound_still_holds() -> None:
    """1 ms more a->b than b->a: the offset moves by about -0.5 ms (server -> client is the
    fast way), and the half-delay bound still contains the truth."""
    with _chronyd_lab("10.200.13", BridgeParams(delay_ab_us=1000, delay_ba_us=0)) as topo:
        rows = _probe(topo, 8)
    assert len(rows) == 8
    for r in rows:
        assert abs(r["offset_ns"]) <= r["bound_ns"]
        assert r["delay_ns"] >= 1_000_000
    # the first exchange may also wait for neighbour resolution; the median may not
    assert statistics.median(r["offset_ns"] for r in rows) < -300_000
