"""Restate-shaped spans on three simulated clocks seconds and tens of ppm apart, with tables
fitted to each clock and the true latency of every hop: the ground truth the pairing,
resolution and collector tests share."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from clocksync import Corrector, DirectoryStore, SimClock, fit_table
from clocksync.testing import LinkModel, simulate_restate, simulate_samples

__all__ = ["T0", "RestateWorld", "restate_world"]

T0 = 1_764_129_600_000_000_000


@dataclass(frozen=True)
class RestateWorld:
    """Clocks, their tables (loaded and in a directory store), the spans (documents and an
    OTLP JSON lines file) and the truth: ``(request id, hop) -> true latency (ns)``."""

    clocks: dict[str, SimClock]
    corrector: Corrector
    docs: list[dict[str, Any]]
    truth: dict[tuple[str, str], float]
    tables: Path
    spans: Path


def restate_world(base: Path, seed: int, invocations: int, spans_s: float,
                  table_s: float) -> RestateWorld:
    """n1 on time, n2 2.5 s ahead at +35 ppm, n3 1.7 s behind at -25 ppm; tables from
    ``table_s`` of samples from T0, ``invocations`` over ``spans_s`` from T0 + 20 s."""
    rng = np.random.default_rng(seed)
    clocks = {"n1": SimClock(t0_ns=T0, offset0_ns=0.0, skew_ppm=5.0, seed=1),
              "n2": SimClock(t0_ns=T0, offset0_ns=2.5e9, skew_ppm=35.0, seed=2),
              "n3": SimClock(t0_ns=T0, offset0_ns=-1.7e9, skew_ppm=-25.0, seed=3)}
    tables = [fit_table(simulate_samples(c, n, T0, table_s, 1.0, LinkModel(), rng))
              for n, c in clocks.items()]
    docs, truth = simulate_restate(clocks, invocations, T0 + 20 * 10**9, spans_s, rng)
    store = DirectoryStore(base / "tables")
    for table in tables:
        store.write(table)
    spans = base / "spans.jsonl"
    spans.write_text("".join(json.dumps(d) + "\n" for d in docs))
    return RestateWorld(clocks, Corrector(tables), docs, truth, base / "tables", spans)
