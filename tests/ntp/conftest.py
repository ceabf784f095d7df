"""Fixtures for the NTP tests: our server, a real chronyd, and a crafting fake server.

Everything listens on 127.0.0.1 only; every thread and process is stopped in teardown
(processes by PID).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from clocksync.ntp import NtpClient, NtpPacket, decode
from clocksync.ntp._packet import ns_to_ntp
from tests._chronyd import chronyd_process

# craft(request, t2_ntp) -> datagrams to send back (raw bytes), possibly none
Craft = Callable[[NtpPacket, int], list[bytes]]


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FakeServer:
    """A plain UDP socket on loopback answering each request with ``craft``'s datagrams."""

    def __init__(self, craft: Craft):
        self.craft = craft
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = int(self.sock.getsockname()[1])
        self.requests: list[NtpPacket] = []
        self.peers: list[tuple[str, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(2048)
            except (TimeoutError, OSError):
                continue
            t2 = ns_to_ntp(time.time_ns())
            request = decode(data)
            self.requests.append(request)
            self.peers.append(addr)
            for reply in self.craft(request, t2):
                self.sock.sendto(reply, addr)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


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
