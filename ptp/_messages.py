"""PTPv2 messages (IEEE 1588-2008 clause 13) as scapy layers: header + body + TLVs.

Every message class carries the 34-octet common header (Table 18) followed by its body and
a list of TLVs (clause 14) filling the rest of ``messageLength``. :class:`PtpMessage` picks
the class from the ``messageType`` nibble when dissecting, so scapy's own ``UDP()/...`` and
``Ether()/...`` parsing works (ports 319/320, ethertype 0x88F7 are bound at import).

Units: ``correctionField`` is signed scaled nanoseconds (ns x 2^16, 13.3.2.7), read it with
:attr:`PtpMessage.correction_ns`; Timestamps convert with ``to_ns()``; ``logMessageInterval``
is a signed log2 of seconds (13.3.2.14).

scapy's own ``scapy.contrib.ptp_v2`` is not used: it byte-swaps the flag bits, reads
``logMessageInterval``/``correctionField`` unsigned and lacks Delay_Resp's
``requestingPortIdentity``.
"""

from __future__ import annotations

import enum
from typing import Any, ClassVar

from scapy.fields import (
    BitEnumField,
    BitField,
    ByteEnumField,
    ByteField,
    FlagsField,
    IntField,
    PacketField,
    PacketListField,
    ShortEnumField,
    ShortField,
    SignedByteField,
    SignedLongField,
    SignedShortField,
    StrFixedLenField,
    StrLenField,
    XShortEnumField,
)
from scapy.layers.inet import UDP
from scapy.layers.l2 import Ether
from scapy.packet import Packet, bind_layers

from ._types import (
    TIME_SOURCE,
    ClockIdentityField,
    ClockQuality,
    PortIdentity,
    Timestamp,
    log_interval_s,
    scaled_ns_to_ns,
)

__all__ = [
    "ETHERTYPE_PTP",
    "EVENT_PORT",
    "FLAG_NAMES",
    "GENERAL_PORT",
    "HEADER_LEN",
    "MANAGEMENT_ID",
    "MESSAGE_CLASSES",
    "MESSAGE_LENGTHS",
    "TLV_TYPE",
    "Announce",
    "DelayReq",
    "DelayResp",
    "FollowUp",
    "Management",
    "ManagementTlv",
    "MessageType",
    "PdelayReq",
    "PdelayResp",
    "PdelayRespFollowUp",
    "PtpMessage",
    "Signaling",
    "Sync",
    "Tlv",
]

EVENT_PORT = 319  # Annex D.2: event messages (timestamped)
GENERAL_PORT = 320  # Annex D.2: general messages
ETHERTYPE_PTP = 0x88F7  # Annex F.2
HEADER_LEN = 34  # Table 18


class MessageType(enum.IntEnum):
    """messageType values (13.3.2.2, Table 19); 0-3 are event messages."""

    SYNC = 0x0
    DELAY_REQ = 0x1
    PDELAY_REQ = 0x2
    PDELAY_RESP = 0x3
    FOLLOW_UP = 0x8
    DELAY_RESP = 0x9
    PDELAY_RESP_FOLLOW_UP = 0xA
    ANNOUNCE = 0xB
    SIGNALING = 0xC
    MANAGEMENT = 0xD


_MESSAGE_TYPE_NAMES = {m.value: m.name for m in MessageType}

#: controlField per message type (13.3.2.13, Table 23); 5 = "all others".
_CONTROL = {
    MessageType.SYNC: 0,
    MessageType.DELAY_REQ: 1,
    MessageType.FOLLOW_UP: 2,
    MessageType.DELAY_RESP: 3,
    MessageType.MANAGEMENT: 4,
}

#: flagField bits (13.3.2.6, Table 20) as one big-endian 16-bit value: octet 1 is bits 0-7,
#: octet 0 is bits 8-15. Octet 0: bit 0 alternateMasterFlag, bit 1 twoStepFlag, bit 2
#: unicastFlag, bits 5/6 PTP profile Specific 1/2. Octet 1: bit 0 leap61, bit 1 leap59,
#: bit 2 currentUtcOffsetValid, bit 3 ptpTimescale, bit 4 timeTraceable,
#: bit 5 frequencyTraceable. Reserved bits keep a name so they survive a round trip.
FLAG_NAMES = (
    "leap61",
    "leap59",
    "currentUtcOffsetValid",
    "ptpTimescale",
    "timeTraceable",
    "frequencyTraceable",
    "reserved1_6",
    "reserved1_7",
    "alternateMaster",
    "twoStep",
    "unicast",
    "reserved0_3",
    "reserved0_4",
    "profileSpecific1",
    "profileSpecific2",
    "reserved0_7",
)

