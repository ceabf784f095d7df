"""Codec unit tests: each malformation's error, flag bit positions, units, bindings."""

from __future__ import annotations

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

import ptp
from clocksync import InputError
from ptp import FLAG_NAMES


def _sync(**kw: object) -> bytes:
    return ptp.encode(ptp.Sync(**kw))


def test_decode_error_is_an_input_error() -> None:
    assert issubclass(ptp.PtpDecodeError, InputError)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "0 octets, need 34"),
        (_sync()[:33], "33 octets, need 34"),
        (bytes([0x00, 0x01]) + _sync()[2:], "versionPTP 1"),
        (bytes([0x04]) + _sync()[1:], "messageType 0x4"),
        (_sync()[:2] + (43).to_bytes(2, "big") + _sync()[4:], "messageLength 43 < 44"),
        (_sync()[:2] + (60).to_bytes(2, "big") + _sync()[4:], "only 44 octets"),
        (_sync() + b"\x00\x00", "trailing data"),
        (ptp.encode(ptp.DelayResp())[:44], "messageLength 54 but only 44"),
        (
            ptp.encode(ptp.Sync(originTimestamp=ptp.Timestamp(nanosecondsField=10**9))),
            "nanosecondsField 1000000000",
        ),
    ],
)
def test_malformed_input_names_the_field(data: bytes, match: str) -> None:
    with pytest.raises(ptp.PtpDecodeError, match=match):
        ptp.decode(data)


def test_tlv_framing_errors() -> None:
    base = ptp.encode(ptp.Signaling())
    for suffix, match in [
        (b"\x00\x03\x00", "3 octets left, need 4"),
        (b"\x00\x03\x00\x08abcd", "lengthField 8 overruns"),
        (b"\x00\x01\x00\x00", "management TLV .* lengthField 0 < 2"),
    ]:
        data = bytearray(base + suffix)
        data[2:4] = len(data).to_bytes(2, "big")
        with pytest.raises(ptp.PtpDecodeError, match=match):
            ptp.decode(bytes(data))


def test_padding_is_dropped_only_when_allowed() -> None:
    padded = _sync(sequenceId=7) + b"\x00\x00"  # Ethernet pads 44 octets to 46
    assert ptp.decode(padded, allow_padding=True).sequenceId == 7
    with pytest.raises(ptp.PtpDecodeError):
        ptp.decode(padded)


@pytest.mark.parametrize(
    ("name", "octet", "bit"),
    [
        ("alternateMaster", 0, 0),
        ("twoStep", 0, 1),
        ("unicast", 0, 2),
        ("profileSpecific1", 0, 5),
        ("profileSpecific2", 0, 6),
        ("leap61", 1, 0),
        ("leap59", 1, 1),
        ("currentUtcOffsetValid", 1, 2),
        ("ptpTimescale", 1, 3),
        ("timeTraceable", 1, 4),
        ("frequencyTraceable", 1, 5),
    ],
)
def test_flag_bits_are_where_table_20_puts_them(name: str, octet: int, bit: int) -> None:
    wire = _sync(flagField=name)
    assert wire[6 + octet] == 1 << bit
    assert wire[6 + (1 - octet)] == 0
    msg = ptp.decode(wire)
    assert msg.flag(name)
    assert [n for n in FLAG_NAMES if msg.flag(n)] == [name]


def test_signed_fields_and_units() -> None:
    wire = _sync(correctionField=-(3 * 65536 + 32768), logMessageInterval=-3)
    assert wire[8:16] == (-(3 * 65536 + 32768)).to_bytes(8, "big", signed=True)
    assert wire[33] == 0xFD
    msg = ptp.decode(wire)
    assert msg.correction_ns == -3.5
    assert msg.logMessageInterval == -3
    assert msg.log_interval_s == 0.125


def test_timestamp_is_48_bit_seconds_and_32_bit_ns() -> None:
    ns = ((1 << 48) - 1) * 10**9 + 999_999_999
    ts = ptp.Timestamp.from_ns(ns)
    assert bytes(ts) == b"\xff" * 6 + (999_999_999).to_bytes(4, "big")
    assert ts.to_ns() == ns
    with pytest.raises(ValueError, match="must be >= 0"):
        ptp.Timestamp.from_ns(-1)


