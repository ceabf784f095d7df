"""Our client against a REAL chronyd on loopback (it serves the system clock: truth is 0)."""

from __future__ import annotations

import pytest

from clocksync.net import StampKind
from clocksync.ntp import NtpClient


@pytest.mark.parametrize("interleaved", [False, True])
def test_every_bound_holds_the_true_zero_offset(chronyd_loopback: tuple[str, int],
                                               interleaved: bool) -> None:
    host, port = chronyd_loopback
    with NtpClient(host, port, timeout_s=1.0, interleaved=interleaved) as client:
        burst = client.burst(count=10, interval_s=0.02)
    assert len(burst.measurements) >= 8
    for m in burst.measurements:
        s = m.sample
        assert abs(s.offset_ns) <= s.bound, (s.offset_ns, s.bound)
        assert s.stratum == 1 and m.reference_id == "127.127.1.1"
        assert m.tx_kind is StampKind.KERNEL and m.rx_kind is StampKind.KERNEL
    # chronyd answers interleaved requests from the second exchange on
    assert any(m.interleaved for m in burst.measurements) is interleaved


def test_interleaved_mode_shortens_the_measured_delay(chronyd_loopback: tuple[str, int]) -> None:
    """chronyd's basic-mode transmit stamp is taken before its send path; interleaved mode
    replaces it with the kernel TX time, so the minimum delay must not grow."""
    host, port = chronyd_loopback
    best = {}
    for mode in (False, True):
        with NtpClient(host, port, interleaved=mode) as client:
            best[mode] = client.burst(count=10, interval_s=0.01).best.sample.delay_ns
    assert best[True] <= best[False]
