"""A real chronyd NTS server on loopback, behind a UDP proxy that can tamper with NTP.

chronyd (``-4 -x -d -u _chrony``) serves NTS-KE on 127.0.0.1 and NTP on 127.0.0.1, and tells
clients (``ntsntpserver``) to send NTP to 127.0.0.3 instead, where :class:`UdpProxy`
forwards datagrams both ways and, depending on its ``mode``, alters them. Everything stays on
127.0.0.0/8; chronyd is stopped by PID when the block ends, also on failure.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from clocksync.ntp import FieldType, NtsClient
from tests._chronyd import chronyd_process

__all__ = ["PROXY_ADDRESS", "NtsServer", "UdpProxy", "nts_chronyd", "nts_missing"]

PROXY_ADDRESS = "127.0.0.3"


def nts_missing() -> str | None:
    """Why the NTS server tests cannot run here (``None`` when they can)."""
    for tool in ("chronyd", "openssl"):
        if shutil.which(tool) is None:
            return f"needs {tool} on PATH (bash tests/install.sh installs it)"
    if os.geteuid() != 0:
        return "needs root: chronyd's key and state dir must belong to group _chrony"
    return None


def _free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _fields_at(data: bytes) -> list[tuple[int, int, int]]:
    """``(type, start, end)`` of the extension fields of an NTP datagram (best effort)."""
    out, offset = [], 48
    while offset + 4 <= len(data):
        kind = int.from_bytes(data[offset:offset + 2], "big")
        length = int.from_bytes(data[offset + 2:offset + 4], "big")
        if length < 4:
            break
        out.append((kind, offset, offset + length))
        offset += length
    return out


class UdpProxy:
    """Forwards NTP between clients and chronyd; ``mode`` says what it does to datagrams.

    Modes: ``pass``; ``flip`` (one byte of each reply inverted, at a position that moves
    through the whole reply); ``strip`` (replies cut before their authenticator); ``replay``
    (the first reply is kept, and every later request is answered with it instead); ``drop``
    (replies discarded); ``nak`` (one byte of the cookie of the next ``nak_left`` requests
    inverted, so chronyd cannot read it).
    """

    def __init__(self, listen: tuple[str, int], upstream: tuple[str, int]) -> None:
        self.mode = "pass"
        self.nak_left = 0
        self.replies_seen = 0
        self.replies_sent = 0
        self._kept: bytes | None = None
        self._client: tuple[str, int] | None = None
        self._front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._front.bind(listen)
        self._back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._back.connect(upstream)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="nts-proxy", daemon=True)
        self._thread.start()

    def set_mode(self, mode: str, nak_left: int = 0) -> None:
        self.mode, self.nak_left = mode, nak_left
        self.replies_seen = self.replies_sent = 0
        self._kept = None

    def _request(self, data: bytes) -> None:
        if self.mode == "replay" and self._kept is not None:
            self.replies_sent += 1
            self._front.sendto(self._kept, self._client or ("127.0.0.1", 0))
            return
        if self.mode == "nak" and self.nak_left > 0:
            cookie = [f for f in _fields_at(data) if f[0] == FieldType.COOKIE]
            if cookie:
                self.nak_left -= 1
                at = cookie[0][1] + 8
                data = data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]
        self._back.send(data)

    def _reply(self, data: bytes) -> None:
        self.replies_seen += 1
        if self.mode == "drop":
            return
        if self.mode == "flip":
            at = (self.replies_seen * 37) % len(data)
            data = data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]
        elif self.mode == "strip":
            auth = [f for f in _fields_at(data) if f[0] == FieldType.AUTHENTICATOR]
            if auth:
                data = data[:auth[0][1]]
        elif self.mode == "replay":
            if self._kept is None:
                self._kept = data
            else:
                return  # fresh replies never reach the client
        if self._client is not None:
            self.replies_sent += 1
            self._front.sendto(data, self._client)

    def _run(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._front, self._back], [], [], 0.1)
            for sock in ready:
                with contextlib.suppress(OSError):
                    if sock is self._front:
                        data, self._client = sock.recvfrom(4096)
                        self._request(data)
                    else:
                        self._reply(sock.recv(4096))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._front.close()
        self._back.close()


@dataclass(frozen=True)
class NtsServer:
    """A running chronyd NTS server: NTS-KE on ``localhost:ke_port`` (certificate for
    ``localhost`` and 127.0.0.1, issued by ``ca_cert``), NTP via ``proxy``."""

    ke_port: int
    ntp_port: int
    ca_cert: Path
    other_ca_cert: Path
    proxy: UdpProxy

    def client(self, **options: object) -> NtsClient:
        return NtsClient("localhost", self.ke_port, ca_file=str(self.ca_cert),
                         **options)  # type: ignore[arg-type]


@contextlib.contextmanager
def nts_chronyd(tmp: Path) -> Iterator[NtsServer]:
    """Start the server (skips the test with a reason when it cannot run here)."""
    why = nts_missing()
    if why:
        pytest.skip(why)
    from lab.ntp_vs_chrony import chrony_workdir
    from lab.nts_vs_chrony import make_test_pki, nts_server_conf

    workdir = chrony_workdir("csnts_test_")
    pki = make_test_pki(workdir)
    other = tmp / "other-ca"
    other.mkdir()
    other_pki = make_test_pki(other, ca_name="someone else's CA")
    ke_port, ntp_port = _free_port(socket.SOCK_STREAM), _free_port(socket.SOCK_DGRAM)
    conf = nts_server_conf(workdir, pki, bind="127.0.0.1", allow="127.0.0.0/8", port=ntp_port,
                           ke_port=ke_port, ntp_server=PROXY_ADDRESS)
    proxy = UdpProxy((PROXY_ADDRESS, ntp_port), ("127.0.0.1", ntp_port))
    server = NtsServer(ke_port, ntp_port, pki.ca_cert, other_pki.ca_cert, proxy)
    try:
        with server.client(timeout_s=0.3) as probe:

            def ready() -> bool:
                probe.exchange()
                return True

            with chronyd_process(conf, workdir, ready, 15, f"chronyd NTS on port {ke_port}",
                                 extra_args=("-4", "-u", "_chrony")):
                yield server
    finally:
        proxy.close()
