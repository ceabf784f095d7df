"""The collector's engine gives the numbers batch analysis gives for the same spans and
events, whatever order and batches they arrive in; it names what is missing and counts
what is late."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from clocksync import Corrector
from clocksync.collector._config import load_collector_config
from clocksync.collector._engine import Engine, StepResult
from clocksync.latency import hop_table, percentile_table, preset, read_inputs
from clocksync.latency._otlp import otlp_json_spans
from clocksync.testing import simulate_requests
from tests._restate_world import T0, RestateWorld, restate_world


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> RestateWorld:
    return restate_world(tmp_path_factory.mktemp("engine"), 5, 1200, 60.0, 200.0)


def _spans(doc: dict) -> list:
    return [s for _, s in otlp_json_spans("test", doc)]


def _engine(world: RestateWorld, clock: Clock, **options: object) -> Engine:
    config = load_collector_config(None, {"store": "unused", "preset": "restate",
                                          "window_s": 10.0, "step_s": 5.0, **options})
    return Engine(config, world.corrector, monotonic_s=clock)


def _events_engine(world: RestateWorld, clock: Clock, **options: object) -> Engine:
    """An engine of stage events (the default chain), tumbling 10 s windows."""
    config = load_collector_config(None, {"store": "unused", "window_s": 10.0, **options})
    return Engine(config, world.corrector, monotonic_s=clock)


def _live_with_tables_replaced(world: RestateWorld, events: pa.Table,
                               new: Corrector) -> pa.Table:
    """The hops of ``events`` (slices of 500, a round after each) when the engine's tables
    become ``new`` after the first 4,500 events, keyed as :func:`_key` keys them."""
    engine = _events_engine(world, Clock(), lateness_s=3600.0)
    steps: list[StepResult] = []
    for at in range(0, events.num_rows, 500):
        engine.accept_events(events.slice(at, 500))
        steps += engine.tick()
        if at == 4000:
            engine.corrector = new
    steps += engine.tick(flush=True)
    return _key(_steps_hops(steps))


def _key(table: pa.Table) -> pa.Table:
    cols = ["request_id", "hop", "low_ns", "high_ns", "src_ts_ns", "dst_ts_ns"]
    out = pa.table({c: pc.cast(table.column(c), pa.string()) if c in ("request_id", "hop")
                    else table.column(c) for c in cols})
    return out.sort_by([("request_id", "ascending"), ("hop", "ascending")])


def _batch(world: RestateWorld) -> pa.Table:
    events = read_inputs([world.spans], "otlp", preset("restate"))
    return hop_table(events, world.corrector).table


def _steps_hops(steps: list[StepResult]) -> pa.Table:
    return pa.concat_tables([s.hops for s in steps], promote_options="default")


@pytest.mark.slow
def test_live_equals_batch_whatever_the_arrival_order(world: RestateWorld) -> None:
    clock = Clock()
    engine = _engine(world, clock, lateness_s=3600.0)  # shuffled: nothing may come late
    docs = list(world.docs)
    order = np.random.default_rng(3).permutation(len(docs))
    steps: list[StepResult] = []
    for k, i in enumerate(order):
        engine.accept_spans(_spans(docs[i]))
        if k % 3 == 0:  # the engine works between arrivals; nothing times out (clock stays)
            steps += engine.tick()
    steps += engine.tick(flush=True)
    live, batch = _key(_steps_hops(steps)), _key(_batch(world))
    assert live.num_rows == batch.num_rows == len(world.truth)
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


def test_live_stamps_cover_the_truth_and_report(world: RestateWorld) -> None:
    clock = Clock()
    engine = _engine(world, clock)
    for doc in world.docs:
        engine.accept_spans(_spans(doc))
    steps = engine.tick(flush=True)
    hops = _steps_hops(steps)
    truth = np.array([world.truth[(r, h)] for r, h in zip(
        hops.column("request_id").to_pylist(), hops.column("hop").to_pylist(), strict=True)])
    assert np.all((hops.column("low_ns").to_numpy() <= truth)
                  & (truth <= hops.column("high_ns").to_numpy()))
    report = engine.report()
    assert report["requests"] > 0 and report["summary"]
    assert {h["hop"] for h in report["hops"]} >= {"ingress->invocation-start"}
    slow = report["slowest"]["ingress->invocation-start"][0]
    row = hops.filter(pc.and_(pc.equal(hops.column("request_id"), slow["request_id"]),
                              pc.equal(hops.column("hop"), "ingress->invocation-start")))
    assert slow["src_ts_ns"] == row.column("src_ts_ns")[0].as_py()
    assert slow["dst_ts_ns"] == row.column("dst_ts_ns")[0].as_py()


def test_a_report_read_is_that_of_the_last_step_published(world: RestateWorld) -> None:
    """A step publishes its report's summary, window rows and slowest requests unmade; the
    first read makes them from that step's tables. Read after some steps, the report is
    always the newest step's, and reading it again gives the same."""
    engine = _engine(world, Clock(), lateness_s=0.0)
    reads = 0
    for at, doc in enumerate(world.docs):
        engine.accept_spans(_spans(doc))
        steps = [s for s in engine.tick(flush=at == len(world.docs) - 1)
                 if s.window is not None]
        if not steps or at % 2:  # (some steps are never read)
            continue
        report = engine.report()
        assert report == engine.report()
        assert report["window_end_ns"] == steps[-1].end_ns
        assert report["windows"] == steps[-1].window.to_pylist()
        assert report["summary"] == percentile_table(engine.window_hops()).to_pylist()
        assert report["slowest"] and report["requests"] == engine.window_hops().num_rows
        reads += 1
    assert reads >= 2


