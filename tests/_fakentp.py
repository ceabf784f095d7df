"""A crafting NTP "server" for tests: a plain UDP socket on loopback that answers each
request with whatever datagrams a ``craft`` function returns (spoofed, garbled, KoD...)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

from clocksync.ntp import NtpPacket, decode, ns_to_ntp

__all__ = ["Craft", "FakeServer"]

# craft(request, t2_ntp) -> datagrams to send back (raw bytes), possibly none
Craft = Callable[[NtpPacket, int], list[bytes]]


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
