"""PTPv2 wire data types (IEEE 1588-2008 clause 5.3) as scapy sub-packets and fields.

Each type knows its unit: :class:`Timestamp` converts to integer nanoseconds,
``correctionField`` values are scaled nanoseconds (ns x 2^16, :func:`scaled_ns_to_ns`),
``logMessageInterval`` values are log2 seconds (:func:`log_interval_s`).
"""

from __future__ import annotations

from typing import Any

from scapy.fields import BitField, ByteEnumField, ByteField, IntField, ShortField, StrFixedLenField
from scapy.packet import Packet

__all__ = [
    "CLOCK_ACCURACY",
    "CORRECTION_SCALE",
    "NS_PER_S",
    "TIME_SOURCE",
    "ClockIdentityField",
    "ClockQuality",
    "PortIdentity",
    "Timestamp",
    "format_clock_identity",
    "log_interval_s",
    "ns_to_scaled_ns",
    "scaled_ns_to_ns",
]

NS_PER_S = 1_000_000_000
#: correctionField and other TimeInterval values are nanoseconds multiplied by 2^16 (5.3.2).
CORRECTION_SCALE = 1 << 16

#: clockAccuracy enumeration (7.6.2.5, Table 6).
CLOCK_ACCURACY: dict[int, str] = {
    0x20: "25ns",
    0x21: "100ns",
    0x22: "250ns",
    0x23: "1us",
    0x24: "2.5us",
    0x25: "10us",
    0x26: "25us",
    0x27: "100us",
    0x28: "250us",
    0x29: "1ms",
    0x2A: "2.5ms",
    0x2B: "10ms",
    0x2C: "25ms",
    0x2D: "100ms",
    0x2E: "250ms",
    0x2F: "1s",
    0x30: "10s",
    0x31: ">10s",
    0xFE: "unknown",
}

#: timeSource enumeration (7.6.2.6, Table 7).
TIME_SOURCE: dict[int, str] = {
    0x10: "ATOMIC_CLOCK",
    0x20: "GPS",
    0x30: "TERRESTRIAL_RADIO",
    0x40: "PTP",
    0x50: "NTP",
    0x60: "HAND_SET",
    0x90: "OTHER",
    0xA0: "INTERNAL_OSCILLATOR",
}


def scaled_ns_to_ns(scaled: int) -> float:
    """A TimeInterval / correctionField value (ns x 2^16, signed) in nanoseconds."""
    return scaled / CORRECTION_SCALE


def ns_to_scaled_ns(ns: float) -> int:
    """Nanoseconds as a TimeInterval value (ns x 2^16), rounded to the nearest unit."""
    return round(ns * CORRECTION_SCALE)


def log_interval_s(log_interval: int) -> float:
    """A logMessageInterval (log2 seconds, 13.3.2.14) in seconds; 0x7F means "not used"."""
    return float(2.0**log_interval)


def format_clock_identity(raw: bytes) -> str:
    """An 8-octet clockIdentity the way linuxptp prints it: ``001122.fffe.334455``."""
    h = raw.hex()
    return f"{h[:6]}.{h[6:10]}.{h[10:]}"


class ClockIdentityField(StrFixedLenField):
    """ClockIdentity (5.3.4): Octet[8], shown as ``001122.fffe.334455``."""

    def __init__(self, name: str, default: bytes = b"\x00" * 8) -> None:
        super().__init__(name, default, length=8)

    def i2repr(self, pkt: Packet | None, x: Any) -> str:
        return format_clock_identity(bytes(x)) if isinstance(x, bytes) else repr(x)


class _Sub(Packet):
    """A fixed-size structure embedded in a message: it never owns trailing bytes."""

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        return b"", s


class Timestamp(_Sub):
    """Timestamp (5.3.3): UInteger48 secondsField + UInteger32 nanosecondsField (10 octets)."""

    name = "Timestamp"
    fields_desc = [  # noqa: RUF012 - scapy's declaration style
        BitField("secondsField", 0, 48),
        IntField("nanosecondsField", 0),
    ]

    def to_ns(self) -> int:
        """Nanoseconds since the PTP epoch (TAI-based for the PTP timescale, 7.2)."""
        return int(self.secondsField) * NS_PER_S + int(self.nanosecondsField)

    @classmethod
    def from_ns(cls, ns: int) -> Timestamp:
        """The Timestamp of ``ns`` nanoseconds (>= 0) since the epoch."""
        if ns < 0:
            raise ValueError(f"Timestamp.from_ns: must be >= 0, got {ns}")
        seconds, nanoseconds = divmod(ns, NS_PER_S)
        return cls(secondsField=seconds, nanosecondsField=nanoseconds)


class PortIdentity(_Sub):
    """PortIdentity (5.3.5): ClockIdentity clockIdentity + UInteger16 portNumber (10 octets)."""

    name = "PortIdentity"
    fields_desc = [  # noqa: RUF012
        ClockIdentityField("clockIdentity"),
        ShortField("portNumber", 1),
    ]

    def key(self) -> tuple[bytes, int]:
        """A hashable, comparable value: ``(clockIdentity, portNumber)``."""
        return bytes(self.clockIdentity), int(self.portNumber)

    def __str__(self) -> str:
        return f"{format_clock_identity(bytes(self.clockIdentity))}-{int(self.portNumber)}"


class ClockQuality(_Sub):
    """ClockQuality (5.3.7): clockClass, clockAccuracy (Table 6), offsetScaledLogVariance."""

    name = "ClockQuality"
    fields_desc = [  # noqa: RUF012
        ByteField("clockClass", 248),
        ByteEnumField("clockAccuracy", 0xFE, CLOCK_ACCURACY),
        ShortField("offsetScaledLogVariance", 0xFFFF),
    ]