def test_a_missing_parent_times_out_naming_it(world: RestateWorld) -> None:
    clock = Clock()
    engine = _engine(world, clock, request_timeout_s=5.0)
    doc = json.loads(json.dumps(world.docs[0]))
    spans = [s for s in _spans(doc) if s.name.startswith("invocation-start")]
    engine.accept_spans(spans)
    engine.tick()
    assert engine.pending == 2 * len(spans)  # each waits for its parent and for children
    clock.now = 6.0
    engine.tick()
    assert engine.incomplete == {"parent of invocation-start": len(spans)}
    assert engine.pending == 0


def test_a_round_takes_its_bodies_as_one_batch_that_waits_from_the_last(
        world: RestateWorld) -> None:
    """Bodies that arrived between two rounds are paired as one batch: none of its entries
    times out before the timeout has passed since the last of them arrived."""
    clock = Clock()
    engine = _engine(world, clock, request_timeout_s=5.0)
    doc = json.loads(json.dumps(world.docs[0]))
    spans = [s for s in _spans(doc) if s.name.startswith("invocation-start")]
    half = len(spans) // 2
    engine.accept_spans(spans[:half])
    clock.now = 4.0
    engine.accept_spans(spans[half:])
    engine.tick()
    assert engine.pending == 2 * len(spans)
    clock.now = 8.0  # 8 s after the first body, 4 s after the last: all still wait
    engine.tick()
    assert engine.pending == 2 * len(spans) and not engine.incomplete
    clock.now = 9.0
    engine.tick()
    assert engine.incomplete == {"parent of invocation-start": len(spans)}
    assert engine.pending == 0


@pytest.mark.slow
def test_events_chain_live_equals_batch(world: RestateWorld) -> None:
    rng = np.random.default_rng(9)
    clocks = {k: world.clocks[k] for k in ("n1", "n2")}
    events, _ = simulate_requests(clocks, [("n1", "n2"), ("n2", "n1")], 3000,
                                  T0 + 20 * 10**9, 60.0, rng)
    clock = Clock()
    engine = _events_engine(world, clock, lateness_s=3600.0)
    shuffled = events.take(pa.array(rng.permutation(events.num_rows)))
    steps: list[StepResult] = []
    for at in range(0, shuffled.num_rows, 1000):
        engine.accept_events(shuffled.slice(at, 1000))
        steps += engine.tick()
    steps += engine.tick(flush=True)
    live = _key(_steps_hops(steps))
    batch = _key(hop_table(events, world.corrector).table)
    assert live.equals(batch)


def _shifted(corrector: Corrector, node: str, offset_ns: float) -> Corrector:
    """The corrector's tables, ``node``'s offset moved by ``offset_ns`` (new tables)."""
    tables = []
    for name in corrector.nodes:
        table = corrector.table(name)
        if name == node:
            cells = dataclasses.replace(table.cells, hi0=table.cells.hi0 + offset_ns,
                                        lo0=table.cells.lo0 + offset_ns)
            table = dataclasses.replace(table, cells=cells)
        tables.append(table)
    return Corrector(tables)