def test_announce_layout_matches_table_25() -> None:
    wire = ptp.encode(
        ptp.Announce(
            currentUtcOffset=-2,
            grandmasterPriority1=1,
            grandmasterClockQuality=ptp.ClockQuality(
                clockClass=6, clockAccuracy=0x21, offsetScaledLogVariance=0x4E5D
            ),
            grandmasterPriority2=2,
            grandmasterIdentity=bytes(range(8)),
            stepsRemoved=0x0102,
            timeSource=0x20,
        )
    )
    assert len(wire) == 64
    assert wire[44:46] == b"\xff\xfe"  # currentUtcOffset, signed
    assert wire[47:53] == bytes([1, 6, 0x21, 0x4E, 0x5D, 2])
    assert wire[53:61] == bytes(range(8))
    assert wire[61:64] == b"\x01\x02\x20"


def test_management_tlv_round_trip_and_lengths() -> None:
    msg = ptp.Management(
        actionField=2, tlvs=[ptp.ManagementTlv(managementId=0xC000, dataField=b"\x01" * 6)]
    )
    wire = ptp.encode(msg)
    assert wire[46] == 0x02  # reserved(4) | actionField(4) = RESPONSE
    assert wire[48:52] == b"\x00\x01\x00\x08"  # MANAGEMENT, lengthField = 2 + 6
    back = ptp.decode(wire)
    assert isinstance(back.tlvs[0], ptp.ManagementTlv)
    assert back.tlvs[0].managementId == 0xC000
    assert back.tlvs[0].dataField == b"\x01" * 6


def test_udp_and_ethernet_bindings_dissect_our_layers() -> None:
    sync = ptp.Sync(sequenceId=3)
    udp = IP(bytes(IP(dst="10.200.4.1") / UDP(sport=319, dport=319) / sync))
    assert isinstance(udp[UDP].payload, ptp.Sync)
    assert udp[ptp.Sync].sequenceId == 3
    resp = UDP(bytes(UDP(sport=320, dport=320) / ptp.DelayResp(sequenceId=4)))
    assert isinstance(resp.payload, ptp.DelayResp)
    # Ethernet pads 44 octets to 46: the padding is not taken for TLVs
    frame = Ether(
        bytes(
            Ether(dst="01:1b:19:00:00:00", src="02:00:00:00:00:01", type=ptp.ETHERTYPE_PTP) / sync
        )
        + b"\x00\x00"
    )
    assert isinstance(frame.payload, ptp.Sync)
    assert frame[ptp.Sync].tlvs == []
    assert ptp.encode(frame[ptp.Sync]) == ptp.encode(sync)


def test_public_api_is_exactly_all() -> None:
    public = {n for n in dir(ptp) if not n.startswith("_")}
    assert public == set(ptp.__all__)
    assert len(ptp.__all__) == len(set(ptp.__all__))


def test_with_sequence_id_patches_only_octets_30_31() -> None:
    wire = ptp.encode(ptp.DelayReq(sequenceId=1, domainNumber=4))
    patched = ptp.with_sequence_id(wire, 0x1234)
    assert patched[30:32] == b"\x12\x34"
    assert patched[:30] == wire[:30] and patched[32:] == wire[32:]
    assert ptp.decode(patched).sequenceId == 0x1234


def test_scapy_dissects_unknown_types_as_bare_header_but_decode_rejects_them() -> None:
    raw = bytearray(ptp.encode(ptp.Sync()) + b"\xaa\xbb")
    raw[0] = 0x05  # reserved messageType
    raw[2:4] = (46).to_bytes(2, "big")
    pkt = UDP(bytes(UDP(sport=320, dport=320) / Raw(bytes(raw) + b"\x00\x00")))
    assert type(pkt.payload) is ptp.PtpMessage
    body = pkt.payload.payload
    assert bytes(body.load) == bytes(raw[34:])  # messageLength - 34 octets
    assert bytes(body.payload) == b"\x00\x00"  # past messageLength: padding
    with pytest.raises(ptp.PtpDecodeError, match="messageType 0x5"):
        ptp.decode(bytes(raw))
