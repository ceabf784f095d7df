"""The agent's ``clock`` option: ``system`` or a simulated ``sim:...`` clock (labs, demos).

With a sim clock the agent stamps its samples with a clock that is off the system clock by a
known offset and rate; against a real NTP server serving the system clock (chronyd ``-x`` on
loopback) the table it publishes must recover that injected offset within its bound."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from clocksync import Corrector, InputError, SimClock, SystemClock
from clocksync.agent import Agent, AgentConfig, load_config, parse_clock
from clocksync.cli import main

from .conftest import Chronyd


def test_system_is_the_default() -> None:
    assert load_config().clock == "system"
    assert isinstance(parse_clock("system"), SystemClock)
    assert isinstance(AgentConfig.defaults().build_clock(), SystemClock)


def test_sim_clock_reads_the_system_clock_through_offset_and_rate() -> None:
    t0 = 1_700_000_000_000_000_000
    clock = parse_clock(f"sim:offset_ns=-2.5e9, skew_ppm=30, t0_ns={t0}, seed=3")
    assert isinstance(clock, SimClock)
    assert (clock.t0_ns, clock.offset0_ns, clock.skew_ppm, clock.seed) == (t0, -2.5e9, 30.0, 3)
    # offset = reference - local: -2.5 s is a clock 2.5 s ahead, +30 ppm gains 30 µs a second
    assert clock.read_ns(t0) - t0 == 2_500_000_000
    assert clock.read_ns(t0 + 10**9) - (t0 + 10**9) == 2_500_030_000
    # the same text read twice is the same clock (a lab's relay and agent agree)
    assert parse_clock(f"sim:offset_ns=-2.5e9,skew_ppm=30,t0_ns={t0}") \
        .read_ns(t0 + 5 * 10**9) == clock.read_ns(t0 + 5 * 10**9)
    before = time.time_ns()
    later = parse_clock("sim:offset_ns=7")
    assert isinstance(later, SimClock) and later.t0_ns >= before  # t0 defaults to now


@pytest.mark.parametrize(("text", "needle"), [
    ("utc", "expected 'system' or 'sim:"),
    ("sim", "expected 'system' or 'sim:"),
    ("sim:offset=1", "KEY one of offset_ns"),
    ("sim:offset_ns", "KEY one of offset_ns"),
    ("sim:offset_ns=soon", "offset_ns must be a number"),
    ("sim:skew_ppm=nan", "skew_ppm must be finite"),
    ("sim:seed=1.5", "seed must be an integer"),
    ("sim:offset_ns=1,offset_ns=2", "offset_ns given twice"),
    ("sim:skew_ppm=1e9", "skew_ppm must be within"),
    ("sim:wander_ppb_per_s=-1", "wander_ppb_per_s must be >= 0"),
])
def test_bad_clock_names_its_source(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(f'clock = "{text}"\n')
    with pytest.raises(InputError, match="key 'clock'") as in_file:
        load_config(path)
    assert needle in str(in_file.value)
    with pytest.raises(InputError, match="flag --clock") as as_flag:
        load_config(None, {"clock": text})
    assert needle in str(as_flag.value)


def test_clock_flag_is_listed() -> None:
    result = CliRunner().invoke(main, ["agent", "run", "--help"])
    assert result.exit_code == 0 and "--clock" in result.output


@pytest.mark.slow
@pytest.mark.root
def test_sim_clock_agent_measures_its_injected_offset(tmp_path: Path, chronyd: Chronyd) -> None:
    """A real agent on a sim clock 2.5 s ahead running 30 ppm fast, against chronyd (system
    clock) on loopback: its published table's offset is the injected one within its bound."""
    t0 = time.time_ns()
    text = f"sim:offset_ns=-2500000000,skew_ppm=30,t0_ns={t0}"
    store = tmp_path / "tables"
    cfg = AgentConfig.defaults(node="sim-1", data_dir=str(tmp_path / "data"), http_listen="",
                               ntp_servers=[f"{chronyd.host}:{chronyd.port}"],
                               stores=[str(store)], clock=text, min_poll_s=0.1,
                               max_poll_s=0.2, refit_min_s=0.3, timeout_s=0.2, burst=2,
                               burst_interval_s=0.01)
    agent = Agent(cfg)
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while agent.table is None or agent.table.sample_count < 10:
            assert time.monotonic() < deadline, "no table of 10 samples in 20 s"
            time.sleep(0.05)
    finally:
        agent.request_stop()
        thread.join(10)
    assert not thread.is_alive()
    truth = parse_clock(text)
    assert isinstance(truth, SimClock)
    corrector = Corrector.from_store(str(store))
    for _ in range(3):
        system = time.time_ns()
        local = truth.read_ns(system)
        reference, bound = corrector.correct("sim-1", local)
        # the corrected local stamp is the system (= reference) time within the bound
        assert abs(reference - system) <= bound, (reference - system, bound)
        assert bound < 1e6
        time.sleep(0.2)
    fit = corrector.table("sim-1").current
    assert fit is not None and abs(fit.skew_ppm - 30.0) < 20.0