def test_events_chain_live_follows_new_tables(world: RestateWorld) -> None:
    """Tables replaced while requests wait in the buffer: the corrections made when they
    completed are not those of the new tables, so a step corrects them again (the numbers
    are batch analysis's with the new tables, not the old)."""
    rng = np.random.default_rng(4)
    clocks = {k: world.clocks[k] for k in ("n1", "n2")}
    events, _ = simulate_requests(clocks, [("n1", "n2"), ("n2", "n1")], 2000,
                                  T0 + 20 * 10**9, 40.0, rng)
    events = events.sort_by("ts_ns")
    new = _shifted(world.corrector, "n2", 40_000.0)
    live = _live_with_tables_replaced(world, events, new)
    assert live.equals(_key(hop_table(events, new).table))
    assert not live.equals(_key(hop_table(events, world.corrector).table))


def test_late_data_is_counted_not_published(world: RestateWorld, tmp_path: Path) -> None:
    clock = Clock()
    engine = _engine(world, clock, lateness_s=0.0)
    docs = world.docs
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


def test_every_option_is_documented() -> None:
    from clocksync.collector import COLLECTOR_OPTIONS

    doc = (Path(__file__).resolve().parents[2] / "docs" / "collector.md").read_text()
    for spec in COLLECTOR_OPTIONS:
        assert f"| `{spec.key}` | `{spec.flag_name}` |" in doc, spec.key


def test_over_the_memory_budget_the_oldest_are_evicted_and_payloads_wait(
        world: RestateWorld) -> None:
    clock = Clock()
    engine = _engine(world, clock, memory_budget_bytes=1 << 20)
    orphans = [s for d in world.docs for s in _spans(d)
               if s.name.startswith("invocation-start")]
    assert engine.retry_after_s() is None
    for at in range(0, len(orphans), 100):
        engine.accept_spans(orphans[at:at + 100])
        engine.tick()
    assert engine.counts["evicted"] > 0  # the oldest pending children went first
    assert engine.pending_bytes <= (1 << 20) / 2 + 100 * 4096
    # a burst that is not yet taken in counts against the budget: 429 until the next round
    for _ in range(40):
        engine.accept_spans(orphans[:500])
    assert engine.retry_after_s() is not None
    engine.tick()
    assert engine.retry_after_s() is None
    assert engine.health()[0]


def test_an_alert_reaches_the_webhook() -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from clocksync.collector._engine import post_alert
    from clocksync.latency import Alert

    got: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        alert = Alert("latency_p99", 1, 2, "ingress->invocation-start", "n1", "n2", 5e6,
                      1e6, "P99 rose")
        post_alert(f"http://127.0.0.1:{server.server_address[1]}/hook", alert)
        post_alert("http://127.0.0.1:1/nothing-listens", alert)  # logged, not raised
    finally:
        server.shutdown()
        server.server_close()
    assert got and got[0]["kind"] == "latency_p99" and got[0]["src_node"] == "n1"


def test_receivers_wait_while_a_round_runs(world: RestateWorld) -> None:
    import threading

    from clocksync.collector._engine import ROUND_YIELD_S

    engine = _engine(world, Clock())
    in_round, release = threading.Event(), threading.Event()
    real_round = engine._round

    def slow_round(flush: bool) -> list[StepResult]:
        in_round.set()
        release.wait(30)
        return real_round(flush)

    engine._round = slow_round  # type: ignore[method-assign]
    with engine.decoding():  # no round: at once
        pass
    ticker = threading.Thread(target=engine.tick)
    ticker.start()
    assert in_round.wait(30)
    waited = threading.Event()
    def receiver_turn() -> None:
        with engine.decoding():
            waited.set()

    receiver = threading.Thread(target=receiver_turn)
    receiver.start()
    assert not waited.wait(ROUND_YIELD_S / 4)  # held while the round runs
    release.set()
    assert waited.wait(30)  # and let go when it ends
    ticker.join()
    receiver.join()
    # a round that never ends holds a receiver at most ROUND_YIELD_S
    in_round.clear()
    release.clear()
    ticker = threading.Thread(target=engine.tick)
    ticker.start()
    assert in_round.wait(30)
    started = time.monotonic()
    with engine.decoding():
        pass
    assert ROUND_YIELD_S * 0.9 <= time.monotonic() - started < ROUND_YIELD_S * 10
    release.set()
    ticker.join()


