"""Hypothesis strategies for valid PTPv2 messages of every type."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

import ptp

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
i8 = st.integers(-128, 127)
clock_ids = st.binary(min_size=8, max_size=8)


@st.composite
def timestamps(draw: st.DrawFn) -> ptp.Timestamp:
    return ptp.Timestamp(
        secondsField=draw(st.integers(0, (1 << 48) - 1)),
        nanosecondsField=draw(st.integers(0, 999_999_999)),
    )


@st.composite
def port_ids(draw: st.DrawFn) -> ptp.PortIdentity:
    return ptp.PortIdentity(clockIdentity=draw(clock_ids), portNumber=draw(u16))


@st.composite
def tlvs(draw: st.DrawFn) -> ptp.Tlv:
    if draw(st.booleans()):
        return ptp.ManagementTlv(managementId=draw(u16), dataField=draw(st.binary(max_size=40)))
    tlv_type = draw(u16.filter(lambda t: t != 0x0001))
    return ptp.Tlv(tlvType=tlv_type, valueField=draw(st.binary(max_size=40)))


def _header(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "transportSpecific": draw(st.integers(0, 15)),
        "minorVersionPTP": draw(st.integers(0, 15)),
        "domainNumber": draw(u8),
        "minorSdoId": draw(u8),
        "flagField": draw(u16),
        "correctionField": draw(st.integers(-(1 << 63), (1 << 63) - 1)),
        "messageTypeSpecific": draw(st.integers(0, (1 << 32) - 1)),
        "sourcePortIdentity": draw(port_ids()),
        "sequenceId": draw(u16),
        "controlField": draw(u8),
        "logMessageInterval": draw(i8),
        "tlvs": draw(st.lists(tlvs(), max_size=3)),
    }


def _body(draw: st.DrawFn, cls: type[ptp.PtpMessage]) -> dict[str, Any]:
    """Random values for the body fields of ``cls`` (by field type)."""
    body: dict[str, Any] = {}
    header_names = {f.name for f in ptp.PtpMessage.fields_desc} | {"tlvs"}
    for f in cls.fields_desc:
        if f.name in header_names:
            continue
        default = f.default
        if isinstance(default, ptp.Timestamp):
            body[f.name] = draw(timestamps())
        elif isinstance(default, ptp.PortIdentity):
            body[f.name] = draw(port_ids())
        elif isinstance(default, ptp.ClockQuality):
            body[f.name] = ptp.ClockQuality(
                clockClass=draw(u8), clockAccuracy=draw(u8), offsetScaledLogVariance=draw(u16)
            )
        elif isinstance(default, bytes):
            body[f.name] = draw(st.binary(min_size=len(default), max_size=len(default)))
        elif f.name == "currentUtcOffset":
            body[f.name] = draw(st.integers(-(1 << 15), (1 << 15) - 1))
        elif f.name == "stepsRemoved":
            body[f.name] = draw(u16)
        elif f.name in ("reserved0", "actionField"):
            body[f.name] = draw(st.integers(0, 15))
        else:
            body[f.name] = draw(u8)
    return body


MESSAGE_CLASSES = [
    ptp.Sync,
    ptp.DelayReq,
    ptp.FollowUp,
    ptp.DelayResp,
    ptp.Announce,
    ptp.PdelayReq,
    ptp.PdelayResp,
    ptp.PdelayRespFollowUp,
    ptp.Signaling,
    ptp.Management,
]


@st.composite
def messages(draw: st.DrawFn) -> ptp.PtpMessage:
    cls = draw(st.sampled_from(MESSAGE_CLASSES))
    return cls(**_header(draw), **_body(draw, cls))
