"""How PTP messages reach the slave: UDPv4 multicast (Annex D) or Ethernet (Annex F).

A transport owns its sockets (:class:`clocksync.net.StampedSocket`, kernel RX stamps)
and knows how to unwrap a received datagram/frame into the PTP payload and how to send an
event message. Both join the default multicast group with ``SO_REUSEADDR``/a packet socket
so they coexist with a ptp4l on the same interface.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import time
from pathlib import Path
from typing import Protocol

from clocksync.net import (
    MSG_ERRQUEUE,
    SO_TIMESTAMPING,
    SOF_TIMESTAMPING_OPT_TSONLY,
    SOF_TIMESTAMPING_SOFTWARE,
    SOF_TIMESTAMPING_TX_SOFTWARE,
    Received,
    Stamp,
    StampedSocket,
    StampKind,
    parse_rx_stamp_ns,
)

from ._messages import ETHERTYPE_PTP, EVENT_PORT, GENERAL_PORT

__all__ = [
    "PTP_PRIMARY_MAC",
    "PTP_PRIMARY_MULTICAST",
    "L2Transport",
    "Transport",
    "UdpTransport",
    "ethernet_payload",
    "interface_mac",
    "open_transport",
]

#: The default PTP primary multicast address (Annex D.3).
PTP_PRIMARY_MULTICAST = "224.0.1.129"
#: The multicast MAC for all messages but peer delay (Annex F.3).
PTP_PRIMARY_MAC = bytes.fromhex("011b19000000")

_SOL_PACKET = 263
_PACKET_ADD_MEMBERSHIP = 1
_PACKET_MR_MULTICAST = 0
_PACKET_OUTGOING = 4
_ETH_HLEN = 14
_VLAN_TPID = 0x8100


class Transport(Protocol):
    """What the slave needs from a transport."""

    #: ``True`` when payloads may carry padding past messageLength (Ethernet minimum frame).
    padded: bool

    def sockets(self) -> list[StampedSocket]:
        """The sockets to poll."""
        ...

    def unwrap(self, got: Received) -> bytes | None:
        """The PTP message in a received datagram/frame (``None``: not one for us)."""
        ...

    def send_event(self, payload: bytes) -> Stamp:
        """Send an event message (Delay_Req) to the PTP multicast group; its TX stamp."""
        ...

    def close(self) -> None: ...


def interface_mac(iface: str) -> bytes:
    """The interface's 6-octet MAC (``b""`` when unknown)."""
    try:
        text = Path(f"/sys/class/net/{iface}/address").read_text().strip()
        mac = bytes.fromhex(text.replace(":", ""))
    except (OSError, ValueError):
        return b""
    return mac if len(mac) == 6 else b""


def ethernet_payload(frame: bytes) -> bytes | None:
    """The PTP payload of an Ethernet frame (one 802.1Q tag allowed), else ``None``."""
    start = _ETH_HLEN
    if len(frame) < start:
        return None
    ethertype = int.from_bytes(frame[12:14], "big")
    if ethertype == _VLAN_TPID and len(frame) >= _ETH_HLEN + 4:
        ethertype = int.from_bytes(frame[16:18], "big")
        start += 4
    return frame[start:] if ethertype == ETHERTYPE_PTP else None


def _multicast_udp_socket(iface: str, ifindex: int, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # without CAP_NET_RAW the ifindex in the membership still selects the link
        with contextlib.suppress(PermissionError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, iface.encode())
        sock.bind(("", port))
        group = socket.inet_aton(PTP_PRIMARY_MULTICAST)
        mreqn = struct.pack("=4s4si", group, socket.inet_aton("0.0.0.0"), ifindex)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreqn)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, mreqn)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
    except BaseException:
        sock.close()
        raise
    return sock


