"""Fixtures for the NTP tests: our server, a real chronyd, and a crafting fake server.

Everything listens on 127.0.0.1 only; every thread and process is stopped in teardown
(processes by PID).
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from clocksync.ntp import NtpClient
from tests._chronyd import chronyd_process
from tests._fakentp import Craft, FakeServer

__all__ = ["Craft", "FakeServer"]  # re-exported for the test modules



def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def fake_server() -> Iterator[Callable[[Craft], FakeServer]]:
    """Factory: ``fake_server(craft)`` starts a crafting server; all are closed afterwards."""
    made: list[FakeServer] = []

    def make(craft: Craft) -> FakeServer:
        server = FakeServer(craft)
        made.append(server)
        return server

    try:
        yield make
    finally:
        for server in made:
            server.close()


def _chronyd_missing() -> str | None:
    if shutil.which("chronyd") is None:
        return "needs chronyd on PATH"
    if os.geteuid() != 0:
        return "needs root: chronyd state dir must be chowned to _chrony"
    return None


@pytest.fixture(scope="module")
def chronyd_loopback(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """A real chronyd (``-x``: never touches the clock) serving the system clock on loopback."""
    why = _chronyd_missing()
    if why:
        pytest.skip(why)
    from lab.ntp_vs_chrony import chrony_server_conf, chrony_workdir

    workdir: Path = chrony_workdir("csntp_test_")
    port = free_udp_port()
    conf = chrony_server_conf(workdir, allow="127.0.0.1", port=port, bind="127.0.0.1")
    with NtpClient("127.0.0.1", port, timeout_s=0.2, interleaved=False) as client:

        def ready() -> bool:
            client.exchange()
            return True

        with chronyd_process(conf, workdir, ready, 10, f"chronyd on port {port}"):
            yield "127.0.0.1", port