@pytest.mark.parametrize("decoders", [1, 2])
def test_only_so_many_receivers_decode_at_once(world: RestateWorld, decoders: int) -> None:
    import threading

    engine = _engine(world, Clock(), decoders=decoders)
    inside, leave = threading.Semaphore(0), threading.Event()

    def receiver() -> None:
        with engine.decoding():
            inside.release()
            leave.wait(30)

    threads = [threading.Thread(target=receiver) for _ in range(decoders + 1)]
    for th in threads:
        th.start()
    for _ in range(decoders):
        assert inside.acquire(timeout=30)
    assert not inside.acquire(timeout=0.3)  # the last one waits for a turn
    leave.set()
    assert inside.acquire(timeout=30)  # and gets one when a turn ends
    for th in threads:
        th.join(30)


def test_decoders_default_to_the_cpus_the_collector_may_run_on() -> None:
    import os

    config = load_collector_config(None, {"store": "unused"})
    assert config.decoders == 0
    assert config.decoder_count == len(os.sched_getaffinity(0))
    assert load_collector_config(None, {"store": "unused", "decoders": 3}).decoder_count == 3


def _two_node_events(world: RestateWorld, route: tuple[str, str], n: int, start_s: float,
                     duration_s: float, tag: str, seed: int) -> pa.Table:
    clocks = {k: world.clocks[k] for k in route}
    events, _ = simulate_requests(clocks, [route], n, T0 + round(start_s * 1e9), duration_s,
                                  np.random.default_rng(seed))
    ids = pc.binary_join_element_wise(tag, events.column("request_id"), "")
    return events.set_column(0, "request_id", ids)


def test_a_node_pair_is_named_the_same_way_round_in_every_step(world: RestateWorld) -> None:
    """The engine codes nodes in the order they first came: the second load starts on n2,
    yet its windows name the pair (n1, n2) as the first load's do, and as batch does."""
    first = _two_node_events(world, ("n1", "n2"), 800, 20.0, 8.0, "a-", 1)
    second = _two_node_events(world, ("n2", "n1"), 800, 31.0, 8.0, "b-", 2)
    first = first.sort_by([("node", "ascending"), ("ts_ns", "ascending")])  # n1 rows first
    second = second.sort_by([("node", "descending"), ("ts_ns", "ascending")])  # n2 first
    engine = _events_engine(world, Clock(), lateness_s=3600.0)
    steps: list[StepResult] = []
    for events in (first, second):
        engine.accept_events(events)
        steps += engine.tick()
    steps += engine.tick(flush=True)
    named = {(w.node_a, w.node_b) for s in steps for w in s.causal}
    assert len({w.start_ns for s in steps for w in s.causal}) >= 10  # windows of both loads
    batch = hop_table(pa.concat_tables([first, second]), world.corrector)
    assert named == {(w.node_a, w.node_b) for w in batch.pair_windows} == {("n1", "n2")}
    live = _key(_steps_hops(steps))
    assert live.equals(_key(batch.table))


def test_steps_follow_keys_that_new_tables_move(world: RestateWorld) -> None:
    """Tables that move n2's corrected times by 0.6 s while requests wait: a step then
    looks a margin around itself for requests its old keys put elsewhere (the numbers are
    batch analysis's with the new tables)."""
    events = _two_node_events(world, ("n1", "n2"), 2000, 20.0, 40.0, "", 5).sort_by("ts_ns")
    new = _shifted(world.corrector, "n2", 6e8)
    live = _live_with_tables_replaced(world, events, new)
    assert live.num_rows == 4 * 2000
    assert live.equals(_key(hop_table(events, new).table))


def test_a_unit_keyed_in_a_closed_step_is_late(world: RestateWorld) -> None:
    events = _two_node_events(world, ("n1", "n2"), 1000, 20.0, 20.0, "", 6).sort_by("ts_ns")
    late = _two_node_events(world, ("n1", "n2"), 1, 29.5, 0.001, "late-", 7)
    engine = _events_engine(world, Clock(), lateness_s=0.0)
    engine.accept_events(events)
    closed = engine.tick()
    assert max(s.end_ns for s in closed) == T0 + 30 * 10**9
    engine.accept_events(late)  # its first event lies half a second before that end
    engine.tick()
    assert engine.counts["late"] == 1
