"""NTPv4 packet codec and reply validation (RFC 5905 §7.3); pure, no sockets.

The 48-byte header is packed and unpacked with :class:`ntplib.NTPPacket`. Its four 64-bit
timestamps, however, are kept here as exact integers: ntplib holds them as float seconds,
which at today's epoch (~3.9e9 s) resolve only 2^-21 s ≈ 0.48 µs — too coarse for kernel
timestamps, and a random 64-bit nonce would not survive the round trip.

NTP timestamps (RFC 5905 §6) are 32.32 fixed-point seconds since 1900-01-01; an era pivot
maps seconds below 2^31 to era 1 (2036-02-07 .. 2104), so conversions work until 2104.
"""

from __future__ import annotations

import ipaddress
import math
import struct
from dataclasses import dataclass
from fractions import Fraction

import ntplib

from ._errors import KissOfDeathError, NtpDecodeError, NtpRejectError, RejectReason

__all__ = [
    "HEADER_BYTES",
    "MODE_CLIENT",
    "MODE_SERVER",
    "NTP_EPOCH_OFFSET_S",
    "NtpPacket",
    "decode",
    "encode",
    "ns_to_ntp",
    "ns_to_short",
    "ntp_to_ns",
    "short_to_ns",
    "validate_reply",
]

HEADER_BYTES = 48
NTP_EPOCH_OFFSET_S = 2_208_988_800  #: seconds from 1900-01-01 to 1970-01-01
MODE_CLIENT = 3
MODE_SERVER = 4
LEAP_UNSYNCHRONISED = 3
MAX_STRATUM = 15
MAX_ROOT_NS = 16_000_000_000  #: root delay or dispersion beyond 16 s is absurd (RFC MAXDISP)
_NS = 1_000_000_000
_TIMESTAMPS = struct.Struct("!4Q")
_MASK32 = 0xFFFF_FFFF
#: server times outside [2000-01-01, 2100-01-01) UTC are absurd (no real clock reads them;
#: the era pivot would otherwise take them for exact 1968..2104 times)
SANE_UNIX_S = (946_684_800, 4_102_444_800)
_MIN_UNIX_S = (1 << 31) - NTP_EPOCH_OFFSET_S  # era 0, seconds >= 2^31: 1968-01-20
_MAX_UNIX_S = (1 << 32) + (1 << 31) - NTP_EPOCH_OFFSET_S  # end of the era-1 pivot window


def ntp_to_ns(value: int) -> int:
    """A 64-bit NTP timestamp to ns since the Unix epoch (rounded to the nearest ns)."""
    seconds = value >> 32
    if seconds < 1 << 31:
        seconds += 1 << 32  # era 1
    frac_ns = ((value & _MASK32) * _NS + (1 << 31)) >> 32
    return (seconds - NTP_EPOCH_OFFSET_S) * _NS + frac_ns


