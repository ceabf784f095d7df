"""Fixtures shared by several test directories."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import settings

from clocksync.ntp import NtpServer

# The suite replays a fixed sequence of hypothesis examples (the same cases on every run, given
# the locked hypothesis version), so a merge is never blocked by a new random find; fuzz
# targets take their case count from tests/_fuzz.py. To search with fresh random examples:
# HYPOTHESIS_PROFILE=explore .venv/bin/python -m pytest -m fuzz
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


# A test that uses one of these fixtures needs root (they skip with the reason otherwise), so
# it is marked `root` here rather than by hand in every file.
ROOT_FIXTURES = frozenset({"chronyd", "chronyd_client", "chronyd_loopback", "ptp_lab"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if ROOT_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.root)


@pytest.fixture
def ntp_server() -> Iterator[NtpServer]:
    """Our NTP server on loopback serving the system clock (stop it to simulate an outage)."""
    server = NtpServer(address="127.0.0.1", port=0).start()
    try:
        yield server
    finally:
        server.stop()
