"""Root: our slave against a real ptp4l master in namespaces, beside a ptp4l slave.

Every namespace shares the system clock, so the truth is known exactly (0, or the
simulated clock's offset): every sample's bound must hold it. Skipped without root/ptp4l.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from lab.netlab import BridgeParams
from lab.ptp_vs_ptp4l import PtpLab, missing_requirements
from ptp import parse_offset_line

pytestmark = [pytest.mark.root, pytest.mark.slow]


@pytest.fixture
def lab(ptp_lab: PtpLab) -> PtpLab:
    """The conftest lab with its ptp4l master running."""
    ptp_lab.start_master()
    return ptp_lab


def assert_all_bounded(records: list[dict[str, float]], minimum: int) -> None:
    assert len(records) >= minimum, records
    for r in records:
        assert abs(r["offset_ns"] - r["truth_ns"]) <= r["bound_ns"], r
        # the path delay estimate mixes the Sync and the Delay_Req exchanges, taken apart
        # on a skewed clock: under load it can dip below 0, never by more than the bound
        assert r["delay_ns"] > -r["bound_ns"], r


def test_beside_ptp4l_every_sample_bounds_the_true_zero(lab: PtpLab) -> None:
    lab.start_ptp4l("slave")
    records = lab.run_ours(4.0)
    assert_all_bounded(records, minimum=5)
    assert all(r["truth_ns"] == 0 for r in records)
    assert len({r["master"] for r in records}) == 1
    # side by side: ptp4l measured through the same master meanwhile
    assert any(parse_offset_line(line) for line in lab.log("ptp4l-slave.log").splitlines())


def test_layer2_transport_beside_ptp4l() -> None:
    reason = missing_requirements()
    if reason is not None:
        pytest.skip(reason)
    with PtpLab() as lab:
        lab.start_ptp4l("slave", "l2")
        lab.start_master(transport="l2")
        records = lab.run_ours(3.0, transport="l2")
    assert_all_bounded(records, minimum=4)


def test_skewed_simulated_clock_is_measured_within_its_bounds(lab: PtpLab) -> None:
    records = lab.run_ours(3.0, offset_ns=3_000_000.0, skew_ppm=300.0)
    assert_all_bounded(records, minimum=4)
    # the clock ran 300 ppm fast: its true offset fell between the first and last sample
    assert records[-1]["truth_ns"] < records[0]["truth_ns"] < 3_000_000.0


def test_cli_probe_json_in_the_namespace(lab: PtpLab) -> None:
    clocksync = str(Path(sys.executable).with_name("clocksync"))
    done = lab.topo.exec(
        lab.slave_ns, clocksync, "ptp", "probe", lab.slave_if, "--seconds", "3", "--json",
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = [json.loads(x) for x in done.stdout.splitlines()]
    summary = lines[-1]["summary"]
    exchanges = lines[:-1]
    assert summary["count"] == len(exchanges) >= 3
    for r in exchanges:
        assert abs(r["offset_ns"]) <= r["bound_ns"]  # truth is 0 between namespaces
    best = min(r["bound_ns"] for r in exchanges if r["accepted"])
    assert summary["best_bound_ns"] == pytest.approx(best, abs=0.1)


#: runs of the asymmetric bridge, of which one must show the lean (each ~4.5 s)
_ASYMMETRY_RUNS = 4


def test_asymmetric_bridge_shifts_offsets_but_bounds_hold() -> None:
    reason = missing_requirements()
    if reason is not None:
        pytest.skip(reason)
    bridge = BridgeParams(delay_ab_us=300.0, delay_ba_us=0.0)
    seen = []
    for _ in range(_ASYMMETRY_RUNS):
        with PtpLab(bridge=bridge) as lab:
            lab.start_master()
            time.sleep(0.2)
            records = lab.run_ours(3.0)
        assert_all_bounded(records, minimum=4)  # every run, whatever the bridge did
        # master->slave is 300 µs slower: the estimate leans by about -150 µs (judged on the
        # exchanges with the least delay, as chrony's and ptp4l's filters do). The Python
        # bridge does not always impose its asymmetry faithfully on a busy 2-core machine
        # (about 1 run in 8 alone; seen: offsets +24 µs .. +195 µs at the usual ~0.5 ms
        # delay, and two such runs in a row, delays 0.5-1.7 ms, during a whole-suite run):
        # another run then shows whether the lean is there
        fastest = sorted(records, key=lambda r: r["delay_ns"])[:max(3, len(records) // 2)]
        offsets = sorted(r["offset_ns"] for r in fastest)
        seen.append([(r["delay_ns"], r["offset_ns"]) for r in records])
        if -350_000 < offsets[len(offsets) // 2] < -25_000:
            return
    pytest.fail(f"no run leaned by the asymmetry: {seen}")