#: tlvType values (14.1.1).
TLV_TYPE: dict[int, str] = {
    0x0001: "MANAGEMENT",
    0x0002: "MANAGEMENT_ERROR_STATUS",
    0x0003: "ORGANIZATION_EXTENSION",
    0x0004: "REQUEST_UNICAST_TRANSMISSION",
    0x0005: "GRANT_UNICAST_TRANSMISSION",
    0x0006: "CANCEL_UNICAST_TRANSMISSION",
    0x0007: "ACKNOWLEDGE_CANCEL_UNICAST_TRANSMISSION",
    0x0008: "PATH_TRACE",
    0x0009: "ALTERNATE_TIME_OFFSET_INDICATOR",
}

#: Some managementId values (15.5.2.3); linuxptp's implementation-specific ones are 0xC0xx.
MANAGEMENT_ID: dict[int, str] = {
    0x0000: "NULL_MANAGEMENT",
    0x0001: "CLOCK_DESCRIPTION",
    0x2000: "DEFAULT_DATA_SET",
    0x2001: "CURRENT_DATA_SET",
    0x2002: "PARENT_DATA_SET",
    0x2003: "TIME_PROPERTIES_DATA_SET",
    0x2004: "PORT_DATA_SET",
    0x2005: "PRIORITY1",
    0x2006: "PRIORITY2",
    0x2007: "DOMAIN",
    0x2008: "SLAVE_ONLY",
    0xC000: "TIME_STATUS_NP",
    0xC001: "GRANDMASTER_SETTINGS_NP",
    0xC002: "PORT_DATA_SET_NP",
}

#: actionField values (15.4.1.6).
_ACTION = {0: "GET", 1: "SET", 2: "RESPONSE", 3: "COMMAND", 4: "ACKNOWLEDGE"}


class Tlv(Packet):
    """A TLV (14.1): tlvType, lengthField (octets of valueField), valueField."""

    name = "TLV"
    fields_desc = [  # noqa: RUF012 - scapy's declaration style
        ShortEnumField("tlvType", 0x0003, TLV_TYPE),
        ShortField("lengthField", None),
        StrLenField("valueField", b"", length_from=lambda p: p.lengthField),
    ]

    @classmethod
    def dispatch_hook(cls, _pkt: bytes | None = None, *args: Any, **kargs: Any) -> type[Packet]:
        if _pkt is not None and len(_pkt) >= 2 and _pkt[0:2] == b"\x00\x01":
            return ManagementTlv
        return cls

    def post_build(self, pkt: bytes, pay: bytes) -> bytes:
        if self.lengthField is None:
            pkt = pkt[:2] + (len(pkt) - 4).to_bytes(2, "big") + pkt[4:]
        return pkt + pay

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        return b"", s


class ManagementTlv(Tlv):
    """The management TLV (15.5.2): tlvType 1, lengthField, managementId, dataField."""

    name = "ManagementTLV"
    fields_desc = [  # noqa: RUF012 - scapy's declaration style
        ShortEnumField("tlvType", 0x0001, TLV_TYPE),
        ShortField("lengthField", None),
        XShortEnumField("managementId", 0x0000, MANAGEMENT_ID),
        StrLenField("dataField", b"", length_from=lambda p: p.lengthField - 2),
    ]


def _header(message_type: MessageType, log_interval: int = 0) -> list[Any]:
    """The common header fields (13.3.1, Table 18) with this message type's defaults."""
    return [
        # octet 0: transportSpecific (majorSdoId in 1588-2019) | messageType (Table 19)
        BitField("transportSpecific", 0, 4),
        BitEnumField("messageType", int(message_type), 4, _MESSAGE_TYPE_NAMES),
        # octet 1: reserved in 2008 (minorVersionPTP in 2019) | versionPTP
        BitField("minorVersionPTP", 0, 4),
        BitField("versionPTP", 2, 4),
        ShortField("messageLength", None),  # whole message incl. header and TLVs, octets
        ByteField("domainNumber", 0),
        ByteField("minorSdoId", 0),  # reserved in 2008
        FlagsField("flagField", 0, 16, list(FLAG_NAMES)),  # Table 20
        SignedLongField("correctionField", 0),  # Integer64, ns x 2^16
        IntField("messageTypeSpecific", 0),  # reserved in 2008
        PacketField("sourcePortIdentity", PortIdentity(), PortIdentity),
        ShortField("sequenceId", 0),
        ByteField("controlField", _CONTROL.get(message_type, 5)),  # Table 23
        SignedByteField("logMessageInterval", log_interval),  # Table 24, log2 s
    ]


def _tlvs(fixed_len: int) -> PacketListField:
    """TLVs after a body ending at octet ``fixed_len``, up to messageLength (14.1)."""
    return PacketListField(
        "tlvs", [], Tlv, length_from=lambda p: max(0, int(p.messageLength or 0) - fixed_len)
    )


