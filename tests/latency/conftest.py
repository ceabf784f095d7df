"""Shared ground truth: two simulated nodes with skewed, wandering clocks and tables fitted
from simulated NTP-like samples (truthful bounds, asymmetric delays)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from clocksync import CorrectionTable, Corrector, DirectoryStore, SimClock, fit_table
from clocksync.latency import write_events
from clocksync.testing import LinkModel, RequestModel, simulate_requests, simulate_samples

T0 = 1_764_129_600_000_000_000
DURATION_S = 300.0


@dataclass(frozen=True)
class World:
    clocks: dict[str, SimClock]
    tables: dict[str, CorrectionTable]
    corrector: Corrector


def make_world(seed: int, offset_shift_ns: float = 0.0) -> World:
    """n1 runs 180 µs ahead, n2 250 µs behind (raw cross-node latencies go negative);
    ``offset_shift_ns`` makes n2's samples lie (a wrong table)."""
    rng = np.random.default_rng(seed)
    clocks = {
        "n1": SimClock(t0_ns=T0, offset0_ns=-180_000.0, skew_ppm=35.0, wander_ppb_per_s=5.0,
                       seed=seed),
        "n2": SimClock(t0_ns=T0, offset0_ns=250_000.0, skew_ppm=-60.0, wander_ppb_per_s=5.0,
                       seed=seed + 1),
    }
    tables = {}
    for name, clock in clocks.items():
        samples = simulate_samples(clock, name, T0, DURATION_S, 1.0, LinkModel(), rng)
        if name == "n2" and offset_shift_ns:
            samples = type(samples)(samples.node, samples.t_local_ns,
                                    samples.offset_ns + offset_shift_ns, samples.delay_ns,
                                    samples.bound_ns, samples.source)
        tables[name] = fit_table(samples)
    return World(clocks, tables, Corrector(tables))


def store_world(world: World, base: Path, requests: int, seed: int,
                model: RequestModel | None = None) -> tuple[Path, Path]:
    """The world's tables in a directory store under ``base`` and ``requests`` simulated
    requests n1 <-> n2 (over 200 s from T0 + 20 s) in ``base/events.parquet``."""
    store = DirectoryStore(base / "tables")
    for table in world.tables.values():
        store.write(table)
    events, _ = simulate_requests(world.clocks, [("n1", "n2"), ("n2", "n1")], requests,
                                  T0 + 20 * 10**9, 200.0, np.random.default_rng(seed), model)
    write_events(events, base / "events.parquet")
    return base / "tables", base / "events.parquet"


@pytest.fixture(scope="session")
def world() -> World:
    return make_world(7)
