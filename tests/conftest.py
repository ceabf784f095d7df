"""Fixtures shared by several test directories."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from clocksync.ntp import NtpServer


@pytest.fixture
def ntp_server() -> Iterator[NtpServer]:
    """Our NTP server on loopback serving the system clock (stop it to simulate an outage)."""
    server = NtpServer(address="127.0.0.1", port=0).start()
    try:
        yield server
    finally:
        server.stop()
