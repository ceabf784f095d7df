"""Live: capture a real ptp4l master/slave exchange and check it decodes and re-encodes.

Needs root, ip, ptp4l, pmc and tcpdump; skipped with the reason otherwise.
"""

from __future__ import annotations

import shutil

import pytest

import ptp

pytestmark = [pytest.mark.root, pytest.mark.slow]


def test_live_ptp4l_traffic_decodes_and_pairs() -> None:
    from lab.ptp_vs_ptp4l import missing_requirements

    reason = missing_requirements()
    if reason is not None:
        pytest.skip(reason)
    for tool in ("pmc", "tcpdump"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool} on PATH")
    from tests.ptp.capture import CAPTURE_NAMES, capture

    got = capture(seconds=2.5)
    assert set(got) == set(CAPTURE_NAMES)
    msgs = {name: ptp.decode(raw) for name, raw in got.items()}
    for name, raw in got.items():
        assert ptp.encode(msgs[name]) == raw
    sync, follow_up = msgs["sync"], msgs["follow_up"]
    req, resp, announce = msgs["delay_req"], msgs["delay_resp"], msgs["announce"]
    assert sync.two_step and sync.sequenceId == follow_up.sequenceId
    assert sync.source.key() == follow_up.source.key() == resp.source.key()
    assert resp.requestingPortIdentity.key() == req.source.key()
    assert bytes(announce.grandmasterIdentity) == bytes(sync.sourcePortIdentity.clockIdentity)
    assert announce.grandmasterPriority1 == 10  # lab master config
    assert sync.logMessageInterval == -2
    # both are the master's readings of one shared clock, taken within the capture window
    gap_ns = resp.receiveTimestamp.to_ns() - follow_up.preciseOriginTimestamp.to_ns()
    assert abs(gap_ns) < 10 * 10**9
    assert isinstance(msgs["management"], ptp.Management)