class UdpTransport:
    """UDPv4 multicast 224.0.1.129, event port 319 and general port 320 (Annex D).

    Kernel RX stamps (``SO_TIMESTAMPNS``) and kernel TX stamps (``SO_TIMESTAMPING``, error
    queue) on the event socket.
    """

    padded = False

    def __init__(self, iface: str, ifindex: int) -> None:
        event = _multicast_udp_socket(iface, ifindex, EVENT_PORT)
        try:
            general = _multicast_udp_socket(iface, ifindex, GENERAL_PORT)
        except BaseException:
            event.close()
            raise
        self._event = StampedSocket(event, rx_kernel=True, tx_kernel=True)
        self._general = StampedSocket(general, rx_kernel=True, tx_kernel=False)

    def sockets(self) -> list[StampedSocket]:
        return [self._event, self._general]

    def unwrap(self, got: Received) -> bytes | None:
        return got.data

    def send_event(self, payload: bytes) -> Stamp:
        return self._event.send(payload, (PTP_PRIMARY_MULTICAST, EVENT_PORT))

    def close(self) -> None:
        self._event.close()
        self._general.close()


class L2Transport:
    """Ethernet, ethertype 0x88F7, to 01:1B:19:00:00:00 (Annex F), one packet socket.

    Kernel RX stamps. Kernel TX stamps come back on the packet socket's error queue under
    ``SOL_PACKET`` (not the IP ``RECVERR`` that ``StampedSocket`` matches), so they are read
    here; one Delay_Req is in flight at a time, so the next stamp is ours. When none comes,
    the user-space stamp taken just before the send (never late) is used.
    """

    padded = True

    def __init__(self, iface: str, ifindex: int) -> None:
        self._iface = iface
        self._mac = interface_mac(iface) or b"\x02\x00\x00\x00\x00\x01"
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETHERTYPE_PTP))
        try:
            sock.bind((iface, ETHERTYPE_PTP))
            mreq = struct.pack("=iHH8s", ifindex, _PACKET_MR_MULTICAST, 6, PTP_PRIMARY_MAC)
            sock.setsockopt(_SOL_PACKET, _PACKET_ADD_MEMBERSHIP, mreq)
        except BaseException:
            sock.close()
            raise
        self._sock = StampedSocket(sock, rx_kernel=True, tx_kernel=False)
        try:
            flags = SOF_TIMESTAMPING_TX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING, flags | SOF_TIMESTAMPING_OPT_TSONLY)
            self._tx_kernel = True
        except OSError:
            self._tx_kernel = False

    def _tx_stamp_ns(self, timeout_s: float) -> int | None:
        sock = self._sock.socket
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                _d, ancdata, _f, _a = sock.recvmsg(0, 256, MSG_ERRQUEUE)
            except (BlockingIOError, InterruptedError):
                left_s = deadline - time.monotonic()
                if left_s <= 0:
                    return None
                select.select([], [], [sock], left_s)
                continue
            return parse_rx_stamp_ns(ancdata)  # the software slot of SCM_TIMESTAMPING

    def sockets(self) -> list[StampedSocket]:
        return [self._sock]

    def unwrap(self, got: Received) -> bytes | None:
        if len(got.address) > 2 and got.address[2] == _PACKET_OUTGOING:
            return None  # our own frame
        return ethernet_payload(got.data)

    def send_event(self, payload: bytes) -> Stamp:
        frame = PTP_PRIMARY_MAC + self._mac + ETHERTYPE_PTP.to_bytes(2, "big") + payload
        if self._tx_kernel:
            while self._tx_stamp_ns(0.0) is not None:
                pass  # a late stamp of an earlier send
        user = self._sock.send(frame, (self._iface, ETHERTYPE_PTP))
        kernel_ns = self._tx_stamp_ns(0.02) if self._tx_kernel else None
        return user if kernel_ns is None else Stamp(kernel_ns, StampKind.KERNEL)

    def close(self) -> None:
        self._sock.close()


def open_transport(name: str, iface: str, ifindex: int) -> Transport:
    """``"udp"`` (UDPv4, default) or ``"l2"`` (Ethernet)."""
    if name == "udp":
        return UdpTransport(iface, ifindex)
    if name == "l2":
        return L2Transport(iface, ifindex)
    raise ValueError(f"transport: 'udp' or 'l2', got {name!r}")