class PtpMessage(Packet):
    """A PTPv2 message: the common header (Table 18); subclasses add body and TLVs.

    Instantiating ``PtpMessage(raw_bytes)`` returns the subclass matching ``messageType``
    (header-only ``PtpMessage`` with a Raw payload for unknown types). Prefer
    :func:`ptp.decode`, which also validates.
    """

    name = "PTPv2"
    message_type: ClassVar[MessageType | None] = None
    fields_desc = _header(MessageType.SYNC)

    @classmethod
    def dispatch_hook(cls, _pkt: bytes | None = None, *args: Any, **kargs: Any) -> type[Packet]:
        if _pkt:
            return MESSAGE_CLASSES.get(_pkt[0] & 0x0F, cls)
        return cls

    def post_build(self, pkt: bytes, pay: bytes) -> bytes:
        if self.messageLength is None:
            pkt = pkt[:2] + len(pkt).to_bytes(2, "big") + pkt[4:]
        return pkt + pay

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        # Everything past messageLength (e.g. Ethernet padding) is not ours. Known message
        # types end with their TLV list (sized from messageLength); the bare header of an
        # unknown type keeps messageLength - 34 octets as its payload.
        if type(self) is not PtpMessage:
            return b"", s
        end = max(0, int(self.messageLength or 0) - HEADER_LEN)
        return s[:end], s[end:]

    @property
    def correction_ns(self) -> float:
        """correctionField in nanoseconds (signed; the wire holds ns x 2^16)."""
        return scaled_ns_to_ns(int(self.correctionField))

    @property
    def log_interval_s(self) -> float:
        """logMessageInterval in seconds (2^logMessageInterval)."""
        return log_interval_s(int(self.logMessageInterval))

    @property
    def two_step(self) -> bool:
        """twoStepFlag: a Follow_Up (or Pdelay_Resp_Follow_Up) carries the precise time."""
        return bool(int(self.flagField) & (1 << FLAG_NAMES.index("twoStep")))

    def flag(self, name: str) -> bool:
        """The flagField bit called ``name`` (one of :data:`FLAG_NAMES`)."""
        return bool(int(self.flagField) & (1 << FLAG_NAMES.index(name)))

    @property
    def source(self) -> PortIdentity:
        """sourcePortIdentity."""
        value: PortIdentity = self.sourcePortIdentity
        return value


class Sync(PtpMessage):
    """Sync (13.6, Table 26): originTimestamp (0 or approximate when two-step)."""

    name = "PTPv2 Sync"
    message_type = MessageType.SYNC
    fields_desc = [  # noqa: RUF012 - scapy's declaration style
        *_header(MessageType.SYNC),
        PacketField("originTimestamp", Timestamp(), Timestamp),
        _tlvs(44),
    ]


class DelayReq(PtpMessage):
    """Delay_Req (13.6, Table 26): originTimestamp."""

    name = "PTPv2 Delay_Req"
    message_type = MessageType.DELAY_REQ
    fields_desc = [  # noqa: RUF012 - scapy's declaration style
        *_header(MessageType.DELAY_REQ, 0x7F),
        PacketField("originTimestamp", Timestamp(), Timestamp),
        _tlvs(44),
    ]


class FollowUp(PtpMessage):
    """Follow_Up (13.7, Table 27): preciseOriginTimestamp of the matching Sync."""

    name = "PTPv2 Follow_Up"
    message_type = MessageType.FOLLOW_UP
    fields_desc = [  # noqa: RUF012 - scapy's declaration style
        *_header(MessageType.FOLLOW_UP),
        PacketField("preciseOriginTimestamp", Timestamp(), Timestamp),
        _tlvs(44),
    ]


class DelayResp(PtpMessage):
    """Delay_Resp (13.8, Table 28): receiveTimestamp of the Delay_Req and who sent it."""

    name = "PTPv2 Delay_Resp"
    message_type = MessageType.DELAY_RESP
    fields_desc = [  # noqa: RUF012 - scapy's declaration style
        *_header(MessageType.DELAY_RESP),
        PacketField("receiveTimestamp", Timestamp(), Timestamp),
        PacketField("requestingPortIdentity", PortIdentity(), PortIdentity),
        _tlvs(54),
    ]


