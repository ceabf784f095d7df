"""Fixtures shared by several test directories."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import settings

from clocksync.ntp import NtpServer

# The suite replays a fixed sequence of hypothesis examples (the same thousands of cases on
# every run), so a merge is never blocked by a new random find. To search with fresh random
# examples: HYPOTHESIS_PROFILE=explore pytest tests/faults
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def ntp_server() -> Iterator[NtpServer]:
    """Our NTP server on loopback serving the system clock (stop it to simulate an outage)."""
    server = NtpServer(address="127.0.0.1", port=0).start()
    try:
        yield server
    finally:
        server.stop()