def ns_to_ntp(unix_ns: int) -> int:
    """ns since the Unix epoch to a 64-bit NTP timestamp (nearest 2^-32 s).

    Raises:
        NtpDecodeError: outside 1968-01-20 .. 2104, which the era pivot cannot represent.
    """
    seconds, rem_ns = divmod(unix_ns, _NS)
    if not _MIN_UNIX_S <= seconds < _MAX_UNIX_S:
        raise NtpDecodeError(f"timestamp {unix_ns} ns is outside the NTP era window")
    frac = ((rem_ns << 32) + _NS // 2) // _NS
    if frac > _MASK32:
        seconds, frac = seconds + 1, 0
    return (((seconds + NTP_EPOCH_OFFSET_S) & _MASK32) << 32) | frac


def short_to_ns(value: int) -> float:
    """An NTP short (16.16 fixed-point seconds: root delay, dispersion) to ns."""
    return value * _NS / 65536.0


def ns_to_short(ns: float) -> int:
    """ns to an NTP short, rounded up (a bound must not shrink), saturating at 0xFFFFFFFF."""
    if ns <= 0:
        return 0
    if not math.isfinite(ns):
        return _MASK32
    raw = math.ceil(Fraction(ns) * 65536 / _NS)
    return min(raw, _MASK32)


@dataclass(frozen=True, slots=True)
class NtpPacket:
    """An NTP header with raw wire values (RFC 5905 Figure 8).

    Attributes:
        leap: leap indicator 0..3 (3 = clock unsynchronised).
        version: 1..7 (we send 4).
        mode: 3 = client, 4 = server.
        stratum: 0 = Kiss-o'-Death, 1 = primary, 2..15 secondary, 16 = unsynchronised.
        poll: log2 of the poll interval (s), signed.
        precision: log2 of the clock's precision (s), signed.
        root_delay: NTP short (16.16 s) round-trip delay to the primary reference.
        root_dispersion: NTP short (16.16 s) dispersion to the primary reference.
        reference_id: 32-bit reference id (ASCII code at stratum 0/1, IPv4 address above).
        reference_ts, origin_ts, receive_ts, transmit_ts: 64-bit NTP timestamps.
    """

    leap: int = 0
    version: int = 4
    mode: int = MODE_CLIENT
    stratum: int = 0
    poll: int = 0
    precision: int = 0
    root_delay: int = 0
    root_dispersion: int = 0
    reference_id: int = 0
    reference_ts: int = 0
    origin_ts: int = 0
    receive_ts: int = 0
    transmit_ts: int = 0

    @property
    def root_delay_ns(self) -> float:
        return short_to_ns(self.root_delay)

    @property
    def root_dispersion_ns(self) -> float:
        return short_to_ns(self.root_dispersion)

    @property
    def precision_ns(self) -> float:
        """The sender's clock precision, 2^precision seconds, in ns."""
        return float(2.0 ** max(-64, min(self.precision, 30)) * _NS)

    @property
    def reference_text(self) -> str:
        """The reference id for humans: an ASCII code (``LOCL``, ``GPS``) when it is one at
        stratum 0/1, else a dotted IPv4 address (chrony's local reference shows 127.127.1.1)."""
        raw = self.reference_id.to_bytes(4, "big")
        text = raw.rstrip(b"\0")
        if self.stratum <= 1 and text and all(32 <= b < 127 for b in text):
            return text.decode("ascii")
        return str(ipaddress.IPv4Address(raw))

    @property
    def kiss_code(self) -> str:
        """The reference id as a 4-character ASCII code (meaningful at stratum 0)."""
        raw = self.reference_id.to_bytes(4, "big")
        return "".join(chr(b) if 32 <= b < 127 else "?" for b in raw).rstrip("?")


_RANGES: dict[str, tuple[int, int]] = {
    "leap": (0, 3), "version": (0, 7), "mode": (0, 7), "stratum": (0, 255),
    "poll": (-128, 127), "precision": (-128, 127), "root_delay": (0, _MASK32),
    "root_dispersion": (0, _MASK32), "reference_id": (0, _MASK32),
    "reference_ts": (0, (1 << 64) - 1), "origin_ts": (0, (1 << 64) - 1),
    "receive_ts": (0, (1 << 64) - 1), "transmit_ts": (0, (1 << 64) - 1),
}


def encode(packet: NtpPacket) -> bytes:
    """The 48 wire bytes of ``packet``.

    Raises:
        NtpDecodeError: a field is out of its wire range (the message names the field).
    """
    for name, (low, high) in _RANGES.items():
        value = getattr(packet, name)
        if not low <= value <= high:
            raise NtpDecodeError(f"NtpPacket.{name}: {value} is outside {low}..{high}")
    legacy = ntplib.NTPPacket(version=packet.version, mode=packet.mode)
    legacy.leap = packet.leap
    legacy.stratum = packet.stratum
    legacy.poll = packet.poll & 0xFF  # ntplib packs poll unsigned; the wire value is signed
    legacy.precision = packet.precision
    legacy.root_delay = packet.root_delay / 65536.0  # exact in a float
    legacy.root_dispersion = packet.root_dispersion / 65536.0
    legacy.ref_id = packet.reference_id
    header: bytes = legacy.to_data()[:16]
    return header + _TIMESTAMPS.pack(
        packet.reference_ts, packet.origin_ts, packet.receive_ts, packet.transmit_ts
    )


def decode(data: bytes) -> NtpPacket:
    """Decode the header of an NTP datagram (extension fields and MAC are ignored).

    Raises:
        NtpDecodeError: fewer than 48 bytes.
    """
    if len(data) < HEADER_BYTES:
        raise NtpDecodeError(f"NTP packet too short: {len(data)} bytes, need {HEADER_BYTES}")
    legacy = ntplib.NTPPacket()
    try:
        legacy.from_data(bytes(data[:HEADER_BYTES]))
    except ntplib.NTPException as exc:  # pragma: no cover - length checked above
        raise NtpDecodeError(f"NTP packet undecodable: {exc}") from None
    poll = int(legacy.poll)
    ref, orig, recv, xmt = _TIMESTAMPS.unpack_from(data, 16)
    return NtpPacket(
        leap=int(legacy.leap),
        version=int(legacy.version),
        mode=int(legacy.mode),
        stratum=int(legacy.stratum),
        poll=poll - 256 if poll > 127 else poll,
        precision=int(legacy.precision),
        root_delay=round(legacy.root_delay * 65536),
        root_dispersion=round(legacy.root_dispersion * 65536),
        reference_id=int(legacy.ref_id),
        reference_ts=ref,
        origin_ts=orig,
        receive_ts=recv,
        transmit_ts=xmt,
    )


_KOD_REASONS = {"RATE": RejectReason.KOD_RATE, "DENY": RejectReason.KOD_DENY,
                "RSTR": RejectReason.KOD_RSTR}


def validate_reply(reply: NtpPacket, origin_ts: int, *, interleaved: bool = False) -> None:
    """Check a server's reply whose origin timestamp should be ``origin_ts``.

    ``origin_ts`` is our request's transmit timestamp (basic mode) or its receive timestamp
    (interleaved mode, where the reply's transmit timestamp belongs to the previous reply,
    so the ``t3 >= t2`` check moves to :class:`clocksync.ntp.Exchange`).
    The checks run in the order of :class:`RejectReason`; the first failing one raises.

    Raises:
        KissOfDeathError: stratum 0 (``RATE``: back off; ``DENY``/``RSTR``: stop polling).
        NtpRejectError: any other failed check, with its reason code.
    """
    if reply.origin_ts != origin_ts:
        raise NtpRejectError(RejectReason.BAD_ORIGIN,
                          "reply's origin timestamp does not match our request "
                          "(spoofed, duplicate or stale reply)")
    if reply.mode != MODE_SERVER:
        raise NtpRejectError(RejectReason.BAD_MODE, f"reply has mode {reply.mode}, expected 4")
    if reply.version not in (3, 4):
        raise NtpRejectError(RejectReason.BAD_VERSION,
                          f"reply has version {reply.version}, expected 3 or 4")
    if reply.stratum == 0:
        code = reply.kiss_code
        reason = _KOD_REASONS.get(code, RejectReason.KOD_OTHER)
        raise KissOfDeathError(reason, code, f"server sent Kiss-o'-Death {code!r}")
    if reply.leap == LEAP_UNSYNCHRONISED:
        raise NtpRejectError(RejectReason.UNSYNCHRONISED,
                          "server is unsynchronised (leap indicator 3)")
    if reply.stratum > MAX_STRATUM:
        raise NtpRejectError(RejectReason.BAD_STRATUM,
                          f"server stratum {reply.stratum} is above {MAX_STRATUM}")
    if reply.transmit_ts == 0:
        raise NtpRejectError(RejectReason.ZERO_TRANSMIT, "reply's transmit timestamp is zero")
    if reply.receive_ts == 0:
        raise NtpRejectError(RejectReason.ABSURD_TIMESTAMPS, "reply's receive timestamp is zero")
    for name, value in (("receive", reply.receive_ts), ("transmit", reply.transmit_ts)):
        if not SANE_UNIX_S[0] * _NS <= ntp_to_ns(value) < SANE_UNIX_S[1] * _NS:
            raise NtpRejectError(RejectReason.ABSURD_TIMESTAMPS,
                              f"reply's {name} timestamp is outside the years 2000..2099")
    if not interleaved and ntp_to_ns(reply.transmit_ts) < ntp_to_ns(reply.receive_ts):
        raise NtpRejectError(RejectReason.ABSURD_TIMESTAMPS,
                          "reply transmitted before the request was received (t3 < t2)")
    if reply.root_delay_ns >= MAX_ROOT_NS or reply.root_dispersion_ns >= MAX_ROOT_NS:
        raise NtpRejectError(RejectReason.ABSURD_TIMESTAMPS,
                          "root delay or root dispersion of 16 s or more")