class Announce(PtpMessage):
    """Announce (13.5, Table 25): the sender's grandmaster dataset for the BMCA."""

    name = "PTPv2 Announce"
    message_type = MessageType.ANNOUNCE
    fields_desc = [  # noqa: RUF012 - scapy's declaration style
        *_header(MessageType.ANNOUNCE, 1),
        PacketField("originTimestamp", Timestamp(), Timestamp),
        SignedShortField("currentUtcOffset", 0),  # TAI - UTC, s
        ByteField("reserved", 0),
        ByteField("grandmasterPriority1", 128),
        PacketField("grandmasterClockQuality", ClockQuality(), ClockQuality),
        ByteField("grandmasterPriority2", 128),
        ClockIdentityField("grandmasterIdentity"),
        ShortField("stepsRemoved", 0),
        ByteEnumField("timeSource", 0xA0, TIME_SOURCE),  # Table 7
        _tlvs(64),
    ]


class PdelayReq(PtpMessage):
    """Pdelay_Req (13.9, Table 29): originTimestamp + 10 reserved octets."""

    name = "PTPv2 Pdelay_Req"
    message_type = MessageType.PDELAY_REQ
    fields_desc = [  # noqa: RUF012 - scapy's declaration style
        *_header(MessageType.PDELAY_REQ, 0x7F),
        PacketField("originTimestamp", Timestamp(), Timestamp),
        StrFixedLenField("reserved", b"\x00" * 10, 10),
        _tlvs(54),
    ]


class PdelayResp(PtpMessage):
    """Pdelay_Resp (13.10, Table 30): requestReceiptTimestamp, requestingPortIdentity."""

    name = "PTPv2 Pdelay_Resp"
    message_type = MessageType.PDELAY_RESP
    fields_desc = [  # noqa: RUF012 - scapy's declaration style
        *_header(MessageType.PDELAY_RESP, 0x7F),
        PacketField("requestReceiptTimestamp", Timestamp(), Timestamp),
        PacketField("requestingPortIdentity", PortIdentity(), PortIdentity),
        _tlvs(54),
    ]


class PdelayRespFollowUp(PtpMessage):
    """Pdelay_Resp_Follow_Up (13.11, Table 31): responseOriginTimestamp, requester."""

    name = "PTPv2 Pdelay_Resp_Follow_Up"
    message_type = MessageType.PDELAY_RESP_FOLLOW_UP
    fields_desc = [  # noqa: RUF012 - scapy's declaration style
        *_header(MessageType.PDELAY_RESP_FOLLOW_UP, 0x7F),
        PacketField("responseOriginTimestamp", Timestamp(), Timestamp),
        PacketField("requestingPortIdentity", PortIdentity(), PortIdentity),
        _tlvs(54),
    ]


class Signaling(PtpMessage):
    """Signaling (13.12): targetPortIdentity + TLVs."""

    name = "PTPv2 Signaling"
    message_type = MessageType.SIGNALING
    fields_desc = [  # noqa: RUF012 - scapy's declaration style
        *_header(MessageType.SIGNALING, 0x7F),
        PacketField("targetPortIdentity", PortIdentity(), PortIdentity),
        _tlvs(44),
    ]


class Management(PtpMessage):
    """Management (15.4.1): target, boundary hops, actionField + the management TLV(s)."""

    name = "PTPv2 Management"
    message_type = MessageType.MANAGEMENT
    fields_desc = [  # noqa: RUF012 - scapy's declaration style
        *_header(MessageType.MANAGEMENT, 0x7F),
        PacketField("targetPortIdentity", PortIdentity(), PortIdentity),
        ByteField("startingBoundaryHops", 0),
        ByteField("boundaryHops", 0),
        BitField("reserved0", 0, 4),
        BitEnumField("actionField", 0, 4, _ACTION),
        ByteField("reserved1", 0),
        _tlvs(48),
    ]


#: messageType -> class, for dissection.
MESSAGE_CLASSES: dict[int, type[PtpMessage]] = {
    int(c.message_type): c
    for c in (
        Sync,
        DelayReq,
        FollowUp,
        DelayResp,
        Announce,
        PdelayReq,
        PdelayResp,
        PdelayRespFollowUp,
        Signaling,
        Management,
    )
    if c.message_type is not None
}

#: messageType -> octets of header + body before any TLV (Tables 25-31, 13.12, 15.4.1).
MESSAGE_LENGTHS: dict[int, int] = {
    MessageType.SYNC: 44,
    MessageType.DELAY_REQ: 44,
    MessageType.FOLLOW_UP: 44,
    MessageType.DELAY_RESP: 54,
    MessageType.ANNOUNCE: 64,
    MessageType.PDELAY_REQ: 54,
    MessageType.PDELAY_RESP: 54,
    MessageType.PDELAY_RESP_FOLLOW_UP: 54,
    MessageType.SIGNALING: 44,
    MessageType.MANAGEMENT: 48,
}

for _port in (EVENT_PORT, GENERAL_PORT):
    bind_layers(UDP, PtpMessage, dport=_port)
    bind_layers(UDP, PtpMessage, sport=_port)
bind_layers(Ether, PtpMessage, type=ETHERTYPE_PTP)
