"""The collector's engine gives the numbers batch analysis gives for the same spans and
events, whatever order and batches they arrive in; it names what is missing and counts
what is late."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from clocksync import Corrector, SimClock, fit_table
from clocksync.collector._config import load_collector_config
from clocksync.collector._engine import Engine, StepResult
from clocksync.latency import hop_table, percentile_table, preset, read_inputs
from clocksync.latency._otlp import otlp_json_spans
from clocksync.testing import LinkModel, simulate_requests, simulate_restate, simulate_samples

T0 = 1_764_129_600_000_000_000


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    rng = np.random.default_rng(5)
    clocks = {"n1": SimClock(t0_ns=T0, offset0_ns=0.0, skew_ppm=5.0, seed=1),
              "n2": SimClock(t0_ns=T0, offset0_ns=2.5e9, skew_ppm=35.0, seed=2),
              "n3": SimClock(t0_ns=T0, offset0_ns=-1.7e9, skew_ppm=-25.0, seed=3)}
    tables = [fit_table(simulate_samples(c, n, T0, 200.0, 1.0, LinkModel(), rng))
              for n, c in clocks.items()]
    docs, truth = simulate_restate(clocks, 1200, T0 + 20 * 10**9, 60.0, rng)
    path = tmp_path_factory.mktemp("engine") / "spans.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    return {"clocks": clocks, "corrector": Corrector(tables), "docs": docs, "truth": truth,
            "path": path}


def _spans(doc: dict) -> list:
    return [s for _, s in otlp_json_spans("test", doc)]


def _engine(world: dict, clock: Clock, **options: object) -> Engine:
    config = load_collector_config(None, {"store": "unused", "preset": "restate",
                                          "window_s": 10.0, "step_s": 5.0, **options})
    return Engine(config, world["corrector"], monotonic_s=clock)


def _key(table: pa.Table) -> pa.Table:
    cols = ["request_id", "hop", "low_ns", "high_ns", "src_ts_ns", "dst_ts_ns"]
    out = pa.table({c: pc.cast(table.column(c), pa.string()) if c in ("request_id", "hop")
                    else table.column(c) for c in cols})
    return out.sort_by([("request_id", "ascending"), ("hop", "ascending")])


def _batch(world: dict) -> pa.Table:
    events = read_inputs([world["path"]], "otlp", preset("restate"))
    return hop_table(events, world["corrector"]).table


def _steps_hops(steps: list[StepResult]) -> pa.Table:
    return pa.concat_tables([s.hops for s in steps], promote_options="default")


def test_live_equals_batch_whatever_the_arrival_order(world: dict) -> None:
    clock = Clock()
    engine = _engine(world, clock, lateness_s=3600.0)  # shuffled: nothing may come late
    docs = list(world["docs"])
    order = np.random.default_rng(3).permutation(len(docs))
    steps: list[StepResult] = []
    for k, i in enumerate(order):
        engine.accept_spans(_spans(docs[i]))
        if k % 3 == 0:  # the engine works between arrivals; nothing times out (clock stays)
            steps += engine.tick()
    steps += engine.tick(flush=True)
    live, batch = _key(_steps_hops(steps)), _key(_batch(world))
    assert live.num_rows == batch.num_rows == len(world["truth"])
    assert live.equals(batch)
    # every window's percentiles are batch's for that window
    windows = percentile_table(_batch(world), 10.0, 5.0)
    for step in steps:
        if step.window is None:
            continue
        mine = step.window.drop_columns([]).sort_by([("hop", "ascending"),
                                                      ("src_node", "ascending"),
                                                      ("dst_node", "ascending")])
        theirs = windows.filter(pc.equal(windows.column("window_start_ns"),
                                         step.end_ns - 10 * 10**9))
        theirs = theirs.sort_by([("hop", "ascending"), ("src_node", "ascending"),
                                 ("dst_node", "ascending")])
        assert mine.to_pylist() == theirs.to_pylist()


def test_live_stamps_cover_the_truth_and_report(world: dict) -> None:
    clock = Clock()
    engine = _engine(world, clock)
    for doc in world["docs"]:
        engine.accept_spans(_spans(doc))
    steps = engine.tick(flush=True)
    hops = _steps_hops(steps)
    truth = np.array([world["truth"][(r, h)] for r, h in zip(
        hops.column("request_id").to_pylist(), hops.column("hop").to_pylist(), strict=True)])
    assert np.all((hops.column("low_ns").to_numpy() <= truth)
                  & (truth <= hops.column("high_ns").to_numpy()))
    report = engine.report()
    assert report["requests"] > 0 and report["summary"]
    assert {h["hop"] for h in report["hops"]} >= {"ingress->invocation-start"}


def test_a_missing_parent_times_out_naming_it(world: dict) -> None:
    clock = Clock()
    engine = _engine(world, clock, request_timeout_s=5.0)
    doc = json.loads(json.dumps(world["docs"][0]))
    spans = [s for s in _spans(doc) if s.name.startswith("invocation-start")]
    engine.accept_spans(spans)
    engine.tick()
    assert engine.pending == 2 * len(spans)  # each waits for its parent and for children
    clock.now = 6.0
    engine.tick()
    assert engine.incomplete == {"parent of invocation-start": len(spans)}
    assert engine.pending == 0


def test_events_chain_live_equals_batch(world: dict) -> None:
    rng = np.random.default_rng(9)
    clocks = {k: world["clocks"][k] for k in ("n1", "n2")}
    events, _ = simulate_requests(clocks, [("n1", "n2"), ("n2", "n1")], 3000,
                                  T0 + 20 * 10**9, 60.0, rng)
    clock = Clock()
    config = load_collector_config(None, {"store": "unused", "window_s": 10.0,
                                          "lateness_s": 3600.0})
    engine = Engine(config, world["corrector"], monotonic_s=clock)
    shuffled = events.take(pa.array(rng.permutation(events.num_rows)))
    steps: list[StepResult] = []
    for at in range(0, shuffled.num_rows, 1000):
        engine.accept_events(shuffled.slice(at, 1000))
        steps += engine.tick()
    steps += engine.tick(flush=True)
    live = _key(_steps_hops(steps))
    batch = _key(hop_table(events, world["corrector"]).table)
    assert live.equals(batch)


def test_late_data_is_counted_not_published(world: dict, tmp_path: Path) -> None:
    clock = Clock()
    engine = _engine(world, clock, lateness_s=0.0)
    docs = world["docs"]
    half = len(docs) // 2
    for doc in docs[half:]:
        engine.accept_spans(_spans(doc))
    closed = engine.tick()
    assert closed  # the watermark passed the first steps
    published = sum(s.hops.num_rows for s in closed)
    for doc in docs[:half]:
        engine.accept_spans(_spans(doc))
    first_end = max(c.end_ns for c in closed)
    again = engine.tick(flush=True)
    assert engine.counts["late"] > 0
    # what came late changed no published step: no step is computed twice
    assert all(s.start_ns >= first_end for s in again)
    assert published > 0
